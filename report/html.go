package report

import (
	"bufio"
	"errors"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"

	"github.com/pathtrace/pathtrace/correlate"
)

// HTML writes the report as one self-contained page for a browser or a
// ticket attachment: inline CSS and SVG, no script, no external resource and
// no URL, so it reads the same offline. The verdict comes first, then the
// discovered path (live runs), the lane diagram, per-hop latency
// distributions, anomalies and the points' coverage. Every string from a
// capture or from discovery is escaped (html/template for the page, svgW
// for the diagrams).
//
// The page has its own trace policy instead of o.Limit: it draws up to
// drawAll traces; beyond that it draws the ones with findings and folds
// the clean ones into median lines (see planLanes). A streaming caller keeps
// the traces with a Keeper.
func HTML(w io.Writer, d Document, o Options) error {
	if d.Result == nil {
		return errors.New("report: no result to render")
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := pageTmpl.Execute(bw, buildPage(d)); err != nil {
		return fmt.Errorf("render html: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write html: %w", err)
	}
	return nil
}

// htmlTable is a table of text cells; Right marks numeric columns.
type htmlTable struct {
	Header []string
	Rows   [][]string
	Right  []bool
}

func newTable(header []string, rows [][]string, right ...int) htmlTable {
	t := htmlTable{Header: header, Rows: rows, Right: make([]bool, len(header))}
	for _, c := range right {
		t.Right[c] = true
	}
	return t
}

type htmlStat struct {
	N     int
	What  string
	Alarm bool
}

type htmlPath struct {
	Route  string
	Points htmlTable
	FDB    htmlTable
	Notes  []string
}

// htmlPage is everything the template shows, as strings and tables.
type htmlPage struct {
	Title, Heading string
	Clean          bool
	Verdict        string
	Summary        string
	Live           string
	Clocks         []string // each node's or capture's clock (report/nodes.go)
	Stats          []htmlStat
	Path           *htmlPath

	LaneNotes []string
	Legend    template.HTML
	Lanes     template.HTML

	Latency       []latencyRow
	LatencyHeader []string
	LatencyNote   string
	Segments      htmlTable // time per node and on the wire, on a path across nodes

	Anomalies htmlTable
	Warnings  []string
	Points    htmlTable
	Evidence  []string

	// The footer names the tool and the build (Document.Tool).
	Tool, Version string
	Schema        int
}

func buildPage(d Document) *htmlPage {
	r := d.Result
	own := ownersOf(d)
	s := r.Summary
	p := &htmlPage{Clean: s.Clean, Verdict: s.Verdict, Summary: summaryLine(s), Tool: "pathtrace",
		Schema: correlate.SchemaVersion}
	if d.Tool != (Tool{}) {
		p.Version = strings.TrimPrefix(d.Tool.String(), "pathtrace ")
	}
	p.Heading = routeOf(d)
	p.Title = "pathtrace: " + p.Heading
	p.Stats = []htmlStat{{s.Traces, "traces", false}, {s.Complete, "complete", false}, {s.Lost, "lost", s.Lost > 0},
		{s.WithGaps, "with gaps", s.WithGaps > 0}, {s.Frames, "frames", false}, {len(r.Points), "points", false}}
	p.Clocks = allClockLines(r, d.Live != nil)
	if d.Live != nil {
		p.Live = liveLine(d.Live)
		p.Evidence = d.Live.Evidence
	}
	if d.Path != nil {
		dp := d.Path
		hp := &htmlPath{Notes: dp.Notes,
			Route: pathEnds(dp)}
		rows := make([][]string, len(dp.Points))
		for i, pt := range dp.Points {
			rows[i] = pathCells(pt)
		}
		hp.Points = newTable(pathHeader, rows, 3, 5)
		rows = make([][]string, len(dp.FDB))
		for i, e := range dp.FDB {
			rows[i] = fdbCells(own, e)
		}
		hp.FDB = newTable(fdbHeader, rows)
		p.Path = hp
	}

	if len(r.Traces) > 0 {
		plan := planLanes(r)
		p.LaneNotes = laneNotes(r, plan)
		p.Legend = legendSVG(newYScale(plan.maxSpan), plan.aggregated)
		p.Lanes = laneSVG(d, plan)
	} else {
		p.LaneNotes = []string{noTracesNote(r)}
	}

	if len(r.HopLatency) > 0 {
		rows, n := latencyRows(r)
		p.Latency, p.LatencyHeader = rows, append(append([]string{}, latencyHeader...), "DISTRIBUTION (log µs)")
		if labels := latencyNodes(r); labels != nil {
			p.LatencyHeader = append([]string{"NODE"}, p.LatencyHeader...)
			for i := range rows {
				l := labels[i]
				if i > 0 && labels[i-1] == l {
					l = "" // grouped, as the table does
				}
				rows[i].Node = &l
			}
			p.Segments = newTable(segmentHeader, nodeSegments(r), 2, 3, 4, 5)
		}
		p.LatencyNote = fmt.Sprintf("Bars: the %d hop crossings of the traces in this report. Line below: min to max; "+
			"ticks: p50 (dark) and p99 (orange), over every crossing of the run. ≈: estimated from a histogram.", n)
	}

	rows := [][]string{}
	for _, a := range mergeAnomalies(r.Anomalies) {
		rows = append(rows, anomalyCells(a))
	}
	p.Anomalies = newTable(anomalyHeader, rows, 3)
	p.Warnings = r.Warnings

	rows = make([][]string, len(r.Points))
	for i, pt := range r.Points {
		rows[i] = pointCells(own, pt, macList)
	}
	title := "POINT"
	if day := coverageDate(r); day != "" {
		title += " (times UTC, " + day + ")"
	}
	p.Points = newTable(append([]string{title}, pointHeader[1:]...), rows, 4, 5, 6)
	return p
}

// routeOf is the page heading: the endpoints of a live run, else the
// points of the analysis in path order.
func routeOf(d Document) string {
	if p := d.Path; p != nil {
		return p.Src.Label + " → " + p.Dst.Label
	}
	names := make([]string, len(d.Result.Points))
	for i, pt := range d.Result.Points {
		names[i] = pt.Name
	}
	return cutLabel(strings.Join(names, " → "), 120)
}

// laneNotes say what the diagram shows of the traces and what it left out.
func laneNotes(r *correlate.Result, p *lanePlan) []string {
	var n []string
	if !p.aggregated {
		n = append(n, fmt.Sprintf("All %d traces in this report are drawn, one row each.", len(r.Traces)))
	} else {
		s := fmt.Sprintf("%d traces in this report: the %d with findings are drawn one row each; "+
			"the %d clean ones are aggregated into %d median lines (one per shape: type, direction, points)",
			len(r.Traces), p.problems, p.aggTraces, len(p.aggs))
		if p.otherAggs > 0 {
			s += fmt.Sprintf(", and %d more clean traces of rarer shapes are only counted", p.otherAggs)
		}
		n = append(n, s+".")
		if p.notDrawn > 0 {
			n = append(n, fmt.Sprintf("%d more traces with findings are not drawn (at most %d are); "+
				"the anomalies below count them all.", p.notDrawn, maxProblemRows))
		}
	}
	if extra := r.Summary.Traces - len(r.Traces); extra > 0 {
		n = append(n, fmt.Sprintf("%d of the run's %d traces are not in this report; report.json (-f json) has every trace.",
			extra, r.Summary.Traces))
	}
	return n
}

func noTracesNote(r *correlate.Result) string {
	if r.Summary.Traces > 0 {
		return strconv.Itoa(r.Summary.Traces) + " traces were found but none is in this report; -f json has them."
	}
	return "No traces: no frame was matched across points."
}

// cellHTML escapes a cell and keeps its line breaks.
func cellHTML(s string) template.HTML {
	return template.HTML(strings.ReplaceAll(template.HTMLEscapeString(s), "\n", "<br>"))
}

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{"cell": cellHTML}).Parse(pageSrc))
