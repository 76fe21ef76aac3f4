package pipeline

import (
	"slices"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/decode"
	"github.com/pathtrace/pathtrace/capture/pcapfile"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/internal/ring"
)

// The clock pre-pass feeds a correlator the first frames of every file
// that carry a key, in stamp order (equal stamps file by file, then in
// reading order: a stable sort of the files' frames one after the other).
// A first reading learns how far back in time each file's sample ever
// jumps; the second merges the files, holding per file only the frames
// within that jump (none for a file in order): what the stable sort gives,
// streamed, so the pre-pass does not set the analysis's peak memory. Only
// stamps so far apart that the sort's comparison overflows make it hold
// the sample (as raw records, a third of their decoded size) and sort it.

// clockSample is the pre-pass's input.
type clockSample struct {
	b       *Bundle
	perFile int
	back    []int64        // per file: how far back in time its sample jumps at most
	chunks  []*sampleChunk // held records (overflowing stamps only)
}

// sampleChunk holds raw records back to back.
type sampleChunk struct {
	data []byte
	recs []sampleRec
}

// sampleRec is one record of a chunk: its bytes are data[off:off+n].
type sampleRec struct {
	t      int64
	num    int
	wire   int
	off, n int32
	// file and iface place it: the point is looked up as each feeds it,
	// in the bundle's order then (the pre-pass may reorder the points).
	file, iface int32
	link        capture.LinkType
	dir         correlate.LinkDir
}

// frame is record i as the decoder takes it.
func (c *sampleChunk) frame(i int) (capture.RawFrame, *sampleRec) {
	r := &c.recs[i]
	end := r.off + r.n
	return capture.RawFrame{Data: c.data[r.off:end:end], Time: r.t, WireLen: r.wire, LinkType: r.link, Dir: r.dir, Num: r.num}, r
}

const (
	sampleChunkBytes  = 1 << 20
	sampleChunkFrames = sampleChunkBytes / 64
)

// clockSample reads the first perFile frames of every file, keeping those
// with a key; each gives them the points they belong to in the bundle's
// order at that time.
func (b *Bundle) clockSample(perFile int) (*clockSample, error) {
	s := &clockSample{b: b, perFile: perFile, back: make([]int64, len(b.files))}
	lo, hi := int64(1<<63-1), int64(-1<<63)
	top := int64(-1 << 63) // the file's latest stamp so far
	err := s.read(func(fi int, rf capture.RawFrame, point int) {
		lo, hi = min(lo, rf.Time), max(hi, rf.Time)
		if rf.Time < top {
			s.back[fi] = max(s.back[fi], top-rf.Time)
		}
		top = max(top, rf.Time)
	}, func(int) { top = -1 << 63 })
	if err != nil {
		return nil, err
	}
	// The merge equals the stable sort unless two stamps are so far apart
	// that their difference overflows the sort's comparison.
	if lo > hi || hi-lo < 1<<62 {
		return s, nil
	}
	return s, s.hold()
}

// hold reads the sample into memory, for each to sort.
func (s *clockSample) hold() error {
	var c *sampleChunk
	return s.read(func(fi int, rf capture.RawFrame, _ int) {
		if c == nil || len(c.recs) == cap(c.recs) || len(c.data)+len(rf.Data) > cap(c.data) {
			c = &sampleChunk{data: make([]byte, 0, max(sampleChunkBytes, len(rf.Data))), recs: make([]sampleRec, 0, sampleChunkFrames)}
			s.chunks = append(s.chunks, c)
		}
		c.recs = append(c.recs, sampleRec{t: rf.Time, num: rf.Num, wire: rf.WireLen,
			off: int32(len(c.data)), n: int32(len(rf.Data)), file: int32(fi), iface: int32(rf.Iface), link: rf.LinkType, dir: rf.Dir})
		c.data = append(c.data, rf.Data...)
	}, nil)
}

// read calls frame for each keyed frame of the sample, file by file, and
// done after each file.
func (s *clockSample) read(frame func(fi int, rf capture.RawFrame, point int), done func(fi int)) error {
	dec := decode.New()
	var f correlate.Frame
	for fi := range s.b.files {
		src, err := pcapfile.Open(s.b.files[fi].path)
		if err != nil {
			return err
		}
		m := s.b.ifaceMap(fi)
		for n := 0; n < s.perFile; n++ {
			rf, err := src.Next()
			if err != nil {
				break
			}
			if rf.Iface >= len(m) || m[rf.Iface] < 0 || !dec.Decode(&rf, &f) {
				continue
			}
			frame(fi, rf, m[rf.Iface])
		}
		src.Close()
		if done != nil {
			done(fi)
		}
	}
	return nil
}

// each feeds fn the sample's frames in order; the frame is reused between
// calls.
func (s *clockSample) each(fn func(*correlate.Frame)) error {
	if s.chunks == nil {
		return s.merge(fn)
	}
	type at struct {
		t    int64
		c, i int32
	}
	n := 0
	for _, c := range s.chunks {
		n += len(c.recs)
	}
	order := make([]at, 0, n)
	for ci, c := range s.chunks {
		for i := range c.recs {
			order = append(order, at{c.recs[i].t, int32(ci), int32(i)})
		}
	}
	// The comparison (and so the order, even for stamps so far apart that
	// the difference overflows) is the one the pre-pass always used.
	slices.SortStableFunc(order, func(a, b at) int { return int(max(-1, min(1, a.t-b.t))) })
	maps := make([][]int, len(s.b.files))
	for fi := range maps {
		maps[fi] = s.b.ifaceMap(fi)
	}
	dec := decode.New()
	var f correlate.Frame
	for _, o := range order {
		rf, r := s.chunks[o.c].frame(int(o.i))
		dec.Decode(&rf, &f)
		f.Point = maps[r.file][r.iface]
		fn(&f)
	}
	return nil
}

// merge streams the files' samples merged: a file's frames wait, sorted,
// until the file has read past them by more than it ever jumps back (then
// none of its own can come before them); the earliest of the files' first
// frames leaves first, equal stamps by file.
func (s *clockSample) merge(fn func(*correlate.Frame)) error {
	type cursor struct {
		src  pcapfile.File
		m    []int
		read int                        // records read of perFile
		top  int64                      // latest stamp read
		held ring.Ring[correlate.Frame] // keyed frames read, not yet fed, in stamp order
	}
	dec := decode.New()
	cs := make([]cursor, len(s.b.files))
	defer func() {
		for i := range cs {
			if cs[i].src != nil {
				cs[i].src.Close()
			}
		}
	}()
	var f correlate.Frame
	// next reads c's next keyed frame into its held frames; false at the
	// end of its sample.
	next := func(c *cursor) bool {
		for c.read < s.perFile {
			rf, err := c.src.Next()
			c.read++
			if err != nil {
				c.read = s.perFile
				return false
			}
			if rf.Iface >= len(c.m) || c.m[rf.Iface] < 0 || !dec.Decode(&rf, &f) {
				continue
			}
			f.Point = c.m[rf.Iface]
			c.top = max(c.top, f.Time)
			// Behind the frames of equal or earlier stamp already held,
			// ahead of later ones: the file's own order for ties.
			*c.held.PushZero() = f
			for i := c.held.Len() - 1; i > 0 && c.held.At(i-1).Time > c.held.At(i).Time; i-- {
				*c.held.At(i - 1), *c.held.At(i) = *c.held.At(i), *c.held.At(i - 1)
			}
			return true
		}
		return false
	}
	for fi := range cs {
		src, err := pcapfile.Open(s.b.files[fi].path)
		if err != nil {
			return err
		}
		cs[fi].src, cs[fi].m, cs[fi].top = src, s.b.ifaceMap(fi), -1<<63
	}
	for {
		best := -1
		for i := range cs {
			c := &cs[i]
			// Its first held frame is its next in order once nothing
			// unread can be earlier.
			for (c.held.Len() == 0 || c.held.Front().Time > c.top-s.back[i]) && next(c) {
			}
			if c.held.Len() > 0 && (best < 0 || c.held.Front().Time < cs[best].held.Front().Time) {
				best = i
			}
		}
		if best < 0 {
			return nil
		}
		fn(cs[best].held.Front())
		cs[best].held.Drop()
	}
}
