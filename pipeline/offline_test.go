package pipeline

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/capture/pcapfile"
	"github.com/pathtrace/pathtrace/correlate"
)

func promisc() []Input {
	var in []Input
	for _, f := range []string{"pod1", "pod1-veth", "cni0", "pod2-veth", "pod2"} {
		in = append(in, Input{Path: filepath.Join("..", "testdata", "captures", "promisc", f+".cap")})
	}
	return in
}

func TestRunLimitSinkAndProgress(t *testing.T) {
	res, err := Run(context.Background(), Options{Inputs: promisc(), Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Traces) != 3 || res.Summary.Traces != 8 || !res.Summary.Clean {
		t.Fatalf("kept %d traces of %d, clean=%v (%s)", len(res.Traces), res.Summary.Traces, res.Summary.Clean, res.Summary.Verdict)
	}
	var n []int
	var calls int
	var lastRead, lastTotal int64
	res, err = Run(context.Background(), Options{
		Inputs: promisc(),
		Sink:   func(t *correlate.Trace) { n = append(n, t.N) },
		Progress: func(p Progress) {
			calls++
			lastRead, lastTotal = p.Read, p.Total
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(n) != 8 || len(res.Traces) != 0 {
		t.Errorf("sink got %v, result kept %d", n, len(res.Traces))
	}
	if calls < 2 || lastRead != lastTotal || lastTotal == 0 {
		t.Errorf("progress: %d calls, last %d of %d bytes", calls, lastRead, lastTotal)
	}
}

func TestRunCancelledAndBadInput(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("stop"))
	res, err := Run(ctx, Options{Inputs: promisc()})
	if !errors.Is(err, ErrInterrupted) || res == nil || len(res.Warnings) == 0 {
		t.Errorf("a cancelled analysis: err %v, result %v", err, res != nil)
	}
	if _, err := Run(context.Background(), Options{Inputs: []Input{{Path: "/nonexistent.cap"}}}); err == nil {
		t.Error("no error for a missing file")
	}
}

// pcapng has no MTU option: pathtrace's evidence ends an interface's
// description with it, and analysing the file reads it back.
func TestDescribedMTU(t *testing.T) {
	for d, want := range map[string]int{
		"netns node1, veth9903a3d4 (ifindex 7), MTU 1450": 1450,
		"netns pod1, eth0 (ifindex 2)":                    0,
		"":                                                0,
		"eth0, MTU 9000":                                  9000,
		"MTU 1500 somewhere in the middle":                0,
	} {
		if got := describedMTU(d); got != want {
			t.Errorf("describedMTU(%q) = %d, want %d", d, got, want)
		}
	}
}

// TestListedOrderPlaced: files listed in an order the traffic clearly
// contradicts (a shell glob's: cni0.cap first) are analysed in the
// traffic's, with a warning naming both and how to keep the listed one,
// and the analysis is the path order's; listed in path order, reversed, as
// a directory or named by --order, nothing moves and nothing is said. Eight
// points of two nodes too (more than are tried one by one).
func TestListedOrderPlaced(t *testing.T) {
	capture := func(set string, names ...string) []Input {
		var in []Input
		for _, n := range names {
			in = append(in, Input{Path: filepath.Join("..", "testdata", "captures", set, n+".cap")})
		}
		return in
	}
	orderWarnings := func(res *correlate.Result) []string {
		var ws []string
		for _, w := range res.Warnings {
			if strings.Contains(w, "order as given") || strings.Contains(w, "placed by the traffic") {
				ws = append(ws, w)
			}
		}
		return ws
	}
	names := func(res *correlate.Result) string {
		var s []string
		for _, p := range res.Points {
			s = append(s, p.Name)
		}
		return strings.Join(s, ",")
	}
	run := func(o Options) *correlate.Result {
		t.Helper()
		o.Limit = 0
		res, err := Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for _, tc := range []struct {
		set          string
		listed, path []string
	}{
		{"promisc", []string{"cni0", "pod1-veth", "pod1", "pod2-veth", "pod2"}, []string{"pod1", "pod1-veth", "cni0", "pod2-veth", "pod2"}},
		{"2node-hostgw", []string{"nodeA-cni0", "nodeA-eth0", "nodeB-cni0", "nodeB-eth0", "pod1-veth", "pod1", "pod2-veth", "pod2"},
			[]string{"pod1", "pod1-veth", "nodeA-cni0", "nodeA-eth0", "nodeB-eth0", "nodeB-cni0", "pod2-veth", "pod2"}},
	} {
		want := run(Options{Inputs: capture(tc.set, tc.path...)})
		if ws := orderWarnings(want); len(ws) > 0 {
			t.Errorf("%s in path order: %q", tc.set, ws)
		}
		got := run(Options{Inputs: capture(tc.set, tc.listed...)})
		ws := orderWarnings(got)
		if names(got) != strings.Join(tc.path, ",") || len(ws) != 1 ||
			!strings.Contains(ws[0], "--order "+strings.Join(tc.listed, ",")+" keeps the listed one") {
			t.Errorf("%s listed alphabetically: points %s, warnings %q", tc.set, names(got), ws)
		}
		got.Warnings, want.Warnings = nil, nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s listed alphabetically: the analysis differs from the path order's (verdict %q, want %q)", tc.set, got.Summary.Verdict, want.Summary.Verdict)
		}
	}
	dir := filepath.Join("..", "testdata", "captures", "promisc")
	glob := capture("promisc", "cni0", "pod1-veth", "pod1", "pod2-veth", "pod2")
	for name, tc := range map[string]struct {
		o     Options
		first string
	}{
		"reversed":  {Options{Inputs: capture("promisc", "pod2", "pod2-veth", "cni0", "pod1-veth", "pod1")}, "pod2"},
		"directory": {Options{Inputs: []Input{{Path: dir}}}, "pod1"},
		"--order":   {Options{Inputs: glob, Order: []string{"cni0", "pod1-veth", "pod1", "pod2-veth", "pod2"}}, "cni0"},
	} {
		res := run(tc.o)
		if ws := orderWarnings(res); len(ws) > 0 || res.Points[0].Name != tc.first {
			t.Errorf("%s: points %s, warnings %q", name, names(res), ws)
		}
	}
}

// rewrite copies the capture src to dst, keeping the frames keep accepts
// (nil: all), each stamped shift ns later.
func rewrite(t *testing.T, src, dst string, shift int64, keep func([]byte) bool) {
	t.Helper()
	in, err := pcapfile.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var w *pcapfile.Writer
	for {
		rf, err := in.Next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if w == nil {
			if w, err = pcapfile.NewWriter(out, rf.LinkType, 0); err != nil {
				t.Fatal(err)
			}
		}
		if keep == nil || keep(rf.Data) {
			rf.Time += shift
			if err := w.WriteFrame(rf); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestListedOrderKeptOnOtherClocks: stamps order points only on one clock,
// so where the captures may be on others the listed order stands: echo
// requests only (one-way traffic cannot tell an offset from the order)
// with pod2's side 100 µs behind; two nodes whose clocks differ by more
// than the match window (no frame joins them) or by more than the hop
// between them, listed alphabetically; and an offset declared for the
// second node.
func TestListedOrderKeptOnOtherClocks(t *testing.T) {
	src := filepath.Join("..", "testdata", "captures")
	run := func(o Options) *correlate.Result {
		t.Helper()
		res, err := Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range res.Warnings {
			if strings.Contains(w, "placed by the traffic") {
				t.Errorf("placed: %s", w)
			}
		}
		return res
	}
	oneWay := t.TempDir()
	echoRequest := func(b []byte) bool { return len(b) > 34 && b[12] == 0x08 && b[13] == 0 && b[23] == 1 && b[34] == 8 }
	var in []Input
	for _, p := range []string{"pod1", "pod1-veth", "cni0", "pod2-veth", "pod2"} {
		shift := int64(0)
		if strings.HasPrefix(p, "pod2") {
			shift = -100e3
		}
		rewrite(t, filepath.Join(src, "promisc", p+".cap"), filepath.Join(oneWay, p+".cap"), shift, echoRequest)
		in = append(in, Input{Path: filepath.Join(oneWay, p+".cap")})
	}
	if res := run(Options{Inputs: in}); res.Points[0].Name != "pod1" {
		t.Errorf("one way, pod2's side behind: first point %s", res.Points[0].Name)
	}
	path := []string{"pod1", "pod1-veth", "nodeA-cni0", "nodeA-flannel.1", "nodeA-eth0", "nodeB-eth0", "nodeB-flannel.1", "nodeB-cni0", "pod2-veth", "pod2"}
	shifted := func(shift int64, order []string) []Input {
		dir := t.TempDir()
		var in []Input
		for _, p := range order {
			s := int64(0)
			if strings.HasPrefix(p, "nodeB") || strings.HasPrefix(p, "pod2") {
				s = shift
			}
			rewrite(t, filepath.Join(src, "2node-vxlan", p+".cap"), filepath.Join(dir, p+".cap"), s, nil)
			in = append(in, Input{Path: filepath.Join(dir, p+".cap")})
		}
		return in
	}
	alpha := slices.Sorted(slices.Values(path))
	if res := run(Options{Inputs: shifted(1500e6, alpha)}); res.Points[0].Name != alpha[0] {
		t.Errorf("two nodes 1.5 s apart, alphabetical: first point %s", res.Points[0].Name)
	}
	// 50 µs: more than the hop between the nodes' NICs, far less than
	// the other frames' spread: the order with the nodes' NICs swapped
	// fits 96% of the hop pairs.
	res := run(Options{Inputs: shifted(-50e3, alpha)})
	if res.Points[0].Name != alpha[0] {
		t.Errorf("nodeB 50 µs behind, alphabetical: first point %s", res.Points[0].Name)
	}
	// The warning names what the stamps follow, but suggests no --order.
	if !slices.ContainsFunc(res.Warnings, func(w string) bool {
		return strings.Contains(w, "order as given") && strings.HasSuffix(w, "cannot settle the order (frames one way only, points no frame joins, or two points the frames order both ways: the captures' clocks may differ); list the files in path order or give --order")
	}) {
		t.Errorf("nodeB 50 µs behind, alphabetical: warnings %q", res.Warnings)
	}
	declared := Options{Inputs: shifted(1e9, path), Clocks: ClockOptions{
		Groups:   [][]string{path[:5], path[5:]},
		Declared: map[string]time.Duration{"nodeB-eth0": time.Second},
	}}
	if res := run(declared); res.Points[0].Name != "pod1" || !strings.HasPrefix(res.Summary.Verdict, "OK") {
		t.Errorf("nodeB 1 s ahead, declared: first point %s, verdict %s", res.Points[0].Name, res.Summary.Verdict)
	}
}
