package pipeline

import (
	"context"
	"errors"
	"path/filepath"
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
