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
// correlator's window, not for everything it saw. Frames wait packed (a
// third of a decoded frame: the lag holds a flood's hundred thousand of
// them); the few packed cannot hold wait whole, in slots of their own.
type feed struct {
	eng    *correlate.Engine
	dec    *decode.Decoder
	filter *frameFilter
	queued *stampMerge[packed]
	full   []correlate.Frame // frames packed cannot hold (packed.full indexes them)
	spare  []int32           // free slots of full
	frame  correlate.Frame   // the frame handed to the correlator, unpacked
	newest int64
	lag    int64
}

// newFeed feeds eng; lag <= 0 means DefaultLag.
func newFeed(eng *correlate.Engine, lag time.Duration) *feed {
	if lag <= 0 {
		lag = DefaultLag
	}
	return &feed{eng: eng, dec: decode.New(), queued: newStampMerge[packed](0), lag: int64(lag)}
}

// add decodes rf, captured at point, and releases what is old enough.
func (f *feed) add(point int, rf *capture.RawFrame) {
	fr := &f.frame
	f.dec.DecodeAny(rf, fr)
	f.filter.apply(f.dec, rf, fr)
	f.queueFrame(point, rf.Time, fr)
	f.release(f.newest - f.lag)
}

// addSlab queues a slab's frames (one point's, in capture order) and
// releases what is old enough.
func (f *feed) addSlab(sl *slab) {
	sl.each(func(t int64) *packed {
		p := f.queued.push(sl.point, t)
		p.t, p.point, p.full = t, int32(sl.point), -1
		f.newest = max(f.newest, t)
		return p
	}, func(rf *capture.RawFrame, unkeyed bool) {
		// Its point decoded and filtered it already: only the key it
		// left out is to be left out again.
		fr := &f.frame
		f.dec.DecodeAny(rf, fr)
		if unkeyed {
			fr.Key = correlate.Key{}
		}
		f.queueFrame(sl.point, rf.Time, fr)
	})
	f.release(f.newest - f.lag)
}

// queueFrame queues fr, decoded from a frame of point stamped t.
func (f *feed) queueFrame(point int, t int64, fr *correlate.Frame) {
	fr.Point = point
	p := f.queued.push(point, t)
	p.t, p.full = t, -1
	if !pack(fr, p) {
		if n := len(f.spare); n > 0 {
			p.full = f.spare[n-1]
			f.spare = f.spare[:n-1]
			f.full[p.full] = *fr
		} else {
			p.full = int32(len(f.full))
			f.full = append(f.full, *fr)
		}
	}
	f.newest = max(f.newest, t)
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
		q := &f.queued.front(p).v
		if q.full >= 0 {
			f.eng.Add(&f.full[q.full])
			f.spare = append(f.spare, q.full)
		} else {
			unpack(q, &f.frame)
			f.eng.Add(&f.frame)
		}
		f.queued.drop(p)
	}
}
