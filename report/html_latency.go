package report

import (
	"fmt"
	"html/template"
	"math"
	"strings"

	"github.com/pathtrace/pathtrace/correlate"
)

// Per-hop latency distributions: a small histogram per hop pair on one log
// µs axis shared by all pairs, so pairs compare at a glance. The bars count
// the Δs of the traces this report holds; the whisker (min–max) and the p50
// and p99 ticks are the correlator's statistics over every crossing of the
// run, which may be more than the report holds.

const (
	histW, histH = 360.0, 50.0
	histX0       = 8.0
	histX1       = histW - 8
	histBase     = 27.0 // bars stand on this line
	histBarH     = 22.0
	binsPerDec   = 10
)

// hopSamples is every hop's Δ by (from, to) over the traces' main lines:
// the pairs the correlator's statistics count.
func hopSamples(r *correlate.Result) map[[2]string][]int64 {
	out := map[[2]string][]int64{}
	for i := range r.Traces {
		tr := &r.Traces[i]
		m := mainHops(tr)
		for k := 1; k < len(m); k++ {
			key := [2]string{tr.Hops[m[k-1]].Point, tr.Hops[m[k]].Point}
			out[key] = append(out[key], tr.Hops[m[k]].DeltaNs)
		}
	}
	return out
}

// logAxis spans whole decades of µs covering every pair's positive
// values: the statistics and the samples (a Δ of 0, the same stamp at two
// points, has no place on a log axis and is counted apart).
type logAxis struct{ lo, hi float64 } // log10 µs

func newLogAxis(stats []correlate.HopStat, samples map[[2]string][]int64) logAxis {
	lo, hi := math.Inf(1), math.Inf(-1)
	add := func(ns int64) {
		if ns > 0 {
			v := math.Log10(float64(ns) / 1000)
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	for _, h := range stats {
		add(h.MinNs)
		add(h.P50Ns)
		add(h.P99Ns)
		add(h.MaxNs)
	}
	for _, sm := range samples {
		for _, v := range sm {
			add(v)
		}
	}
	if math.IsInf(lo, 1) {
		return logAxis{0, 1}
	}
	a := logAxis{math.Floor(lo), math.Ceil(hi)}
	if a.hi <= a.lo {
		a.hi = a.lo + 1
	}
	return a
}

// x is where ns falls on the axis; values below its start sit at the start.
func (a logAxis) x(ns int64) float64 {
	v := math.Log10(max(float64(ns), 1) / 1000)
	f := min(max((v-a.lo)/(a.hi-a.lo), 0), 1)
	return histX0 + (histX1-histX0)*f
}

// histSVG draws one hop pair's distribution.
func histSVG(h correlate.HopStat, samples []int64, a logAxis) template.HTML {
	var s svgW
	s.open("svg", "hist", false, "width", histW, "height", histH, "viewBox", attr("0 0 "+num(histW)+" "+num(histH)), "role", attr("img"))
	s.title(fmt.Sprintf("%s → %s: %d crossings in this report; min %s, p50 %s, p99 %s, max %s µs over all %d",
		h.From, h.To, len(samples), micros(h.MinNs), micros(h.P50Ns), micros(h.P99Ns), micros(h.MaxNs), h.Count))
	decades := int(a.hi - a.lo)
	nb := decades * binsPerDec
	bins := make([]int, nb)
	neg, zero, top := 0, 0, 0
	for _, v := range samples {
		switch {
		case v < 0:
			neg++
			continue
		case v == 0:
			zero++
			continue
		}
		b := min(int((a.x(v)-histX0)/(histX1-histX0)*float64(nb)), nb-1)
		bins[b]++
		top = max(top, bins[b])
	}
	bw := (histX1 - histX0) / float64(nb)
	for d := 0; d <= decades; d++ {
		x := histX0 + (histX1-histX0)*float64(d)/float64(decades)
		s.el("line", "tick", "x1", x, "y1", 2, "x2", x, "y2", histBase+12)
		anchor := "middle"
		switch d {
		case 0:
			anchor = ""
		case decades:
			anchor = "end"
		}
		s.text("tk", x, histH-2, anchor, decadeLabel(a.lo+float64(d)))
	}
	for i, c := range bins {
		if c == 0 {
			continue
		}
		bh := max(histBarH*float64(c)/float64(top), 1.5)
		s.el("rect", "bar", "x", histX0+float64(i)*bw+0.5, "y", histBase-bh, "width", max(bw-1, 1), "height", bh)
	}
	s.el("line", "base", "x1", histX0, "y1", histBase, "x2", histX1, "y2", histBase)
	s.el("line", "wh", "x1", a.x(h.MinNs), "y1", histBase+6, "x2", a.x(h.MaxNs), "y2", histBase+6)
	s.el("line", "p99", "x1", a.x(h.P99Ns), "y1", histBase+1, "x2", a.x(h.P99Ns), "y2", histBase+11)
	s.el("line", "p50", "x1", a.x(h.P50Ns), "y1", histBase+1, "x2", a.x(h.P50Ns), "y2", histBase+11)
	var apart []string
	if zero > 0 {
		apart = append(apart, fmt.Sprintf("%d at 0 (same stamp)", zero))
	}
	if neg > 0 {
		apart = append(apart, fmt.Sprintf("%d negative", neg))
	}
	if len(apart) > 0 {
		s.text("negn", histX1, 10, "end", strings.Join(apart, ", ")+": not on the log axis")
	}
	s.close("svg")
	return s.html()
}

// decadeLabel is 10^d µs as "0.1 µs", "1 µs", "10 µs", "1 ms", "1 s".
func decadeLabel(d float64) string {
	v := math.Pow(10, d)
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%g s", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%g ms", v/1e3)
	}
	return fmt.Sprintf("%g µs", v)
}

// latencyRow is one hop pair in the HTML latency table.
type latencyRow struct {
	Node  *string // the row's node or "wire" on a path across nodes ("": as above)
	Cells []string
	Hist  template.HTML
}

func latencyRows(r *correlate.Result) ([]latencyRow, int) {
	samples := hopSamples(r)
	a := newLogAxis(r.HopLatency, samples)
	rows := make([]latencyRow, len(r.HopLatency))
	n := 0
	for i, h := range r.HopLatency {
		sm := samples[[2]string{h.From, h.To}]
		n += len(sm)
		rows[i] = latencyRow{Cells: latencyCells(h), Hist: histSVG(h, sm, a)}
	}
	return rows, n
}
