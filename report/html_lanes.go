package report

import (
	"fmt"
	"html/template"
	"math"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pathtrace/pathtrace/correlate"
)

// The lane diagram: one vertical lane per point in path order, one row per
// trace, the trace a line crossing the lanes at its stamps.
//
// The time axis has two levels, because deltas within a trace are µs while
// traces are ms to s apart: one linear axis would squash every trace flat or
// stretch the page to kilometres. Time flows down both ways. Rows are in
// time order (the order the correlator first saw the traces), each labelled
// with its real first stamp. Inside a row a stamp sits at its offset from
// the trace's first stamp, on one scale shared by every row, so slopes
// compare across rows (a steeper segment is a slower hop); the scale is
// linear up to ~10 µs and logarithmic beyond, so a 3 µs veth crossing and a
// millisecond stall both stay inside the row. The exact Δ is written on
// each segment; the geometry is for the eye.

// Geometry in px.
const (
	laneLeft   = 262.0  // trace labels
	laneRight  = 214.0  // findings
	laneMargin = 56.0   // between a gutter and the nearest lane
	laneMinGap = 116.0  // closer lanes would crowd the Δ labels
	laneWidth  = 1220.0 // the width the diagram is fitted to
	headH      = 62.0
	rowH       = 52.0
	bandTop    = 12.0 // a trace's first stamp sits this far below its row top
	bandH      = 30.0 // and its offsets within this height
	skipH      = 24.0
	captionH   = 26.0
	offsetUnit = 10_000.0 // ns: the y scale is ~linear below, ~log above
)

type yScale struct {
	span int64 // ns at the bottom of the band
	lmax float64
}

func newYScale(maxSpan int64) yScale {
	span := max(maxSpan, 2*offsetUnit)
	return yScale{span, math.Log1p(float64(span) / offsetUnit)}
}

// at is the y of an offset (ns from the trace's first stamp) within a row.
// A negative offset (a later point stamped first) goes above, bounded.
func (s yScale) at(off int64) float64 {
	v := math.Log1p(math.Abs(float64(off))/offsetUnit) / s.lmax
	if off < 0 {
		v = -min(v, 0.35)
	}
	return bandTop + bandH*min(v, 1)
}

// replyLike tells replies from requests; traffic that is neither (TCP, UDP)
// is drawn by direction: the reverse way like a reply.
func replyLike(tr *correlate.Trace) bool {
	switch {
	case strings.HasSuffix(tr.Type, "reply"), strings.HasSuffix(tr.Type, "advertisement"):
		return true
	case strings.HasSuffix(tr.Type, "request"), strings.HasSuffix(tr.Type, "solicitation"):
		return false
	}
	return tr.Direction == correlate.Reverse
}

func arrowOf(tr *correlate.Trace) string {
	if tr.Direction == correlate.Reverse {
		return "←"
	}
	return "→"
}

// laneDiagram draws a plan.
type laneDiagram struct {
	d       Document
	own     owners
	plan    *lanePlan
	names   []string
	colOf   map[string]int
	x       []float64
	gap     float64
	width   float64
	scale   yScale
	pair    [2]netip.Addr
	hasPair bool
	nodes   map[string]string // point → node, on a path across nodes
	band    float64           // height of the node band over the lane names
	s       svgW
}

func newLaneDiagram(d Document, plan *lanePlan) *laneDiagram {
	var drawn []correlate.Trace // whose points need a lane
	for _, it := range plan.items {
		if it.tr != nil {
			drawn = append(drawn, *it.tr)
		}
	}
	for _, a := range plan.aggs {
		drawn = append(drawn, *a.first)
	}
	ld := &laneDiagram{d: d, own: ownersOf(d), plan: plan, scale: newYScale(plan.maxSpan)}
	ld.names, ld.colOf = matrixColumns(d.Result, drawn)
	ld.pair, ld.hasPair = mainPair(d)
	n := len(ld.names)
	inner := laneWidth - laneLeft - laneRight - 2*laneMargin
	ld.gap = laneMinGap
	if n > 1 {
		ld.gap = max(inner/float64(n-1), laneMinGap)
	}
	ld.x = make([]float64, n)
	for i := range ld.x {
		ld.x[i] = laneLeft + laneMargin + float64(i)*ld.gap
	}
	if n == 1 {
		ld.x[0] = laneLeft + laneMargin + inner/2
	}
	ld.width = max(laneWidth, laneLeft+2*laneMargin+float64(max(n-1, 0))*ld.gap+laneRight)
	if ld.nodes = pointNodes(d.Result); ld.nodes != nil {
		ld.band = nodeBandH
	}
	return ld
}

// laneSVG renders the diagram of d.
func laneSVG(d Document, plan *lanePlan) template.HTML {
	ld := newLaneDiagram(d, plan)
	return ld.render()
}

func (ld *laneDiagram) height() float64 {
	h := headH + ld.band
	if ld.plan.aggregated {
		h += 2*captionH + float64(len(ld.plan.aggs))*rowH
	}
	for _, it := range ld.plan.items {
		if it.tr != nil {
			h += rowH
		} else {
			h += skipH
		}
	}
	return h + 8
}

func (ld *laneDiagram) render() template.HTML {
	s := &ld.s
	h := ld.height()
	s.open("svg", "lanes", false, "width", ld.width, "height", h, "viewBox",
		attr("0 0 "+num(ld.width)+" "+num(h)), "role", attr("img"))
	s.title("Lane diagram: one lane per capture point in path order, one row per trace, time flowing down")
	ld.header(h)
	y := headH + ld.band
	if ld.plan.aggregated {
		s.text("cap", 8, y+17, "", fmt.Sprintf("Typical crossing: median of %d clean traces, one line per shape", ld.plan.aggTraces))
		y += captionH
		for i := range ld.plan.aggs {
			ld.rowBack(y+float64(i)*rowH, rowH, i)
		}
		for _, a := range ld.plan.aggs {
			ld.agg(a, y)
			y += rowH
		}
		s.text("cap", 8, y+17, "", "Traces with findings, in time order; ⋯ marks where clean traces were")
		y += captionH
	}
	// Backgrounds first: a row's marks may reach into the next row.
	yy := y
	for row, it := range ld.plan.items {
		if it.tr != nil {
			ld.rowBack(yy, rowH, row)
			yy += rowH
		} else {
			yy += skipH
		}
	}
	for _, it := range ld.plan.items {
		if it.tr != nil {
			ld.trace(it.tr, y)
			y += rowH
			continue
		}
		ld.skip(it.skip, y)
		y += skipH
	}
	s.close("svg")
	return s.html()
}

// header writes the lane names with namespace/interface and MTU, the gutter
// headings, and the lanes themselves.
func (ld *laneDiagram) header(h float64) {
	s := &ld.s
	b := ld.band
	s.el("rect", "head", "x", 0, "y", 0, "width", ld.width, "height", b+headH-6)
	ld.nodeBand()
	day := coverageDate(ld.d.Result)
	s.text("gh", 8, b+22, "", "TRACE")
	s.text("gh", 8, b+38, "", "first stamp (UTC "+day+")")
	s.text("gh", ld.width-laneRight+14, b+22, "", "FINDINGS")
	s.text("gh", ld.width-laneRight+14, b+38, "", "Δ and rtt in µs")
	chars := int(ld.gap / 7.5)
	for i, name := range ld.names {
		x := ld.x[i]
		s.el("line", "lane", "x1", x, "y1", b+headH-6, "x2", x, "y2", h)
		sub1, sub2 := ld.laneInfo(name)
		s.open("g", "lh", false)
		s.title(strings.TrimSpace(name + "\n" + sub1 + "\n" + sub2))
		s.text("ln-name", x, b+18, "", truncMiddle(name, chars))
		s.text("ln-sub", x, b+33, "", truncMiddle(sub1, chars+3))
		s.text("ln-sub", x, b+47, "", truncMiddle(sub2, chars+3))
		s.close("g")
	}
}

// nodeBandH is the height of the band naming each node over its lanes.
const nodeBandH = 22.0

// nodeBand names each node over the run of lanes it holds (a path across
// nodes), as the table's ruler does over its columns.
func (ld *laneDiagram) nodeBand() {
	if ld.band == 0 {
		return
	}
	s := &ld.s
	for i := 0; i < len(ld.names); {
		n := ld.nodes[ld.names[i]]
		j := i
		for j+1 < len(ld.names) && ld.nodes[ld.names[j+1]] == n {
			j++
		}
		if n != "" {
			x0, x1 := ld.x[i]-ld.gap/2+6, ld.x[j]+ld.gap/2-6
			s.open("g", "nb", false)
			s.title("node " + n)
			s.el("rect", "nodeband", "x", x0, "y", 4, "width", x1-x0, "height", ld.band-6, "rx", 3)
			s.text("node-name", (x0+x1)/2, ld.band-8, "", truncMiddle(n, int((x1-x0)/7.5)))
			s.close("g")
		}
		i = j + 1
	}
}

// laneInfo is "netns/interface" and "MTU n · role" from discovery, or for
// saved captures the interface the file records and its MTU or file name.
func (ld *laneDiagram) laneInfo(name string) (string, string) {
	if p := ld.d.Path; p != nil {
		for _, pt := range p.Points {
			if pt.Name == name {
				return pt.Netns + "/" + pt.Interface, "MTU " + strconv.Itoa(pt.MTU) + " · " + string(pt.Role)
			}
		}
	}
	for _, pt := range ld.d.Result.Points {
		if pt.Name == name {
			sub1 := "no ifname"
			switch {
			case pt.Interface.Valid:
				sub1 = pt.Interface.V
			case pt.IfIndex.Valid:
				sub1 = "ifindex " + strconv.FormatInt(pt.IfIndex.V, 10)
			}
			sub2 := filepath.Base(pt.Source)
			if pt.MTU.Valid {
				sub2 += " · MTU " + strconv.FormatInt(pt.MTU.V, 10)
			}
			return sub1, sub2
		}
	}
	return "not a listed point", ""
}

func (ld *laneDiagram) rowBack(top, height float64, row int) {
	if row%2 == 1 {
		ld.s.el("rect", "alt", "x", 0, "y", top, "width", ld.width, "height", height)
	}
}

// kindClass is the request/reply class of a line.
func kindClass(tr *correlate.Trace) string {
	if replyLike(tr) {
		return "rep"
	}
	return "req"
}

// trace draws one trace in the row at top.
func (ld *laneDiagram) trace(tr *correlate.Trace, top float64) {
	s := &ld.s
	s.open("g", "tr "+kindClass(tr), false)
	tip := traceTitle(tr)
	if notes := traceNotes(ld.own, tr); len(notes) > 0 {
		tip += "\n" + strings.Join(notes, "\n")
	}
	s.title(tip)
	pos := make([][2]float64, len(tr.Hops))
	t0 := refTime(&tr.Hops[0])
	for j := range tr.Hops {
		h := &tr.Hops[j]
		pos[j] = [2]float64{ld.x[ld.colOf[h.Point]], top + ld.scale.at(refTime(h)-t0)}
	}
	main := mainHops(tr)
	line := make([][2]float64, len(main))
	dts := make([]int64, len(main))
	for k, j := range main {
		line[k], dts[k] = pos[j], tr.Hops[j].DeltaNs
	}
	ld.line(line, dts, "")
	for j := range tr.Hops {
		if !tr.Hops[j].Reflection {
			continue
		}
		p := pos[prevHop(tr, j)]
		s.el("line", "rf", "x1", p[0], "y1", p[1], "x2", pos[j][0], "y2", pos[j][1])
		ld.reflDelta(p, pos[j], tr.Hops[j].DeltaNs)
		x, y := pos[j][0], pos[j][1]
		s.el("polygon", "refl", "points", pointsAttr([][2]float64{{x, y - 5}, {x + 5, y}, {x, y + 5}, {x - 5, y}}))
	}
	ld.gaps(tr, main, pos)
	if tr.LostAfter != "" && len(main) > 0 {
		ld.lost(tr, pos[lastAt(tr, main, tr.LostAfter)])
	}
	ld.labels(top, "#"+strconv.Itoa(tr.N), arrowOf(tr)+" "+traceLabel(tr, ld.pair, ld.hasPair),
		clock(tr.Hops[0].Time, 6), rowNotes(tr), tr.LostAfter != "" || len(tr.Missing) > 0)
	s.close("g")
}

// line draws a polyline with dots at the crossings, an arrowhead at the end
// and the Δ of each hop on its segment (prefix "p50 " for medians).
func (ld *laneDiagram) line(pts [][2]float64, dts []int64, prefix string) {
	s := &ld.s
	if len(pts) > 1 {
		s.el("polyline", "ln", "points", pointsAttr(pts))
	}
	for k, p := range pts {
		s.el("circle", "dot", "cx", p[0], "cy", p[1], "r", 3)
		if k > 0 {
			ld.delta(pts[k-1], p, dts[k], prefix)
		}
	}
	if n := len(pts); n > 1 {
		ld.arrowhead(pts[n-2], pts[n-1])
	}
}

// delta writes a Δ on the segment a→b, above its middle; negative in red.
func (ld *laneDiagram) delta(a, b [2]float64, ns int64, prefix string) {
	cls := "dt"
	if ns < 0 {
		cls = "dt neg"
	}
	dx := b[0] - a[0]
	if math.Abs(dx) < 1 { // same lane (a repeat): beside it
		ld.s.text(cls+" side", a[0]+6, (a[1]+b[1])/2, "", prefix+signedMicros(ns, 1))
		return
	}
	// Half-way to the first lane on the way: a segment that skips lanes
	// (a point that did not see the frame) keeps the skipped lane clear.
	f := min(ld.gap/2/math.Abs(dx), 0.5)
	ld.s.text(cls, a[0]+dx*f, a[1]+(b[1]-a[1])*f-4, "", prefix+signedMicros(ns, 1)) // centred by CSS
}

// reflDelta writes a reflection's Δ under its dotted line near the end:
// the line runs back over the main one, whose labels sit above it.
func (ld *laneDiagram) reflDelta(a, b [2]float64, ns int64) {
	x, y := a[0]+(b[0]-a[0])*0.75, a[1]+(b[1]-a[1])*0.75+12
	ld.s.text("dt rfd", x, y, "", signedMicros(ns, 1))
}

// arrowhead points along a→b, its tip at b's dot.
func (ld *laneDiagram) arrowhead(a, b [2]float64) {
	dx, dy := b[0]-a[0], b[1]-a[1]
	l := math.Hypot(dx, dy)
	if l < 1 {
		return
	}
	ux, uy := dx/l, dy/l
	tip := [2]float64{b[0] - ux*3.5, b[1] - uy*3.5}
	base := [2]float64{tip[0] - ux*9, tip[1] - uy*9}
	ld.s.el("polygon", "ah", "points", pointsAttr([][2]float64{tip,
		{base[0] - uy*4, base[1] + ux*4}, {base[0] + uy*4, base[1] - ux*4}}))
}

// prevHop is the hop a reflection's Δ is measured from: the latest earlier
// hop stamped Δ before it (the bridge that sent it back), else the one before.
func prevHop(tr *correlate.Trace, j int) int {
	want := refTime(&tr.Hops[j]) - tr.Hops[j].DeltaNs
	for k := j - 1; k >= 0; k-- {
		if refTime(&tr.Hops[k]) == want {
			return k
		}
	}
	return max(j-1, 0)
}

// lastAt is the last main hop at point, else the last main hop.
func lastAt(tr *correlate.Trace, main []int, point string) int {
	for k := len(main) - 1; k >= 0; k-- {
		if tr.Hops[main[k]].Point == point {
			return main[k]
		}
	}
	return main[len(main)-1]
}

// lost ends the line in a cross half-way to the next lane the frame should
// have reached, a little later than its last stamp.
func (ld *laneDiagram) lost(tr *correlate.Trace, last [2]float64) {
	dir := 1.0
	if tr.Direction == correlate.Reverse {
		dir = -1
	}
	cx, cy := last[0]+dir*ld.gap*0.5, last[1]+7
	ld.s.el("line", "stub", "x1", last[0], "y1", last[1], "x2", cx, "y2", cy)
	const r = 5.5
	ld.s.open("path", "lost", false, "d", attr("M"+num(cx-r)+" "+num(cy-r)+"L"+num(cx+r)+" "+num(cy+r)+
		"M"+num(cx-r)+" "+num(cy+r)+"L"+num(cx+r)+" "+num(cy-r)))
	ld.s.title("lost after " + tr.LostAfter)
	ld.s.close("path")
}

// gaps puts a hollow mark where the line crosses a lane the frame was not
// seen at, between the hops on either side.
func (ld *laneDiagram) gaps(tr *correlate.Trace, main []int, pos [][2]float64) {
	for _, m := range tr.Missing {
		c, ok := ld.colOf[m]
		if !ok {
			continue
		}
		xm := ld.x[c]
		for k := 1; k < len(main); k++ {
			a, b := pos[main[k-1]], pos[main[k]]
			if (a[0] < xm && xm < b[0]) || (b[0] < xm && xm < a[0]) {
				y := a[1] + (b[1]-a[1])*(xm-a[0])/(b[0]-a[0])
				ld.s.open("circle", "gap", false, "cx", xm, "cy", y, "r", 5.5)
				ld.s.title("not seen at " + m)
				ld.s.close("circle")
				break
			}
		}
	}
}

// rowNotes are the findings in the right gutter, the worst first.
func rowNotes(tr *correlate.Trace) []string {
	var n []string
	if tr.LostAfter != "" {
		n = append(n, "lost after "+tr.LostAfter)
	}
	if len(tr.Missing) > 0 {
		n = append(n, "unseen at "+strings.Join(tr.Missing, ","))
	}
	if tr.Drop != nil {
		n = append(n, "dropped: "+tr.Drop.Reason)
	}
	for _, f := range traceFlags(tr) {
		n = append(n, f.long)
	}
	return n
}

// labels writes the left gutter (number, label, first stamp) and up to two
// lines of findings in the right one.
func (ld *laneDiagram) labels(top float64, n, label, stamp string, notes []string, bad bool) {
	s := &ld.s
	s.text("num", 8, top+bandTop+6, "", n)
	s.text("lbl", 58, top+bandTop+6, "", cutLabel(label, 31))
	s.text("ts", 58, top+bandTop+21, "", stamp)
	lines := wrapNotes(notes, 30)
	if len(lines) > 2 {
		lines = append(lines[:1], cutLabel(lines[1]+" "+strings.Join(lines[2:], " "), 29))
	}
	cls := "nt"
	if bad {
		cls = "nt bad"
	}
	for i, l := range lines {
		s.text(cls, ld.width-laneRight+14, top+bandTop+6+float64(i)*15, "", truncRunes(l, 31))
		cls = "nt"
	}
}

// agg draws the median line of one shape of clean traces.
func (ld *laneDiagram) agg(a *aggLine, top float64) {
	s := &ld.s
	tr := a.first
	s.open("g", "agg "+kindClass(tr), false)
	s.title(fmt.Sprintf("median of %d clean traces like #%d: %s", a.count, tr.N, traceTitle(tr)))
	main := mainHops(tr)
	pts := make([][2]float64, len(main))
	for k, j := range main {
		pts[k] = [2]float64{ld.x[ld.colOf[tr.Hops[j].Point]], top + ld.scale.at(a.medOff[k])}
	}
	ld.line(pts, a.medDt, "p50 ")
	typ := tr.Protocol.String()
	if t := strings.TrimPrefix(tr.Type, typ+"-"); t != "" {
		typ += " " + t
	}
	ld.labels(top, "×"+strconv.Itoa(a.count), arrowOf(tr)+" "+typ, "median of clean traces",
		[]string{fmt.Sprintf("#%d … #%d", tr.N, a.lastN)}, false)
	s.close("g")
}

// skip is the one-line marker for traces not drawn on their own.
func (ld *laneDiagram) skip(r *skipRun, top float64) {
	s := &ld.s
	s.open("g", "skip", false)
	s.el("line", "skipln", "x1", laneLeft, "y1", top+skipH/2, "x2", ld.width-laneRight, "y2", top+skipH/2)
	what := fmt.Sprintf("%d clean traces", r.n)
	if r.problems > 0 {
		what = fmt.Sprintf("%d traces (%d clean, in the medians above; %d with findings beyond the %d drawn)",
			r.n, r.n-r.problems, r.problems, maxProblemRows)
	}
	span := "#" + strconv.Itoa(r.firstN)
	if r.lastN != r.firstN {
		span += "–#" + strconv.Itoa(r.lastN)
	}
	s.text("skiptx", 8, top+skipH/2+4, "", "⋯ "+span+"  "+clock(r.t0, 6))
	s.text("skiptx", laneLeft+laneMargin, top+skipH/2-3, "", what)
	s.close("g")
}
