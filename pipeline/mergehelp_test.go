package pipeline

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/capture"
)

// fakeHelper has units of work; it counts those done while the consumer
// did not call Next (only the merge goroutine can have done them).
type fakeHelper struct {
	left, whileAway atomic.Int64
	away            atomic.Bool
	ready           chan struct{}
	onEmpty         func() // called once the last unit is done
}

func (h *fakeHelper) Help() bool {
	if h.left.Add(-1) < 0 {
		h.left.Add(1)
		return false
	}
	if h.away.Load() {
		h.whileAway.Add(1)
	}
	if h.left.Load() == 0 && h.onEmpty != nil {
		h.onEmpty()
	}
	return true
}

func (h *fakeHelper) Ready() <-chan struct{} { return h.ready }

// give queues n units and signals Ready, as the correlator does.
func (h *fakeHelper) give(n int64) {
	h.left.Store(n)
	h.ready <- struct{}{}
}

// within polls cond until it holds or d has passed.
func within(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			return false
		}
	}
	return true
}

// TestMergerHelpsWhileWaiting: while Next's caller does not take frames,
// the merge goroutine, its queue full and waiting, is woken by Ready and
// does the helper's work; the frames still come out in order, each once.
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
			h.away.Store(true)
			// Work comes once the merge waits with a full queue: only
			// Ready can wake it.
			if !within(10*time.Second, func() bool { return len(m.out) == cap(m.out) }) {
				t.Fatal("the merge did not fill its queue in 10 s")
			}
			h.give(1000)
			if !within(10*time.Second, func() bool { return h.left.Load() == 0 }) {
				t.Fatalf("the merge, woken, did %d of 1000 units in 10 s", 1000-h.left.Load())
			}
			h.away.Store(false)
		}
		want++
	}
	if want != 2*n {
		t.Fatalf("%d frames out, want %d", want, 2*n)
	}
	if got := h.whileAway.Load(); got != 1000 {
		t.Fatalf("helper work: %d of 1000 done by the merge, want all", got)
	}
}

// gatedSource is a MemorySource whose first frame waits for open.
type gatedSource struct {
	*MemorySource
	open chan struct{}
}

func (g *gatedSource) Next() (capture.RawFrame, error) {
	<-g.open
	return g.MemorySource.Next()
}

// TestNextHelpsWhileNoFrames: Next's caller, while no frames are merged
// yet, does the helper's work instead of waiting.
func TestNextHelpsWhileNoFrames(t *testing.T) {
	open := make(chan struct{})
	var once atomic.Bool
	release := func() {
		if once.CompareAndSwap(false, true) {
			close(open)
		}
	}
	// Released once the work is done, or after 10 s: then the merge
	// would do the rest, and the test fails.
	defer time.AfterFunc(10*time.Second, release).Stop()
	m := NewMerger(10, nil)
	m.Add("a", &gatedSource{memSource(1, 2, 3), open}, []int{0})
	h := &fakeHelper{ready: make(chan struct{}, 1), onEmpty: release}
	h.give(100)
	m.SetHelper(h)
	defer m.Close()
	if f := m.Next(); f == nil || f.Time != 1 {
		t.Fatalf("first frame %+v, want stamp 1", f)
	}
	if left := h.left.Load(); left != 0 {
		t.Fatalf("%d of 100 units left when the first frame came", left)
	}
}
