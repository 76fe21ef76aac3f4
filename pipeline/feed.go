package pipeline

import (
	"time"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/decode"
	"github.com/pathtrace/pathtrace/correlate"
)

// DefaultLag is how long a live frame waits for frames of other points that
// were stamped earlier but delivered later (each ring hands frames over in
// blocks, at most every few ms).
const DefaultLag = 100 * time.Millisecond

// feed orders a live capture's frames for the correlator (Live's goroutine
// owns it): every point's frames come in order, the points interleaved slab
// by slab. A frame waits in its point's queue of the stamp merge until it is
// lag older than the newest frame of any point, then leaves earliest first —
// so a capture of any length needs memory for lag's worth of frames plus the
// correlator's window, not for everything it saw.
type feed struct {
	eng    *correlate.Engine
	dec    *decode.Decoder
	filter *frameFilter
	queued *stampMerge[correlate.Frame]
	newest int64
	lag    int64
}

// newFeed feeds eng; lag <= 0 means DefaultLag.
func newFeed(eng *correlate.Engine, lag time.Duration) *feed {
	if lag <= 0 {
		lag = DefaultLag
	}
	return &feed{eng: eng, dec: decode.New(), queued: newStampMerge[correlate.Frame](0), lag: int64(lag)}
}

// add decodes rf, captured at point, and releases what is old enough.
func (f *feed) add(point int, rf *capture.RawFrame) {
	f.queueFrame(point, rf)
	f.release(f.newest - f.lag)
}

// addRaw decodes and queues a slab's frames (one point's, in capture order)
// and releases what is old enough.
func (f *feed) addRaw(sl *slab) {
	sl.each(func(rf *capture.RawFrame) { f.queueFrame(sl.point, rf) })
	f.release(f.newest - f.lag)
}

func (f *feed) queueFrame(point int, rf *capture.RawFrame) {
	fr := f.queued.push(point, rf.Time)
	f.dec.DecodeAny(rf, fr)
	f.filter.apply(f.dec, rf, fr)
	fr.Point = point
	f.newest = max(f.newest, rf.Time)
}

// flush releases every buffered frame; call it when the capture ended.
func (f *feed) flush() { f.release(1<<63 - 1) }

// release hands the correlator, in stamp order, every frame older than before.
func (f *feed) release(before int64) {
	for {
		p := f.queued.earliest()
		if p < 0 || f.queued.frontTime(p) >= before {
			return
		}
		f.eng.Add(&f.queued.front(p).v)
		f.queued.drop(p)
	}
}
