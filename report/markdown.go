package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/pathtrace/pathtrace/correlate"
)

// Markdown writes the same content as Table for pasting into an incident
// ticket: headings, GitHub-flavoured tables, and times exact to the ns.
func Markdown(w io.Writer, d Document, o Options) error {
	return write(w, d, o, "markdown", func(b *writer) { (&mdWriter{b}).render(d) })
}

type mdWriter struct{ *writer }

func (m *mdWriter) line(format string, a ...any) {
	fmt.Fprintf(m.w, format+"\n", a...)
}

// mdEscape keeps a cell or line from breaking the Markdown structure: a
// pipe would split a cell, and a newline would end the table row.
func mdEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "*", `\*`)
	s = strings.ReplaceAll(s, "_", `\_`)
	s = strings.ReplaceAll(s, "<", "&lt;")
	return strings.ReplaceAll(s, "\n", "<br>")
}

func (m *mdWriter) table(header []string, rows [][]string) {
	tbl := tablewriter.NewTable(m.w,
		tablewriter.WithRenderer(renderer.NewMarkdown()),
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRowAutoWrap(tw.WrapNone),
		tablewriter.WithHeaderAutoWrap(tw.WrapNone),
	)
	tbl.Header(toAny(header)...)
	for _, r := range rows {
		cells := make([]any, len(r))
		for i, c := range r {
			cells[i] = mdEscape(c)
		}
		if err := tbl.Append(cells...); err != nil && m.err == nil {
			m.err = err
		}
	}
	if err := tbl.Render(); err != nil && m.err == nil {
		m.err = err
	}
}

func (m *mdWriter) render(d Document) {
	r := d.Result
	if d.Path != nil {
		m.path(d)
	}
	m.points(r)
	for _, l := range clockLines(r) {
		m.line("Clocks: %s", mdEscape(l))
		m.line("")
	}
	m.traces(r)
	if len(r.HopLatency) > 0 {
		m.line("## Hop latency")
		m.line("")
		rows := make([][]string, len(r.HopLatency))
		for i, h := range r.HopLatency {
			rows[i] = latencyCells(h)
		}
		m.table(latencyHeader, rows)
		m.line("")
	}
	if len(r.Anomalies) > 0 || len(r.Warnings) > 0 {
		m.line("## Anomalies")
		m.line("")
		if len(r.Anomalies) > 0 {
			rows := make([][]string, len(r.Anomalies))
			for i, a := range r.Anomalies {
				rows[i] = anomalyCells(a)
			}
			m.table(anomalyHeader, rows)
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
	m.line("## Verdict")
	m.line("")
	m.line("%s", mdEscape(summaryLine(r.Summary)))
	m.line("")
	m.line("**%s**", mdEscape(r.Summary.Verdict))
}

func (m *mdWriter) path(d Document) {
	p := d.Path
	m.line("## Path")
	m.line("")
	m.line("%s", mdEscape(pathEnds(p)))
	m.line("")
	rows := make([][]string, len(p.Points))
	for i, pt := range p.Points {
		rows[i] = pathCells(pt)
	}
	m.table(pathHeader, rows)
	m.line("")
	if len(p.FDB) > 0 {
		m.line("Bridge forwarding entries for the pods' MACs:")
		m.line("")
		rows := make([][]string, len(p.FDB))
		for i, e := range p.FDB {
			rows[i] = fdbCells(m.own, e)
		}
		m.table(fdbHeader, rows)
		m.line("")
	}
	for _, n := range p.Notes {
		m.line("- note: %s", mdEscape(n))
	}
	if d.Live != nil {
		if len(p.Notes) > 0 {
			m.line("")
		}
		m.line("%s", mdEscape(liveLine(d.Live)))
	}
	m.line("")
}

func (m *mdWriter) points(r *correlate.Result) {
	m.line("## Points")
	m.line("")
	rows := make([][]string, len(r.Points))
	for i, p := range r.Points {
		cov := "-"
		if c := p.Coverage; c.First != nil && c.Last != nil {
			// Full stamps: a ticket outlives the day it was written.
			cov = c.First.String() + " – " + c.Last.String()
		}
		macs := pointMACs(m.own, p)
		if len(macs) == 0 {
			macs = []string{"-"}
		}
		rows[i] = []string{p.Name, ifaceCell(p), strings.Join(macs, "\n"), cov,
			fmt.Sprint(p.Coverage.Frames), drops(p.Coverage.KernelDrops), fmt.Sprint(p.Coverage.Truncated)}
	}
	m.table([]string{"Point", "Interface", "MACs seen", "Coverage", "Frames", "Drops", "Truncated"}, rows)
	m.line("")
}

func (m *mdWriter) traces(r *correlate.Result) {
	list, more := shown(r, m.o.Limit)
	m.line("## Traces")
	m.line("")
	if len(list) == 0 {
		m.line("None.")
		m.line("")
	}
	for i := range list {
		tr := &list[i]
		m.line("**%s**", mdEscape(traceTitle(tr)))
		m.line("")
		rows := make([][]string, len(tr.Hops))
		for j := range tr.Hops {
			rows[j] = hopRow(m.own, j, &tr.Hops[j])
		}
		m.table(hopHeader, rows)
		m.line("")
		if notes := traceNotes(m.own, tr); len(notes) > 0 {
			for _, n := range notes {
				m.line("- %s", mdEscape(n))
			}
			m.line("")
		}
	}
	if more > 0 {
		m.line("%s", mdEscape(moreLine(more)))
		m.line("")
	}
}
