package pipeline

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/afpacket"
	"github.com/pathtrace/pathtrace/correlate"
)

// Live spooling. A point's goroutine only copies frames out of its ring into
// slabs, as tcpdump copies them into a file: no decoding, allocation, lock or
// channel operation per frame. The correlator decodes and matches the slabs
// on a goroutine of its own. When it falls behind (a flood on a node short of
// CPU) the slabs wait in memory, up to the spool's size, and it catches up
// after the capture; only then do the capture goroutines wait, the rings fill
// and the kernel counts drops — which the report states.
const (
	slabBytes = 256 << 10
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
}

// Spooled frame header: stamp, record number, wire length, captured length,
// link type, direction; the frame follows, padded to 8 bytes.
const (
	hdrTime = 0
	hdrNum  = 8
	hdrWire = 16
	hdrCap  = 20
	hdrLink = 24
	hdrDir  = 28
	hdrLen  = 32
)

func spooledLen(n int) int { return hdrLen + (n+7)&^7 }

func newSlab(size int) (*slab, error) {
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("spool: map %d bytes: %w", size, err)
	}
	return &slab{mem: mem}, nil
}

func (s *slab) put(rf *capture.RawFrame) {
	b := s.mem[s.used:]
	ne.PutUint64(b[hdrTime:], uint64(rf.Time))
	ne.PutUint64(b[hdrNum:], uint64(rf.Num))
	ne.PutUint32(b[hdrWire:], uint32(rf.WireLen))
	ne.PutUint32(b[hdrCap:], uint32(len(rf.Data)))
	ne.PutUint32(b[hdrLink:], uint32(rf.LinkType))
	b[hdrDir] = byte(rf.Dir)
	copy(b[hdrLen:], rf.Data)
	s.used += spooledLen(len(rf.Data))
}

// each calls fn for every frame; rf.Data is the slab's memory.
func (s *slab) each(fn func(rf *capture.RawFrame)) {
	var rf capture.RawFrame
	for off := 0; off < s.used; {
		b := s.mem[off:]
		n := int(ne.Uint32(b[hdrCap:]))
		rf = capture.RawFrame{
			Data:     b[hdrLen : hdrLen+n : hdrLen+n],
			Time:     int64(ne.Uint64(b[hdrTime:])),
			Num:      int(ne.Uint64(b[hdrNum:])),
			WireLen:  int(ne.Uint32(b[hdrWire:])),
			LinkType: capture.LinkType(ne.Uint32(b[hdrLink:])),
			Dir:      correlate.LinkDir(b[hdrDir]),
		}
		fn(&rf)
		off += spooledLen(n)
	}
}

var ne = binary.NativeEndian

// spool correlates the frames of a live capture while the capture runs:
// pass its sinks to afpacket.Run, call close once it returned.
type spool struct {
	feed  *feed
	queue chan *slab
	free  chan *slab
	done  chan struct{}
	sinks []afpacket.Sink

	mu    sync.Mutex // capture goroutines allocate slabs
	slabs []*slab    // every slab mapped, to unmap at Close
	limit int        // the spool's size in slabs
	full  atomic.Bool
}

// startSpool starts correlating into eng the frames of points capture
// points. spoolBytes bounds what is captured but not yet correlated (<= 0:
// DefaultSpoolBytes). captured, if set, sees every frame on its point's
// capture goroutine as it is captured (counters, a file per point); it must
// not keep rf.Data.
func startSpool(eng *correlate.Engine, points, spoolBytes int, captured func(point int, rf *capture.RawFrame)) (*spool, error) {
	if spoolBytes <= 0 {
		spoolBytes = DefaultSpoolBytes
	}
	n := max(minSpoolSlabs, points, spoolBytes/slabBytes)
	l := &spool{
		feed:  newFeed(eng, 0),
		queue: make(chan *slab, n),
		free:  make(chan *slab, n),
		done:  make(chan struct{}),
		limit: n,
	}
	for p := range points {
		// A slab per point up front: a capture goroutine can always make
		// progress, even if mapping more fails.
		sl, err := newSlab(slabBytes)
		if err != nil {
			l.unmap()
			return nil, err
		}
		l.slabs = append(l.slabs, sl)
		l.sinks = append(l.sinks, &liveSink{live: l, point: p, tap: captured, cur: sl})
	}
	go func() {
		defer close(l.done)
		for sl := range l.queue {
			l.feed.addRaw(sl)
			sl.used = 0
			l.free <- sl
		}
		l.feed.flush()
	}()
	return l, nil
}

// Close waits until every frame handed over is correlated and releases the
// spool. Call it after afpacket.Run returned (every sink has flushed); the
// sinks must not be used afterwards.
func (l *spool) close() {
	close(l.queue)
	<-l.done
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

// get returns an empty slab: a recycled one, a new one while the spool has
// room, else the next one the correlator frees (the capture waits, and its
// ring fills).
func (l *spool) get() *slab {
	select {
	case sl := <-l.free:
		return sl
	default:
	}
	l.mu.Lock()
	if len(l.slabs) < l.limit {
		if sl, err := newSlab(slabBytes); err == nil {
			l.slabs = append(l.slabs, sl)
			l.mu.Unlock()
			return sl
		}
		l.limit = len(l.slabs) // out of memory: make do with what there is
	}
	l.mu.Unlock()
	l.full.Store(true)
	return <-l.free
}

// filled reports whether a capture goroutine ever had to wait for the
// correlator (its ring then absorbed the wait, or dropped).
func (l *spool) filled() bool { return l.full.Load() }

// liveSink is one point's spooler; only its capture goroutine touches it.
type liveSink struct {
	live  *spool
	point int
	tap   func(int, *capture.RawFrame)
	cur   *slab
}

func (s *liveSink) Frame(rf *capture.RawFrame) {
	if s.tap != nil {
		s.tap(s.point, rf)
	}
	if s.cur != nil && s.cur.used+spooledLen(len(rf.Data)) > len(s.cur.mem) {
		s.Idle()
	}
	if s.cur == nil {
		s.cur = s.live.get()
	}
	if room := len(s.cur.mem) - hdrLen; len(rf.Data) > room {
		// Cannot happen: a ring block (128 KiB) is smaller than a slab.
		c := *rf
		c.Data = c.Data[:room]
		rf = &c
	}
	s.cur.point = s.point
	s.cur.put(rf)
}

// Idle hands the slab over, however full: the ring is empty, so its frames
// would otherwise wait for the next burst.
func (s *liveSink) Idle() {
	if s.cur == nil || s.cur.used == 0 {
		return
	}
	s.live.queue <- s.cur
	s.cur = nil
}
