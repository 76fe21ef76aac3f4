package pipeline

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// mergedAt is one frame as it left a merge: its stamp, source and number.
type mergedAt struct {
	t        int64
	src, num int
}

// refMerge is the merge rule spelled out plainly, a frame at a time: read
// one more frame of every open source that has read nothing yet or not
// past the earliest queued stamp plus the span, and release the earliest
// only once no source needs to read; equal stamps leave in arrival order.
// (No stamp here leaps far enough ahead to count as an outlier.)
func refMerge(srcs [][]int64, reorder int64) []mergedAt {
	type item struct {
		t        int64
		seq      int
		src, num int
	}
	n := len(srcs)
	queues := make([][]item, n)
	pos, maxT := make([]int, n), make([]int64, n)
	done := make([]bool, n)
	seq := 0
	var out []mergedAt
	for {
		best := -1
		for i, q := range queues {
			if len(q) > 0 && (best < 0 || q[0].t < queues[best][0].t || (q[0].t == queues[best][0].t && q[0].seq < queues[best][0].seq)) {
				best = i
			}
		}
		progressed := false
		for i := range srcs {
			if done[i] || (best >= 0 && pos[i] > 0 && maxT[i] > queues[best][0].t+reorder) {
				continue
			}
			progressed = true
			if pos[i] == len(srcs[i]) {
				done[i] = true
				continue
			}
			t := srcs[i][pos[i]]
			if pos[i] == 0 || t > maxT[i] {
				maxT[i] = t
			}
			pos[i]++
			seq++
			it := item{t, seq, i, pos[i]}
			at := len(queues[i])
			for at > 0 && queues[i][at-1].t > t {
				at--
			}
			queues[i] = slices.Insert(queues[i], at, it)
		}
		if progressed {
			continue
		}
		if best < 0 {
			return out
		}
		it := queues[best][0]
		queues[best] = queues[best][1:]
		out = append(out, mergedAt{it.t, it.src, it.num})
	}
}

// TestMergerMatchesPlainRule: on sources with inversions, inversions past
// the span, and stamps shared across sources (their order is arrival
// order, so it depends on exactly when each source is read), the Merger's
// order is the plain rule's, frame for frame, across many batches.
func TestMergerMatchesPlainRule(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 2))
	for round := range 20 {
		reorder := int64(1 + rng.IntN(20))
		var srcs [][]int64
		for range 1 + rng.IntN(5) {
			var ts []int64
			now := int64(1000)
			for range rng.IntN(2000) {
				now += int64(rng.IntN(4)) // many equal stamps, within and across sources
				t := now
				if rng.IntN(10) == 0 {
					t -= int64(rng.IntN(int(2 * reorder))) // late, sometimes past the span
				}
				ts = append(ts, t)
			}
			srcs = append(srcs, ts)
		}
		m := NewMerger(reorder, nil)
		for i, ts := range srcs {
			m.Add("src", memSource(ts...), []int{i})
		}
		var got []mergedAt
		for f := m.Next(); f != nil; f = m.Next() {
			got = append(got, mergedAt{f.Time, f.Point, f.Num})
		}
		want := refMerge(srcs, reorder)
		if len(got) != len(want) {
			t.Fatalf("round %d: %d frames out, want %d", round, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("round %d (span %d, %d sources): frame %d is %+v, want %+v", round, reorder, len(srcs), i, got[i], want[i])
			}
		}
	}
}
