package pipeline

import (
	"sync/atomic"
	"testing"
	"time"
)

// fakeHelper has units of work; it counts those done while the consumer
// slept (only the merge goroutine can have done them).
type fakeHelper struct {
	left, whileAsleep atomic.Int64
	asleep            atomic.Bool
	ready             chan struct{}
}

func (h *fakeHelper) Help() bool {
	if h.left.Add(-1) < 0 {
		h.left.Add(1)
		return false
	}
	if h.asleep.Load() {
		h.whileAsleep.Add(1)
	}
	return true
}

func (h *fakeHelper) Ready() <-chan struct{} { return h.ready }

// TestMergerHelpsWhileWaiting: while Next's caller does not take frames,
// the merge goroutine, its queue full, does the helper's work instead of
// waiting; the frames still come out in order, each once.
func TestMergerHelpsWhileWaiting(t *testing.T) {
	const n = 3 * outBatches * outFrames // more than the queue holds
	var a, b []int64
	for i := range int64(n) {
		a, b = append(a, 2*i), append(b, 2*i+1)
	}
	m := NewMerger(10, nil)
	m.Add("a", memSource(a...), []int{0})
	m.Add("b", memSource(b...), []int{1})
	h := &fakeHelper{ready: make(chan struct{}, 1)}
	m.SetHelper(h)
	defer m.Close()

	want := int64(0)
	for f := m.Next(); f != nil; f = m.Next() {
		if f.Time != want {
			t.Fatalf("frame %d: stamp %d", want, f.Time)
		}
		if want == 0 {
			h.asleep.Store(true)
			h.left.Store(1000) // work comes, as the correlator queues traces
			h.ready <- struct{}{}
			time.Sleep(200 * time.Millisecond) // the merge fills its queue meanwhile
			h.asleep.Store(false)
		}
		want++
	}
	if want != 2*n {
		t.Fatalf("%d frames out, want %d", want, 2*n)
	}
	if got := h.whileAsleep.Load(); got != 1000 {
		t.Fatalf("helper work: %d of 1000 done while the consumer slept, want all", got)
	}
}
