package report

// Paths across nodes: the points grouped by the node they are on, each
// node's clock, the tunnel the wire hops were seen in, and how long a frame
// spends in each node and on the wire between them.

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pathtrace/pathtrace/correlate"
)

// wireLabel names hops and segments between two nodes.
const wireLabel = "wire"

// pointNodes maps each point to its node; nil unless the points are on
// more than one node.
func pointNodes(r *correlate.Result) map[string]string {
	m := map[string]string{}
	var nodes []string
	for _, p := range r.Points {
		if p.Node == "" {
			continue
		}
		m[p.Name] = p.Node
		if !slices.Contains(nodes, p.Node) {
			nodes = append(nodes, p.Node)
		}
	}
	if len(nodes) < 2 {
		return nil
	}
	return m
}

// nodeOrder is the nodes in path order.
func nodeOrder(r *correlate.Result) []string {
	var nodes []string
	for _, p := range r.Points {
		if p.Node != "" && !slices.Contains(nodes, p.Node) {
			nodes = append(nodes, p.Node)
		}
	}
	return nodes
}

// byNode puts a NODE column in front of a table whose rows belong to the
// nodes in labels (one per row), naming each node on its first row only;
// the column positions given shift with it. Without labels the table is
// returned as it is.
func byNode(header []string, rows [][]string, labels []string, right []int, wrap []wrapCol) ([]string, [][]string, []int, []wrapCol) {
	if labels == nil {
		return header, rows, right, wrap
	}
	h := append([]string{"NODE"}, header...)
	out := make([][]string, len(rows))
	for i, r := range rows {
		l := labels[i]
		if i > 0 && labels[i-1] == l {
			l = ""
		}
		out[i] = append([]string{l}, r...)
	}
	rs := make([]int, len(right))
	for i, c := range right {
		rs[i] = c + 1
	}
	ws := []wrapCol{{0, 10}}
	for _, w := range wrap {
		ws = append(ws, wrapCol{w.col + 1, w.min})
	}
	return h, out, rs, ws
}

// rowNodes labels rows by the node of each point name; nil when the points
// are on one node.
func rowNodes(nodes map[string]string, points []string) []string {
	if nodes == nil {
		return nil
	}
	out := make([]string, len(points))
	for i, p := range points {
		out[i] = nodes[p]
	}
	return out
}

// latencyNodes labels hop-latency rows: the node both points are on, or
// the wire between two nodes.
func latencyNodes(r *correlate.Result) []string {
	nodes := pointNodes(r)
	if nodes == nil {
		return nil
	}
	out := make([]string, len(r.HopLatency))
	for i, h := range r.HopLatency {
		if a, b := nodes[h.From], nodes[h.To]; a == b {
			out[i] = a
		} else {
			out[i] = wireLabel
		}
	}
	return out
}

// nodeClockLines say what each node's clock is to the first node's: the
// offsets the analysis corrected for, or one clock for a live run on one
// machine.
func nodeClockLines(r *correlate.Result, live bool) []string {
	nodes := nodeOrder(r)
	if pointNodes(r) == nil {
		return nil
	}
	if live {
		return []string{fmt.Sprintf("%s on one clock (this machine), offset 0", strings.Join(nodes, ", "))}
	}
	at := map[string]string{}
	for _, p := range r.Points {
		at[p.Name] = p.Node
	}
	offs := map[string][]correlate.ClockOffset{}
	for _, c := range r.ClockOffsets {
		if n := at[c.Point]; n != "" {
			offs[n] = append(offs[n], c)
		}
	}
	parts := []string{nodes[0] + ": the reference"}
	for _, n := range nodes[1:] {
		cs := offs[n]
		if len(cs) == 0 {
			parts = append(parts, n+": no offset found, taken as 0")
			continue
		}
		lo, hi := cs[0], cs[0]
		for _, c := range cs {
			if c.OffsetNs < lo.OffsetNs {
				lo = c
			}
			if c.OffsetNs > hi.OffsetNs {
				hi = c
			}
		}
		s := fmt.Sprintf("%s: %+.3f µs", n, float64(lo.OffsetNs)/1e3)
		if hi.OffsetNs != lo.OffsetNs {
			s = fmt.Sprintf("%s: %+.3f to %+.3f µs (its captures' clocks differ)", n, float64(lo.OffsetNs)/1e3, float64(hi.OffsetNs)/1e3)
		} else if lo.UncertaintyNs > 0 {
			s += fmt.Sprintf(" ± %.3f µs", float64(lo.UncertaintyNs)/1e3)
		}
		parts = append(parts, s+" ("+lo.Source.String()+")")
	}
	return []string{strings.Join(parts, "; ")}
}

// encapNote is what the outer headers of a trace's wire hops said: "on the
// wire: vxlan VNI 1, 192.168.56.1 → 192.168.56.2, UDP 46246 → 8472, TTL 64".
func encapNote(tr *correlate.Trace) string {
	for i := range tr.Hops {
		e := &tr.Hops[i].Encap
		if e.Type == correlate.EncapNone {
			continue
		}
		parts := []string{e.Type.String()}
		if e.VNI.Valid {
			parts[0] += " VNI " + strconv.FormatUint(e.VNI.V, 10)
		}
		if e.OuterSrcIP.V.IsValid() {
			parts = append(parts, e.OuterSrcIP.V.String()+" → "+e.OuterDstIP.V.String())
		}
		if e.DstPort.Valid {
			parts = append(parts, fmt.Sprintf("UDP %d → %d", e.SrcPort.V, e.DstPort.V))
		}
		if e.OuterTTL.Valid {
			parts = append(parts, "TTL "+strconv.FormatUint(e.OuterTTL.V, 10))
		}
		return "on the wire: " + strings.Join(parts, ", ")
	}
	return ""
}

// withEncap adds the trace's encapNote to notes, if it has one.
func withEncap(notes []string, tr *correlate.Trace) []string {
	if e := encapNote(tr); e != "" {
		return append(notes, e)
	}
	return notes
}

// nodeRuler is the line above the timeline's header that spans each node's
// point columns: "├─ nodeA ─┤├─ nodeB ─┤". Empty on one node.
func (l *matrixLayout) nodeRuler(r *correlate.Result) string {
	nodes := pointNodes(r)
	if nodes == nil {
		return ""
	}
	x := 1 + l.numW + l.sep + l.labelW + l.sep + 1 + l.sep + l.stampW
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", x))
	for c := 0; c < len(l.names); {
		n := nodes[l.names[c]]
		w := 0
		e := c
		for ; e < len(l.names) && nodes[l.names[e]] == n; e++ {
			w += l.psep + l.pointW[e]
		}
		b.WriteString(strings.Repeat(" ", l.psep))
		b.WriteString(span(n, w-l.psep))
		c = e
	}
	return b.String()
}

// span is name centred in a bracket w runes wide, cut to fit.
func span(name string, w int) string {
	if w < 3 {
		return strings.Repeat(" ", max(w, 0))
	}
	inner := w - 2
	if n := utf8.RuneCountInString(name) + 2; n > inner {
		r := []rune(name)
		name = string(r[:max(inner-2, 0)])
	}
	if name == "" {
		return "├" + strings.Repeat("─", inner) + "┤"
	}
	name = " " + name + " "
	left := (inner - utf8.RuneCountInString(name)) / 2
	right := inner - utf8.RuneCountInString(name) - left
	return "├" + strings.Repeat("─", left) + name + strings.Repeat("─", right) + "┤"
}

// segment is the time a frame spent in one node or on the wire.
type segment struct {
	name string // node, or "wire"
	from string // first point in it
	to   string // last point in it (the next node's first, for the wire)
	dir  correlate.Direction
}

// nodeSegments is, for traces seen from one end of the path to the other,
// the time from each node's first point to its last and across the wire,
// per direction: rows of SEGMENT, DIR, COUNT, MIN µs, P50 µs, MAX µs.
func nodeSegments(r *correlate.Result) [][]string {
	nodes := pointNodes(r)
	if nodes == nil {
		return nil
	}
	ends := [2]string{r.Points[0].Name, r.Points[len(r.Points)-1].Name}
	var order []segment
	samples := map[segment][]int64{}
	for i := range r.Traces {
		tr := &r.Traces[i]
		if !slices.ContainsFunc(tr.Hops, func(h correlate.Hop) bool { return h.Point == ends[0] }) ||
			!slices.ContainsFunc(tr.Hops, func(h correlate.Hop) bool { return h.Point == ends[1] }) {
			continue
		}
		var hops []*correlate.Hop
		for j := range tr.Hops {
			if !tr.Hops[j].Reflection {
				hops = append(hops, &tr.Hops[j])
			}
		}
		for j := 0; j < len(hops); {
			n := nodes[hops[j].Point]
			k := j
			for k+1 < len(hops) && nodes[hops[k+1].Point] == n {
				k++
			}
			if k+1 >= len(hops) && j == 0 {
				break // never left its node
			}
			add := func(s segment, ns int64) {
				if _, ok := samples[s]; !ok {
					order = append(order, s)
				}
				samples[s] = append(samples[s], ns)
			}
			add(segment{n, hops[j].Point, hops[k].Point, tr.Direction}, refTime(hops[k])-refTime(hops[j]))
			if k+1 < len(hops) {
				add(segment{wireLabel, hops[k].Point, hops[k+1].Point, tr.Direction}, refTime(hops[k+1])-refTime(hops[k]))
			}
			j = k + 1
		}
	}
	var rows [][]string
	for _, s := range order {
		v := samples[s]
		sort.Slice(v, func(a, b int) bool { return v[a] < v[b] })
		arrow := "→"
		if s.dir == correlate.Reverse {
			arrow = "←"
		}
		rows = append(rows, []string{fmt.Sprintf("%s (%s … %s)", s.name, s.from, s.to), arrow, strconv.Itoa(len(v)),
			micros(v[0]), micros(v[len(v)/2]), micros(v[len(v)-1])})
	}
	return rows
}

var segmentHeader = []string{"SEGMENT", "DIR", "COUNT", "MIN µs", "P50 µs", "MAX µs"}
