package report

import (
	"slices"
	"strings"

	"github.com/pathtrace/pathtrace/correlate"
)

// What the lane diagram draws, decided before drawing. Up to drawAll
// traces are all drawn; beyond, the traces with findings are drawn in time
// order (at most maxProblemRows) and the clean ones are folded into one
// median line per shape, with a one-line marker where they were in time.
const (
	drawAll        = 200
	maxProblemRows = 300
	maxAggLines    = 6
)

// lanePlan is what the diagram shows, decided before drawing.
type lanePlan struct {
	items      []laneItem
	aggs       []*aggLine
	aggTraces  int // clean traces folded into aggs
	otherAggs  int // clean traces of shapes beyond maxAggLines: counted only
	problems   int // problem traces drawn
	notDrawn   int // problem traces beyond maxProblemRows
	maxSpan    int64
	aggregated bool
}

// laneItem is a trace drawn on its own, or a run of traces that are not.
type laneItem struct {
	tr   *correlate.Trace
	skip *skipRun
}

type skipRun struct {
	firstN, lastN int
	n, problems   int
	t0            correlate.Timestamp // first stamp of the run's first trace
}

// aggLine is the median crossing of the clean traces of one shape (same
// type, direction and points).
type aggLine struct {
	first         *correlate.Trace
	lastN         int
	count         int
	offs, deltas  [][]int64 // per main hop
	medOff, medDt []int64
}

func planLanes(r *correlate.Result) *lanePlan {
	p := &lanePlan{}
	if len(r.Traces) <= drawAll {
		for i := range r.Traces {
			if len(r.Traces[i].Hops) > 0 {
				p.add(&r.Traces[i])
			}
		}
		return p
	}
	p.aggregated = true
	flagged := map[int]bool{}
	for _, a := range r.Anomalies {
		for _, n := range a.Traces {
			flagged[n] = true
		}
	}
	shapes := map[string]*aggLine{}
	var run *skipRun
	for i := range r.Traces {
		tr := &r.Traces[i]
		if len(tr.Hops) == 0 {
			continue // nothing to draw; the correlator emits none such
		}
		bad := problem(tr) || flagged[tr.N]
		if bad && p.problems < maxProblemRows {
			run = nil
			p.problems++
			p.add(tr)
			continue
		}
		if run == nil {
			run = &skipRun{firstN: tr.N, t0: tr.Hops[0].Time}
			p.items = append(p.items, laneItem{skip: run})
		}
		run.lastN = tr.N
		run.n++
		if bad {
			run.problems++
			p.notDrawn++
			continue
		}
		key := shapeKey(tr)
		a := shapes[key]
		if a == nil {
			if len(p.aggs) == maxAggLines {
				p.otherAggs++
				continue
			}
			a = &aggLine{first: tr}
			shapes[key] = a
			p.aggs = append(p.aggs, a)
		}
		a.addTrace(tr)
		p.aggTraces++
	}
	for _, a := range p.aggs {
		a.finish()
		for _, off := range a.medOff {
			p.maxSpan = max(p.maxSpan, off)
		}
	}
	return p
}

func (p *lanePlan) add(tr *correlate.Trace) {
	p.items = append(p.items, laneItem{tr: tr})
	for j := range tr.Hops {
		p.maxSpan = max(p.maxSpan, refTime(&tr.Hops[j])-refTime(&tr.Hops[0]))
	}
}

// mainHops are the hops in crossing order without reflections: the line.
func mainHops(tr *correlate.Trace) []int {
	var m []int
	for j := range tr.Hops {
		if !tr.Hops[j].Reflection {
			m = append(m, j)
		}
	}
	return m
}

func shapeKey(tr *correlate.Trace) string {
	var b strings.Builder
	b.WriteString(tr.Protocol.String() + "\x00" + tr.Type + "\x00" + tr.Direction.String())
	for _, j := range mainHops(tr) {
		b.WriteString("\x00" + tr.Hops[j].Point)
	}
	return b.String()
}

func (a *aggLine) addTrace(tr *correlate.Trace) {
	m := mainHops(tr)
	if a.offs == nil {
		a.offs, a.deltas = make([][]int64, len(m)), make([][]int64, len(m))
	}
	for k, j := range m {
		a.offs[k] = append(a.offs[k], refTime(&tr.Hops[j])-refTime(&tr.Hops[m[0]]))
		a.deltas[k] = append(a.deltas[k], tr.Hops[j].DeltaNs)
	}
	a.count++
	a.lastN = tr.N
}

func (a *aggLine) finish() {
	a.medOff, a.medDt = make([]int64, len(a.offs)), make([]int64, len(a.offs))
	for k := range a.offs {
		a.medOff[k], a.medDt[k] = median(a.offs[k]), median(a.deltas[k])
	}
	a.offs, a.deltas = nil, nil
}

func median(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	c := slices.Clone(v)
	slices.Sort(c)
	return c[(len(c)-1)/2]
}
