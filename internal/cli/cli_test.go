package cli

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pathtrace/pathtrace/internal/iostreams"
	"github.com/pathtrace/pathtrace/internal/testenv"
	"github.com/pathtrace/pathtrace/pipeline"
)

// execute runs cmd with args; runF hooks have captured the options.
func execute(t *testing.T, cmd *cobra.Command, args ...string) error {
	t.Helper()
	cmd.SetArgs(args)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	return cmd.ExecuteContext(context.Background())
}

// TestAnalyzeFlagsBecomeOptions: what the flags become, without running.
func TestAnalyzeFlagsBecomeOptions(t *testing.T) {
	ios, _, _, _ := iostreams.Test()
	var got *analyzeOptions
	cmd := newAnalyzeCmd(ios, func(_ context.Context, o *analyzeOptions) error { got = o; return nil })
	err := execute(t, cmd, "--point", "a=x.cap", "--order", "a,b", "--mtu", "1450", "--reorder", "10ms",
		"-f", "json", "--limit", "5", "--window", "2s", "-q", "b.cap", "dir/")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Points, []string{"a=x.cap"}) || !slices.Equal(got.Order, []string{"a", "b"}) ||
		got.MTU != 1450 || got.Reorder != 10*time.Millisecond || got.Format != "json" || got.Limit != 5 ||
		got.Window != 2*time.Second || !got.Quiet || !slices.Equal(got.Args, []string{"b.cap", "dir/"}) || got.IO != ios {
		t.Fatalf("options %+v", got)
	}
	in, err := got.inputs()
	if err != nil || len(in) != 3 || in[0].Name != "a" || in[0].Path != "x.cap" || in[2].Path != "dir/" {
		t.Fatalf("inputs %+v, %v", in, err)
	}
}

// TestDemoTakesTheTracersProbeFlags: the demo declares no flag values of
// its own; its probe flags and defaults are the tracer's.
func TestDemoTakesTheTracersProbeFlags(t *testing.T) {
	ios, _, _, _ := iostreams.Test()
	var root *traceOptions
	rc := newRootCmd(ios)
	rc.RunE = func(cmd *cobra.Command, _ []string) error { return nil }
	var demo *demoOptions
	dc := newDemoCmd(ios, func(_ context.Context, o *demoOptions) error { demo = o; return nil })
	if err := execute(t, dc, "--limit", "7"); err != nil {
		t.Fatal(err)
	}
	root = &traceOptions{}
	probe := &cobra.Command{}
	root.addProbeFlags(probe)
	probe.Flags().VisitAll(func(f *pflag.Flag) {
		d := dc.Flags().Lookup(f.Name)
		if d == nil || d.DefValue != f.DefValue || d.Shorthand != f.Shorthand {
			t.Errorf("demo flag --%s: %+v, tracer's %+v", f.Name, d, f)
		}
	})
	if demo.trace.Limit != 7 || demo.trace.Count != 3 || demo.trace.Interval != 200*time.Millisecond || demo.trace.IO != ios {
		t.Errorf("demo options %+v", demo.trace)
	}
}

// TestProgressOnlyOnATerminal: counters and bars go to a terminal's stderr
// only, never into a redirected one or with -q.
func TestProgressOnlyOnATerminal(t *testing.T) {
	ios, _, _, _ := iostreams.Test()
	if newReadProgress(ios, false, 100) != nil || newPointCounters(ios, false, []string{"a"}) != nil {
		t.Fatal("progress drawn on a stderr that is not a terminal")
	}
	ios.SetStderrTTY(true)
	rp, pc := newReadProgress(ios, false, 100), newPointCounters(ios, false, []string{"a"})
	if rp == nil || pc == nil {
		t.Fatal("no progress on a terminal")
	}
	rp.done()
	pc.done()
	if newReadProgress(ios, true, 100) != nil || newPointCounters(ios, true, []string{"a"}) != nil {
		t.Fatal("progress drawn with --quiet")
	}
}

// TestReadProgressScanThenRead: the stamps pass fills the bar without
// completing it (a complete bar is removed), then the read proper counts
// from 0 against its own total.
func TestReadProgressScanThenRead(t *testing.T) {
	ios, _, _, _ := iostreams.Test()
	ios.SetStderrTTY(true)
	rp := newReadProgress(ios, false, 200)
	rp.update(pipeline.Progress{Read: 200, Total: 200, Scanning: true})
	if rp.bar.Completed() || !rp.scanning.Load() {
		t.Fatalf("after the stamps pass: completed %v, scanning %v", rp.bar.Completed(), rp.scanning.Load())
	}
	rp.update(pipeline.Progress{Read: 10, Total: 100, Frames: 5})
	if rp.bar.Current() != 10 || rp.total != 100 || rp.scanning.Load() || rp.bar.Completed() {
		t.Errorf("reading: at %d of %d, scanning %v, completed %v", rp.bar.Current(), rp.total, rp.scanning.Load(), rp.bar.Completed())
	}
	rp.done()
}

// failWriter fails every write, as a full disk or closed file would.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// TestExitStatusByCause: usage and input errors 2, interrupted 3, a report
// that could not be written 4; always one line on stderr.
func TestExitStatusByCause(t *testing.T) {
	seed := testenv.Captures(t, "seed")
	files := []string{"analyze", "-q"}
	for _, f := range []string{"pod1.cap", "pod1-veth.cap", "cni0.cap", "pod2-veth.cap", "pod2.cap"} {
		files = append(files, filepath.Join(seed, f))
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		args []string
		out  func(*iostreams.IOStreams)
		want int
	}{
		{"findings", context.Background(), files, nil, exitFindings},
		{"bad flag", context.Background(), []string{"analyze", "--format", "yaml", "x.cap"}, nil, exitUsage},
		{"missing file", context.Background(), []string{"analyze", "/nonexistent/a.cap"}, nil, exitUsage},
		{"interrupted", cancelled, files, nil, exitInterrupted},
		{"output", context.Background(), files, func(s *iostreams.IOStreams) { s.Out = failWriter{} }, exitOutput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ios, _, _, errb := iostreams.Test()
			if tc.out != nil {
				tc.out(ios)
			}
			if got := Run(tc.ctx, tc.args, ios); got != tc.want {
				t.Errorf("exit %d, want %d; stderr %q", got, tc.want, errb)
			}
			if msg := errb.String(); tc.want >= exitUsage && strings.Count(msg, "\n") != 1 {
				t.Errorf("stderr is not one line: %q", msg)
			}
		})
	}
}
