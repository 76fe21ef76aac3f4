package pipeline

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/pcapfile"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/discover"
)

// stream writes an agent's capture as one pcapng while it runs (`capture
// --out -`, read through `kubectl exec`): path.pcapng's layout (an
// interface per point in path order, the agent record as a section
// comment), its header as soon as every point is armed, then every frame
// in stamp order once it is DefaultLag older than the newest (points hand
// frames over in blocks, out of order between them), flushed every
// streamTick; the statistics blocks (drops, capture windows) at the end.
type stream struct {
	w      io.Writer
	ifaces []capture.Interface
	order  []string
	fail   func(error) // stops the capture when the stream cannot be written

	mu      sync.Mutex
	queued  *stampMerge[streamFrame]
	newest  int64
	free    [][]byte
	err     error
	limit   int      // bytes queued at most: a reader that falls behind costs frames, not the node's memory
	bytes   int      // bytes queued now
	dropped []uint64 // per point: frames the stream had no room for

	ng      *pcapfile.NgWriter // the writer goroutine's, once started
	started bool
	quit    chan struct{}
	done    chan struct{}
}

type streamFrame struct {
	rf  capture.RawFrame
	buf []byte // rf.Data's own copy
}

// streamTick is how often the stream releases and flushes what is old
// enough: a reader sees frames at most DefaultLag plus this late.
const streamTick = 50 * time.Millisecond

// newStream: limit bounds the bytes queued for a slow reader (<= 0:
// DefaultSpoolBytes); frames beyond it are counted as the point's drops.
func newStream(w io.Writer, path *discover.Path, limit int, fail func(error)) (*stream, error) {
	if limit <= 0 {
		limit = DefaultSpoolBytes
	}
	s := &stream{w: w, fail: fail, queued: newStampMerge[streamFrame](len(path.Points)), limit: limit,
		dropped: make([]uint64, len(path.Points)), quit: make(chan struct{}), done: make(chan struct{})}
	for _, p := range path.Points {
		s.ifaces = append(s.ifaces, evidenceInterface(p))
		s.order = append(s.order, p.Name)
	}
	// Checked now (names the pcapng cannot hold), written once armed.
	if _, err := pcapfile.NewNgWriter(io.Discard, s.ifaces, s.order); err != nil {
		return nil, err
	}
	return s, nil
}

// frame queues a copy of one captured frame (a point's capture goroutine).
func (s *stream) frame(point int, rf *capture.RawFrame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	if s.bytes+len(rf.Data) > s.limit {
		s.dropped[point]++
		return
	}
	s.bytes += len(rf.Data)
	var buf []byte
	if n := len(s.free); n > 0 {
		buf, s.free = s.free[n-1][:0], s.free[:n-1]
	}
	buf = append(buf, rf.Data...)
	it := s.queued.push(point, rf.Time)
	it.rf, it.buf = *rf, buf
	it.rf.Data = buf
	s.newest = max(s.newest, rf.Time)
}

// start writes the header (with the section comments) and starts writing
// frames; called once every point is armed.
func (s *stream) start(comments ...string) {
	ng, err := pcapfile.NewNgWriter(s.w, s.ifaces, s.order, comments...)
	if err == nil {
		err = ng.Flush()
	}
	if err != nil {
		s.setErr(err)
		close(s.done)
		return
	}
	s.ng, s.started = ng, true
	go s.run()
}

func (s *stream) run() {
	defer close(s.done)
	t := time.NewTicker(streamTick)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
			s.release(false)
		}
	}
}

// release writes every frame older than the lag (all: every frame) and
// flushes.
func (s *stream) release(all bool) {
	var batch []streamFrame
	s.mu.Lock()
	before := s.newest - int64(DefaultLag)
	if all {
		before = 1<<63 - 1
	}
	for {
		p := s.queued.earliest()
		if p < 0 || s.queued.frontTime(p) >= before {
			break
		}
		f := s.queued.pop(p)
		f.rf.Iface = p
		s.bytes -= len(f.buf)
		batch = append(batch, f)
	}
	failed := s.err != nil
	s.mu.Unlock()
	var err error
	for i := range batch {
		if err == nil && !failed {
			err = s.ng.WriteFrame(batch[i].rf.Iface, batch[i].rf)
		}
	}
	if err == nil && !failed && len(batch) > 0 {
		err = s.ng.Flush()
	}
	s.mu.Lock()
	for i := range batch {
		s.free = append(s.free, batch[i].buf)
	}
	s.mu.Unlock()
	if err != nil {
		s.setErr(err)
	}
}

func (s *stream) setErr(err error) {
	s.mu.Lock()
	first := s.err == nil
	if first {
		s.err = fmt.Errorf("write the capture stream: %w", err)
	}
	s.mu.Unlock()
	if first {
		s.fail(s.err)
	}
}

// stop ends the writer goroutine (idempotent).
func (s *stream) stop() {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	if s.started {
		<-s.done
	}
}

// finish writes what is left and each point's statistics (kernel drops,
// capture window) from the run's result.
func (s *stream) finish(res *correlate.Result) error {
	s.stop()
	if !s.started {
		if s.err != nil {
			return s.err
		}
		return nil
	}
	s.release(true)
	for i, p := range res.Points {
		if i >= len(s.ifaces) {
			break
		}
		// The stream's own drops count as the point's: frames the
		// reader of the stream never gets, as a full ring's would be.
		if d := p.Coverage.KernelDrops; d.Valid || s.dropped[i] > 0 {
			s.ng.SetDrops(i, d.V+s.dropped[i])
		}
		if c := p.Coverage; c.First != nil && c.Last != nil {
			s.ng.SetWindow(i, int64(*c.First), int64(*c.Last))
		}
	}
	if err := s.ng.Close(); err != nil {
		s.setErr(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
