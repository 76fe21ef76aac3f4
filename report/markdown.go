package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/discover"
)

// Markdown writes the report for a ticket: the verdict first, then the
// path, one compact table of traces (a row each, lost ones marked), hop
// latency and anomalies. Only GitHub/GitLab Markdown (no HTML), and every
// table's cells padded so that the raw text lines up where Markdown is not
// rendered (Jira, a mail).
func Markdown(w io.Writer, d Document, o Options) error {
	return write(w, d, o, "markdown", func(b *writer) { (&mdWriter{b}).render(d) })
}

type mdWriter struct{ *writer }

func (m *mdWriter) line(format string, a ...any) {
	fmt.Fprintf(m.w, format+"\n", a...)
}

// mdHeaderCap is how wide a point's column may be before its name is
// abbreviated (with a legend): a container's namespace name is 40
// characters and more.
const mdHeaderCap = 16

func (m *mdWriter) render(d Document) {
	r := d.Result
	m.line("## Verdict: %s", mdEscape(r.Summary.Verdict))
	m.line("")
	m.line("%s", mdEscape(summaryLine(r.Summary)))
	m.line("")
	m.path(d)
	for _, l := range append(nodeClockLines(r, d.Live != nil), clockLines(r)...) {
		m.line("Clocks: %s", mdEscape(l))
		m.line("")
	}
	m.traces(d)
	if len(r.HopLatency) > 0 {
		m.line("## Hop latency")
		m.line("")
		rows := make([][]string, len(r.HopLatency))
		for i, h := range r.HopLatency {
			rows[i] = latencyCells(h)
		}
		h, rows, right, _ := byNode(latencyHeader, rows, latencyNodes(r), []int{1, 2, 3, 4, 5}, nil)
		m.table(sentence(h), rows, right...)
		m.line("")
	}
	if rows := nodeSegments(r); len(rows) > 0 {
		m.line("## Time per node and on the wire")
		m.line("")
		m.table(sentence(segmentHeader), rows, 2, 3, 4, 5)
		m.line("")
	}
	if len(r.Anomalies) > 0 || len(r.Warnings) > 0 {
		m.line("## Anomalies")
		m.line("")
		list := mergeAnomalies(r.Anomalies)
		if len(list) > 0 {
			rows := make([][]string, len(list))
			for i, a := range list {
				rows[i] = anomalyCells(a)
			}
			m.table(sentence(anomalyHeader), rows, 3)
			m.line("")
		}
		if len(r.Warnings) > 0 {
			m.line("Warnings:")
			m.line("")
			for _, s := range r.Warnings {
				m.line("- %s", mdEscape(s))
			}
			m.line("")
		}
	}
	if d.Live != nil && len(d.Live.Evidence) > 0 {
		m.line("Evidence written:")
		m.line("")
		for _, f := range d.Live.Evidence {
			m.line("- `%s`", f)
		}
		m.line("")
	}
	if d.Tool != (Tool{}) {
		m.line("---")
		m.line("")
		m.line("%s", mdEscape(d.Tool.String()))
	}
}

// path is the discovered path (live) or the points the captures were
// taken at (offline), with what each point captured.
func (m *mdWriter) path(d Document) {
	r := d.Result
	m.line("## Path")
	m.line("")
	if p := d.Path; p != nil {
		m.line("%s", mdEscape(pathEnds(p)))
		m.line("")
		cov := map[string]correlate.PointRep{}
		for _, pt := range r.Points {
			cov[pt.Name] = pt
		}
		rows := make([][]string, len(p.Points))
		names := make([]string, len(p.Points))
		for i, pt := range p.Points {
			c := cov[pt.Name].Coverage
			rows[i], names[i] = []string{pt.Name, pt.Netns, pt.Interface, orDash(pt.MAC.String()), strconv.Itoa(pt.MTU),
				masterCell(pt), yesNo(pt.Promisc), strconv.Itoa(c.Frames), drops(c.KernelDrops), strconv.Itoa(c.Truncated)}, pt.Name
		}
		h, rows, right, _ := byNode([]string{"Point", "Netns", "Interface", "MAC", "MTU", "Master", "Promisc", "Frames", "Drops", "Trunc"},
			rows, rowNodes(pointNodes(r), names), []int{4, 7, 8, 9}, nil)
		h[0] = sentence(h[:1])[0]
		m.table(h, rows, right...)
		m.line("")
		m.pathNotes(d, p)
		return
	}
	title := "Coverage (UTC)"
	if day := coverageDate(r); day != "" {
		title = "Coverage (UTC, " + day + ")"
	}
	rows := make([][]string, len(r.Points))
	for i, p := range r.Points {
		rows[i] = pointCells(m.own, p, macSenders)
	}
	m.table([]string{"Point", "Interface", "MACs seen", title, "Frames", "Drops", "Trunc"}, rows, 4, 5, 6)
	m.line("")
}

func (m *mdWriter) pathNotes(d Document, p *discover.Path) {
	var items []string
	items = append(items, fdbLines(m.own, p.FDB)...)
	for _, n := range p.Notes {
		items = append(items, "note: "+n)
	}
	if d.Live != nil {
		items = append(items, liveLine(d.Live))
	}
	for _, it := range items {
		m.line("- %s", mdEscape(it))
	}
	if len(items) > 0 {
		m.line("")
	}
}

// traces is the compact timeline as one table: a row per trace, a column
// per point with the Δ µs from the previous point crossed, LOST where it
// vanished; then the notes the rows cannot hold.
func (m *mdWriter) traces(d Document) {
	r := d.Result
	list, more := shown(r, m.o.Limit)
	m.line("## %s", tracesTitle(list, more))
	m.line("")
	if len(list) == 0 {
		m.line("None.")
		m.line("")
		return
	}
	names, colOf := matrixColumns(r, list)
	pair, hasPair := mainPair(d)
	rows := matrixRows(list, colOf, len(names), pair, hasPair)
	intro := "Δ µs from the previous point crossed; → forward, ← reverse; LOST: the first point it never reached"
	if hasPair {
		intro = pair[0].String() + " ⇄ " + pair[1].String() + " unless labelled; " + intro
	}
	m.line("%s", mdEscape(intro))
	m.line("")

	// A column is as wide as its cells, or its name up to mdHeaderCap.
	lay := &matrixLayout{names: names, dec: 3}
	widths := make([]int, len(names))
	for c, n := range names {
		widths[c] = min(utf8.RuneCountInString(n), mdHeaderCap)
	}
	for i := range rows {
		pc, _ := lay.cells(&rows[i])
		for c, s := range pc {
			widths[c] = max(widths[c], utf8.RuneCountInString(s))
		}
	}
	headers := abbreviate(names, widths)
	header := append([]string{"#", "Trace", "", "Start (UTC)"}, headers...)
	header = append(header, "Total µs", "Flags")
	right := []int{0}
	for c := range names {
		right = append(right, 4+c)
	}
	right = append(right, 4+len(names))

	var notes []string
	seen := map[string]bool{}
	macPairs := map[string]bool{}
	cells := make([][]string, len(rows))
	for i := range rows {
		row := &rows[i]
		tr := row.tr
		stamp := "-"
		if len(tr.Hops) > 0 {
			stamp = clock(tr.Hops[0].Time, 9)
		}
		pc, total := lay.cells(row)
		var flags []string
		if tr.LostAfter != "" {
			flags = append(flags, "lost after "+tr.LostAfter)
		}
		if len(tr.Missing) > 0 {
			flags = append(flags, "unseen at "+strings.Join(tr.Missing, ", "))
		}
		for _, f := range row.flags {
			flags = append(flags, f.long)
		}
		c := append([]string{row.num, row.label, row.arrow, stamp}, pc...)
		cells[i] = append(c, total, strings.Join(flags, ", "))
		for _, n := range matrixNotes(m.own, row, nil, macPairs, 3, false) {
			if !seen[n] {
				seen[n] = true
				notes = append(notes, row.num+": "+n)
			}
		}
	}
	m.table(header, cells, right...)
	m.line("")
	if l := legend(names, headers); len(l) > 0 {
		notes = append([]string{"columns: " + strings.Join(l, "; ")}, notes...)
	}
	notes = append(notes, zeroNotes(d, list, 3)...)
	if more > 0 {
		notes = append(notes, strings.TrimPrefix(moreLine(more), "… "))
	}
	for _, n := range notes {
		m.line("- %s", mdEscape(n))
	}
	if len(notes) > 0 {
		m.line("")
	}
}

// table writes a GitHub-flavoured table with every column padded to its
// widest cell, so the raw text is a readable table too; right lists the
// columns (numbers) aligned right.
func (m *mdWriter) table(header []string, rows [][]string, right ...int) {
	n := len(header)
	isRight := make([]bool, n)
	for _, c := range right {
		isRight[c] = true
	}
	esc := func(r []string) []string {
		out := make([]string, n)
		for i := range out {
			if i < len(r) {
				out[i] = mdEscape(strings.ReplaceAll(r[i], "\n", ", "))
			}
		}
		return out
	}
	all := [][]string{esc(header)}
	for _, r := range rows {
		all = append(all, esc(r))
	}
	widths := make([]int, n)
	for _, r := range all {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c), 3)
		}
	}
	row := func(r []string) string {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range r {
			b.WriteString(" " + pad(c, widths[i], isRight[i]) + " |")
		}
		return b.String()
	}
	m.line("%s", row(all[0]))
	var sep strings.Builder
	sep.WriteString("|")
	for i := range n {
		if isRight[i] {
			sep.WriteString(" " + strings.Repeat("-", widths[i]-1) + ": |")
		} else {
			sep.WriteString(" " + strings.Repeat("-", widths[i]) + " |")
		}
	}
	m.line("%s", sep.String())
	for _, r := range all[1:] {
		m.line("%s", row(r))
	}
}

// sentence turns the text table's upper-case headers into the Markdown
// tables' one style: "MIN µs" → "Min µs", "FROM → TO" → "From → to".
func sentence(h []string) []string {
	out := make([]string, len(h))
	for i, s := range h {
		l := strings.ToLower(s)
		r := []rune(l)
		if len(r) > 0 {
			r[0] = []rune(strings.ToUpper(string(r[0])))[0]
		}
		out[i] = string(r)
	}
	return out
}

// mdEscape keeps text from being read as Markdown structure or HTML: a
// pipe would split a cell, "<" could open a tag, "*" and "_" at a word's
// edge emphasis, "`" code. Inside words they stay as typed, so the raw
// text reads as it is.
func mdEscape(s string) string {
	var b strings.Builder
	r := []rune(s)
	word := func(i int) bool {
		if i < 0 || i >= len(r) {
			return false
		}
		c := r[i]
		return c == '-' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	for i, c := range r {
		switch {
		case c == '\n':
			b.WriteString(" ")
			continue
		case strings.ContainsRune("\\|<>`[]", c):
			b.WriteRune('\\')
		case (c == '*' || c == '_') && !(word(i-1) && word(i+1)):
			b.WriteRune('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}
