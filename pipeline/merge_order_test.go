package pipeline

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
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
	spans := make([]int64, len(srcs))
	for i := range spans {
		spans[i] = reorder
	}
	return refMergeSpans(srcs, spans)
}

// refMergeSpans is refMerge with a span of each source's own.
func refMergeSpans(srcs [][]int64, spans []int64) []mergedAt {
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
			if done[i] || (best >= 0 && pos[i] > 0 && maxT[i] > queues[best][0].t+spans[i]) {
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

// stepBack is the largest step back in ts: how far a stamp falls behind the
// newest before it.
func stepBack(ts []int64) int64 {
	var newest, back int64
	for i, t := range ts {
		if i == 0 || t > newest {
			newest = t
		} else {
			back = max(back, newest-t)
		}
	}
	return back
}

// TestMergerMeasuredSpans: sources that measure their span first
// (MeasureSpan) are each read only as far ahead as their own largest step
// back (capped at the reorder span) needs: the order is the plain rule's
// with those spans, frame for frame; and where no source steps back past
// the reorder span, it is the stamp order the whole span gives.
func TestMergerMeasuredSpans(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 3))
	for round := range 20 {
		reorder := int64(5 + rng.IntN(20))
		var srcs [][]int64
		for s := range 1 + rng.IntN(5) {
			var ts []int64
			now := int64(1000)
			for range rng.IntN(2000) {
				now += int64(rng.IntN(4))
				t := now
				// Some sources in order, some stepping back, a few past the span.
				if s%3 != 0 && rng.IntN(10) == 0 {
					t -= int64(rng.IntN(int(reorder + reorder/4)))
				}
				ts = append(ts, t)
			}
			srcs = append(srcs, ts)
		}
		m := NewMerger(reorder, nil)
		m.minSpan = 0 // spans of a few ns here
		spans := make([]int64, len(srcs))
		for i, ts := range srcs {
			m.Add("src", memSource(ts...), []int{i})
			m.MeasureSpan(func() (capture.Source, error) { return memSource(ts...), nil })
			spans[i] = min(stepBack(ts), reorder)
		}
		var got []mergedAt
		for f := m.Next(); f != nil; f = m.Next() {
			got = append(got, mergedAt{f.Time, f.Point, f.Num})
		}
		for i, in := range m.inputs {
			if in.span != spans[i] {
				t.Fatalf("round %d: source %d measured a span of %d, want %d", round, i, in.span, spans[i])
			}
		}
		want := refMergeSpans(srcs, spans)
		if len(got) != len(want) {
			t.Fatalf("round %d: %d frames out, want %d", round, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("round %d (spans %v): frame %d is %+v, want %+v", round, spans, i, got[i], want[i])
			}
		}
		if slices.Max(spans) < reorder && !slices.IsSortedFunc(got, func(a, b mergedAt) int { return cmp.Compare(a.t, b.t) }) {
			t.Fatalf("round %d (spans %v): not in stamp order", round, spans)
		}
	}
}

// endlessStamps is a stamps pass that never ends (a huge file on a slow
// disk), telling how far it has read.
type endlessStamps struct {
	MemorySource
	calls atomic.Int64
}

func (e *endlessStamps) Stamps(ts []int64, ifaces []int) (int, error) {
	n := e.calls.Add(1)
	for i := range ts {
		ts[i], ifaces[i] = n*int64(len(ts))+int64(i), 0
	}
	time.Sleep(100 * time.Microsecond)
	return len(ts), nil
}

func (e *endlessStamps) Progress() (read, total int64) { return e.calls.Load() * 100, 1 << 40 }

// sized is a source that tells its size, as pcapfile's files do.
type sized struct {
	*MemorySource
	size int64
}

func (s sized) Progress() (read, total int64) { return 0, s.size }

// TestMergerStopDuringStampsPass: while a source's stamps pass holds the
// first frame back, Scan tells how far it got, and Stop (Ctrl-C) ends the
// wait: Next returns nil. Also when the pass was started ahead of the merge
// (spanscan.go): Stop ends that pass too.
func TestMergerStopDuringStampsPass(t *testing.T) {
	for _, ahead := range []bool{false, true} {
		m := NewMerger(10, nil)
		m.Add("src", sized{memSource(1, 2, 3), 1000}, []int{0})
		scan := &endlessStamps{}
		reopen := func() (capture.Source, error) { return scan, nil }
		m.MeasureSpan(reopen)
		var pre *spanScan
		if ahead {
			pre = startSpanScan(reopen, []int{0}, 10)
			m.inputs[0].ahead(pre)
		}
		got := make(chan *correlate.Frame, 1)
		go func() { got <- m.Next() }()
		for scan.calls.Load() < 3 {
			time.Sleep(time.Millisecond)
		}
		if read, total, scanning := m.Scan(); !scanning || total != 1000 || read < 200 || read > total {
			t.Errorf("ahead %v: Scan during the pass: read %d of %d, scanning %v", ahead, read, total, scanning)
		}
		m.Stop()
		select {
		case f := <-got:
			if f != nil {
				t.Errorf("ahead %v: Next returned a frame (%+v) after Stop", ahead, *f)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("ahead %v: Next still waits for the stamps pass 10 s after Stop", ahead)
		}
		if pre != nil {
			select {
			case <-pre.done:
			case <-time.After(10 * time.Second):
				t.Fatal("the pass started ahead goes on 10 s after Stop")
			}
		}
		m.Close()
		if _, _, scanning := m.Scan(); scanning {
			t.Errorf("ahead %v: Scan says the pass goes on after Close", ahead)
		}
	}
}
