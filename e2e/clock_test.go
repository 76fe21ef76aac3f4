package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pathtrace/pathtrace/capture/pcapfile"
	"github.com/pathtrace/pathtrace/internal/testenv"
)

// clockDoc is what the clock tests read of the JSON.
type clockDoc struct {
	Traces []struct {
		N    int `json:"n"`
		Hops []struct {
			Point         string `json:"point"`
			Time          string `json:"time"`
			DeltaNs       int64  `json:"delta_ns"`
			UncertaintyNs int64  `json:"uncertainty_ns"`
			ClockOffsetNs int64  `json:"clock_offset_ns"`
			Reflection    bool   `json:"reflection"`
		} `json:"hops"`
	} `json:"traces"`
	ClockOffsets []struct {
		Point         string  `json:"point"`
		Reference     string  `json:"reference"`
		OffsetNs      int64   `json:"offset_ns"`
		UncertaintyNs int64   `json:"uncertainty_ns"`
		DriftPPM      float64 `json:"drift_ppm"`
		Samples       int     `json:"samples"`
		Source        string  `json:"source"`
	} `json:"clock_offsets"`
	Anomalies []jAnomaly `json:"anomalies"`
	Summary   jSummary   `json:"summary"`
}

func analyzeClocks(t *testing.T, dir string, extra ...string) *clockDoc {
	t.Helper()
	args := append([]string{"analyze", "-q", "-f", "json"}, extra...)
	for _, f := range []string{"pod1", "pod1-veth", "cni0", "pod2-veth", "pod2"} {
		args = append(args, filepath.Join(dir, f+".cap"))
	}
	code, out, errb := runCLI(t, args...)
	if code > exitFindings {
		t.Fatalf("analyze: exit %d: %s", code, errb)
	}
	var d clockDoc
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

// shiftDrift rewrites a capture as if taken by a clock off by
// offset + ppm·(t − t0) ns: editcap shifts, it cannot drift.
func shiftDrift(t *testing.T, src, dst string, t0 int64, offset, ppm float64) {
	t.Helper()
	in, err := pcapfile.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := pcapfile.NewWriter(f, in.Interfaces()[0].LinkType, 0)
	if err != nil {
		t.Fatal(err)
	}
	for {
		rf, err := in.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rf.Time += int64(math.Round(offset + ppm*1e-6*float64(rf.Time-t0)))
		if err := w.WriteFrame(rf); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestAnalyzeClockOffsets: the promisc captures with "node 2"'s files
// (pod2-veth, pod2) on a clock 16 ms ahead, 3 ms behind, or 16 ms ahead and
// drifting 50 ppm: the offset is reported, every corrected delta equals the
// unshifted one within 5 µs (hops within node 2 exactly), hop times stay
// the files' own stamps, and the unshifted set is not corrected at all.
func TestAnalyzeClockOffsets(t *testing.T) {
	testenv.RequireTools(t, "editcap")
	src := testenv.Captures(t, "promisc")
	base := analyzeClocks(t, src)
	if len(base.ClockOffsets) != 0 {
		t.Fatalf("one host's captures corrected: %+v", base.ClockOffsets)
	}
	for _, tr := range base.Traces {
		for _, h := range tr.Hops {
			if h.ClockOffsetNs != 0 || h.UncertaintyNs != 0 {
				t.Fatalf("trace %d at %s: clock fields on an uncorrected hop", tr.N, h.Point)
			}
		}
	}
	t0 := firstStamp(t, filepath.Join(src, "pod1.cap"))
	for _, tc := range []struct {
		name        string
		offset, ppm float64
	}{
		{"+16ms", 16e6, 0},
		{"-3ms", -3e6, 0},
		{"+16ms 50ppm drift", 16e6, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{"pod1", "pod1-veth", "cni0", "pod2-veth", "pod2"} {
				in, out := filepath.Join(src, f+".cap"), filepath.Join(dir, f+".cap")
				switch {
				case f != "pod2-veth" && f != "pod2":
					b, _ := os.ReadFile(in)
					os.WriteFile(out, b, 0o644)
				case tc.ppm == 0:
					cmd := exec.Command("editcap", "-t", fmt.Sprintf("%.6f", tc.offset/1e9), in, out)
					if b, err := cmd.CombinedOutput(); err != nil {
						t.Fatalf("editcap: %v\n%s", err, b)
					}
				default:
					shiftDrift(t, in, out, t0, tc.offset, tc.ppm)
				}
			}
			got := analyzeClocks(t, dir)
			if len(got.ClockOffsets) != 2 {
				t.Fatalf("clock_offsets %+v", got.ClockOffsets)
			}
			for _, c := range got.ClockOffsets {
				if c.Reference != "pod1" || c.Source != "estimated" || c.Samples == 0 || c.UncertaintyNs <= 0 ||
					math.Abs(float64(c.OffsetNs)-tc.offset) > 5e3+tc.ppm*1e-6*1e9 {
					t.Errorf("clock offset %+v, want ~%.0f from pod1", c, tc.offset)
				}
			}
			if len(got.Traces) != len(base.Traces) {
				t.Fatalf("%d traces, unshifted %d", len(got.Traces), len(base.Traces))
			}
			for i, tr := range got.Traces {
				bt := base.Traces[i]
				for j, h := range tr.Hops {
					bh := bt.Hops[j]
					if h.Point != bh.Point {
						t.Fatalf("trace %d hop %d at %s, unshifted at %s", tr.N, j, h.Point, bh.Point)
					}
					if diff := h.DeltaNs - bh.DeltaNs; diff > 5e3 || diff < -5e3 {
						t.Errorf("trace %d %s: Δ %d ns, unshifted %d ns (clock offsets %+v)", tr.N, h.Point, h.DeltaNs, bh.DeltaNs, got.ClockOffsets)
					}
					shifted := h.Point == "pod2-veth" || h.Point == "pod2"
					if shifted != (h.ClockOffsetNs != 0) || (h.Time == bh.Time) == shifted {
						t.Errorf("trace %d %s: time %s (unshifted %s), clock offset %d", tr.N, h.Point, h.Time, bh.Time, h.ClockOffsetNs)
					}
					crosses := j > 0 && !h.Reflection && shifted != (tr.Hops[j-1].Point == "pod2-veth" || tr.Hops[j-1].Point == "pod2")
					if crosses && h.UncertaintyNs == 0 {
						t.Errorf("trace %d %s: a hop across the corrected clock without its uncertainty", tr.N, h.Point)
					}
				}
			}
			if !got.Summary.Clean {
				t.Errorf("verdict %q", got.Summary.Verdict)
			}
		})
	}
}

// TestAnalyzeClockFlags: a declared offset replaces the estimate; off
// leaves the stamps as they are, and the shifted hops show it (negative
// deltas beyond any stamping inversion: a clock warning naming the points).
func TestAnalyzeClockFlags(t *testing.T) {
	testenv.RequireTools(t, "editcap")
	src := testenv.Captures(t, "promisc")
	dir := t.TempDir()
	for _, f := range []string{"pod1", "pod1-veth", "cni0", "pod2-veth", "pod2"} {
		in, out := filepath.Join(src, f+".cap"), filepath.Join(dir, f+".cap")
		if f == "pod2-veth" || f == "pod2" {
			if b, err := exec.Command("editcap", "-t", "-0.003", in, out).CombinedOutput(); err != nil {
				t.Fatalf("editcap: %v\n%s", err, b)
			}
			continue
		}
		b, _ := os.ReadFile(in)
		os.WriteFile(out, b, 0o644)
	}
	d := analyzeClocks(t, dir, "--clock-offset", "pod2-veth=-3ms", "--clock-group", "n2=pod2-veth,pod2")
	if len(d.ClockOffsets) != 2 || d.ClockOffsets[0].Source != "declared" || d.ClockOffsets[0].OffsetNs != -3e6 {
		t.Fatalf("declared: %+v", d.ClockOffsets)
	}
	off := analyzeClocks(t, dir, "--clock-offset", "off")
	if len(off.ClockOffsets) != 0 || off.Summary.Clean {
		t.Fatalf("off: offsets %+v, verdict %q", off.ClockOffsets, off.Summary.Verdict)
	}
	found := false
	for _, a := range off.Anomalies {
		found = found || (a.Kind == "clock" && a.Severity == "warning")
	}
	if !found {
		t.Fatalf("no clock warning without correction: %+v", off.Anomalies)
	}
	code, _, errb := runCLI(t, "analyze", "--clock-offset", "nosuch=1ms", filepath.Join(dir, "pod1.cap"), filepath.Join(dir, "pod2.cap"))
	if code != exitUsage || !oneLineErr(errb) {
		t.Fatalf("unknown point: exit %d, %q", code, errb)
	}
}

func firstStamp(t *testing.T, file string) int64 {
	t.Helper()
	in, err := pcapfile.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	rf, err := in.Next()
	if err != nil {
		t.Fatal(err)
	}
	return rf.Time
}

func oneLineErr(s string) bool { return len(s) > 0 && s[len(s)-1] == '\n' && countLines(s) == 1 }

func countLines(s string) int {
	n := 0
	for _, c := range s {
		if c == '\n' {
			n++
		}
	}
	return n
}
