package correlate

import (
	"slices"
	"strings"
	"testing"
)

// bigEcho is an echo request whose IP packet is ipLen bytes.
func bigEcho(point int, ts int64, seq uint32, ipLen int) Frame {
	f := echo(point, ts, 8, seq, pod1MAC, pod2MAC, pod1IP, pod2IP, 64)
	f.IPLen, f.WireLen, f.CapLen = ipLen, ipLen+14, ipLen+14
	f.Key.Len = uint32(ipLen - 28)
	return f
}

// A packet that fits pod1's MTU but not its veth's is dropped by the veth
// before any capture there sees it: the loss is after pod1, and over-mtu
// names pod1-veth, the hop whose MTU is too small, in the verdict too.
func TestOverMTUAfterLoss(t *testing.T) {
	c := cfgFor(seedPath...)
	for i := range c.Points {
		c.Points[i].MTU = 1450
	}
	c.Points[0].MTU = 1500
	us := int64(1000)
	t0 := int64(1e18)
	var fs []Frame
	for seq := uint32(1); seq <= 3; seq++ {
		fs = append(fs, bigEcho(0, t0+int64(seq)*200e6, seq, 1500))
	}
	// Small frames prove every point was capturing.
	for p := 0; p < 5; p++ {
		fs = append(fs, echo(p, t0+int64(p)*us, 8, 9, pod1MAC, pod2MAC, pod1IP, pod2IP, 64))
		fs = append(fs, echo(p, t0+900e6+int64(p)*us, 8, 10, pod1MAC, pod2MAC, pod1IP, pod2IP, 64))
	}
	slices.SortStableFunc(fs, func(a, b Frame) int { return cmp64(a.Time, b.Time) })
	r := analyze(t, c, fs)
	var over *Anomaly
	for i := range r.Anomalies {
		if r.Anomalies[i].Kind == KindOverMTU {
			over = &r.Anomalies[i]
		}
	}
	if over == nil || over.Point != "pod1-veth" || over.Count != 3 {
		t.Fatalf("over-mtu anomaly %+v, want 3 at pod1-veth; anomalies %+v", over, r.Anomalies)
	}
	if want := "IP packets of 1500 bytes do not fit pod1-veth's MTU 1450"; over.Message != want {
		t.Errorf("message %q, want %q", over.Message, want)
	}
	for _, tr := range r.Traces {
		big := tr.Length == 1514
		if big != slices.Contains(tr.Flags, FlagOverMTU) || big && tr.LostAfter != "pod1" {
			t.Errorf("trace #%d (%d bytes): flags %v, lost after %q", tr.N, tr.Length, tr.Flags, tr.LostAfter)
		}
	}
	v := r.Summary.Verdict
	if r.Summary.Clean || !strings.HasPrefix(v, "PROBLEM: IP packets of 1500 bytes do not fit pod1-veth's MTU 1450 (3 traces); 3 of 5 traces lost (after pod1 ×3)") {
		t.Errorf("verdict %q (clean %v)", v, r.Summary.Clean)
	}

	// Packets that fit are not flagged, and one seen at a point over its
	// own MTU (e.g. --mtu offline) is named at that point.
	c.Points[0].MTU = 1400
	r = analyze(t, c, fs)
	var at []string
	for _, a := range r.Anomalies {
		if a.Kind == KindOverMTU {
			at = append(at, a.Point)
		}
	}
	if !slices.Equal(at, []string{"pod1"}) {
		t.Errorf("with pod1's MTU 1400: over-mtu at %v, want [pod1]; anomalies %+v", at, r.Anomalies)
	}
}

// A capture cut short: the verdict names the point and where, and the run
// is not clean, even though every trace up to the cut is complete.
func TestCutCaptureVerdict(t *testing.T) {
	t0 := int64(1e18)
	var traces []Trace
	e, _ := New(cfgFor(seedPath...), func(tr *Trace) { traces = append(traces, tr.Clone()) })
	fs := append(pingFrames(t0, 1), pingFrames(t0+200e6, 2)...)
	for i := range fs {
		e.Add(&fs[i])
	}
	e.CutShort(4, "pod2.cap: file ends inside frame 7 (truncated capture); 6 frames read")
	r := e.Finish()
	want := "CAPTURE INCOMPLETE: pod2's capture was cut after its frame at " + Timestamp(t0+200e6+60_000).String() +
		" (pod2.cap: file ends inside frame 7 (truncated capture); 6 frames read); up to there all 4 traces crossed every capturing point on their way"
	if r.Summary.Verdict != want || r.Summary.Clean {
		t.Errorf("verdict %q (clean %v)\nwant    %q", r.Summary.Verdict, r.Summary.Clean, want)
	}
	if got := r.Points[4].Coverage.Cut; !strings.Contains(got, "frame 7") {
		t.Errorf("pod2 coverage.cut %q", got)
	}
	if r.Points[3].Coverage.Cut != "" {
		t.Errorf("pod2-veth coverage.cut %q, want none", r.Points[3].Coverage.Cut)
	}
}

// Frames cut to a snaplen at one point key on less payload than their
// copies elsewhere: when they then look lost, the verdict says the capture
// may be the cause; when nothing looks wrong, it stays OK.
func TestSnaplenVerdict(t *testing.T) {
	t0 := int64(1e18)
	fs := append(pingFrames(t0, 1), pingFrames(t0+200e6, 2)...)
	r := analyze(t, cfgFor(seedPath...), cutAt(fs, 4, 60, false))
	if !r.Summary.Clean || !strings.HasPrefix(r.Summary.Verdict, "OK") {
		t.Errorf("cut frames that still match: verdict %q", r.Summary.Verdict)
	}
	r = analyze(t, cfgFor(seedPath...), cutAt(fs, 4, 60, true))
	want := "CAPTURE INCOMPLETE: pod2's capture cut 4 frames to 60 bytes or less (its snaplen), so they may not match their copies at other points; "
	if r.Summary.Clean || !strings.HasPrefix(r.Summary.Verdict, want) {
		t.Errorf("verdict %q\nwant %s…", r.Summary.Verdict, want)
	}
	if r.Points[4].Coverage.Truncated != 4 {
		t.Errorf("pod2 truncated = %d, want 4", r.Points[4].Coverage.Truncated)
	}
}

// cutAt cuts point p's frames to capLen bytes; rehash changes their
// payload hash as a shorter payload does.
func cutAt(fs []Frame, p, capLen int, rehash bool) []Frame {
	out := slices.Clone(fs)
	for i := range out {
		if out[i].Point == p {
			out[i].CapLen = capLen
			if rehash {
				out[i].Key.Hash ^= 0xdead
			}
		}
	}
	return out
}
