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

// feed orders a live capture's frames for the correlator (Live's goroutine
// owns it): every point's frames come in order, the points interleaved slab
// by slab. A frame waits in its point's queue until it is lag older than
// the newest frame of any point, then the queues are merged by stamp into
// the correlator — so a capture of any length needs memory for lag's worth
// of frames plus the correlator's window, not for everything it saw.
type feed struct {
	eng    *correlate.Engine
	dec    *capture.Decoder
	queues []frameQueue // per point
	newest int64
	lag    int64
}

// frameQueue is one point's frames in stamp order: a ring that only grows
// while the lag's worth of frames does, so a steady capture reuses it.
type frameQueue struct {
	items      []correlate.Frame // len is a power of two
	head, size int
}

func (q *frameQueue) at(i int) *correlate.Frame { return &q.items[(q.head+i)&(len(q.items)-1)] }

// push appends a zeroed frame and returns it.
func (q *frameQueue) push() *correlate.Frame {
	if q.size == len(q.items) {
		grown := make([]correlate.Frame, max(1024, 2*len(q.items)))
		for i := range q.size {
			grown[i] = *q.at(i)
		}
		q.items, q.head = grown, 0
	}
	q.size++
	fr := q.at(q.size - 1)
	*fr = correlate.Frame{}
	return fr
}

// settle moves the last frame back to its place: a point's frames come in
// order, the rare inversion is fixed in place.
func (q *frameQueue) settle() {
	for i := q.size - 1; i > 0 && q.at(i).Time < q.at(i-1).Time; i-- {
		a, b := q.at(i), q.at(i-1)
		*a, *b = *b, *a
	}
}

// newFeed feeds eng; lag <= 0 means DefaultLag.
func newFeed(eng *correlate.Engine, lag time.Duration) *feed {
	if lag <= 0 {
		lag = DefaultLag
	}
	return &feed{eng: eng, dec: capture.NewDecoder(), lag: int64(lag)}
}

// add decodes rf, captured at point, and releases what is old enough.
func (f *feed) add(point int, rf *capture.RawFrame) {
	f.queueFrame(f.queue(point), point, rf)
	f.release(f.newest - f.lag)
}

// addRaw decodes and queues a slab's frames (one point's, in capture order)
// and releases what is old enough.
func (f *feed) addRaw(sl *slab) {
	q := f.queue(sl.point)
	sl.each(func(rf *capture.RawFrame) { f.queueFrame(q, sl.point, rf) })
	f.release(f.newest - f.lag)
}

func (f *feed) queueFrame(q *frameQueue, point int, rf *capture.RawFrame) {
	fr := q.push()
	f.dec.DecodeAny(rf, fr)
	fr.Point = point
	q.settle()
	f.newest = max(f.newest, rf.Time)
}

func (f *feed) queue(point int) *frameQueue {
	for len(f.queues) <= point {
		f.queues = append(f.queues, frameQueue{})
	}
	return &f.queues[point]
}

// flush releases every buffered frame; call it when the capture ended.
func (f *feed) flush() { f.release(1<<63 - 1) }

// release hands the correlator, in stamp order, every frame older than before.
func (f *feed) release(before int64) {
	for {
		var best *frameQueue
		for p := range f.queues {
			q := &f.queues[p]
			if q.size > 0 && (best == nil || q.at(0).Time < best.at(0).Time) {
				best = q
			}
		}
		if best == nil || best.at(0).Time >= before {
			return
		}
		f.eng.Add(best.at(0))
		best.head = (best.head + 1) & (len(best.items) - 1)
		best.size--
	}
}
