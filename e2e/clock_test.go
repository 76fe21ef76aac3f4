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
	"slices"
	"strings"
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
	ClockOffsets []jClockOffset `json:"clock_offsets"`
	Anomalies    []jAnomaly     `json:"anomalies"`
	Summary      jSummary       `json:"summary"`
}

// clockSet is a capture set in path order and the points of its second
// host (whose clock the tests shift).
type clockSet struct {
	name    string
	points  []string
	shifted []string
}

var (
	oneNode = clockSet{"promisc", []string{"pod1", "pod1-veth", "cni0", "pod2-veth", "pod2"}, []string{"pod2-veth", "pod2"}}
	// Two nodes of a lab captured with tcpdump, with TCP only nodeA's NIC
	// sees beside the pings: the second node's five points shift together.
	twoNodes = func(name, tunnel string) clockSet {
		a := []string{"pod1", "pod1-veth", "nodeA-cni0", "nodeA-" + tunnel, "nodeA-eth0"}
		b := []string{"nodeB-eth0", "nodeB-" + tunnel, "nodeB-cni0", "pod2-veth", "pod2"}
		return clockSet{name, append(a, b...), b}
	}
)

func analyzeClocks(t *testing.T, set clockSet, dir string, extra ...string) *clockDoc {
	t.Helper()
	args := append([]string{"analyze", "-q", "-f", "json"}, extra...)
	for _, f := range set.points {
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

// TestAnalyzeClockOffsets: the second host's captures shifted by editcap
// (+16 ms, -3 ms) or by a drifting clock (50 ppm): the offset is estimated
// and reported, every corrected delta equals the unshifted one within 5 µs
// (hops within one host exactly), hop times stay the files' own stamps, and
// the unshifted set is not corrected at all. On one node (pod2's side
// shifted) and on two-node VXLAN and IP-in-IP labs (nodeB shifted), each
// file its own clock, and with nodeB's files named one clock group.
func TestAnalyzeClockOffsets(t *testing.T) {
	testenv.RequireTools(t, "editcap")
	for _, set := range []clockSet{oneNode, twoNodes("2node-vxlan", "flannel.1"), twoNodes("2node-ipip", "tunl0")} {
		t.Run(set.name, func(t *testing.T) { clockOffsets(t, set) })
	}
}

func clockOffsets(t *testing.T, set clockSet) {
	src := testenv.Captures(t, set.name)
	base := analyzeClocks(t, set, src)
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
	isShifted := func(p string) bool { return slices.Contains(set.shifted, p) }
	t0 := firstStamp(t, filepath.Join(src, set.points[0]+".cap"))
	var span int64 // of the whole set: a drifting clock's offset varies over it
	for _, f := range set.points {
		span = max(span, lastStamp(t, filepath.Join(src, f+".cap"))-t0)
	}
	for _, tc := range []struct {
		name        string
		offset, ppm float64
		group       bool
	}{
		{"+16ms", 16e6, 0, false},
		{"-3ms", -3e6, 0, false},
		{"+16ms 50ppm drift", 16e6, 50, false},
		{"-3ms one clock group", -3e6, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range set.points {
				in, out := filepath.Join(src, f+".cap"), filepath.Join(dir, f+".cap")
				switch {
				case !isShifted(f):
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
			var extra []string
			if tc.group {
				extra = []string{"--clock-group", "second=" + strings.Join(set.shifted, ",")}
			}
			got := analyzeClocks(t, set, dir, extra...)
			if len(got.ClockOffsets) != len(set.shifted) {
				t.Fatalf("clock_offsets %+v, want one per shifted point", got.ClockOffsets)
			}
			for _, c := range got.ClockOffsets {
				// A drifting clock's offset is given where its line is
				// anchored, within the capture.
				if c.Reference != set.points[0] || c.Source != "estimated" || c.Samples == 0 || c.UncertaintyNs <= 0 ||
					math.Abs(float64(c.OffsetNs)-tc.offset) > 5e3+tc.ppm*1e-6*float64(span) {
					t.Errorf("clock offset %+v, want ~%.0f from %s", c, tc.offset, set.points[0])
				}
				// One group: one estimate, from the frames of all its points.
				if c0 := got.ClockOffsets[0]; tc.group && (c.OffsetNs != c0.OffsetNs || c.Samples != c0.Samples) {
					t.Errorf("clock group: %+v and %+v differ", c0, c)
				}
			}
			if len(got.Traces) != len(base.Traces) {
				t.Fatalf("%d traces, unshifted %d", len(got.Traces), len(base.Traces))
			}
			var worst, worstTol int64 // logged: how close the correction came
			defer func() { t.Logf("largest |Δ − unshifted Δ|: %d ns (allowed there: %d ns)", worst, worstTol) }()
			for i, tr := range got.Traces {
				bt := base.Traces[i]
				for j, h := range tr.Hops {
					bh := bt.Hops[j]
					if h.Point != bh.Point {
						t.Fatalf("trace %d hop %d at %s, unshifted at %s", tr.N, j, h.Point, bh.Point)
					}
					// A drifting clock is fitted from a handful of echoes
					// whose one-way delays jitter by ~10 µs through the
					// userspace IP-in-IP tunnel: there the correction is
					// held to the uncertainty pathtrace reports for the hop.
					tol := int64(5e3)
					if tc.ppm != 0 {
						tol = max(tol, h.UncertaintyNs)
					}
					if diff := max(h.DeltaNs-bh.DeltaNs, bh.DeltaNs-h.DeltaNs); diff > worst {
						worst, worstTol = diff, tol
					}
					if diff := h.DeltaNs - bh.DeltaNs; diff > tol || diff < -tol {
						t.Errorf("trace %d %s: Δ %d ns, unshifted %d ns (clock offsets %+v)", tr.N, h.Point, h.DeltaNs, bh.DeltaNs, got.ClockOffsets)
					}
					shifted := isShifted(h.Point)
					if shifted != (h.ClockOffsetNs != 0) || (h.Time == bh.Time) == shifted {
						t.Errorf("trace %d %s: time %s (unshifted %s), clock offset %d", tr.N, h.Point, h.Time, bh.Time, h.ClockOffsetNs)
					}
					crosses := j > 0 && !h.Reflection && shifted != isShifted(tr.Hops[j-1].Point)
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
	d := analyzeClocks(t, oneNode, dir, "--clock-offset", "pod2-veth=-3ms", "--clock-group", "n2=pod2-veth,pod2")
	if len(d.ClockOffsets) != 2 || d.ClockOffsets[0].Source != "declared" || d.ClockOffsets[0].OffsetNs != -3e6 {
		t.Fatalf("declared: %+v", d.ClockOffsets)
	}
	off := analyzeClocks(t, oneNode, dir, "--clock-offset", "off")
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

func lastStamp(t *testing.T, file string) int64 {
	t.Helper()
	in, err := pcapfile.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var last int64
	for {
		rf, err := in.Next()
		if err != nil {
			return last
		}
		last = rf.Time
	}
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
