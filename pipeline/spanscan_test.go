package pipeline

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
)

// TestSpanScannedAhead: a stamps pass started ahead of the merge gives a
// source without clock correction, or with a constant offset, its span (the
// source is not read for its stamps again); a source whose clock drifts is
// measured again, with its line. Either way spans and frames are those
// measured in place.
func TestSpanScannedAhead(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 21))
	for round := range 10 {
		const reorder = 30
		var srcs [][]int64
		for s := range 4 {
			var ts []int64
			now := int64(1000)
			for range 500 + rng.IntN(1000) {
				now += int64(rng.IntN(4))
				t := now
				if s%2 == 1 && rng.IntN(8) == 0 {
					t -= int64(rng.IntN(reorder))
				}
				ts = append(ts, t)
			}
			srcs = append(srcs, ts)
		}
		// Point 2's clock runs 7 ns ahead; point 3's drifts, 10% fast.
		lines := make([]correlate.ClockLine, len(srcs))
		lines[2] = correlate.ClockLine{Offset: 7}
		lines[3] = correlate.ClockLine{Ref: 1000, Offset: -5, Drift: 0.1}
		merge := func(ahead bool) ([]mergedAt, []int64, []int64) {
			m := NewMerger(reorder, nil)
			m.minSpan = 0
			opens := make([]atomic.Int64, len(srcs))
			for i, ts := range srcs {
				reopen := func() (capture.Source, error) { opens[i].Add(1); return memSource(ts...), nil }
				m.Add("src", memSource(ts...), []int{i})
				m.MeasureSpan(reopen)
				if ahead {
					m.inputs[i].ahead(startSpanScan(reopen, []int{i}, reorder))
				}
			}
			m.SetClocks(lines)
			var got []mergedAt
			for f := m.Next(); f != nil; f = m.Next() {
				got = append(got, mergedAt{f.Time, f.Point, f.Num})
			}
			m.Close()
			var spans, n []int64
			for i, in := range m.inputs {
				spans = append(spans, in.span)
				if in.pre != nil {
					<-in.pre.done // it may still run where it was not taken
				}
				n = append(n, opens[i].Load())
			}
			return got, spans, n
		}
		want, wantSpans, _ := merge(false)
		got, spans, opens := merge(true)
		for i := range srcs {
			if spans[i] != wantSpans[i] {
				t.Fatalf("round %d: source %d has a span of %d ahead, %d measured in place", round, i, spans[i], wantSpans[i])
			}
			if wantOpens := map[bool]int64{true: 2, false: 1}[i == 3]; opens[i] != wantOpens {
				t.Errorf("round %d: source %d read for its stamps %d times, want %d", round, i, opens[i], wantOpens)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("round %d: %d frames out, want %d", round, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("round %d: frame %d is %+v, want %+v", round, i, got[i], want[i])
			}
		}
	}
}
