package pipeline

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

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

// TestListedOrderChecked: files listed in an order the traffic
// contradicts (a shell glob's: cni0.cap first) get a warning naming the
// traffic's order; listed in path order, reversed, as a directory (placed
// by the traffic) or named by --order, none. The order itself is never
// changed.
func TestListedOrderChecked(t *testing.T) {
	dir := filepath.Join("..", "testdata", "captures", "promisc")
	files := func(names ...string) []Input {
		var in []Input
		for _, n := range names {
			in = append(in, Input{Path: filepath.Join(dir, n+".cap")})
		}
		return in
	}
	orderWarning := func(res *correlate.Result) string {
		for _, w := range res.Warnings {
			if strings.Contains(w, "order as given") {
				return w
			}
		}
		return ""
	}
	glob := files("cni0", "pod1-veth", "pod1", "pod2-veth", "pod2")
	res, err := Run(context.Background(), Options{Inputs: glob})
	if err != nil {
		t.Fatal(err)
	}
	w := orderWarning(res)
	if !strings.Contains(w, "--order pod1,pod1-veth,cni0,pod2-veth,pod2") {
		t.Errorf("glob order: warning %q, want one suggesting the path order", w)
	}
	if res.Points[0].Name != "cni0" {
		t.Errorf("the order given was changed: first point %s", res.Points[0].Name)
	}
	for name, o := range map[string]Options{
		"path order": {Inputs: promisc()},
		"reversed":   {Inputs: files("pod2", "pod2-veth", "cni0", "pod1-veth", "pod1")},
		"directory":  {Inputs: []Input{{Path: dir}}},
		"--order":    {Inputs: glob, Order: []string{"cni0", "pod1-veth", "pod1", "pod2-veth", "pod2"}},
	} {
		res, err := Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		if w := orderWarning(res); w != "" {
			t.Errorf("%s: %s", name, w)
		}
	}
	// Eight points, two nodes: more than are tried one by one.
	var alpha []Input
	for _, n := range []string{"nodeA-cni0", "nodeA-eth0", "nodeB-cni0", "nodeB-eth0", "pod1-veth", "pod1", "pod2-veth", "pod2"} {
		alpha = append(alpha, Input{Path: filepath.Join("..", "testdata", "captures", "2node-hostgw", n+".cap")})
	}
	if res, err = Run(context.Background(), Options{Inputs: alpha}); err != nil {
		t.Fatal(err)
	}
	if w := orderWarning(res); !strings.Contains(w, "--order pod1,pod1-veth,nodeA-cni0,nodeA-eth0,nodeB-eth0,nodeB-cni0,pod2-veth,pod2") {
		t.Errorf("two nodes, alphabetical: warning %q", w)
	}
}
