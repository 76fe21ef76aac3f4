package report

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/pathtrace/pathtrace/correlate"
)

// nodesResult is a path across two nodes as an offline analysis of two
// nodes' captures gives it: a1, a2 on nodeA, b1, b2 on nodeB, nodeB's
// clock 16 ms ahead, an echo request and its reply in VXLAN on the wire
// hops a2 → b1.
func nodesResult() *correlate.Result {
	wire := func(src, dst string, sport uint64) correlate.HopEncap {
		return correlate.HopEncap{Type: correlate.EncapVXLAN, VNI: u(1), OuterSrcIP: correlate.OptAddr{V: netip.MustParseAddr(src)},
			OuterDstIP: correlate.OptAddr{V: netip.MustParseAddr(dst)}, OuterTTL: u(64), SrcPort: u(sport), DstPort: u(8472)}
	}
	hop := func(p string, t int64, off int64, e correlate.HopEncap) correlate.Hop {
		return correlate.Hop{Point: p, Time: ts(t + off), ClockOffsetNs: off, Encap: e}
	}
	const off = 16_000_000
	none := correlate.HopEncap{}
	req := correlate.Trace{N: 1, Protocol: correlate.ProtoICMP, Type: "echo-request", Direction: correlate.Forward,
		Hops: []correlate.Hop{hop("a1", 0, 0, none), hop("a2", 40_000, 0, wire("192.168.56.1", "192.168.56.2", 46246)),
			hop("b1", 55_000, off, wire("192.168.56.1", "192.168.56.2", 46246)), hop("b2", 95_000, off, none)}}
	rep := correlate.Trace{N: 2, Protocol: correlate.ProtoICMP, Type: "echo-reply", Direction: correlate.Reverse,
		Hops: []correlate.Hop{hop("b2", 200_000, off, none), hop("b1", 220_000, off, wire("192.168.56.2", "192.168.56.1", 46246)),
			hop("a2", 230_000, 0, wire("192.168.56.2", "192.168.56.1", 46246)), hop("a1", 260_000, 0, none)}}
	r := &correlate.Result{Traces: []correlate.Trace{req, rep}}
	for _, p := range []struct{ name, node string }{{"a1", "nodeA"}, {"a2", "nodeA"}, {"b1", "nodeB"}, {"b2", "nodeB"}} {
		r.Points = append(r.Points, correlate.PointRep{Name: p.name, Node: p.node, Source: p.name + ".pcap"})
	}
	for _, pr := range [][2]string{{"a1", "a2"}, {"a2", "b1"}, {"b1", "b2"}, {"b2", "b1"}, {"b1", "a2"}, {"a2", "a1"}} {
		r.HopLatency = append(r.HopLatency, correlate.HopStat{From: pr[0], To: pr[1], Count: 1, Exact: true})
	}
	for _, p := range []string{"b1", "b2"} {
		r.ClockOffsets = append(r.ClockOffsets, correlate.ClockOffset{Point: p, Reference: "a1", OffsetNs: off, UncertaintyNs: 3_100, Samples: 2})
	}
	r.Summary = correlate.Summary{Traces: 2, Complete: 2, Verdict: "OK", Clean: true}
	return r
}

func TestNodesInReports(t *testing.T) {
	r := nodesResult()
	var tb, md bytes.Buffer
	if err := Table(&tb, Document{Result: r}, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := Markdown(&md, Document{Result: r}, Options{}); err != nil {
		t.Fatal(err)
	}
	text := tb.String()
	for _, want := range []string{
		"Clocks: nodeA: the reference; nodeB: +16.000 ms ± 3.1 µs (estimated from 2 frames); deltas corrected",
		"├─", // the ruler over the timeline's node columns
		" nodeA ", " nodeB ",
		"on the wire: vxlan VNI 1, 192.168.56.1 → 192.168.56.2, UDP 46246 → 8472, TTL 64",
		"on the wire: vxlan VNI 1, 192.168.56.2 → 192.168.56.1, UDP 46246 → 8472, TTL 64",
		// Corrected times: nodeA 40 µs, the wire 15, nodeB 40; back 20, 10, 30.
		"nodeA (a1 … a2)  →        1  40.000  40.000  40.000",
		"wire (a2 … b1)   →        1  15.000  15.000  15.000",
		"nodeB (b1 … b2)  →        1  40.000  40.000  40.000",
		"nodeB (b2 … b1)  ←        1  20.000  20.000  20.000",
		"wire (b1 … a2)   ←        1  10.000  10.000  10.000",
		"nodeA (a2 … a1)  ←        1  30.000  30.000  30.000",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
	// The hop latency names each pair's node, and the wire between them.
	var nodeCol []string
	in := false
	for _, l := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(l, " NODE   FROM → TO"):
			in = true
		case in && l == "":
			in = false
		case in:
			nodeCol = append(nodeCol, strings.Fields(l)[0])
		}
	}
	if got := strings.Join(nodeCol, " "); got != "nodeA wire nodeB b2 wire nodeA" {
		t.Errorf("hop latency rows start %q, want the node on its first row and the wire between:\n%s", got, text)
	}
	for _, want := range []string{"| Node  | From → to", "| wire  | a2 → b1", "## Time per node and on the wire", "#1: on the wire: vxlan VNI 1"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}

	// One node: none of it.
	for i := range r.Points {
		r.Points[i].Node = "nodeA"
	}
	tb.Reset()
	if err := Table(&tb, Document{Result: r}, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, not := range []string{"NODE", "├", "the reference", "Time per node"} {
		if strings.Contains(tb.String(), not) {
			t.Errorf("one node's table has %q:\n%s", not, tb.String())
		}
	}
}

func TestSpan(t *testing.T) {
	for _, c := range []struct {
		name string
		w    int
		want string
	}{
		{"nodeA", 13, "├── nodeA ──┤"},
		{"a-very-long-node-name", 12, "├ a-very-l ┤"},
		{"x", 2, "  "},
	} {
		if got := span(c.name, c.w); got != c.want {
			t.Errorf("span(%q, %d) = %q, want %q", c.name, c.w, got, c.want)
		}
	}
}

// The HTML page of a path across nodes: the clock line, a band naming each
// node over its lanes, the node of each hop-latency row and the time per
// node and on the wire; on one node none of it.
func TestNodesInHTML(t *testing.T) {
	r := nodesResult()
	var b bytes.Buffer
	if err := HTML(&b, Document{Result: r}, Options{}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		"Clocks: nodeA: the reference; nodeB: &#43;16.000 ms ± 3.1 µs (estimated from 2 frames); deltas corrected",
		`<title>node nodeA</title><rect class="nodeband"`,
		`<title>node nodeB</title><rect class="nodeband"`,
		"<th>NODE</th><th>FROM → TO</th>",
		"<tr><td>wire</td><td>a2 → b1</td>",
		"<h3>Time per node and on the wire",
		"<td>wire (a2 … b1)</td>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if n := strings.Count(page, `<rect class="nodeband"`); n != 2 {
		t.Errorf("%d node bands, want 2", n)
	}
	for i := range r.Points {
		r.Points[i].Node = "nodeA"
	}
	r.ClockOffsets = nil
	b.Reset()
	if err := HTML(&b, Document{Result: r}, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, not := range []string{`<rect class="nodeband"`, "<th>NODE</th>", "Time per node", "Clocks:"} {
		if strings.Contains(b.String(), not) {
			t.Errorf("one node's page has %q", not)
		}
	}
}
