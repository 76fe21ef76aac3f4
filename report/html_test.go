package report

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	xhtml "golang.org/x/net/html"

	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/discover"
)

// htmlDocs are the report fixtures: the made-up Flannel node (live and
// offline) and the four real captures, one of them with its discovery.
func htmlDocs(t *testing.T) map[string]Document {
	t.Helper()
	docs := map[string]Document{"fixture-live": live(), "fixture-offline": offline()}
	for _, n := range []string{"seed", "nft-drop", "routed", "promisc"} {
		docs[n] = Document{Result: loadResult(t, "result_"+n+".json")}
	}
	r := loadResult(t, "result_promisc.json")
	docs["promisc-live"] = Document{Result: r, Path: promiscPath(), Live: promiscLive(r)}
	return docs
}

func renderHTML(t *testing.T, d Document) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := HTML(&b, d, Options{}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func parseHTML(t *testing.T, page []byte) *xhtml.Node {
	t.Helper()
	n, err := xhtml.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatalf("page does not parse: %v", err)
	}
	return n
}

// walk calls f on every element below n.
func walk(n *xhtml.Node, f func(*xhtml.Node)) {
	if n.Type == xhtml.ElementNode {
		f(n)
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func attrOf(n *xhtml.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *xhtml.Node, c string) bool {
	return slices.Contains(strings.Fields(attrOf(n, "class")), c)
}

// find is every element below n with tag (any if "") and class (any if "").
func find(n *xhtml.Node, tag, class string) []*xhtml.Node {
	var out []*xhtml.Node
	walk(n, func(e *xhtml.Node) {
		if (tag == "" || e.Data == tag) && (class == "" || hasClass(e, class)) {
			out = append(out, e)
		}
	})
	return out
}

func textOf(n *xhtml.Node) string {
	var b strings.Builder
	var rec func(*xhtml.Node)
	rec = func(n *xhtml.Node) {
		if n.Type == xhtml.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			rec(c)
		}
	}
	rec(n)
	return b.String()
}

// directTitle is the <title> child of an SVG element: its tooltip.
func directTitle(n *xhtml.Node) string {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == xhtml.ElementNode && c.Data == "title" {
			return textOf(c)
		}
	}
	return ""
}

// laneCounts is what the DOM tests count in the lane diagram.
type laneCounts struct {
	lanes, traces, lost, gaps, refl, deltas, aggs int
	laneNames                                     []string
	traceNs                                       []string
}

func countLanes(t *testing.T, doc *xhtml.Node) laneCounts {
	t.Helper()
	svgs := find(doc, "svg", "lanes")
	if len(svgs) != 1 {
		t.Fatalf("%d lane diagrams, want 1", len(svgs))
	}
	d := svgs[0]
	c := laneCounts{lanes: len(find(d, "line", "lane")), lost: len(find(d, "", "lost")),
		gaps: len(find(d, "", "gap")), refl: len(find(d, "", "refl")), aggs: len(find(d, "g", "agg"))}
	for _, g := range find(d, "g", "lh") {
		c.laneNames = append(c.laneNames, textOf(find(g, "text", "ln-name")[0]))
	}
	for _, g := range find(d, "g", "tr") {
		c.traces++
		c.deltas += len(find(g, "text", "dt"))
		c.traceNs = append(c.traceNs, textOf(find(g, "text", "num")[0]))
	}
	return c
}

// checkLaneCounts: one lane per point in path order, one line per trace in
// order, a cross per lost trace, a mark per point missed mid-path and per
// reflection, a Δ per hop after the first, no median lines (a small run).
func checkLaneCounts(t *testing.T, c laneCounts, r *correlate.Result) {
	t.Helper()
	var names, nums []string
	for _, p := range r.Points {
		names = append(names, p.Name)
	}
	lost, gaps, refl, deltas := 0, 0, 0, 0
	for _, tr := range r.Traces {
		nums = append(nums, fmt.Sprintf("#%d", tr.N))
		if tr.LostAfter != "" {
			lost++
		} else {
			gaps += len(tr.Missing) // a lost trace's missing points come after the cross
		}
		for _, h := range tr.Hops {
			if h.Reflection {
				refl++
			}
		}
		deltas += len(tr.Hops) - 1
	}
	if c.lanes != len(r.Points) || !slices.Equal(c.laneNames, names) {
		t.Errorf("lanes %d %v, want one per point in path order %v", c.lanes, c.laneNames, names)
	}
	if c.traces != len(r.Traces) || !slices.Equal(c.traceNs, nums) {
		t.Errorf("trace lines %v, want one per trace in order %v", c.traceNs, nums)
	}
	if c.lost != lost {
		t.Errorf("%d lost crosses, want %d (lost traces)", c.lost, lost)
	}
	if c.gaps != gaps {
		t.Errorf("%d gap marks, want %d (points missed mid-path)", c.gaps, gaps)
	}
	if c.refl != refl {
		t.Errorf("%d reflection marks, want %d", c.refl, refl)
	}
	if c.deltas != deltas {
		t.Errorf("%d Δ labels, want %d (one per hop after the first)", c.deltas, deltas)
	}
	if c.aggs != 0 {
		t.Errorf("%d aggregate lines in a small run", c.aggs)
	}
}

func TestHTMLLaneDOM(t *testing.T) {
	for name, d := range htmlDocs(t) {
		t.Run(name, func(t *testing.T) {
			checkLaneCounts(t, countLanes(t, parseHTML(t, renderHTML(t, d))), d.Result)
		})
	}
}

// TestHTMLSections: verdict first, then the path for a live run, the
// diagram, latency, anomalies, coverage, evidence, and the footer.
func TestHTMLSections(t *testing.T) {
	for name, d := range htmlDocs(t) {
		t.Run(name, func(t *testing.T) {
			doc := parseHTML(t, renderHTML(t, d))
			var ids []string
			for _, s := range find(doc, "section", "") {
				ids = append(ids, attrOf(s, "id"))
			}
			want := []string{"verdict"}
			if d.Path != nil {
				want = append(want, "path")
			}
			want = append(want, "traces", "latency", "anomalies", "points")
			if d.Live != nil && len(d.Live.Evidence) > 0 {
				want = append(want, "evidence")
			}
			if !slices.Equal(ids, want) {
				t.Errorf("sections %v, want %v", ids, want)
			}
			if v := textOf(find(doc, "p", "v")[0]); v != d.Result.Summary.Verdict {
				t.Errorf("verdict %q, want %q", v, d.Result.Summary.Verdict)
			}
			if f := find(doc, "footer", ""); len(f) != 1 || !strings.HasPrefix(textOf(f[0]), "pathtrace") {
				t.Errorf("footer does not name the tool")
			}
			if got := len(find(doc, "svg", "hist")); got != len(d.Result.HopLatency) {
				t.Errorf("%d latency histograms, want one per hop pair (%d)", got, len(d.Result.HopLatency))
			}
			if d.Path != nil {
				rows := find(find(doc, "section", "")[1], "tr", "")
				if len(rows) != 1+len(d.Path.Points)+1+len(d.Path.FDB) {
					t.Errorf("path section has %d table rows, want points and FDB", len(rows))
				}
			}
		})
	}
}

// forbidden elements: anything that loads, links or runs.
var forbiddenTags = []string{"script", "link", "img", "image", "iframe", "object", "embed", "use", "a", "base",
	"form", "audio", "video", "source", "foreignObject", "foreignobject"}

// checkSelfContained fails on anything that could reach out of the page.
func checkSelfContained(t *testing.T, page []byte) {
	t.Helper()
	doc := parseHTML(t, page)
	walk(doc, func(n *xhtml.Node) {
		if slices.Contains(forbiddenTags, n.Data) {
			t.Errorf("page has a <%s> element", n.Data)
		}
		for _, a := range n.Attr {
			k, v := strings.ToLower(a.Key), strings.ToLower(a.Val)
			if strings.HasPrefix(k, "on") || k == "href" || k == "src" || k == "srcset" || k == "style" ||
				strings.HasSuffix(k, ":href") || k == "action" || k == "formaction" || k == "xmlns" {
				t.Errorf("<%s> has attribute %s=%q", n.Data, a.Key, a.Val)
			}
			if k == "http-equiv" && v == "content-security-policy" {
				continue
			}
			for _, bad := range []string{"http", "//", "url(", "javascript:", "data:"} {
				if strings.Contains(k, bad) || strings.Contains(v, bad) {
					t.Errorf("<%s %s=%q> holds %q", n.Data, a.Key, a.Val, bad)
				}
			}
		}
		if n.Data == "style" {
			css := strings.ToLower(textOf(n))
			for _, bad := range []string{"url(", "@import", "http", "//", "expression("} {
				if strings.Contains(css, bad) {
					t.Errorf("style sheet holds %q", bad)
				}
			}
		}
	})
}

func TestHTMLSelfContained(t *testing.T) {
	for name, d := range htmlDocs(t) {
		t.Run(name, func(t *testing.T) { checkSelfContained(t, renderHTML(t, d)) })
	}
	t.Run("large", func(t *testing.T) { checkSelfContained(t, renderHTML(t, Document{Result: bigResult(t, 1000, 25)})) })
}

// hostile strings a capture file, an interface or a namespace could carry.
var hostile = []string{
	`<script>alert(1)</script>`,
	`"><img src=x onerror=alert(1)>`,
	`' onmouseover='alert(1)`,
	`</svg></div><script src="http://evil.example/x.js"></script>`,
	`javascript:alert(1)//`,
	`a&amp;b<!--`,
}

func hostileDoc() Document {
	d := live()
	r := d.Result
	rename := map[string]string{}
	for i := range r.Points {
		h := hostile[i%len(hostile)]
		rename[r.Points[i].Name] = h
		r.Points[i].Name = h
		r.Points[i].Interface = correlate.OptString{V: hostile[(i+1)%len(hostile)], Valid: true}
		r.Points[i].Source = "/tmp/" + hostile[(i+2)%len(hostile)]
		r.Points[i].MACs = append(r.Points[i].MACs, correlate.MACSeen{MAC: correlate.MAC{0xde, 0xad, 0, 0, 0, byte(i)}, Owner: hostile[1]})
	}
	for i := range r.Traces {
		tr := &r.Traces[i]
		tr.Type = hostile[3]
		for j := range tr.Hops {
			tr.Hops[j].Point = rename[tr.Hops[j].Point]
		}
		if tr.LostAfter != "" {
			tr.LostAfter = rename[tr.LostAfter]
		}
		for j := range tr.Missing {
			tr.Missing[j] = rename[tr.Missing[j]]
		}
	}
	for i := range r.HopLatency {
		r.HopLatency[i].From, r.HopLatency[i].To = rename[r.HopLatency[i].From], rename[r.HopLatency[i].To]
	}
	for i := range r.Anomalies {
		r.Anomalies[i].Message = hostile[i%len(hostile)]
		r.Anomalies[i].Point = rename[r.Anomalies[i].Point]
	}
	r.Warnings = hostile
	r.Summary.Verdict = hostile[1]
	p := d.Path
	for i := range p.Points {
		p.Points[i].Name = rename[p.Points[i].Name]
		p.Points[i].Netns = hostile[(i+3)%len(hostile)]
		p.Points[i].Interface = hostile[(i+4)%len(hostile)]
		p.Points[i].Peer = hostile[(i+5)%len(hostile)]
	}
	p.Src.Label, p.Dst.Label = hostile[0], hostile[3]
	p.Notes = hostile
	p.FDB = append(p.FDB, discover.FDBEntry{Bridge: hostile[0], MAC: hw("de:ad:00:00:00:01"), Port: hostile[2], Owner: hostile[3]})
	d.Live.Evidence = hostile
	return d
}

// TestHTMLEscapesHostileNames: names from captures and discovery come out
// as the same text, never as markup.
func TestHTMLEscapesHostileNames(t *testing.T) {
	d := hostileDoc()
	page := renderHTML(t, d)
	checkSelfContained(t, page)
	doc := parseHTML(t, page)
	texts := map[string]int{}
	walk(doc, func(n *xhtml.Node) {
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if c.Type == xhtml.TextNode {
				for _, h := range hostile {
					if strings.Contains(c.Data, h) {
						texts[h]++
					}
				}
			}
		}
	})
	for _, h := range hostile {
		if texts[h] == 0 {
			t.Errorf("%q does not appear as text anywhere: lost or mangled", h)
		}
	}
	c := countLanes(t, doc)
	if c.lanes != len(d.Result.Points) || c.traces != len(d.Result.Traces) || c.lost != 1 {
		t.Errorf("hostile names broke the diagram: %d lanes, %d traces, %d lost", c.lanes, c.traces, c.lost)
	}
	// A lane header shows a long name cut; its tooltip has it whole.
	for i, g := range find(find(doc, "svg", "lanes")[0], "g", "lh") {
		if !strings.HasPrefix(directTitle(g), d.Result.Points[i].Name+"\n") {
			t.Errorf("lane %d tooltip %q does not start with the point's name", i, directTitle(g))
		}
	}
}

// bigResult is n traces built from the promisc capture's three echo pairs,
// repeated 10 ms apart; every lostEvery-th trace (if a request) is cut after
// cni0 as nft-drop's were. Summary and anomalies are counted from them.
func bigResult(t *testing.T, n, lostEvery int) *correlate.Result {
	t.Helper()
	src := loadResult(t, "result_promisc.json")
	pairs := src.Traces[2:8]
	r := &correlate.Result{Version: src.Version, Points: src.Points, HopLatency: src.HopLatency,
		Summary: correlate.Summary{ByProto: map[string]int{"icmp": n}}}
	loss := correlate.Anomaly{Kind: correlate.KindLoss, Severity: correlate.Warning, Point: "cni0", Traces: []int{},
		Message: "frames last seen at cni0, never at the capturing points after it"}
	for i := range n {
		tr := pairs[i%len(pairs)].Clone()
		shift := correlate.Timestamp(int64(i/len(pairs)) * 10_000_000)
		for j := range tr.Hops {
			tr.Hops[j].Time += shift
		}
		tr.N = i + 1
		if lostEvery > 0 && i%lostEvery == 0 && tr.Type == "echo-request" {
			k := slices.IndexFunc(tr.Hops, func(h correlate.Hop) bool { return h.Point == "cni0" })
			tr.Hops, tr.LostAfter, tr.Flags, tr.RTT = tr.Hops[:k+1], "cni0", []correlate.Flag{correlate.FlagLost}, nil
			r.Summary.Lost++
			loss.Count++
			if len(loss.Traces) < 10 {
				loss.Traces = append(loss.Traces, tr.N)
			}
		} else {
			r.Summary.Complete++
		}
		r.Traces = append(r.Traces, tr)
	}
	r.Summary.Traces = n
	if loss.Count > 0 {
		r.Anomalies = []correlate.Anomaly{loss}
		r.Summary.Verdict = fmt.Sprintf("PROBLEM: %d of %d traces lost (after cni0 ×%d)", loss.Count, n, loss.Count)
	} else {
		r.Summary.Verdict, r.Summary.Clean = fmt.Sprintf("OK: all %d traces crossed every capturing point", n), true
	}
	return r
}

// TestHTMLLarge: beyond drawAll traces the clean ones become median lines
// and the lost ones stay individual; a thousand traces stay a few hundred KB.
func TestHTMLLarge(t *testing.T) {
	cases := []struct {
		n, lostEvery         int
		wantTraces, wantLost int
		wantAggs, maxKB      int
	}{
		{200, 0, 200, 0, 0, 300},     // the most drawn without aggregating
		{1000, 25, 20, 20, 2, 150},   // every 25th lost (requests only)
		{1000, 0, 0, 0, 2, 60},       // clean: medians only
		{1000, 1, 300, 300, 1, 400},  // every request lost: capped rows
		{5000, 50, 100, 100, 2, 250}, // bigger than the Keeper holds
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d-every%d", c.n, c.lostEvery), func(t *testing.T) {
			r := bigResult(t, c.n, c.lostEvery)
			page := renderHTML(t, Document{Result: r})
			kb := len(page) / 1024
			t.Logf("%d traces (%d lost): %d KB", c.n, r.Summary.Lost, kb)
			if kb > c.maxKB {
				t.Errorf("%d traces: page is %d KB, want at most %d", c.n, kb, c.maxKB)
			}
			doc := parseHTML(t, page)
			got := countLanes(t, doc)
			if got.traces != c.wantTraces || got.lost != c.wantLost || got.aggs != c.wantAggs {
				t.Errorf("drew %d traces, %d lost, %d median lines; want %d, %d, %d",
					got.traces, got.lost, got.aggs, c.wantTraces, c.wantLost, c.wantAggs)
			}
			if got.lanes != len(r.Points) {
				t.Errorf("%d lanes, want %d", got.lanes, len(r.Points))
			}
			notes := textOf(find(doc, "section", "")[1])
			if c.n > drawAll && !strings.Contains(notes, "aggregated") {
				t.Errorf("the page does not say it aggregated: %q", notes)
			}
		})
	}
}

func TestKeeper(t *testing.T) {
	r := bigResult(t, 5000, 50)
	var k Keeper
	for i := range r.Traces {
		k.Add(&r.Traces[i])
	}
	kept := k.Traces()
	lostAfterHead := 0
	for _, tr := range r.Traces[keepHead:] {
		if tr.LostAfter != "" {
			lostAfterHead++
		}
	}
	if len(kept) != keepHead+lostAfterHead {
		t.Fatalf("kept %d, want the first %d and the %d lost after them", len(kept), keepHead, lostAfterHead)
	}
	for i, tr := range kept[keepHead:] {
		if tr.LostAfter == "" || (i > 0 && tr.N <= kept[keepHead+i-1].N) {
			t.Fatalf("kept #%d after the head: not lost or out of order", tr.N)
		}
	}
	// The kept traces are clones: the stream may reuse its Trace.
	r.Traces[0].Hops[0].Point = "changed"
	if kept[0].Hops[0].Point == "changed" {
		t.Error("Keeper kept a reference, not a clone")
	}
}
