package correlate

import (
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// clockTraces makes echo traces between point a (clock group 0) and b
// (group 1): requests a → b and replies b → a every 100 ms for span, one-way
// delays base..base+jitter, b's clock off by theta(t) (true time t).
func clockTraces(n int, base, jitter int64, theta func(int64) float64, oneWay bool) []Trace {
	return clockTracesSeeded(7, n, base, jitter, theta, oneWay)
}

func clockTracesSeeded(seed uint64, n int, base, jitter int64, theta func(int64) float64, oneWay bool) []Trace {
	rng := rand.New(rand.NewPCG(seed, 9))
	t0 := int64(1_700_000_000e9)
	var trs []Trace
	for i := range n {
		t := t0 + int64(i)*100e6
		d1 := base + rng.Int64N(jitter+1)
		trs = append(trs, Trace{Hops: []Hop{
			{Point: "a", Time: Timestamp(t)},
			{Point: "b", Time: Timestamp(t + d1 + int64(math.Round(theta(t+d1))))},
		}})
		if oneWay {
			continue
		}
		tr := t + 500e3
		d2 := base + rng.Int64N(jitter+1)
		trs = append(trs, Trace{Hops: []Hop{
			{Point: "b", Time: Timestamp(tr + int64(math.Round(theta(tr))))},
			{Point: "a", Time: Timestamp(tr + d2)},
		}})
	}
	return trs
}

func twoClocks() []PointSpec {
	return []PointSpec{{Name: "a", Clock: 0}, {Name: "b", Clock: 1}}
}

// TestEstimateClockOffsetAndDrift: an offset of +16 ms and -3 ms, and +16 ms
// drifting 50 ppm, are found within 5 µs of the truth over the capture
// (symmetric one-way delays of 20–28 µs), with an uncertainty that covers
// the error.
func TestEstimateClockOffsetAndDrift(t *testing.T) {
	t0 := float64(1_700_000_000e9)
	for _, tc := range []struct {
		name  string
		theta func(int64) float64
	}{
		{"+16ms", func(int64) float64 { return 16e6 }},
		{"-3ms", func(int64) float64 { return -3e6 }},
		{"+16ms 50ppm", func(t int64) float64 { return 16e6 + 50e-6*(float64(t)-t0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trs := clockTraces(50, 20e3, 8e3, tc.theta, false)
			est, probs := EstimateClocks(twoClocks(), trs)
			if len(probs) != 0 || len(est) != 1 {
				t.Fatalf("estimates %+v, problems %+v", est, probs)
			}
			e := est[0]
			for _, tr := range trs {
				at := int64(tr.Hops[0].Time)
				if err := float64(e.Line.At(at)) - tc.theta(at); math.Abs(err) > 5e3 || math.Abs(err) > float64(e.Uncertainty)+1 {
					t.Fatalf("at %d: estimate %d, truth %.0f (uncertainty %d, line %+v)", at, e.Line.At(at), tc.theta(at), e.Uncertainty, e.Line)
				}
			}
		})
	}
}

// TestSameClockUnchanged: one host's captures, with stamping inversions of
// a few µs, get no correction at all.
func TestSameClockUnchanged(t *testing.T) {
	trs := clockTraces(30, 0, 4e3, func(int64) float64 { return -2e3 }, false)
	est, probs := EstimateClocks(twoClocks(), trs)
	if len(probs) != 0 || len(est) != 1 || !est[0].Line.Zero() || est[0].Uncertainty != 0 {
		t.Fatalf("estimates %+v, problems %+v", est, probs)
	}
}

// TestOneWayCannotBeBounded: frames crossing one way only bound nothing on
// the other side: a problem naming both points, no correction.
func TestOneWayCannotBeBounded(t *testing.T) {
	trs := clockTraces(10, 20e3, 5e3, func(int64) float64 { return 16e6 }, true)
	est, probs := EstimateClocks(twoClocks(), trs)
	if len(est) != 0 || len(probs) != 1 || !strings.Contains(probs[0].Message, "the clocks of b and a cannot be compared: frames crossed only a → b") {
		t.Fatalf("estimates %+v, problems %+v", est, probs)
	}
}

// TestClockChain: three groups, c behind b behind a: c's offset is found
// through b, its uncertainty the sum.
func TestClockChain(t *testing.T) {
	pts := []PointSpec{{Name: "a", Clock: 0}, {Name: "b", Clock: 1}, {Name: "c", Clock: 2}}
	ab := clockTraces(20, 20e3, 5e3, func(int64) float64 { return 10e6 }, false)
	bc := clockTraces(20, 20e3, 5e3, func(int64) float64 { return 5e6 }, false)
	for i := range bc { // b → c: b's stamps are 10 ms ahead already
		for j := range bc[i].Hops {
			h := &bc[i].Hops[j]
			h.Time += 10e6
			h.Point = map[string]string{"a": "b", "b": "c"}[h.Point]
		}
	}
	est, probs := EstimateClocks(pts, append(ab, bc...))
	if len(probs) != 0 || len(est) != 2 {
		t.Fatalf("estimates %+v, problems %+v", est, probs)
	}
	for _, e := range est {
		want := map[int]float64{1: 10e6, 2: 15e6}[e.Group]
		if got := float64(e.Line.At(1_700_000_000e9)); math.Abs(got-want) > 5e3 {
			t.Errorf("group %d: %v, want %v (%+v)", e.Group, got, want, e)
		}
	}
	if est[1].Uncertainty < est[0].Uncertainty {
		t.Errorf("chained uncertainty %d below its first link's %d", est[1].Uncertainty, est[0].Uncertainty)
	}
}

// TestClockSamplerAddMemory: the pre-pass's sampler takes a flood's traces
// (five points on five clocks, 20,000 traces) for ~180 bytes each, about
// its crossings' own size; slices grown by append and a map keyed by whole
// keys allocated ~1,200 (copies into fresh memory: most of the pre-pass's
// time on a VM whose page faults are dear).
func TestClockSamplerAddMemory(t *testing.T) {
	var pts []PointSpec
	for i, n := range []string{"a", "b", "c", "d", "e"} {
		pts = append(pts, PointSpec{Name: n, Clock: i})
	}
	const traces = 20_000
	trs := make([]Trace, traces)
	t0 := int64(1_700_000_000e9)
	for i := range trs {
		at := t0 + int64(i)*10e3
		hops := make([]Hop, len(pts))
		for j := range hops {
			p := pts[j].Name
			if i%2 == 1 { // the replies, back
				p = pts[len(pts)-1-j].Name
			}
			hops[j] = Hop{Point: p, Time: Timestamp(at + int64(j)*20e3)}
		}
		trs[i] = Trace{Hops: hops, ID: someU(7), key: Key{Proto: ProtoICMP, Kind: 8, Seq: uint32(i), Len: 56, Hash: uint64(i) * 0x9e3779b97f4a7c15}}
	}
	c := NewClockSampler(pts)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range trs {
		c.Add(&trs[i])
	}
	runtime.ReadMemStats(&after)
	per := float64(after.TotalAlloc-before.TotalAlloc) / traces
	t.Logf("Add allocated %.0f bytes a trace", per)
	if per > 320 {
		t.Errorf("Add allocated %.0f bytes a trace, want at most 320", per)
	}
	if est, probs := c.Estimate(); len(est) != 4 || len(probs) != 0 {
		t.Fatalf("estimates %+v, problems %+v", est, probs)
	}
}

// TestSamplerEngineMatchesReports: the clock pre-pass's engine handing
// each trace's crossings to its sampler (Config.Sampler) estimates what
// the sampler makes of the same traces' reports (ClockSampler.Add as the
// sink): the same lines, uncertainties, samples and problems.
func TestSamplerEngineMatchesReports(t *testing.T) {
	pts := cfgFor(seedPath...).Points
	for i := range pts {
		pts[i].Clock = []int{0, 0, 1, 2, 2}[i]
	}
	// Group 1 runs 5 ms ahead, group 2 3 ms behind and drifting 40 ppm.
	shift := func(f *Frame) {
		switch pts[f.Point].Clock {
		case 1:
			f.Time += 5e6
		case 2:
			f.Time += -3e6 + (f.Time-1e18)*40/1e6
		}
	}
	// Every 100th ping repeats the one before it, 5 ms later: a trace of
	// its own with the same key, whose crossings are left out.
	var fs []Frame
	for i := range 3000 {
		seq := uint32(i)
		if i%100 == 99 {
			seq--
		}
		for _, f := range pingFrames(1e18+int64(i)*5e6, seq) {
			shift(&f)
			fs = append(fs, f)
		}
	}
	slices.SortStableFunc(fs, func(a, b Frame) int { return cmp64(a.Time, b.Time) })
	feed := func(cfg Config, sink Sink) {
		t.Helper()
		e, err := New(cfg, sink)
		if err != nil {
			t.Fatal(err)
		}
		for i := range fs {
			f := fs[i]
			e.Add(&f)
		}
		e.Finish()
	}
	viaReports := NewClockSampler(pts)
	feed(Config{Points: pts}, viaReports.Add)
	direct := NewClockSampler(pts)
	feed(Config{Points: pts, Sampler: direct}, nil)
	wantEst, wantProbs := viaReports.Estimate()
	gotEst, gotProbs := direct.Estimate()
	if len(wantEst) != 2 || len(wantProbs) != 0 {
		t.Fatalf("via reports: estimates %+v, problems %+v", wantEst, wantProbs)
	}
	if !reflect.DeepEqual(gotEst, wantEst) || !reflect.DeepEqual(gotProbs, wantProbs) {
		t.Errorf("sampler engine: %+v, %+v\nvia reports:    %+v, %+v", gotEst, gotProbs, wantEst, wantProbs)
	}
}

// TestFewSamplesDriftCovered: five pings 100 ms apart with one-way delays
// of 20–220 µs (a loaded machine) on clocks that differ by a constant: a
// drift read into such noise widens the uncertainty by what the slope may
// be off, so it covers the estimate's error at every frame (26 of these
// 300 were off by more when it did not; on the two-node lab a drift fitted
// to such noise put hops 12–19 µs off, past an uncertainty of 10.6 µs).
func TestFewSamplesDriftCovered(t *testing.T) {
	bad := 0
	for seed := range uint64(300) {
		trs := clockTracesSeeded(seed, 5, 20e3, 200e3, func(int64) float64 { return 16e6 }, false)
		est, _ := EstimateClocks(twoClocks(), trs)
		if len(est) != 1 {
			t.Fatalf("seed %d: estimates %+v", seed, est)
		}
		e := est[0]
		for _, tr := range trs {
			at := int64(tr.Hops[0].Time)
			if err := float64(e.Line.At(at)) - 16e6; math.Abs(err) > float64(e.Uncertainty)+1 {
				if bad == 0 {
					t.Logf("seed %d at %d: error %.0f ns, uncertainty %d (line %+v)", seed, at, err, e.Uncertainty, e.Line)
				}
				bad++
				break
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of 300 estimates off by more than their uncertainty", bad)
	}
}
