package report

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pathtrace/pathtrace/correlate"
)

// The default table view: one line per point and one matrix row per trace,
// so a run of a few probes reads in one screen. Options.Detail keeps the
// row-per-hop view (table.go) for when the MACs and TTL of every hop matter.

// matrixRow is one trace of the timeline. cells are per column (point in
// path order) and depend on the decimals the layout settled on.
type matrixRow struct {
	tr     *correlate.Trace
	num    string
	label  string
	arrow  string
	flags  []trFlag
	cols   []int // column of each hop, -1 for reflections and repeats
	extras []int // hops at a point that already has a cell
}

// timeline writes the trace matrix: a column per point in path order, a row
// per trace with the Δ from the previous hop in crossing order at each point
// the frame crossed, and a marker where it did not (gap, LOST, ·).
func (t *textWriter) timeline(d Document) {
	r := d.Result
	list, more := shown(r, t.o.Limit)
	names, colOf := matrixColumns(r, list)
	pair, hasPair := mainPair(d)

	title := tracesTitle(list, more)
	if len(list) == 0 {
		t.line("%s", title)
		t.line("  none")
		return
	}
	var parts []string
	if hasPair {
		parts = append(parts, pair[0].String()+" ⇄ "+pair[1].String()+" unless labelled")
	}
	parts = append(parts, "Δ µs from the previous point crossed; → forward, ← reverse")
	for _, p := range parts {
		if utf8.RuneCountInString(title)+2+utf8.RuneCountInString(p) <= t.o.width() {
			title += "; " + p
		}
	}
	t.line("%s", strings.Replace(title, "; ", ": ", 1))

	rows := matrixRows(list, colOf, len(names), pair, hasPair)

	lay := fitMatrix(names, rows, t.o.width())
	for i, l := range wrapNotes(legend(names, lay.headers()), t.o.width()-len(" columns: ")) {
		if i == 0 {
			t.line(" columns: %s", l)
		} else {
			t.line("          %s", l)
		}
	}
	if ruler := lay.nodeRuler(r); ruler != "" {
		t.line("%s", strings.TrimRight(ruler, " "))
	}
	t.line("%s", strings.TrimRight(lay.header(), " "))
	shownNotes := map[string]bool{}
	macPairs := map[string]bool{}
	indent := strings.Repeat(" ", 1+lay.numW+lay.sep)
	for i := range rows {
		line, overflow := lay.row(&rows[i])
		t.line("%s", strings.TrimRight(line, " "))
		var notes []string
		if lay.label(&rows[i]) != rows[i].label {
			notes = append(notes, rows[i].label)
		}
		for _, n := range matrixNotes(t.own, &rows[i], overflow, macPairs, lay.dec, true) {
			// Said once is enough: the cells of later rows show the same.
			if !shownNotes[n] {
				shownNotes[n] = true
				notes = append(notes, n)
			}
		}
		for _, n := range wrapNotes(notes, t.o.width()-len(indent)-2) {
			t.wrapped(n, indent+"↳ ", indent+"  ")
		}
	}
	for _, n := range zeroNotes(d, list, lay.dec) {
		t.wrapped(n, "", "  ")
	}
	if more > 0 {
		t.line("%s", moreLine(more))
	}
}

// matrixColumns is the points in path order, then any point a hop names
// that the result does not list, so no hop is left out.
func matrixColumns(r *correlate.Result, list []correlate.Trace) ([]string, map[string]int) {
	var names []string
	colOf := map[string]int{}
	add := func(n string) {
		if _, ok := colOf[n]; !ok {
			colOf[n] = len(names)
			names = append(names, n)
		}
	}
	for _, p := range r.Points {
		add(p.Name)
	}
	for i := range list {
		for _, h := range list[i].Hops {
			add(h.Point)
		}
	}
	return names, colOf
}

// matrixRows places each trace's hops in the columns of their points:
// reflections and second sightings at a point stay out of the cells.
func matrixRows(list []correlate.Trace, colOf map[string]int, ncols int, pair [2]netip.Addr, hasPair bool) []matrixRow {
	rows := make([]matrixRow, len(list))
	for i := range list {
		tr := &list[i]
		row := matrixRow{tr: tr, num: "#" + strconv.Itoa(tr.N), label: traceLabel(tr, pair, hasPair),
			arrow: "→", flags: traceFlags(tr)}
		if tr.Direction == correlate.Reverse {
			row.arrow = "←"
		}
		row.cols = make([]int, len(tr.Hops))
		used := make([]bool, ncols)
		for j := range tr.Hops {
			h := &tr.Hops[j]
			row.cols[j] = -1
			if h.Reflection {
				continue
			}
			c := colOf[h.Point]
			if used[c] {
				row.extras = append(row.extras, j)
				continue
			}
			used[c] = true
			row.cols[j] = c
		}
		rows[i] = row
	}
	return rows
}

// matrixNotes are the lines under a trace row, only what the row cannot
// say: where it was lost or unseen (withLoss), rewrites and MAC pairs the
// first time they appear, repeated sightings, and flags that did not fit.
func matrixNotes(own owners, row *matrixRow, overflow []string, macPairs map[string]bool, dec int, withLoss bool) []string {
	tr := row.tr
	var n []string
	if tr.LostAfter != "" && withLoss {
		n = append(n, "lost after "+tr.LostAfter)
	}
	if len(tr.Missing) > 0 && withLoss {
		n = append(n, "missing: "+strings.Join(tr.Missing, ", "))
	}
	if d := dropNote(tr); d != "" {
		n = append(n, d)
	}
	n = withEncap(n, tr)
	src, dst, ok := firstMACs(tr)
	pair := src + ">" + dst
	for _, rn := range rewriteNotes(own, tr.Rewrites) {
		n = append(n, rn)
		if strings.HasPrefix(rn, "MAC rewritten") && ok {
			// The rewrite names the MACs the frame started with.
			macPairs[pair] = true
		}
	}
	if ok && !macPairs[pair] {
		macPairs[pair] = true
		n = append(n, "MACs "+macName(own, src)+" → "+macName(own, dst))
	}
	for _, j := range row.extras {
		h := &tr.Hops[j]
		n = append(n, fmt.Sprintf("seen again at %s %s", h.Point, signedMicros(h.DeltaNs, dec)))
	}
	if len(overflow) > 0 {
		n = append(n, strings.Join(overflow, ", "))
	}
	return n
}
