package report

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pathtrace/pathtrace/correlate"
)

func render(t *testing.T, d Document, o Options) (string, []string) {
	t.Helper()
	var b bytes.Buffer
	if err := Table(&b, d, o); err != nil {
		t.Fatal(err)
	}
	return b.String(), strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
}

// matrix finds the trace matrix: its header line and the row of each
// trace number.
func matrix(t *testing.T, lines []string) (string, map[int]string) {
	t.Helper()
	header := ""
	rows := map[int]string{}
	for i, l := range lines {
		if strings.HasPrefix(l, " #") && strings.Contains(l, "START (UTC)") {
			header = l
			for _, r := range lines[i+1:] {
				var n int
				if _, err := fmt.Sscanf(r, " #%d ", &n); err == nil {
					rows[n] = r
				} else if r == "" || strings.HasPrefix(r, "…") {
					break
				}
			}
			break
		}
	}
	if header == "" {
		t.Fatalf("no trace matrix in\n%s", strings.Join(lines, "\n"))
	}
	return header, rows
}

// cellAt is the cell of row in the column of point col: the columns after
// START (UTC) are the points in path order, each cell right-aligned to the
// end of its (possibly cut) header.
func cellAt(t *testing.T, r *correlate.Result, header, row, col string) string {
	t.Helper()
	k := -1
	for i, p := range r.Points {
		if p.Name == col {
			k = i
		}
	}
	h := []rune(header)
	start := strings.Index(header, "START (UTC)")
	if k < 0 || start < 0 {
		t.Fatalf("no column %q in %q", col, header)
	}
	i := utf8.RuneCountInString(header[:start]) + len("START (UTC)")
	end := -1
	for n := 0; n <= k; n++ {
		for i < len(h) && h[i] == ' ' {
			i++
		}
		for i < len(h) && h[i] != ' ' {
			i++
		}
		end = i
	}
	rr := []rune(row)
	if end > len(rr) {
		t.Fatalf("row shorter than column %q: %q", col, row)
	}
	f := strings.Fields(string(rr[:end]))
	return f[len(f)-1]
}

// Every hop's Δ is in its point's column, at the exact ns precision of the
// JSON; the first hop shows 0 and a point the frame did not cross has no
// number.
func checkCells(t *testing.T, r *correlate.Result, out string, lines []string) {
	t.Helper()
	header, rows := matrix(t, lines)
	list, _ := shown(r, 20)
	for _, tr := range list {
		row, ok := rows[tr.N]
		if !ok {
			t.Errorf("#%d has no row", tr.N)
			continue
		}
		crossed := map[string]bool{}
		for j, h := range tr.Hops {
			if h.Reflection || crossed[h.Point] {
				continue
			}
			crossed[h.Point] = true
			want := "0"
			if j > 0 {
				want = signedMicros(h.DeltaNs, 3)
			}
			if got := cellAt(t, r, header, row, h.Point); got != want {
				t.Errorf("#%d at %s: cell %q, want %q\n%s\n%s", tr.N, h.Point, got, want, header, row)
			}
		}
		for _, p := range r.Points {
			if crossed[p.Name] {
				continue
			}
			if got := cellAt(t, r, header, row, p.Name); got != "·" && got != "gap" && got != "LOST" {
				t.Errorf("#%d at %s (not crossed): cell %q", tr.N, p.Name, got)
			}
		}
		arrow := " → "
		if tr.Direction.String() == "reverse" {
			arrow = " ← "
		}
		if !strings.Contains(row, arrow) {
			t.Errorf("#%d %s has no %q: %q", tr.N, tr.Direction, arrow, row)
		}
	}
}

func checkWidth(t *testing.T, lines []string, width int) {
	t.Helper()
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n > width {
			t.Errorf("line is %d columns wide (max %d): %q", n, width, l)
		}
		if strings.HasSuffix(l, " ") {
			t.Errorf("trailing blanks: %q", l)
		}
	}
}

// The seed's story in one screen: the promisc captures (5 points, 8
// traces) with the path section of a live run.
func TestTimelineDemoFitsOneScreen(t *testing.T) {
	r := loadResult(t, "result_promisc.json")
	d := Document{Result: r, Path: promiscPath(), Live: promiscLive(r)}
	out, lines := render(t, d, Options{})
	golden(t, "table_promisc_live.golden", []byte(out))
	if len(lines) > 50 {
		t.Errorf("%d lines, want ≤ 50:\n%s", len(lines), out)
	}
	checkWidth(t, lines, 120)
	checkCells(t, r, out, lines)
	header, rows := matrix(t, lines)
	if got := cellAt(t, r, header, rows[2], "pod2"); got != "0" {
		t.Errorf("reverse #2 starts at pod2, cell %q", got)
	}
	if got := cellAt(t, r, header, rows[2], "pod1"); got != "+0.361" {
		t.Errorf("reverse #2 at pod1: %q, want the Δ from pod1-veth +0.361", got)
	}
	for n, want := range map[int]string{1: "reflection ×2", 4: "rtt 22.4 µs", 6: "rtt 67.1 µs"} {
		if !strings.HasSuffix(rows[n], " "+want) {
			t.Errorf("#%d flags: %q, want %q", n, rows[n], want)
		}
	}
	// One MAC note per distinct pair: broadcast ARP, the reply, the echo.
	if n := strings.Count(out, "↳ MACs "); n != 3 {
		t.Errorf("%d MAC notes, want 3", n)
	}
	for _, want := range []string{
		"↳ MACs f2:c2:bd:7a:6c:ca (pod1 eth0) → ff:ff:ff:ff:ff:ff (broadcast)",
		"↳ MACs 02:84:9d:0d:2a:c5 (pod2 eth0) → f2:c2:bd:7a:6c:ca (pod1 eth0)",
		" pod1       -          pod1 eth0, pod2 eth0  18:03:15.356982–18:03:15.773468       9      -      0",
		" reflection  info      pod1-veth,pod1      2  #1      broadcast came back to the point it left (bridge hairpin mode)",
		" fdb cni0: f2:c2:bd:7a:6c:ca (pod1 eth0) on vetha6bc7cdf",
		"Traces (8): 10.244.1.2 ⇄ 10.244.1.3 unless labelled",
		" #2 arp reply .3→.2         ← 18:03:15.357054812",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q", want)
		}
	}
	order := []string{"Discovered path", "probes:", "Points", "Traces (8)", "Hop latency", "Anomalies", "8 traces:", "Verdict:"}
	pos := -1
	for _, s := range order {
		i := strings.Index(out, s)
		if i <= pos {
			t.Errorf("section %q missing or out of order", s)
		}
		pos = i
	}
}

func TestTimelineLost(t *testing.T) {
	r := loadResult(t, "result_nft-drop.json")
	out, lines := render(t, Document{Result: r}, Options{})
	golden(t, "table_nft-drop.golden", []byte(out))
	checkWidth(t, lines, 120)
	checkCells(t, r, out, lines)
	header, rows := matrix(t, lines)
	for _, n := range []int{3, 4, 5} {
		if got := cellAt(t, r, header, rows[n], "pod2-veth"); got != "LOST" {
			t.Errorf("#%d at pod2-veth: %q, want LOST (lost after cni0)", n, got)
		}
		if got := cellAt(t, r, header, rows[n], "pod2"); got != "·" {
			t.Errorf("#%d at pod2: %q, want ·", n, got)
		}
	}
	// The cells say it for #4 and #5; the note once.
	if n := strings.Count(out, "↳ lost after cni0"); n != 1 {
		t.Errorf("%d 'lost after' notes, want 1", n)
	}

	// On the way back LOST is left of where it was last seen.
	r2 := fixtureResult()
	tr := &r2.Traces[1]
	tr.Hops, tr.LostAfter = tr.Hops[:3], "cni0"
	_, lines = render(t, Document{Result: r2}, Options{})
	header, rows = matrix(t, lines)
	if got := cellAt(t, r2, header, rows[2], "pod1-veth"); got != "LOST" {
		t.Errorf("reverse lost after cni0: pod1-veth cell %q, want LOST\n%s\n%s", got, header, rows[2])
	}
	if got := cellAt(t, r2, header, rows[2], "pod1"); got != "·" {
		t.Errorf("reverse lost: pod1 cell %q, want ·", got)
	}
}

func TestTimelineGap(t *testing.T) {
	r := loadResult(t, "result_seed.json")
	out, lines := render(t, Document{Result: r}, Options{})
	checkWidth(t, lines, 120)
	checkCells(t, r, out, lines)
	header, rows := matrix(t, lines)
	for n := 2; n <= 8; n++ {
		if got := cellAt(t, r, header, rows[n], "cni0"); got != "gap" {
			t.Errorf("#%d at cni0: %q, want gap", n, got)
		}
	}
	if got := cellAt(t, r, header, rows[1], "cni0"); got != "+0.000" {
		t.Errorf("#1 (flooded, so seen on cni0): %q", got)
	}
	if n := strings.Count(out, "↳ missing: cni0"); n != 1 {
		t.Errorf("%d 'missing: cni0' notes, want 1", n)
	}
}

// Routed: MAC/TTL rewrites are noted once per distinct rewrite and
// flagged on every row; ARP stays within its subnet.
func TestTimelineRouted(t *testing.T) {
	r := loadResult(t, "result_routed.json")
	out, lines := render(t, Document{Result: r}, Options{})
	golden(t, "table_routed.golden", []byte(out))
	checkWidth(t, lines, 120)
	checkCells(t, r, out, lines)
	header, rows := matrix(t, lines)
	if got := cellAt(t, r, header, rows[4], "cni0"); got != "·" {
		t.Errorf("#4 (ARP on cni1's subnet) at cni0: %q, want ·", got)
	}
	if n := strings.Count(out, "↳ MAC rewritten at cni1"); n != 1 {
		t.Errorf("%d cni1 rewrite notes, want 1 (same rewrite on #3, #7, #9)", n)
	}
	for _, n := range []int{3, 6, 7, 8, 9, 10} {
		if !strings.Contains(rows[n], "rewrite") {
			t.Errorf("#%d not flagged as rewritten: %q", n, rows[n])
		}
	}
}

// A long path still fits: names are cut with "…", the rows never wrap.
func TestTimelineWide(t *testing.T) {
	names := []string{"pod1", "pod1-veth-vethb07edeba", "cni0", "flannel.1-vxlan", "node-eth0-egress",
		"node2-eth0-ingress", "node2-flannel.1", "node2-cni0", "pod2-veth-vethb63b0458", "pod2"}
	r := &correlate.Result{Summary: correlate.Summary{Verdict: "OK"}}
	for _, n := range names {
		r.Points = append(r.Points, correlate.PointRep{Name: n})
	}
	for k := 0; k < 4; k++ {
		specs := make([]hopSpec, len(names))
		for i, n := range names {
			at := int64(k)*1_000_000_000 + int64(i)*123_456
			if k%2 == 1 {
				n = names[len(names)-1-i]
			}
			specs[i] = hopSpec{point: n, at: at, src: macPod1, dst: macPod2, ttl: 64}
		}
		dir := correlate.Forward
		if k%2 == 1 {
			dir = correlate.Reverse
		}
		r.Traces = append(r.Traces, correlate.Trace{N: k + 1, Protocol: correlate.ProtoICMP, Type: "echo-request", Seq: u(uint64(k)),
			SrcIP: ip("10.244.1.2"), DstIP: ip("10.244.2.3"), Direction: dir, Hops: hops(specs...),
			RTT: &correlate.RTT{TotalNs: 250_000}})
	}
	for _, width := range []int{120, 100} {
		out, lines := render(t, Document{Result: r}, Options{Width: width})
		header, rows := matrix(t, lines)
		if len(rows) != len(r.Traces) {
			t.Errorf("width %d: %d trace rows, want %d\n%s", width, len(rows), len(r.Traces), out)
		}
		checkWidth(t, append([]string{header}, rows[1], rows[2], rows[3], rows[4]), width)
		if !strings.Contains(header, "…") || strings.Contains(header, "pod1-veth-vethb07edeba") {
			t.Errorf("width %d: long names not cut: %q", width, header)
		}
		if !strings.Contains(rows[2], " ← ") || !strings.Contains(rows[1], " → ") {
			t.Errorf("width %d: arrows missing:\n%s\n%s", width, rows[1], rows[2])
		}
		if width == 120 {
			t.Logf("\n%s", out)
		}
	}
}

func TestTimelineLimit(t *testing.T) {
	out, _ := render(t, offline(), Options{Limit: 2})
	if !strings.Contains(out, "Traces (2 of 7)") || !strings.Contains(out, "\n… 5 more traces: --limit 0 shows all (the JSON report has every one)\n") {
		t.Errorf("limit not applied:\n%s", out)
	}
	if strings.Contains(out, " #3 ") {
		t.Error("trace #3 shown despite limit 2")
	}
	out, _ = render(t, Document{Result: &correlate.Result{}}, Options{})
	if !strings.Contains(out, "Traces (0)\n  none\n") {
		t.Errorf("empty result:\n%s", out)
	}
}

func TestShortPair(t *testing.T) {
	for _, c := range []struct{ a, b, want string }{
		{"10.244.1.2", "10.244.1.3", ".2→.3"},
		{"10.244.1.2", "10.244.2.2", ".1.2→.2.2"},
		{"10.244.1.2", "10.96.0.10", "10.244.1.2→10.96.0.10"},
		{"fd00:10:244:1::2", "fd00:10:244:1::3", "::2→::3"},
		{"fd00:10:244:1::2", "fd00:10:244:2::3", "fd00:10:244:1::2→fd00:10:244:2::3"},
	} {
		a, b := shortPair(ip(c.a).V, ip(c.b).V)
		if got := a + "→" + b; got != c.want {
			t.Errorf("shortPair(%s, %s) = %s, want %s", c.a, c.b, got, c.want)
		}
	}
	for _, c := range []struct{ got, want string }{
		{truncRunes("pod1-veth", 6), "pod1-…"},
		{truncMiddle("node-any:if3", 7), "nod…if3"},
		{cutLabel("icmp echo-request seq=1 10.244.1.2→10.96.0.10", 28), "icmp echo-request seq=1 …"},
		{fmtMicros(28_184, 1), "28.2"},
		{fmtMicros(-3_210, 0), "-3"},
		{signedMicros(0, 3), "+0.000"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// The hand-made fixture covers what the lab captures do not: a negative
// Δ, SLL2 hops without a destination MAC, a label too long for its column.
func TestTimelineFixture(t *testing.T) {
	r := fixtureResult()
	out, lines := render(t, Document{Result: r, Path: fixturePath(), Live: fixtureLive()}, Options{})
	checkWidth(t, lines, 120)
	checkCells(t, r, out, lines)
	header, rows := matrix(t, lines)
	if got := cellAt(t, r, header, rows[6], "pod2"); got != "-3.210" {
		t.Errorf("#6 at pod2: %q, want the negative Δ as captured", got)
	}
	if got := cellAt(t, r, header, rows[6], "cni0"); got != "gap" {
		t.Errorf("#6 at cni0: %q, want gap", got)
	}
	for _, want := range []string{
		" #7 icmp echo-request seq=1 … → 09:26:55.050000000",
		"    ↳ icmp echo-request seq=1 10.244.1.2→10.96.0.10\n",
		"    ↳ MAC rewritten at pod2: dst 0a:58:0a:f4:01:01 (cni0) → ca:bb:af:bd:e5:3a (pod2 eth0); TTL 64→63 at pod2-veth\n",
		"Evidence written to pathtrace-20250314T092653/: pod1.pcapng, result.json\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q", want)
		}
	}
}
