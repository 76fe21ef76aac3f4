package pipeline

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/afpacket"
	"github.com/pathtrace/pathtrace/capture/decode"
	"github.com/pathtrace/pathtrace/correlate"
)

// Live spooling. A point's goroutine decodes each frame straight from its
// ring block, while the block is held and its bytes are in cache, and
// writes the frame slim (48 bytes, what a flood is made of: slim.go) or
// packed (104 bytes) into a slab; a frame packed cannot hold (IPv6, ARP,
// tunnels) goes in raw, as captured, and the correlator decodes it. No
// allocation, lock or channel operation per frame: a slab changes hands
// when full, or when the ring is empty and the correlator has no slab
// queued (else it is filled further, for up to holdMax). The
// correlator takes the slabs on a goroutine of its own. When it falls
// behind (a flood on a node short of CPU) the slabs wait, in memory up to
// the spool's memory and in its file beyond (spill.go), up to the spool's
// size, and it catches up after the capture; only then do the capture
// goroutines wait, the rings fill and the kernel counts drops — which the
// report states.
const (
	slabBytes = 256 << 10
	// holdMax is how long a slab begun may wait for more frames while the
	// correlator is busy anyway. Its frames must not fall behind the
	// feed's lag (DefaultLag, 100 ms): a point whose traffic stops is
	// next idle at the poll timeout (50 ms), and its ring hands a block
	// over up to 8 ms late, so holdMax + 58 ms stays under it with room.
	holdMax = 20 * time.Millisecond
	// DefaultSpoolBytes bounds the frames captured but not yet correlated.
	DefaultSpoolBytes = 256 << 20
	minSpoolSlabs     = 8
)

// slab holds frames of one point back to back, each behind a fixed header,
// in memory mapped outside Go's heap: a full spool is neither scanned by the
// garbage collector nor counted in its pacing (which would double it).
type slab struct {
	point int
	mem   []byte
	used  int
	begun time.Time // taken by a capture goroutine
	first int64     // its first frame's stamp
	// A reference to a spilled slab (written set): its frames are in the
	// spool's file at off (spill.go), not in mem, once written is closed;
	// or in held, which could not be written.
	off     int64
	written chan struct{}
	held    *slab
	// Slim entries' shared fields (slim.go).
	flows    []flowFields
	lastFlow int
	misses   int
	numBase  int64
	numSet   bool
}

// reset empties the slab for reuse.
func (s *slab) reset() {
	s.used, s.flows, s.lastFlow, s.misses, s.numSet = 0, s.flows[:0], 0, 0, false
}

// Spooled frame header: stamp, kind (a byte), then by kind. A packed frame
// (kindPacked) follows in packedBytes; a slim one (kindSlim) is laid out in
// slim.go; a raw one (kindRaw, kindRawUnkeyed: the point's filter left it
// out) has record number, wire length, captured length, link type and
// direction, then the frame, padded to 8 bytes.
const (
	hdrTime   = 0
	hdrKind   = 8
	hdrPacked = 16 // packed frame
	hdrNum    = 16 // raw frame
	hdrWire   = 24
	hdrCap    = 28
	hdrLink   = 32
	hdrDir    = 36
	hdrLen    = 40

	kindPacked     = 1
	kindRaw        = 2
	kindRawUnkeyed = 3
	kindSlim       = 4

	packedEntry = hdrPacked + packedBytes
)

func spooledLen(n int) int { return hdrLen + (n+7)&^7 }

// newSlab maps a slab with its pages in place: a capture goroutine writing
// into a fresh slab took a page fault every 4 KiB (a tenth of pathtrace's
// CPU under four floods, most of it on the capture goroutines).
func newSlab(size int) (*slab, error) {
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("spool: map %d bytes: %w", size, err)
	}
	return &slab{mem: mem, flows: make([]flowFields, 0, slabFlows)}, nil
}

// put spools rf as captured, kind kindRaw or kindRawUnkeyed.
func (s *slab) put(rf *capture.RawFrame, kind byte) {
	b := s.mem[s.used:]
	ne.PutUint64(b[hdrTime:], uint64(rf.Time))
	b[hdrKind] = kind
	ne.PutUint64(b[hdrNum:], uint64(rf.Num))
	ne.PutUint32(b[hdrWire:], uint32(rf.WireLen))
	ne.PutUint32(b[hdrCap:], uint32(len(rf.Data)))
	ne.PutUint32(b[hdrLink:], uint32(rf.LinkType))
	b[hdrDir] = byte(rf.Dir)
	copy(b[hdrLen:], rf.Data)
	s.used += spooledLen(len(rf.Data))
}

// putPacked spools a frame decoded at capture, stamped t.
func (s *slab) putPacked(t int64, p *packed) {
	b := s.mem[s.used:]
	ne.PutUint64(b[hdrTime:], uint64(t))
	b[hdrKind] = kindPacked
	p.put(b[hdrPacked:])
	s.used += packedEntry
}

// each reads every frame in spooling order: a packed or slim one into the
// packed dst returns for its stamp (dst sets t, point and full), a raw one
// to rawFn (its Data is the slab's memory).
func (s *slab) each(dst func(t int64) *packed, rawFn func(rf *capture.RawFrame, unkeyed bool)) {
	var rf capture.RawFrame
	for off := 0; off < s.used; {
		b := s.mem[off:]
		t := int64(ne.Uint64(b[hdrTime:]))
		switch b[hdrKind] {
		case kindSlim:
			s.getSlim(b[:slimEntry], t, dst(t))
			off += slimEntry
			continue
		case kindPacked:
			dst(t).get(b[hdrPacked:packedEntry])
			off += packedEntry
			continue
		}
		n := int(ne.Uint32(b[hdrCap:]))
		rf = capture.RawFrame{
			Data:     b[hdrLen : hdrLen+n : hdrLen+n],
			Time:     t,
			Num:      int(ne.Uint64(b[hdrNum:])),
			WireLen:  int(ne.Uint32(b[hdrWire:])),
			LinkType: capture.LinkType(ne.Uint32(b[hdrLink:])),
			Dir:      correlate.LinkDir(b[hdrDir]),
		}
		rawFn(&rf, b[hdrKind] == kindRawUnkeyed)
		off += spooledLen(n)
	}
}

var ne = binary.NativeEndian

// spool correlates the frames of a live capture while the capture runs:
// pass its sinks to afpacket.Run, call close once it returned.
type spool struct {
	feed  *feed
	queue chan *slab
	done  chan struct{}
	sinks []afpacket.Sink

	mu      sync.Mutex // capture goroutines take slabs, the correlator gives them back
	freed   *sync.Cond // a slab was given back
	free    []*slab    // empty slabs, the last given back on top: still in cache
	slabs   []*slab    // every slab mapped, to unmap at Close
	mapping int        // slabs being mapped (outside the lock)
	limit   int        // the spool's size in slabs, in memory and spilled
	memory  int        // the slabs it may map: beyond, they spill
	spill   spill
	back    *slab // the correlator's, for spilled slabs read back
	readErr error // a spilled slab could not be read back: its frames are lost
	full    atomic.Bool
	// When each point's socket was armed (Unix ns; 0: not yet), set by
	// Run's goroutine while other points capture already; the correlator
	// makes it the point's coverage before its next slab, so the engine
	// is only touched on its own goroutine.
	armed    []atomic.Int64
	armedNew atomic.Bool
	dropped  atomic.Bool // discard: the correlator takes no more frames
}

// startSpool starts correlating into eng the frames of points capture
// points. spoolBytes bounds what is captured but not yet correlated (<= 0:
// DefaultSpoolBytes), memBytes how much of it stays in memory (0:
// DefaultSpoolMemory; < 0: all of it). captured, if set, sees every frame
// on its point's capture goroutine as it is captured (counters, a file per
// point); it must not keep rf.Data. Set feed.filter before the capture
// starts: the points apply it as they decode.
func startSpool(eng *correlate.Engine, points, spoolBytes, memBytes int, captured func(point int, rf *capture.RawFrame)) (*spool, error) {
	if spoolBytes <= 0 {
		spoolBytes = DefaultSpoolBytes
	}
	n := max(minSpoolSlabs, points, spoolBytes/slabBytes)
	mem := n
	switch {
	case memBytes == 0:
		memBytes = DefaultSpoolMemory
		fallthrough
	case memBytes > 0:
		mem = min(n, max(minSpoolSlabs, 2*points, memBytes/slabBytes))
	}
	l := &spool{
		feed:   newFeed(eng, 0),
		queue:  make(chan *slab, n),
		done:   make(chan struct{}),
		limit:  n,
		memory: mem,
		armed:  make([]atomic.Int64, points),
	}
	l.freed = sync.NewCond(&l.mu)
	for p := range points {
		// A slab per point up front: a capture goroutine can always make
		// progress, even if mapping more fails.
		sl, err := newSlab(slabBytes)
		if err != nil {
			l.unmap()
			return nil, err
		}
		l.slabs = append(l.slabs, sl)
		l.sinks = append(l.sinks, &liveSink{live: l, point: p, tap: captured, cur: sl, dec: decode.New()})
	}
	go func() {
		defer close(l.done)
		for sl := range l.queue {
			if l.armedNew.Load() {
				l.cover()
			}
			if sl.written == nil {
				l.take(sl)
				l.put(sl)
				continue
			}
			b, err := l.readBack(sl)
			l.readDone()
			if err != nil {
				l.readErr = cmp.Or(l.readErr, err)
				continue
			}
			l.take(b)
			if b == sl.held {
				l.put(b) // a slab of the spool's, which could not be written
			} else {
				b.reset() // the correlator's own
			}
		}
		if !l.dropped.Load() {
			l.feed.flush()
		}
	}()
	return l, nil
}

// take feeds a slab's frames to the correlator, unless discarded.
func (l *spool) take(sl *slab) {
	if !l.dropped.Load() {
		l.feed.addSlab(sl)
	}
}

// discard drops every frame the correlator has not taken yet, and those
// still to come: the capture failed to arm, and nothing of it is reported.
// close still waits for the points' slabs and releases them.
func (l *spool) discard() { l.dropped.Store(true) }

// arm records that point's socket captures everything from t on; call it
// before its first frame.
func (l *spool) arm(point int, t time.Time) {
	l.armed[point].Store(t.UnixNano())
	l.armedNew.Store(true)
}

// cover makes every point armed so far capturing from its arming on, until
// the capture ends (finish sets the end).
func (l *spool) cover() {
	l.armedNew.Store(false)
	for i := range l.armed {
		if a := l.armed[i].Load(); a != 0 {
			l.feed.eng.SetCoverage(i, a, 1<<63-1)
		}
	}
}

// Close waits until every frame handed over is correlated and releases the
// spool. Call it after afpacket.Run returned (every sink has flushed); the
// sinks must not be used afterwards.
func (l *spool) close() {
	for _, s := range l.sinks {
		if ls := s.(*liveSink); ls.cur != nil && ls.cur.used > 0 {
			ls.handOver() // held back by its last Idle
		}
	}
	close(l.queue)
	<-l.done
	for _, s := range l.sinks {
		// What the points' filters left out counts with the feed's.
		if ls := s.(*liveSink); ls.filter != nil && l.feed.filter != nil {
			l.feed.filter.out.Add(int64(ls.filter.filteredOut()))
		}
	}
	l.closeSpill()
	l.unmap()
}

func (l *spool) unmap() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, sl := range l.slabs {
		unix.Munmap(sl.mem)
	}
	l.slabs = nil
}

// get returns an empty slab: the one given back last, a new one while the
// spool has room in memory (or in all, once its file failed), else, with
// wait, the next one the correlator gives back (the capture waits, and its
// ring fills); without, nil. A new slab is mapped outside the lock: its
// pages are zeroed as it is mapped (MAP_POPULATE), tens of µs the other
// points and the correlator need not wait for.
func (l *spool) get(wait bool) *slab {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if n := len(l.free); n > 0 {
			sl := l.free[n-1]
			l.free = l.free[:n-1]
			return sl
		}
		if m := l.mapping + len(l.slabs); m < l.limit && (m < l.memory || l.spill.err != nil) {
			l.mapping++
			l.mu.Unlock()
			sl, err := newSlab(slabBytes)
			l.mu.Lock()
			l.mapping--
			if err == nil {
				l.slabs = append(l.slabs, sl)
				return sl
			}
			l.limit = len(l.slabs) + l.mapping // out of memory: make do with what there is
			continue
		}
		if !wait {
			return nil
		}
		l.full.Store(true)
		l.freed.Wait()
	}
}

// put gives back a slab the correlator is done with.
func (l *spool) put(sl *slab) {
	sl.reset()
	l.mu.Lock()
	l.free = append(l.free, sl)
	l.mu.Unlock()
	l.freed.Signal()
}

// filled reports whether a capture goroutine ever had to wait for the
// correlator (its ring then absorbed the wait, or dropped).
func (l *spool) filled() bool { return l.full.Load() }

// liveSink is one point's spooler; only its capture goroutine touches it.
type liveSink struct {
	live   *spool
	point  int
	tap    func(int, *capture.RawFrame)
	cur    *slab
	dec    *decode.Decoder
	filter *frameFilter // the point's own copy of the feed's
	ready  bool         // filter set up
	frame  correlate.Frame
	packed packed
	last   int64 // the last frame's stamp
}

func (s *liveSink) Frame(rf *capture.RawFrame) {
	if s.tap != nil {
		s.tap(s.point, rf)
	}
	if !s.ready {
		if ff := s.live.feed.filter; ff != nil {
			s.filter = newFrameFilter(ff.f)
		}
		s.ready = true
	}
	f := &s.frame
	s.dec.DecodeAny(rf, f)
	s.filter.apply(s.dec, rf, f)
	f.Point = s.point
	if pack(f, &s.packed) {
		s.room(packedEntry, rf.Time) // room for either
		if !s.cur.putSlim(rf.Time, &s.packed) {
			s.cur.putPacked(rf.Time, &s.packed)
		}
		return
	}
	// Decoded again by the correlator, which then need not filter it.
	kind := byte(kindRaw)
	if s.filter != nil && f.Key.Proto == correlate.ProtoNone {
		kind = kindRawUnkeyed
	}
	if room := slabBytes - hdrLen; len(rf.Data) > room {
		// Cannot happen: a ring block (128 KiB) is smaller than a slab.
		c := *rf
		c.Data = c.Data[:room]
		rf = &c
	}
	s.room(spooledLen(len(rf.Data)), rf.Time)
	s.cur.put(rf, kind)
}

// room makes sure the current slab has n bytes free for a frame stamped t.
func (s *liveSink) room(n int, t int64) {
	if s.cur != nil && s.cur.used+n > len(s.cur.mem) {
		s.handOver()
	}
	if s.cur == nil {
		s.cur = s.live.get(true)
	}
	if s.cur.used == 0 {
		s.cur.begun, s.cur.first = time.Now(), t
	}
	s.cur.point = s.point
	s.last = t
}

// Idle hands the slab over, however full: the ring is empty, so its frames
// would otherwise wait for the next burst. Unless the correlator has slabs
// queued still and this one was begun, and spans, less than holdMax: then
// it takes the next blocks' frames too (close hands over what a last Idle
// held). A flood's rings empty every block or so; slabs handed over then
// were 45% full on average (four floods, bench/live.sh), and the spool,
// which counts slabs, filled with half the frames it can hold.
func (s *liveSink) Idle() {
	if s.cur == nil || s.cur.used == 0 {
		return
	}
	if len(s.live.queue) > 0 && s.last-s.cur.first < int64(holdMax) && time.Since(s.cur.begun) < holdMax {
		return
	}
	s.handOver()
}

// handOver queues the current slab for the correlator and takes an empty
// one; if none is to be had in memory, it spills the slab instead and goes
// on filling it (one decision under the lock: a point taking the last free
// slab between two would make the other wait).
func (s *liveSink) handOver() {
	l := s.live
	next := l.get(false)
	if next == nil {
		if ref, next := l.spillOut(s.cur); ref != nil {
			l.queue <- ref
			s.cur = next // nil: room waits for one
			return
		}
	}
	l.queue <- s.cur
	s.cur = next // nil: room waits for one
}
