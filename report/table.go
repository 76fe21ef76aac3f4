package report

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/pkg/twwidth"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/discover"
)

// Table writes the human report: what an SRE reads in one screen instead of
// five tcpdumps. The verdict comes last, where the eye lands.
func Table(w io.Writer, d Document, o Options) error {
	return write(w, d, o, "table", func(b *writer) { (&textWriter{b}).render(d) })
}

// tablewriter's package init makes a cell-width cache of 8,192 entries, 2 MiB
// of heap every run carries to its end (and the GC's pacing doubles); a
// report's tables hold a few hundred distinct cells.
func init() { twwidth.SetCacheCapacity(512) }

type textWriter struct{ *writer }

func (t *textWriter) line(format string, a ...any) {
	fmt.Fprintf(t.w, format+"\n", a...)
}

// table renders a borderless, kubectl-like table: columns separated by
// spaces, no box, so it stays narrow and copies cleanly. right lists the
// columns (numbers) to right-align. The last column (a message, a peer) is
// wrapped to keep the table within the width hint; tableFit says which
// columns may wrap.
func (t *textWriter) table(header []string, rows [][]string, right ...int) {
	t.tableFit(header, rows, right, []wrapCol{{len(header) - 1, 30}})
}

func (t *textWriter) tableFit(header []string, rows [][]string, right []int, wrap []wrapCol) {
	align := make([]tw.Align, len(header))
	for i := range align {
		align[i] = tw.AlignLeft
	}
	for _, c := range right {
		align[c] = tw.AlignRight
	}
	rows = fitColumns(header, rows, t.o.width(), wrap)
	var buf bytes.Buffer
	tbl := tablewriter.NewTable(&buf,
		tablewriter.WithRendition(tw.Rendition{
			Borders:  tw.BorderNone,
			Symbols:  tw.NewSymbols(tw.StyleNone),
			Settings: tw.Settings{Separators: tw.SeparatorsNone, Lines: tw.LinesNone},
		}),
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithHeaderAlignmentConfig(tw.CellAlignment{PerColumn: align}),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{PerColumn: align}),
		// Wrapping is done above, on boundaries we choose; tablewriter
		// must never cut a MAC or a time.
		tablewriter.WithRowAutoWrap(tw.WrapNone),
		tablewriter.WithHeaderAutoWrap(tw.WrapNone),
	)
	tbl.Header(toAny(header)...)
	for _, r := range rows {
		if err := tbl.Append(toAny(r)...); err != nil && t.err == nil {
			t.err = err
		}
	}
	if err := tbl.Render(); err != nil && t.err == nil {
		t.err = err
	}
	// The borderless renderer pads every cell, the last one too: trailing
	// blanks only make copied output and golden files noisy.
	for _, l := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		t.line("%s", strings.TrimRight(l, " "))
	}
}

// wrapWords breaks s at spaces into lines of at most width runes; a word
// longer than width stays whole.
func wrapWords(s string, width int) []string { return pack(strings.Fields(s), " ", width) }

// wrapNotes joins notes with "; " into lines of at most width runes; a
// single note longer than width gets its own line rather than being cut.
func wrapNotes(notes []string, width int) []string { return pack(notes, "; ", width) }

// pack joins items with sep into lines of at most width runes, never
// splitting an item.
func pack(items []string, sep string, width int) []string {
	var out []string
	cur := ""
	for _, it := range items {
		switch {
		case cur == "":
			cur = it
		case utf8.RuneCountInString(cur)+len(sep)+utf8.RuneCountInString(it) <= width:
			cur += sep + it
		default:
			out = append(out, cur)
			cur = it
		}
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}

func toAny(s []string) []any {
	a := make([]any, len(s))
	for i, v := range s {
		a[i] = v
	}
	return a
}

func (t *textWriter) render(d Document) {
	r := d.Result
	if t.o.Detail {
		if d.Path != nil {
			t.path(d)
			t.line("")
		}
		t.points(r, macList)
		t.line("")
		t.clocks(d)
		t.traces(d)
	} else {
		if d.Path != nil {
			t.pathCompact(d)
			t.line("")
		}
		t.points(r, macSenders)
		t.line("")
		t.clocks(d)
		t.timeline(d)
	}
	if len(r.HopLatency) > 0 {
		t.line("")
		t.line("Hop latency")
		rows := make([][]string, len(r.HopLatency))
		for i, h := range r.HopLatency {
			rows[i] = latencyCells(h)
		}
		t.tableFit(byNode(latencyHeader, rows, latencyNodes(r), []int{1, 2, 3, 4, 5}, []wrapCol{{0, 12}}))
	}
	if rows := nodeSegments(r); len(rows) > 0 {
		t.line("")
		t.line("Time per node and on the wire (from each node's first point to its last)")
		t.tableFit(segmentHeader, rows, []int{2, 3, 4, 5}, []wrapCol{{0, 20}})
	}
	if len(r.Anomalies) > 0 {
		t.line("")
		t.line("Anomalies")
		list := r.Anomalies
		if !t.o.Detail {
			list = mergeAnomalies(list)
		}
		rows := make([][]string, len(list))
		for i, a := range list {
			rows[i] = anomalyCells(a)
		}
		t.tableFit(anomalyHeader, rows, []int{3}, []wrapCol{{2, 10}, {4, 8}, {5, 30}})
	}
	if len(r.Warnings) > 0 {
		t.line("")
		t.line("Warnings")
		for _, s := range r.Warnings {
			if t.o.Detail {
				t.line("  - %s", s)
			} else {
				t.wrapped(s, "  - ", "    ")
			}
		}
	}
	if d.Live != nil && len(d.Live.Evidence) > 0 {
		t.line("")
		if t.o.Detail {
			t.line("Evidence written")
			for _, f := range d.Live.Evidence {
				t.line("  %s", f)
			}
		} else {
			t.evidenceCompact(d.Live.Evidence)
		}
	}
	t.line("")
	// The closing lines: which pathtrace, what it saw, and the verdict
	// last, where the eye lands.
	if d.Tool != (Tool{}) {
		t.line("%s", d.Tool)
	}
	t.line("%s", summaryLine(r.Summary))
	t.line("Verdict: %s", r.Summary.Verdict)
}

func (t *textWriter) path(d Document) {
	t.pathPoints(d.Path)
	if len(d.Path.FDB) > 0 {
		t.line("")
		t.line("Bridge forwarding entries for the pods' MACs")
		rows := make([][]string, len(d.Path.FDB))
		for i, e := range d.Path.FDB {
			rows[i] = fdbCells(t.own, e)
		}
		t.table(fdbHeader, rows)
	}
	for _, n := range d.Path.Notes {
		t.line("note: %s", n)
	}
	if d.Live != nil {
		t.line("%s", liveLine(d.Live))
	}
}

// pathWrap are the path table's columns that hold names: a container's
// namespace name is 40 characters and more.
var pathWrap = []wrapCol{{0, 10}, {1, 10}, {2, 12}, {6, 8}, {7, 12}}

// pathPoints is the path's header line and its table of points, in both
// table views.
func (t *textWriter) pathPoints(p *discover.Path) {
	if head := "Discovered path  " + pathEnds(p); utf8.RuneCountInString(head) <= t.o.width() {
		t.line("%s", head)
	} else {
		t.wrapped(head, "", "  ")
	}
	rows := make([][]string, len(p.Points))
	var nodes []string
	for i, pt := range p.Points {
		rows[i] = pathCells(pt)
		nodes = append(nodes, pt.Node)
	}
	if len(p.Nodes) < 2 {
		nodes = nil
	}
	t.tableFit(byNode(pathHeader, rows, nodes, []int{3, 5}, pathWrap))
}

// clocks says which captures' clocks were corrected (and each node's
// clock), before the deltas that rely on it.
func (t *textWriter) clocks(d Document) {
	r := d.Result
	lines := allClockLines(r, d.Live != nil)
	for _, l := range lines {
		t.wrapped("Clocks: "+l, "", "  ")
	}
	if len(lines) > 0 {
		t.line("")
	}
}

// pathEnds is "pod1 10.244.1.2 (eth0 3a:…) → pod2 10.244.1.3 (eth0 d2:…)",
// the path's header in every format.
func pathEnds(p *discover.Path) string {
	return endpointLine(p.Src) + " → " + endpointLine(p.Dst)
}

func endpointLine(ep discover.Endpoint) string {
	if ep.Pod != nil {
		return podLine(ep)
	}
	s := ep.Label
	if ep.IP.IsValid() {
		s += " " + ep.IP.String()
	}
	var in []string
	if ep.Interface != "" {
		in = append(in, ep.Interface)
	}
	if len(ep.MAC) > 0 {
		in = append(in, ep.MAC.String())
	}
	if len(in) > 0 {
		s += " (" + strings.Join(in, " ") + ")"
	}
	return s
}

// podLine is "shop/web-1 (10.244.1.3, node1)", with "host network" for a
// pod in the node's namespace, and "svc shop/db 10.96.0.10:80 → " before a
// pod reached through its Service.
func podLine(ep discover.Endpoint) string {
	p := ep.Pod
	in := []string{p.IP.String(), p.Node}
	if p.HostNetwork {
		in = append(in, "host network")
	}
	s := fmt.Sprintf("%s/%s (%s)", p.Namespace, p.Name, strings.Join(in, ", "))
	if sv := ep.Service; sv != nil {
		to := "headless"
		if sv.ClusterIP.IsValid() {
			to = netip.AddrPortFrom(sv.ClusterIP, sv.Port).String()
		}
		s = fmt.Sprintf("svc %s/%s %s → %s", sv.Namespace, sv.Name, to, s)
	}
	return s
}

// points is one row per point; macs renders the MACS SEEN cell (every MAC
// with its owner in the detail view, the senders' names in the compact one).
func (t *textWriter) points(r *correlate.Result, macs func(owners, correlate.PointRep) string) {
	title := "Points"
	if day := coverageDate(r); day != "" {
		title += " (times UTC, " + day + ")"
	}
	t.line("%s", title)
	rows := make([][]string, len(r.Points))
	names := make([]string, len(r.Points))
	for i, p := range r.Points {
		rows[i], names[i] = pointCells(t.own, p, macs), p.Name
	}
	t.tableFit(byNode(pointHeader, rows, rowNodes(pointNodes(r), names), []int{4, 5, 6}, []wrapCol{{0, 10}, {1, 10}, {2, 16}, {3, 16}}))
}

// macList is every MAC seen, one per line, with its owner.
func macList(own owners, p correlate.PointRep) string {
	macs := pointMACs(own, p)
	if len(macs) == 0 {
		return "-"
	}
	return strings.Join(macs, "\n")
}

// traces writes one compact row group per trace. Columns are aligned across
// all groups by hand: tablewriter cannot put a full-width title and notes
// line inside a table without widening every column to fit them.
func (t *textWriter) traces(d Document) {
	r := d.Result
	list, more := shown(r, t.o.Limit)
	t.line("%s", tracesTitle(list, more))
	if len(list) == 0 {
		t.line("  none")
	}
	widths := make([]int, len(hopHeader))
	rowsOf := make([][][]string, len(list))
	measure := func(row []string) {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	measure(hopHeader)
	for i := range list {
		tr := &list[i]
		rows := make([][]string, len(tr.Hops))
		for j := range tr.Hops {
			rows[j] = hopRow(t.own, j, &tr.Hops[j])
			measure(rows[j])
		}
		rowsOf[i] = rows
	}
	if len(list) > 0 {
		t.line("%s", strings.TrimRight(" "+alignRow(hopHeader, widths), " "))
	}
	for i := range list {
		tr := &list[i]
		t.line("%s", traceTitle(tr))
		for _, row := range rowsOf[i] {
			t.line("%s", strings.TrimRight(" "+alignRow(row, widths), " "))
		}
		for _, l := range wrapNotes(withEncap(traceNotes(t.own, tr), tr), t.o.width()-3) {
			t.line(" ↳ %s", l)
		}
	}
	for _, n := range zeroNotes(d, list, 3) {
		t.wrapped(n, "", "  ")
	}
	if more > 0 {
		t.line("%s", moreLine(more))
	}
}

// hopRight marks the hop columns that hold numbers (Δ µs, TTL).
var hopRight = []bool{false, false, true, false, false, true, false}

func alignRow(row []string, widths []int) string {
	var b strings.Builder
	for i, c := range row {
		if i > 0 {
			b.WriteString("  ")
		}
		pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
		if hopRight[i] {
			b.WriteString(pad + c)
		} else {
			b.WriteString(c + pad)
		}
	}
	return b.String()
}
