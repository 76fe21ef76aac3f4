package analysis

import (
	"time"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
)

// DefaultLag is how long a live frame waits for frames of other points that
// were stamped earlier but delivered later (each ring hands frames over in
// blocks, at most every few ms).
const DefaultLag = 100 * time.Millisecond

// Feed correlates frames while a live capture delivers them: every point's
// frames in order, the points interleaved block by block by their rings. A
// frame waits in its point's queue until it is lag older than the newest
// frame of any point, then the queues are merged by stamp into the
// correlator — so a capture of any length needs memory for lag's worth of
// frames plus the correlator's window, not for everything it saw. Add and
// Flush must not be called concurrently.
type Feed struct {
	eng    *correlate.Engine
	dec    *capture.Decoder
	queues []frameQueue // per point
	newest int64
	lag    int64
}

// frameQueue is one point's frames in stamp order.
type frameQueue struct {
	items []correlate.Frame
	head  int
}

// NewFeed feeds eng; lag <= 0 means DefaultLag.
func NewFeed(eng *correlate.Engine, lag time.Duration) *Feed {
	if lag <= 0 {
		lag = DefaultLag
	}
	return &Feed{eng: eng, dec: capture.NewDecoder(), lag: int64(lag)}
}

// Add decodes rf, captured at point, and releases what is old enough.
func (f *Feed) Add(point int, rf *capture.RawFrame) {
	for len(f.queues) <= point {
		f.queues = append(f.queues, frameQueue{})
	}
	q := &f.queues[point]
	q.items = append(q.items, correlate.Frame{})
	fr := &q.items[len(q.items)-1]
	f.dec.DecodeAny(rf, fr)
	fr.Point = point
	// A point's frames come in order; the rare inversion is fixed in place.
	for i := len(q.items) - 1; i > q.head && q.items[i].Time < q.items[i-1].Time; i-- {
		q.items[i], q.items[i-1] = q.items[i-1], q.items[i]
	}
	f.newest = max(f.newest, rf.Time)
	f.release(f.newest - f.lag)
}

// Flush releases every buffered frame; call it when the capture ended.
func (f *Feed) Flush() { f.release(1<<63 - 1) }

// release hands the correlator, in stamp order, every frame older than before.
func (f *Feed) release(before int64) {
	for {
		best := -1
		for p := range f.queues {
			q := &f.queues[p]
			if q.head < len(q.items) && (best < 0 || q.items[q.head].Time < f.queues[best].items[f.queues[best].head].Time) {
				best = p
			}
		}
		if best < 0 {
			return
		}
		q := &f.queues[best]
		if q.items[q.head].Time >= before {
			return
		}
		f.eng.Add(&q.items[q.head])
		q.head++
		switch {
		case q.head == len(q.items):
			q.items, q.head = q.items[:0], 0
		case q.head > 1024 && q.head*2 > len(q.items):
			n := copy(q.items, q.items[q.head:])
			q.items, q.head = q.items[:n], 0
		}
	}
}
