package e2e

import (
	"encoding/json"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Golden end-to-end tests: `pathtrace analyze -f json` on the real captures
// of testdata/captures, every number checked against tshark's dissection of
// the same frames, and each scenario's story (FACTS.md) checked on the result.

var path5 = []string{"pod1", "pod1-veth", "cni0", "pod2-veth", "pod2"}

type scenario struct {
	name  string   // row name
	dir   string   // under testdata/captures
	args  []string // capture files in path order; nil: the directory itself
	exit  int      // wanted exit status; -1: 0 or 1, whichever the result says
	story func(t *testing.T, g *golden)
}

var scenarios = []scenario{
	{"seed", "seed", files5, 1, storySeed},
	{"promisc", "promisc", files5, 0, storyPromisc},
	{"hairpin-arp", "hairpin-arp", files5, 0, storyHairpin},
	{"hairpin-arp-any", "hairpin-arp", []string{"pod1.cap", "node-any.cap", "pod2.cap"}, 0, storyHairpinAny},
	{"nft-drop", "nft-drop", files5, 1, storyNftDrop},
	{"routed", "routed", []string{"pod1.cap", "pod1-veth.cap", "cni0.cap", "cni1.cap", "pod3-veth.cap", "pod3.cap"}, 0, storyRouted},
	{"any", "any", []string{"pod1.cap", "node-any.cap", "pod2.cap"}, 1, storyAny},
	{"dumpcap-multi", "dumpcap-multi", []string{"pod1.cap", "node.pcapng", "pod2.cap"}, 0, storyDumpcapMulti},
	{"ipv6", "ipv6", files5, 0, storyIPv6},
	{"flood-wrap", "flood-wrap", []string{"pod1.cap.gz", "cni0.cap.gz", "pod2.cap.gz"}, 0, storyFloodWrap},
}

var files5 = []string{"pod1.cap", "pod1-veth.cap", "cni0.cap", "pod2-veth.cap", "pod2.cap"}

func TestAnalyzeGolden(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			dir := filepath.Join(capturesDir, sc.dir)
			if _, err := os.Stat(dir); err != nil {
				t.Skipf("scenario %s: no captures in %s yet", sc.dir, dir)
			}
			rows := tshark(t)
			args := []string{"analyze", "-q", "-f", "json"}
			if sc.args == nil {
				args = append(args, dir)
			}
			for _, f := range sc.args {
				args = append(args, filepath.Join(dir, f))
			}
			code, out, errs := runCLI(t, args...)
			if code == exitUsage {
				t.Fatalf("analyze %s: exit %d, want %d: %s", sc.name, code, sc.exit, errs)
			}
			res := decodeResult(t, out)
			checkExit(t, res, code, sc.exit)
			g := newGolden(t, res, rows)
			g.dir = dir
			g.checkAgainstTshark()
			sc.story(t, g)
		})
	}
}

// checkExit: status 0 exactly when the result is clean, and clean exactly
// when no anomaly is a warning (info anomalies, like hairpin reflections,
// are expected behaviour).
func checkExit(t *testing.T, res *jResult, code, want int) {
	t.Helper()
	warn := 0
	for _, a := range res.Anomalies {
		if a.Severity == "warning" {
			warn++
		} else if a.Severity != "info" {
			t.Errorf("anomaly %s at %s: severity %q, want warning or info", a.Kind, a.Point, a.Severity)
		}
	}
	if res.Summary.Clean != (warn == 0) {
		t.Errorf("summary.clean = %v with %d warning anomalies", res.Summary.Clean, warn)
	}
	wantCode := exitFindings
	if res.Summary.Clean {
		wantCode = exitOK
	}
	if code != wantCode {
		t.Errorf("exit %d, but summary.clean = %v", code, res.Summary.Clean)
	}
	if want >= 0 && code != want {
		t.Errorf("exit %d, want %d (verdict %q, anomalies %+v)", code, want, res.Summary.Verdict, res.Anomalies)
	}
	if strings.HasPrefix(res.Summary.Verdict, "OK") != res.Summary.Clean {
		t.Errorf("verdict %q with clean = %v", res.Summary.Verdict, res.Summary.Clean)
	}
}

// golden holds one result and tshark's rows for the files it read.
type golden struct {
	t    *testing.T
	res  *jResult
	rows map[string]map[int]*tsRow
	pos  map[string]int // point name → path position
	dir  string         // the scenario's directory
}

func newGolden(t *testing.T, res *jResult, rows map[string]map[int]*tsRow) *golden {
	g := &golden{t: t, res: res, rows: rows, pos: map[string]int{}}
	for i, p := range res.Points {
		g.pos[p.Name] = i
	}
	return g
}

func (g *golden) file(p *jPoint) string {
	abs, err := filepath.Abs(p.Source)
	if err != nil {
		g.t.Fatalf("point %s: source %q: %v", p.Name, p.Source, err)
	}
	return abs
}

// belongs reports whether tshark's row was captured at point p: same file
// and, in a multi-interface file, the same pcapng interface or SLL2 ifindex.
func (g *golden) belongs(r *tsRow, p *jPoint) bool {
	if r.File != g.file(p) {
		return false
	}
	if p.Interface != nil && r.IfaceName != *p.Interface {
		return false
	}
	if p.IfIndex != nil && r.SLLIfIndex != strconv.Itoa(*p.IfIndex) {
		return false
	}
	return true
}

// row is tshark's dissection of the frame a hop names.
func (g *golden) row(tr *jTrace, h *jHop) *tsRow {
	g.t.Helper()
	_, p := g.res.point(h.Point)
	if p == nil {
		g.t.Fatalf("trace #%d: hop at %q, which is not a point (points %v)", tr.N, h.Point, g.res.pointNames())
	}
	r := g.rows[g.file(p)][h.Frame]
	if r == nil {
		g.t.Fatalf("trace #%d hop %s: frame %d is not in %s as tshark reads it", tr.N, h.Point, h.Frame, p.Source)
	}
	if !g.belongs(r, p) {
		g.t.Errorf("trace #%d hop %s: frame %d of %s is on interface %q ifindex %q, not the point's (%v, %v)",
			tr.N, h.Point, h.Frame, p.Source, r.IfaceName, r.SLLIfIndex, deref(p.Interface), deref(p.IfIndex))
	}
	return r
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

var rfc3339Nine = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$`)

// checkAgainstTshark checks every number of the result that tshark also
// shows, and that every ARP, ICMP echo and ND frame tshark sees at the
// points is in exactly one trace.
func (g *golden) checkAgainstTshark() {
	t := g.t
	t.Helper()
	type fk struct {
		file  string
		frame int
	}
	used := map[fk]int{}
	stamps := map[int][]int64{} // trace n → tshark stamp of each hop
	for ti := range g.res.Traces {
		tr := &g.res.Traces[ti]
		if len(tr.Hops) == 0 {
			t.Errorf("trace #%d: no hops", tr.N)
			continue
		}
		perPoint := map[string]int{}
		var ns []int64
		for hi := range tr.Hops {
			h := &tr.Hops[hi]
			r := g.row(tr, h)
			used[fk{r.File, r.Num}]++
			ns = append(ns, r.Ns)
			where := fmt.Sprintf("trace #%d (%s) hop %d at %s, frame %d", tr.N, tr.Type, hi, h.Point, h.Frame)
			if !h.Reflection {
				perPoint[h.Point]++
			}
			if !rfc3339Nine.MatchString(h.Time) {
				t.Errorf("%s: time %q is not RFC 3339 UTC with nine fractional digits", where, h.Time)
			} else if ts, err := time.Parse(time.RFC3339Nano, h.Time); err != nil || ts.UnixNano() != r.Ns {
				t.Errorf("%s: time %s, tshark frame.time_epoch %s (%v)", where, h.Time, r.Epoch, err)
			}
			if got, want := deref(h.SrcMAC), strOrNil(r.srcMAC()); got != want {
				t.Errorf("%s: src_mac %v, tshark %v", where, got, want)
			}
			if got, want := deref(h.DstMAC), strOrNil(r.EthDst); got != want {
				t.Errorf("%s: dst_mac %v, tshark eth.dst %v", where, got, want)
			}
			if got, want := uintStr(h.TTL), r.TTL; got != want {
				t.Errorf("%s: ttl %q, tshark ip.ttl/ipv6.hlim %q", where, got, want)
			}
			if tt := r.traceType(); tt != tr.Type {
				t.Errorf("%s: trace type %s, tshark dissects %q (arp.opcode %q, icmp type %q)", where, tr.Type, tt, r.ARPOp, r.ICMPType)
			}
			if strings.HasPrefix(tr.Type, "echo-") {
				if got := uintStr(tr.Seq); got != r.Seq {
					t.Errorf("%s: trace seq %s, tshark seq %s", where, got, r.Seq)
				}
				if got := uintStr(tr.ID); got != r.Ident && !hasRewrite(tr, "id") {
					t.Errorf("%s: trace id %s, tshark ident %s", where, got, r.Ident)
				}
			}
			if r.SLLPktType != "" {
				want := "in"
				if r.SLLPktType == "4" {
					want = "out"
				}
				if h.Dir != want {
					t.Errorf("%s: dir %q, tshark sll.pkttype %s (want %q)", where, h.Dir, r.SLLPktType, want)
				}
			}
		}
		for p, n := range perPoint {
			if n > 1 {
				t.Errorf("trace #%d (%s seq %s): %d hops at %s; two frames at one point were merged into one trace",
					tr.N, tr.Type, uintStr(tr.Seq), n, p)
			}
		}
		stamps[tr.N] = ns
		g.checkDeltas(tr, ns)
	}
	for k, n := range used {
		if n > 1 {
			t.Errorf("%s frame %d is a hop of %d traces", k.file, k.frame, n)
		}
	}
	// Completeness: every golden-set frame at a point is a hop.
	for i := range g.res.Points {
		p := &g.res.Points[i]
		for _, r := range g.rows[g.file(p)] {
			if r.traceType() != "" && g.belongs(r, p) && used[fk{r.File, r.Num}] == 0 {
				t.Errorf("point %s: tshark frame %d (%s, %s) is in no trace", p.Name, r.Num, r.traceType(), r.Epoch)
			}
		}
	}
	g.checkHopLatency()
	g.checkPairs(stamps)
}

func strOrNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func uintStr(p *uint64) string {
	if p == nil {
		return ""
	}
	return strconv.FormatUint(*p, 10)
}

func hasRewrite(tr *jTrace, field string) bool {
	return slices.ContainsFunc(tr.Rewrites, func(r jRewrite) bool { return r.Field == field })
}

// deltaFrom is the hop a hop's delta is measured from, in crossing order:
// the previous hop; for the first hop of a flood's second branch (points
// behind the origin after those ahead of it), the origin; for a reflection,
// the latest earlier hop at the same or a neighbouring point, the one it
// came back from. -1 for the first hop.
func (g *golden) deltaFrom(tr *jTrace, ns []int64, k int) int {
	if k == 0 {
		return -1
	}
	pos := func(i int) int { return g.pos[tr.Hops[i].Point] }
	if tr.Hops[k].Reflection {
		from, best := k-1, int64(-1<<63)
		for j := 0; j < k; j++ {
			if d := pos(j) - pos(k); d >= -1 && d <= 1 && ns[j] <= ns[k] && ns[j] > best {
				from, best = j, ns[j]
			}
		}
		return from
	}
	side := func(i int) int { return sign(pos(i) - pos(0)) }
	if k >= 2 && side(k) != side(k-1) {
		return 0
	}
	return k - 1
}

func sign(x int) int {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

func (g *golden) checkDeltas(tr *jTrace, ns []int64) {
	for k := range tr.Hops {
		want := int64(0)
		if from := g.deltaFrom(tr, ns, k); from >= 0 {
			want = ns[k] - ns[from]
		}
		if got := tr.Hops[k].DeltaNs; got != want {
			g.t.Errorf("trace #%d (%s) hop %d at %s: delta_ns %d, tshark stamps give %d",
				tr.N, tr.Type, k, tr.Hops[k].Point, got, want)
		}
	}
}

// checkHopLatency recomputes the per-hop statistics from the traces' tshark
// stamps: same hop pairs, counts, min and max; percentiles inside the range
// and, while exact, one of the samples.
func (g *golden) checkHopLatency() {
	t := g.t
	samples := map[[2]string][]int64{}
	for ti := range g.res.Traces {
		tr := &g.res.Traces[ti]
		ns := make([]int64, len(tr.Hops))
		for i := range tr.Hops {
			ns[i] = g.row(tr, &tr.Hops[i]).Ns
		}
		for k := 1; k < len(tr.Hops); k++ {
			if tr.Hops[k].Reflection {
				continue
			}
			from := g.deltaFrom(tr, ns, k)
			key := [2]string{tr.Hops[from].Point, tr.Hops[k].Point}
			samples[key] = append(samples[key], ns[k]-ns[from])
		}
	}
	seen := map[[2]string]bool{}
	for _, s := range g.res.HopLatency {
		key := [2]string{s.From, s.To}
		seen[key] = true
		want := samples[key]
		if len(want) == 0 {
			t.Errorf("hop_latency %s → %s: count %d, but no trace crosses that hop", s.From, s.To, s.Count)
			continue
		}
		if s.Count != len(want) || s.MinNs != slices.Min(want) || s.MaxNs != slices.Max(want) {
			t.Errorf("hop_latency %s → %s: count %d min %d max %d, tshark stamps give count %d min %d max %d",
				s.From, s.To, s.Count, s.MinNs, s.MaxNs, len(want), slices.Min(want), slices.Max(want))
		}
		if !(s.MinNs <= s.P50Ns && s.P50Ns <= s.P99Ns && s.P99Ns <= s.MaxNs) {
			t.Errorf("hop_latency %s → %s: min %d p50 %d p99 %d max %d out of order", s.From, s.To, s.MinNs, s.P50Ns, s.P99Ns, s.MaxNs)
		}
		if s.Exact && (!slices.Contains(want, s.P50Ns) || !slices.Contains(want, s.P99Ns)) {
			t.Errorf("hop_latency %s → %s: exact p50 %d / p99 %d not among the samples %v", s.From, s.To, s.P50Ns, s.P99Ns, want)
		}
	}
	for key, want := range samples {
		if !seen[key] {
			t.Errorf("hop_latency has no %s → %s, which %d traces cross", key[0], key[1], len(want))
		}
	}
}

// checkPairs: an echo reply answers the latest earlier request with the same
// id and seq between the same addresses, an ARP reply the latest earlier
// request for its sender; RTT parts come from the tshark stamps.
func (g *golden) checkPairs(stamps map[int][]int64) {
	t := g.t
	for ti := range g.res.Traces {
		rep := &g.res.Traces[ti]
		var reqType string
		switch rep.Type {
		case "echo-reply":
			reqType = "echo-request"
		case "arp-reply":
			reqType = "arp-request"
		default:
			continue
		}
		want := -1
		for _, req := range g.res.tracesOfType(reqType) {
			if stamps[req.N][0] >= stamps[rep.N][0] || deref(req.SrcIP) != deref(rep.DstIP) || deref(req.DstIP) != deref(rep.SrcIP) {
				continue
			}
			if reqType == "echo-request" && (uintStr(req.Seq) != uintStr(rep.Seq) || uintStr(req.ID) != uintStr(rep.ID)) {
				continue
			}
			if want < 0 || stamps[req.N][0] > stamps[want][0] {
				want = req.N
			}
		}
		if got := deref(rep.ReplyTo); want >= 0 && got != want {
			t.Errorf("trace #%d (%s %v → %v): reply_to %v, want #%d (the latest %s before it)",
				rep.N, rep.Type, deref(rep.SrcIP), deref(rep.DstIP), got, want, reqType)
			continue
		}
		if want < 0 || reqType != "echo-request" {
			continue
		}
		req := g.res.trace(want)
		if rep.RTT == nil {
			t.Errorf("trace #%d: echo reply to #%d without rtt", rep.N, want)
			continue
		}
		rq, rp := stamps[req.N], stamps[rep.N]
		lastMain := func(tr *jTrace, ns []int64) int64 {
			v := ns[0]
			for i, h := range tr.Hops {
				if !h.Reflection {
					v = ns[i]
				}
			}
			return v
		}
		w := jRTT{
			ForwardNs:    lastMain(req, rq) - rq[0],
			TurnaroundNs: rp[0] - lastMain(req, rq),
			ReverseNs:    lastMain(rep, rp) - rp[0],
		}
		w.TotalNs = w.ForwardNs + w.TurnaroundNs + w.ReverseNs
		for i, h := range rep.Hops {
			if h.Point == req.Hops[0].Point && !h.Reflection {
				w.TotalNs = rp[i] - rq[0]
			}
		}
		if *rep.RTT != w {
			t.Errorf("trace #%d: rtt %+v, tshark stamps give %+v", rep.N, *rep.RTT, w)
		}
	}
}

// Story helpers.

// TestAnalyzeUsageErrors: input errors exit 2 with one line that says what
// is wrong.
func TestAnalyzeUsageErrors(t *testing.T) {
	promisc := filepath.Join(capturesDir, "promisc")
	seed := filepath.Join(capturesDir, "seed")
	missing := filepath.Join(t.TempDir(), "nosuch.cap")
	cases := []struct {
		name string
		args []string
		want []string // substrings of stderr
	}{
		{"missing file", []string{missing}, []string{missing}},
		{"same base name", []string{filepath.Join(promisc, "pod1.cap"), filepath.Join(seed, "pod1.cap")}, []string{`"pod1"`, "NAME=FILE"}},
		{"unknown order name", []string{"--order", "pod1,bogus", filepath.Join(promisc, "pod1.cap"), filepath.Join(promisc, "pod2.cap")}, []string{`"bogus"`}},
		{"bad format", []string{"-f", "xml", filepath.Join(promisc, "pod1.cap")}, []string{"xml"}},
		{"named directory", []string{"x=" + promisc}, []string{"directory"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := runCLI(t, append([]string{"analyze", "-q"}, c.args...)...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if strings.Count(errs, "\n") != 1 || !strings.HasSuffix(errs, "\n") {
				t.Errorf("stderr %q: want exactly one line", errs)
			}
			for _, w := range c.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr %q: want it to mention %s", errs, w)
				}
			}
		})
	}
}

// TestAnalyzeNamedPoints: NAME=FILE names a point; its numbers still match tshark.
func TestAnalyzeNamedPoints(t *testing.T) {
	rows := tshark(t)
	dir := filepath.Join(capturesDir, "promisc")
	code, out, errs := runCLI(t, "analyze", "-q", "-f", "json",
		"a="+filepath.Join(dir, "pod1.cap"), "--point", "b="+filepath.Join(dir, "pod2.cap"))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	res := decodeResult(t, out)
	// --point points come before the arguments.
	wantPoints(t, res, "b", "a")
	for _, p := range res.Points {
		if want := map[string]string{"a": "pod1.cap", "b": "pod2.cap"}[p.Name]; filepath.Base(p.Source) != want {
			t.Errorf("point %s: source %s, want %s", p.Name, p.Source, want)
		}
	}
	g := newGolden(t, res, rows)
	g.checkAgainstTshark()
	// b (pod2) is first in path order, so pod1's requests travel in reverse.
	for _, tr := range res.tracesOfType("echo-request") {
		if got := tr.hopPoints(); !slices.Equal(got, []string{"a", "b"}) || tr.Direction != "reverse" {
			t.Errorf("trace #%d: hops %v direction %s, want [a b] reverse", tr.N, got, tr.Direction)
		}
	}
}

// TestAnalyzeDirectory: a directory's files (sorted by name, which is not
// path order) give the traces of the same files listed in path order.
func TestAnalyzeDirectory(t *testing.T) {
	dir := filepath.Join(capturesDir, "promisc")
	args := []string{"analyze", "-q", "-f", "json"}
	for _, f := range files5 {
		args = append(args, filepath.Join(dir, f))
	}
	code1, out1, errs1 := runCLI(t, args...)
	code2, out2, errs2 := runCLI(t, "analyze", "-q", "-f", "json", dir+"/")
	if code1 != exitOK || code2 != exitOK {
		t.Fatalf("exit %d (%s) listing files, %d (%s) for the directory", code1, errs1, code2, errs2)
	}
	listed, fromDir := decodeResult(t, out1), decodeResult(t, out2)
	wantPoints(t, fromDir, path5...)
	wantInferred(t, fromDir, dir)
	for _, part := range []struct {
		name string
		a, b any
	}{{"traces", listed.Traces, fromDir.Traces}, {"hop_latency", listed.HopLatency, fromDir.HopLatency}} {
		ja, _ := json.Marshal(part.a)
		jb, _ := json.Marshal(part.b)
		if string(ja) != string(jb) {
			t.Errorf("%s differ:\nlisted:    %.1500s\ndirectory: %.1500s", part.name, ja, jb)
		}
	}
	if len(listed.Traces) == 0 {
		t.Error("no traces")
	}
}

// TestAnalyzeFormats: markdown has its sections and the verdict; the table
// ends with the verdict line. Both agree with the JSON verdict.
func TestAnalyzeFormats(t *testing.T) {
	var files []string
	for _, f := range files5 {
		files = append(files, filepath.Join(capturesDir, "seed", f))
	}
	code, out, errs := runCLI(t, append([]string{"analyze", "-q", "-f", "json"}, files...)...)
	if code != exitFindings {
		t.Fatalf("json: exit %d, want %d: %s", code, exitFindings, errs)
	}
	verdict := decodeResult(t, out).Summary.Verdict
	if verdict == "" {
		t.Fatal("empty verdict")
	}

	code, md, errs := runCLI(t, append([]string{"analyze", "-q", "-f", "markdown"}, files...)...)
	if code != exitFindings {
		t.Errorf("markdown: exit %d, want %d: %s", code, exitFindings, errs)
	}
	if !strings.Contains(md, "## Traces") || !strings.Contains(md, verdict) {
		t.Errorf("markdown lacks \"## Traces\" or the verdict %q:\n%.3000s", verdict, md)
	}

	// HTML: the verdict, and a line per trace (the seed's few are all drawn).
	code, page, errs := runCLI(t, append([]string{"analyze", "-q", "-f", "html"}, files...)...)
	if code != exitFindings {
		t.Errorf("html: exit %d, want %d: %s", code, exitFindings, errs)
	}
	traces := len(decodeResult(t, out).Traces)
	if !strings.Contains(page, `<p class="v">`+html.EscapeString(verdict)+`</p>`) ||
		strings.Count(page, `<g class="tr `) != traces {
		t.Errorf("html lacks the verdict %q or a line per trace (%d):\n%.3000s", verdict, traces, page)
	}

	code, table, errs := runCLI(t, append([]string{"analyze", "-q"}, files...)...)
	if code != exitFindings {
		t.Errorf("table: exit %d, want %d: %s", code, exitFindings, errs)
	}
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	if last := lines[len(lines)-1]; last != "Verdict: "+verdict {
		t.Errorf("table's last line %q, want %q", last, "Verdict: "+verdict)
	}
}
