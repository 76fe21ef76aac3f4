package pipeline

import (
	"sync"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
)

// The merger's reading side: one goroutine per source copies its records,
// as read, into raw batches, with each record's stamp on the reference
// clock. Nothing is decoded here: a decoded frame is three times the size
// of its bytes, and the reorder span holds tens of thousands of records,
// which as raw bytes stay in cache until the merge decodes them.

// mergeInput is one source of the merger.
type mergeInput struct {
	src     capture.Source
	name    string
	points  []int          // iface → point; -1 ignores it (the reader goroutine's)
	batches chan *rawBatch // filled by the reader goroutine
	spareMu sync.Mutex
	spare   []*rawBatch // batches whose records were all merged
	// The merge goroutine's: the batch being read and where.
	cur     *rawBatch
	pos     int
	maxTime int64
	done    bool
	frames  int
	jump    int64 // an unconfirmed stamp far ahead of maxTime
	// lateSkipped: interfaces first seen after the points were set up
	// (reader goroutine's until the last batch).
	lateSkipped []int
	// perIface numbers frames per interface instead of per file: set for
	// pcapng files pathtrace wrote, whose interfaces hold the same frames as
	// the per-point .cap files written beside them.
	perIface []int
	clocks   []correlate.ClockLine // the merger's, read by the reader goroutine
}

// rawBatch is up to rawBatchFrames records of one source, their bytes back
// to back; the last batch of a source also carries how it ended.
type rawBatch struct {
	owner  *mergeInput
	data   []byte
	recs   []rawRec
	refs   int // records of it still queued, +1 while being read (merge goroutine)
	eof    bool
	err    error
	warns  []string
	ifaces []capture.Interface
	points []int
}

// rawRec is one record of a raw batch: what the merge orders by and what
// decoding needs besides the bytes.
type rawRec struct {
	t     int64 // on the reference clock: the merge's key
	stamp int64 // as captured
	num   int
	wire  int
	off   int32 // data[off:off+n]
	n     int32
	point int32
	link  capture.LinkType
	dir   correlate.LinkDir
}

const (
	rawBatchFrames = 256
	// rawBatchBytes ends a batch early when its frames are large, so what
	// the reorder span holds depends on the frame rate, not frame sizes.
	rawBatchBytes = 64 << 10
	batchesPer    = 4
)

// produce reads the source in batches until it ends or stop.
func (in *mergeInput) produce(stop <-chan struct{}) {
	for {
		b := in.getSpare()
		b.data, b.recs = b.data[:0], b.recs[:0]
		for len(b.recs) < rawBatchFrames && len(b.data) < rawBatchBytes {
			rf, err := in.src.Next()
			if err != nil {
				b.eof, b.err = true, err
				b.warns = in.src.Warnings()
				b.ifaces = in.src.Interfaces()
				b.points = in.points
				break
			}
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
			num := rf.Num
			if in.perIface != nil {
				for len(in.perIface) <= rf.Iface {
					in.perIface = append(in.perIface, 0)
				}
				in.perIface[rf.Iface]++
				num = in.perIface[rf.Iface]
			}
			t := rf.Time
			if point < len(in.clocks) && !in.clocks[point].Zero() {
				t = rf.Time - in.clocks[point].At(rf.Time)
			}
			b.recs = append(b.recs, rawRec{t: t, stamp: rf.Time, num: num, wire: rf.WireLen,
				off: int32(len(b.data)), n: int32(len(rf.Data)), point: int32(point), link: rf.LinkType, dir: rf.Dir})
			b.data = append(b.data, rf.Data...)
		}
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

// frame is record i of b as the decoder takes it.
func (b *rawBatch) frame(i int) (capture.RawFrame, *rawRec) {
	r := &b.recs[i]
	end := r.off + r.n
	return capture.RawFrame{Data: b.data[r.off:end:end], Time: r.stamp, WireLen: r.wire,
		LinkType: r.link, Dir: r.dir, Num: r.num}, r
}

// unref drops one reference; the last one hands the batch back to its
// reader.
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
	return &rawBatch{owner: in, data: make([]byte, 0, rawBatchBytes+2048), recs: make([]rawRec, 0, rawBatchFrames)}
}
