package pipeline

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/decode"
	"github.com/pathtrace/pathtrace/correlate"
	"golang.org/x/sys/cpu"
)

// The merger's reading side: the merge goroutine (or, for a source read
// ahead, the source's own reader goroutine: see Merger) reads a source's
// records and decodes each while its bytes are in cache, straight into the
// batch it waits in. A batch also keeps its frames' stamps on the
// reference clock apart, dense: the merge orders by those alone.

// mergeInput is one source of the merger.
type mergeInput struct {
	src    capture.Source
	name   string
	points []int // iface → point; -1 ignores it (the reading side's)
	// batches, for a source read ahead, come from its reader goroutine
	// (produce); nil: the merge goroutine reads the source itself.
	batches chan *rawBatch
	spareMu sync.Mutex
	spare   []*rawBatch // batches whose records were all merged
	// The merge goroutine's: the batch being read and where. Written once
	// a frame, so on cache lines of their own: beside what a reader
	// goroutine reads as often (points, perIface, clocks), each write
	// would take the line from the other core.
	_       cpu.CacheLinePad
	cur     *rawBatch
	pos     int
	maxTime int64
	done    bool
	frames  int
	jump    int64 // an unconfirmed stamp far ahead of maxTime
	// span is how far back in time the source may jump, set before its
	// first batch (begin), read by the merge goroutine after it, as often
	// as the fields beside it.
	span int64
	_    cpu.CacheLinePad
	// lateSkipped: interfaces first seen after the points were set up
	// (the reading side's until the last batch).
	lateSkipped []int
	// perIface numbers frames per interface instead of per file: set for
	// pcapng files pathtrace wrote, whose interfaces hold the same frames as
	// the per-point .cap files written beside them.
	perIface []int
	clocks   []correlate.ClockLine // the merger's, read by the reading side
	// reopen, if set, opens the source again to measure span.
	reopen func() (capture.Source, error)
	// pre, if set, is the stamps pass started ahead of the merge
	// (spanscan.go); onPre: the merge takes its span (Merger.Scan then
	// reports its progress).
	pre   *spanScan
	onPre atomic.Bool
	// The stamps pass's source while it reads (for Merger.Scan), and
	// whether the pass is over.
	scan    atomic.Pointer[progresser]
	scanned atomic.Bool
	// The reading side's reading and decoding.
	raw    batchSource
	rfs    []capture.RawFrame // read, not yet decoded: rfs[next:]
	next   int
	dec    *decode.Decoder
	filter *frameFilter
	_      cpu.CacheLinePad // next, written once a frame, apart from the next input's fields
}

// batchSource reads several frames a call, valid until the next call
// (pcapfile.Reader); oneByOne makes one of any capture.Source.
type batchSource interface {
	NextBatch(rfs []capture.RawFrame) (int, error)
}

type oneByOne struct{ capture.Source }

func (o oneByOne) NextBatch(rfs []capture.RawFrame) (int, error) {
	rf, err := o.Next()
	if err != nil {
		return 0, err
	}
	rfs[0] = rf
	return 1, nil
}

// newBatchSource reads src a batch at a time where it can.
func newBatchSource(src capture.Source) batchSource {
	if b, ok := src.(batchSource); ok {
		return b
	}
	return oneByOne{src}
}

// rawBatch is up to rawBatchFrames decoded frames of one source, in
// reading order; the last batch of a source also carries how it ended.
type rawBatch struct {
	owner  *mergeInput
	frames []correlate.Frame
	times  []int64 // frames[i].Time
	refs   int     // frames of it still queued, +1 while being read (merge goroutine)
	eof    bool
	err    error
	warns  []string
	ifaces []capture.Interface
	points []int
}

const (
	rawBatchFrames = 256
	batchesPer     = 4
	readFrames     = 256 // frames read a call of NextBatch, at most
)

// minSpan is the least span a source is given, however well ordered: a
// merge that reads every source only up to the next frame released makes
// a pass over the sources per frame; 1 ms ahead (a flood's ~1,000
// frames, ~300 KiB) lets a pass read from every source at once.
const minSpan int64 = 1e6

// begin sets the source's span before its first batch: with reopen set,
// it measures it (at least floor, at most reorder).
func (in *mergeInput) begin(stop <-chan struct{}, reorder, floor int64) {
	in.span = reorder
	if in.reopen != nil {
		in.span = min(max(in.spanOf(reorder, stop), floor), reorder)
	}
}

// produce reads a source that is read ahead (not one the merge reads
// itself: see Merger) in batches, on a goroutine of its own, until it ends
// or stop.
func (in *mergeInput) produce(stop <-chan struct{}, reorder, floor int64) {
	in.begin(stop, reorder, floor)
	for {
		b := in.getSpare()
		in.fill(b)
		select {
		case in.batches <- b:
		case <-stop:
			return
		}
		if b.eof {
			return
		}
	}
}

// fill reads and decodes the source's next batch into b.
func (in *mergeInput) fill(b *rawBatch) {
	b.frames, b.times = b.frames[:0], b.times[:0]
	for len(b.frames) < rawBatchFrames {
		if in.next == len(in.rfs) {
			n, err := in.raw.NextBatch(in.rfs[:cap(in.rfs)])
			if err != nil {
				b.eof, b.err = true, err
				b.warns = in.src.Warnings()
				b.ifaces = in.src.Interfaces()
				b.points = in.points
				break
			}
			in.rfs, in.next = in.rfs[:n], 0
		}
		rf := &in.rfs[in.next]
		in.next++
		point := -1
		if rf.Iface >= 0 && rf.Iface < len(in.points) {
			point = in.points[rf.Iface]
		} else if rf.Iface >= 0 {
			// An interface the source revealed only now (an SLL2
			// ifindex deep in a file) has no point: note it once.
			for len(in.points) <= rf.Iface {
				in.points = append(in.points, -1)
			}
			in.lateSkipped = append(in.lateSkipped, rf.Iface)
		}
		if point < 0 {
			continue
		}
		if in.perIface != nil {
			for len(in.perIface) <= rf.Iface {
				in.perIface = append(in.perIface, 0)
			}
			in.perIface[rf.Iface]++
			rf.Num = in.perIface[rf.Iface]
		}
		b.frames = b.frames[:len(b.frames)+1]
		f := &b.frames[len(b.frames)-1]
		in.dec.DecodeAny(rf, f)
		in.filter.apply(in.dec, rf, f)
		f.Point = point
		f.Time = in.refTime(point, f.Stamp)
		b.times = append(b.times, f.Time)
	}
}

// ahead gives in the stamps pass started for it ahead of the merge.
func (in *mergeInput) ahead(s *spanScan) {
	in.pre = s
	in.onPre.Store(true)
}

// spanOf measures in's span (at most most): the pass started ahead when it
// measured what in's own would, else in's own.
func (in *mergeInput) spanOf(most int64, stop <-chan struct{}) int64 {
	if pre := in.pre; pre != nil {
		if pre.serves(in, most) {
			select {
			case <-pre.done:
				return pre.span
			case <-stop:
				return most
			}
		}
		pre.cancel()
		in.onPre.Store(false)
	}
	return in.measureSpan(most, stop)
}

// refTime is stamp, taken at point, on the reference clock.
func (in *mergeInput) refTime(point int, stamp int64) int64 {
	if point < len(in.clocks) && !in.clocks[point].Zero() {
		return stamp - in.clocks[point].At(stamp)
	}
	return stamp
}

// measureSpan reads the source once more (reopened), stamps only, and
// returns how far the stamps of its points' frames, on the reference
// clock as the merge sees them, ever fall behind the newest before them:
// the span the merge needs for it, capped at most. A source that cannot
// be reopened or read gets most (the read proper reports why), and so
// does one whose merge stopped meanwhile.
func (in *mergeInput) measureSpan(most int64, stop <-chan struct{}) int64 {
	defer in.scanned.Store(true)
	src, err := in.reopen()
	if err != nil {
		return most
	}
	defer src.Close()
	if p, ok := src.(progresser); ok {
		in.scan.Store(&p)
	}
	m := spanMeter{newest: -1 << 63, most: most}
	ss, ok := src.(stampSource)
	if !ok {
		ss = framesAsStamps{newBatchSource(src), make([]capture.RawFrame, readFrames)}
	}
	ts, ifaces := make([]int64, readFrames), make([]int, readFrames)
	for {
		select {
		case <-stop:
			return most
		default:
		}
		n, err := ss.Stamps(ts, ifaces)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return m.span
			}
			return most
		}
		for i, iface := range ifaces[:n] {
			if iface < 0 || iface >= len(in.points) || in.points[iface] < 0 {
				continue // as fill: no point, not merged
			}
			if m.add(in.refTime(in.points[iface], ts[i])) {
				return most
			}
		}
	}
}

// progresser tells how many bytes a source has read of how many
// (pcapfile's files); safe from any goroutine.
type progresser interface {
	Progress() (read, total int64)
}

// stampSource reads the stamps and interfaces of frames alone
// (pcapfile.Reader, NgReader).
type stampSource interface {
	Stamps(ts []int64, ifaces []int) (int, error)
}

// framesAsStamps is a stampSource reading whole frames.
type framesAsStamps struct {
	bs  batchSource
	rfs []capture.RawFrame
}

func (f framesAsStamps) Stamps(ts []int64, ifaces []int) (int, error) {
	n, err := f.bs.NextBatch(f.rfs[:min(len(ts), len(f.rfs))])
	for i := range f.rfs[:n] {
		ts[i], ifaces[i] = f.rfs[i].Time, f.rfs[i].Iface
	}
	return n, err
}

// spanMeter follows the largest step back of a stream of stamps.
type spanMeter struct {
	newest, span, most int64
}

// add takes the next stamp; true once the span reached most.
func (m *spanMeter) add(t int64) bool {
	if t > m.newest {
		m.newest = t
	} else if m.newest-t > m.span {
		m.span = min(m.newest-t, m.most)
	}
	return m.span >= m.most
}

// unref drops one reference; the last one hands the batch back to its
// source's reading side.
func (b *rawBatch) unref() {
	b.refs--
	if b.refs == 0 {
		b.owner.spareMu.Lock()
		b.owner.spare = append(b.owner.spare, b)
		b.owner.spareMu.Unlock()
	}
}

// getSpare is a recycled batch, or a new one: batches held by the reorder
// buffers are not back yet, and waiting for them could deadlock.
func (in *mergeInput) getSpare() *rawBatch {
	in.spareMu.Lock()
	defer in.spareMu.Unlock()
	if n := len(in.spare); n > 0 {
		b := in.spare[n-1]
		in.spare = in.spare[:n-1]
		return b
	}
	return &rawBatch{owner: in, frames: make([]correlate.Frame, 0, rawBatchFrames), times: make([]int64, 0, rawBatchFrames)}
}
