package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pathtrace/pathtrace/correlate"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func offline() Document { return Document{Result: fixtureResult()} }
func live() Document {
	return Document{Result: fixtureResult(), Path: fixturePath(), Live: fixtureLive(), Tool: fixtureTool}
}

// fixtureTool is a release build's: the version a `go install …@v1.2.3`
// records, and the revision of a build from its checkout.
var fixtureTool = Tool{Version: "v1.2.3", Revision: "6ad83a3c1e2f4b5a69788a9b0c1d2e3f40516273"}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden (run go test ./report/ -update after checking the diff)\n--- got\n%s", name, got)
	}
}

func TestGolden(t *testing.T) {
	cases := []struct {
		name string
		fn   func(*bytes.Buffer) error
	}{
		{"table_offline.golden", func(b *bytes.Buffer) error { return Table(b, offline(), Options{}) }},
		{"table_live_limit3.golden", func(b *bytes.Buffer) error { return Table(b, live(), Options{Limit: 3}) }},
		{"table_detail_offline.golden", func(b *bytes.Buffer) error { return Table(b, offline(), Options{Detail: true}) }},
		{"table_detail_live_limit3.golden", func(b *bytes.Buffer) error { return Table(b, live(), Options{Limit: 3, Detail: true}) }},
		{"markdown_live.golden", func(b *bytes.Buffer) error { return Markdown(b, live(), Options{}) }},
		{"json_live.golden", func(b *bytes.Buffer) error { return JSON(b, live()) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := c.fn(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, c.name, b.Bytes())
		})
	}
}

var nineDigits = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$`)

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, b)
	}
	return m
}

func TestJSONOffline(t *testing.T) {
	var b bytes.Buffer
	if err := JSON(&b, offline()); err != nil {
		t.Fatal(err)
	}
	// The document indented by 2 spaces, each trace compact on a line of
	// its own.
	if !strings.HasPrefix(b.String(), "{\n  \"version\": 1,\n  \"traces\": [\n    {\"n\":1,\"protocol\":") {
		t.Errorf("not laid out as documented:\n%.200s", b.String())
	}
	for i, l := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(l, "    {\"n\":") && !strings.HasSuffix(l, "},") && !strings.HasSuffix(l, "}") {
			t.Errorf("line %d holds part of a trace: %.120s", i+1, l)
		}
	}
	m := decode(t, b.Bytes())
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	want := []string{"anomalies", "clock_offsets", "hop_latency", "points", "summary", "traces", "version", "warnings"}
	if !sameSet(keys, want) {
		t.Errorf("top-level keys %v, want %v (no discovery/live offline)", keys, want)
	}
	if m["version"] != float64(1) {
		t.Errorf("version = %v", m["version"])
	}
	traces := m["traces"].([]any)
	if len(traces) != 7 {
		t.Fatalf("%d traces, want 7", len(traces))
	}
	tr1 := traces[0].(map[string]any)
	hops := tr1["hops"].([]any)
	for _, h := range hops {
		tm := h.(map[string]any)["time"].(string)
		if !nineDigits.MatchString(tm) {
			t.Errorf("hop time %q has not 9 fractional digits", tm)
		}
	}
	if got := hops[1].(map[string]any)["time"]; got != "2025-03-14T09:26:53.000112345Z" {
		t.Errorf("hop time %v, want the exact ns stamp", got)
	}
	// pod2-veth is SLL2: no destination MAC, and JSON must say null, not "".
	h3 := hops[3].(map[string]any)
	if v, ok := h3["dst_mac"]; !ok || v != nil {
		t.Errorf("dst_mac at pod2-veth = %v (present %v), want null", v, ok)
	}
	if h3["src_mac"] != macPod1 {
		t.Errorf("src_mac = %v", h3["src_mac"])
	}
	if _, ok := tr1["lost_after"]; ok {
		t.Error("lost_after present on a trace that was not lost")
	}
	if tr1["missing"] == nil || len(tr1["missing"].([]any)) != 0 {
		t.Errorf("missing = %#v, want []", tr1["missing"])
	}
	if tr5 := traces[4].(map[string]any); tr5["lost_after"] != "cni0" {
		t.Errorf("trace 5 lost_after = %v", tr5["lost_after"])
	}
	if tr4 := traces[3].(map[string]any); tr4["reply_to"] != float64(3) || tr4["rtt"].(map[string]any)["total_ns"] != float64(85250) {
		t.Errorf("trace 4 reply_to/rtt = %v/%v", tr4["reply_to"], tr4["rtt"])
	}
	first := m["points"].([]any)[0].(map[string]any)["coverage"].(map[string]any)["first"].(string)
	if !nineDigits.MatchString(first) {
		t.Errorf("coverage.first %q has not 9 fractional digits", first)
	}

	// Everything the Result holds survives: the streamed document equals
	// encoding/json's encoding of the same Result with nil slices as [].
	r := fixtureResult()
	for i := range r.Traces {
		r.Traces[i] = normTrace(r.Traces[i])
	}
	r.ClockOffsets = nonNil(r.ClockOffsets)
	ref, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := decode(t, ref); !reflect.DeepEqual(m, want) {
		t.Errorf("streamed JSON differs from json.Marshal(Result)\n got %v\nwant %v", m, want)
	}
}

func TestJSONLive(t *testing.T) {
	var b bytes.Buffer
	if err := JSON(&b, live()); err != nil {
		t.Fatal(err)
	}
	m := decode(t, b.Bytes())
	d, ok := m["discovery"].(map[string]any)
	if !ok {
		t.Fatalf("no discovery object: %v", m["discovery"])
	}
	if pts := d["points"].([]any); len(pts) != 5 || pts[2].(map[string]any)["promisc"] != true {
		t.Errorf("discovery points = %v", pts)
	}
	if d["mac_owners"].(map[string]any)[macCni0] != "cni0" {
		t.Errorf("mac_owners = %v", d["mac_owners"])
	}
	l := m["live"].(map[string]any)
	if l["replies"] != float64(1) || l["interrupted"] != false {
		t.Errorf("live = %v", l)
	}
	if s, _ := l["started"].(string); s != "2025-03-14T09:26:53.000000000Z" {
		t.Errorf("live.started = %v", l["started"])
	}
	if ev := l["evidence"].([]any); len(ev) != 2 {
		t.Errorf("evidence = %v", ev)
	}
}

// A Result with nothing in it (no capture matched) must still give arrays,
// so `jq '.traces | length'` works.
func TestJSONEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := JSON(&b, Document{Result: &correlate.Result{}, Live: &LiveInfo{}}); err != nil {
		t.Fatal(err)
	}
	m := decode(t, b.Bytes())
	for _, k := range []string{"points", "traces", "hop_latency", "anomalies", "warnings"} {
		if a, ok := m[k].([]any); !ok || len(a) != 0 {
			t.Errorf("%s = %#v, want []", k, m[k])
		}
	}
	if bp, ok := m["summary"].(map[string]any)["by_protocol"].(map[string]any); !ok || len(bp) != 0 {
		t.Errorf("by_protocol = %#v, want {}", m["summary"].(map[string]any)["by_protocol"])
	}
	if m["version"] != float64(correlate.SchemaVersion) {
		t.Errorf("version = %v", m["version"])
	}
	l := m["live"].(map[string]any)
	if l["started"] != nil || l["evidence"] == nil {
		t.Errorf("live = %v: zero times must be null, evidence []", l)
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestWriteErrorsReported(t *testing.T) {
	renders := map[string]func(*failWriter) error{
		"table":        func(w *failWriter) error { return Table(w, live(), Options{}) },
		"table detail": func(w *failWriter) error { return Table(w, live(), Options{Detail: true}) },
		"markdown":     func(w *failWriter) error { return Markdown(w, live(), Options{}) },
		"json":         func(w *failWriter) error { return JSON(w, live()) },
	}
	for name, fn := range renders {
		// Fail halfway through the document: past bufio's 4 KiB buffer
		// for the long ones, at the final flush for the short ones.
		size := &failWriter{n: 1 << 30}
		if err := fn(size); err != nil {
			t.Fatal(err)
		}
		if err := fn(&failWriter{n: (1<<30 - size.n) / 2}); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("%s: error %v, want the writer's error", name, err)
		}
	}
	if err := Table(&bytes.Buffer{}, Document{}, Options{}); err == nil {
		t.Error("Table without a Result did not fail")
	}
}

// The detail view is the per-hop row groups, unchanged from before the
// timeline became the default.
func TestTableDetail(t *testing.T) {
	var b bytes.Buffer
	if err := Table(&b, live(), Options{Detail: true}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")

	for _, want := range []string{
		"#3 icmp echo-request seq=1 id=0x1a2b 10.244.1.2 → 10.244.1.3 len=98 forward",
		" pod1-veth  09:26:53.000112345  +12.345  5e:1a:9c:11:22:01 (pod1 eth0)  ff:ff:ff:ff:ff:ff                -  in",
		" pod2       09:26:55.000338290   -3.210  ",
		" ↳ lost after cni0; missing: pod2-veth, pod2",
		" ↳ missing: cni0",
		" ↳ MAC rewritten at pod2: dst 0a:58:0a:f4:01:01 (cni0) → ca:bb:af:bd:e5:3a (pod2 eth0)",
		"TTL 64→63 at pod2-veth",
		" ↳ reply to #3, rtt 85.3 µs (fwd 40.1 / turn 5.0 / rev 40.2)",
		"  -  reflection",
		" pod2-veth  -             5e:1a:9c:11:22:01 (pod1 eth0)  09:26:53.000004–09:26:55.100003       6      -      0",
		" cni0       node1  cni0              5  0a:58:0a:f4:01:01  1450  -             -                               yes",
		" cni0    ca:bb:af:bd:e5:3a (pod2 eth0)  veth51c0e2b7  no",
		" cni0 → pod2-veth      3  10.311  14.870   46.500  46.500",
		" loss            warning   cni0           1  #5      1 frame seen at cni0 never reached pod2-veth",
		"  - pod2-veth: SLL2 capture records no destination MAC",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	if last := lines[len(lines)-1]; last != "Verdict: "+fixtureResult().Summary.Verdict {
		t.Errorf("last line %q, want the verdict", last)
	}
	order := []string{"Discovered path", "Points (times UTC, 2025-03-14)", "Traces (7)", "Hop latency", "Anomalies", "Warnings", "Verdict:"}
	pos := -1
	for _, s := range order {
		i := strings.Index(out, "\n"+s)
		if s == order[0] {
			i = strings.Index(out, s)
		}
		if i <= pos {
			t.Errorf("section %q out of order (at %d, previous at %d)", s, i, pos)
		}
		pos = i
	}
	// Trace row groups fit a 120-column terminal.
	in := false
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "Traces"):
			in = true
		case strings.HasPrefix(l, "Hop latency"):
			in = false
		}
		if n := utf8.RuneCountInString(l); in && n > 120 {
			t.Errorf("trace line is %d columns wide: %q", n, l)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("table output has ANSI escapes")
	}
	for _, l := range lines {
		if strings.HasSuffix(l, " ") {
			t.Errorf("trailing blanks: %q", l)
		}
	}
}

func TestTableLimitAndOffline(t *testing.T) {
	var b bytes.Buffer
	if err := Table(&b, offline(), Options{Limit: 2, Detail: true}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "Discovered path") || strings.Contains(out, "probes:") {
		t.Error("offline report shows live sections")
	}
	if !strings.Contains(out, "Traces (2 of 7)") || !strings.Contains(out, "\n… 5 more traces: --limit 0 shows all (the JSON report has every one)\n") {
		t.Errorf("limit not applied:\n%s", out)
	}
	if strings.Contains(out, "#3 ") {
		t.Error("trace #3 shown despite limit 2")
	}
}

func TestFormatting(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{micros(12_345), "12.345"},
		{micros(-3_210), "-3.210"},
		{micros(7), "0.007"},
		{delta(0, 500), ""},
		{delta(1, 500), "+0.500"},
		{delta(1, -1_000_001), "-1000.001"},
		{micros1(85_250), "85.3"},
		{micros1(40_149), "40.1"},
		{clock(correlate.Timestamp(base+1), 9), "09:26:53.000000001"},
		{clock(correlate.Timestamp(base+1_999), 6), "09:26:53.000001"},
		{short("pod1-veth (node1 veth9903a3d4)"), "pod1-veth"},
		{wrapWords("aa bb cc dd", 5)[1], "cc dd"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]bool{}
	for _, s := range a {
		seen[s] = true
	}
	for _, s := range b {
		if !seen[s] {
			return false
		}
	}
	return true
}
