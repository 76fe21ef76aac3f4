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
// frames in order, the points interleaved by their rings' batching. A frame
// waits in a sorted buffer until it is lag older than the newest one, then
// goes to the correlator in stamp order — so a capture of any length needs
// memory for lag's worth of frames plus the correlator's window, not for
// everything it saw. Add and Flush must not be called concurrently.
type Feed struct {
	eng    *correlate.Engine
	dec    *capture.Decoder
	buf    []correlate.Frame // sorted by stamp from head on
	head   int
	newest int64
	lag    int64
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
	f.buf = append(f.buf, correlate.Frame{})
	fr := &f.buf[len(f.buf)-1]
	if !f.dec.Decode(rf, fr) {
		// Undecodable frames still prove the point was capturing.
		*fr = correlate.Frame{Time: rf.Time, Num: rf.Num, Dir: rf.Dir, WireLen: rf.WireLen, CapLen: len(rf.Data)}
	}
	fr.Point = point
	// Insertion from the end: out-of-order frames are few and recent.
	for i := len(f.buf) - 1; i > f.head && f.buf[i].Time < f.buf[i-1].Time; i-- {
		f.buf[i], f.buf[i-1] = f.buf[i-1], f.buf[i]
	}
	f.newest = max(f.newest, rf.Time)
	f.release(f.newest - f.lag)
}

// Flush releases every buffered frame; call it when the capture ended.
func (f *Feed) Flush() { f.release(1<<63 - 1) }

func (f *Feed) release(before int64) {
	for f.head < len(f.buf) && f.buf[f.head].Time < before {
		f.eng.Add(&f.buf[f.head])
		f.head++
	}
	switch {
	case f.head == len(f.buf):
		f.buf, f.head = f.buf[:0], 0
	case f.head > 1024 && f.head*2 > len(f.buf):
		n := copy(f.buf, f.buf[f.head:])
		f.buf, f.head = f.buf[:n], 0
	}
}
