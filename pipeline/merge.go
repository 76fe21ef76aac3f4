package pipeline

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/decode"
	"github.com/pathtrace/pathtrace/capture/filter"
	"github.com/pathtrace/pathtrace/correlate"
)

// DefaultReorder is how far back in time a source may jump and still be
// merged in order. `tcpdump -i any` files interleave per-CPU queues and hold
// inversions of a few ms; single-interface files far less.
const DefaultReorder int64 = 50e6

// outlierJump is how far a stamp may leap ahead of a source's others before
// it needs a second frame to confirm it.
const outlierJump int64 = 60e9

// Merger reads several sources at once, decodes their frames and yields
// them merged by stamp. Each source has a sorted reorder buffer: a frame is
// released only once every open source has read past its stamp plus the
// reorder span, so memory depends on the traffic rate and that span, never
// on file sizes.
type Merger struct {
	reorder int64
	inputs  []*mergeInput
	queued  *stampMerge[frameRef] // per input: read, decoded, not yet released
	started bool
	stop    chan struct{} // closed by Close: readers give up
	wg      sync.WaitGroup
	held    *batch // holds the frame Next returned last
	closed  func(point int, ifc capture.Interface, early bool)
	cut     func(point int, why string)
	clocks  []correlate.ClockLine // per point: subtracted from its stamps (nil: none)
	warn    []string
}

type mergeInput struct {
	src     capture.Source
	name    string
	points  []int // iface → point; -1 ignores it (the reader goroutine's)
	dec     *decode.Decoder
	batches chan *batch // decoded frames from the reader goroutine
	spareMu sync.Mutex
	spare   []*batch // batches whose frames were all returned
	cur     *batch
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
	filter   *frameFilter          // the reader goroutine's
}

// batch is up to batchFrames decoded frames; the last batch of a source
// also carries how it ended.
type batch struct {
	frames []correlate.Frame
	owner  *mergeInput
	refs   int // frames of it still buffered or just returned, +1 while being read (merger goroutine)
	eof    bool
	err    error
	warns  []string
	ifaces []capture.Interface
	points []int
}

const (
	batchFrames = 256
	batchesPer  = 4
)

// NewMerger returns a Merger. closed, if not nil, is called for each point
// when its source has no more frames, with the interface as the source
// finally describes it (pcapng statistics come at the end of a file) and
// whether the source ended early (an error, a truncated or broken file).
func NewMerger(reorder int64, closed func(point int, ifc capture.Interface, early bool)) *Merger {
	if reorder <= 0 {
		reorder = DefaultReorder
	}
	return &Merger{reorder: reorder, closed: closed}
}

// OnCut sets a callback for each point of a source that was cut short (a
// truncated or broken file), with why in the reader's words; it is called
// before closed.
func (m *Merger) OnCut(f func(point int, why string)) { m.cut = f }

// Add registers a source. points maps the source's interface indices to
// point indices (-1 ignores one); interfaces the source reveals later (an
// SLL2 ifindex first seen deep in a file) are ignored with a warning.
func (m *Merger) Add(name string, src capture.Source, points []int) {
	in := &mergeInput{src: src, name: name, points: points, dec: decode.New(),
		batches: make(chan *batch, batchesPer)}
	m.inputs = append(m.inputs, in)
}

// Close stops the reader goroutines (an analysis ended early) and waits for
// them; call it before closing the sources.
func (m *Merger) Close() {
	if m.started {
		close(m.stop)
		m.wg.Wait()
		m.started = false
	}
}

// start launches one reader per source: reading and decoding run on the
// other cores while the caller merges and correlates.
func (m *Merger) start() {
	m.started = true
	m.stop = make(chan struct{})
	for _, in := range m.inputs {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			in.produce(m.stop)
		}()
	}
}

// produce reads and decodes the source in batches until it ends or stop.
func (in *mergeInput) produce(stop <-chan struct{}) {
	for {
		b := in.getSpare()
		b.frames = b.frames[:0]
		for len(b.frames) < batchFrames {
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
			b.frames = append(b.frames, correlate.Frame{})
			f := &b.frames[len(b.frames)-1]
			in.dec.DecodeAny(&rf, f)
			in.filter.apply(in.dec, &rf, f)
			f.Point = point
			if point < len(in.clocks) && !in.clocks[point].Zero() {
				f.Time = f.Stamp - in.clocks[point].At(f.Stamp)
			}
			if in.perIface != nil {
				for len(in.perIface) <= rf.Iface {
					in.perIface = append(in.perIface, 0)
				}
				in.perIface[rf.Iface]++
				f.Num = in.perIface[rf.Iface]
			}
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

// SetClocks sets the clock correction of each point (by index): frames
// leave the merger with Time on the reference clock, Stamp as captured.
// Call it before the first Next.
func (m *Merger) SetClocks(lines []correlate.ClockLine) {
	for _, in := range m.inputs {
		in.clocks = lines
	}
}

// SetFilter keeps only frames matching f (nil: all); call it before the
// first Next.
func (m *Merger) SetFilter(f *filter.Filter) {
	for _, in := range m.inputs {
		in.filter = newFrameFilter(f)
	}
}

// FilteredOut is how many frames the filter left out so far.
func (m *Merger) FilteredOut() int {
	n := 0
	for _, in := range m.inputs {
		n += in.filter.filteredOut()
	}
	return n
}

// NumberPerInterface makes the most recently added source number its
// frames per interface (see mergeInput.perIface).
func (m *Merger) NumberPerInterface() {
	if n := len(m.inputs); n > 0 {
		m.inputs[n-1].perIface = []int{}
	}
}

// Warnings collected while merging (sources' own warnings included).
func (m *Merger) Warnings() []string { return m.warn }

// Next returns the next frame in stamp order, or nil at the end. The frame
// is valid until the next call: it lives in its reader's batch, which is
// recycled once every frame of it has been returned.
func (m *Merger) Next() *correlate.Frame {
	if b := m.held; b != nil {
		m.held = nil
		b.unref()
	}
	if m.queued == nil {
		m.queued = newStampMerge[frameRef](len(m.inputs))
	}
	for {
		best := m.queued.earliest()
		// Read ahead until every open source is past the candidate's stamp
		// plus the reorder span, so nothing earlier can still arrive.
		progressed := false
		for i, in := range m.inputs {
			if in.done || (best >= 0 && in.frames > 0 && in.maxTime > m.queued.frontTime(best)+m.reorder) {
				continue
			}
			m.read(i)
			progressed = true
		}
		if progressed {
			continue
		}
		if best < 0 {
			return nil
		}
		r := m.queued.pop(best)
		m.held = r.b
		return &r.b.frames[r.i]
	}
}

func (m *Merger) read(idx int) {
	in := m.inputs[idx]
	if !m.started {
		m.start()
	}
	for in.cur == nil || in.pos == len(in.cur.frames) {
		if in.cur != nil {
			if in.cur.eof {
				m.end(in, in.cur)
				return
			}
			in.cur.unref() // recycles it at once if no frame of it is held
		}
		in.cur, in.pos = <-in.batches, 0
		in.cur.refs = 1 // held by in.cur until all of it is read
	}
	i := in.pos
	in.pos++
	in.cur.refs++
	t := in.cur.frames[i].Time
	in.frames++
	switch {
	case in.frames == 1:
		in.maxTime = t
	case t > in.maxTime+outlierJump && in.jump == 0:
		// A stamp far ahead of the rest (a corrupt record, a clock step)
		// counts only once the next frame confirms it; until then it
		// would stop this source from being read at all.
		in.jump = t
	case t > in.maxTime:
		if in.jump != 0 && t >= in.jump-m.reorder {
			in.maxTime = max(t, in.jump)
		} else if t <= in.maxTime+outlierJump {
			in.maxTime = t
		}
		in.jump = 0
	default:
		in.jump = 0
	}
	*m.queued.push(idx, t) = frameRef{b: in.cur, i: int32(i)}
}

// unref drops one reference; the last one hands the batch back to its
// reader.
func (b *batch) unref() {
	b.refs--
	if b.refs == 0 {
		b.owner.spareMu.Lock()
		b.owner.spare = append(b.owner.spare, b)
		b.owner.spareMu.Unlock()
	}
}

// getSpare is a recycled batch, or a new one: batches held by the reorder
// buffers are not back yet, and waiting for them could deadlock.
func (in *mergeInput) getSpare() *batch {
	in.spareMu.Lock()
	defer in.spareMu.Unlock()
	if n := len(in.spare); n > 0 {
		b := in.spare[n-1]
		in.spare = in.spare[:n-1]
		return b
	}
	return &batch{frames: make([]correlate.Frame, 0, batchFrames), owner: in}
}

// end handles a source's last batch: warnings, and the closed callback per
// point with the interfaces as the source finally describes them.
func (m *Merger) end(in *mergeInput, b *batch) {
	in.done = true
	early := !errors.Is(b.err, io.EOF)
	if early {
		m.warn = append(m.warn, fmt.Sprintf("%s: %v (frames after it ignored)", in.name, b.err))
	}
	why := strings.Join(b.warns, "; ")
	if early {
		why = fmt.Sprintf("%s: %v", in.name, b.err)
	}
	// Readers warn only when they lost or skipped data.
	early = early || len(b.warns) > 0
	m.warn = append(m.warn, b.warns...)
	for _, i := range in.lateSkipped {
		m.warn = append(m.warn, fmt.Sprintf("%s: interface %d first appears after the first %d frames; its frames are ignored", in.name, i, SampleFrames))
	}
	for i, p := range b.points {
		if p < 0 || i >= len(b.ifaces) {
			continue
		}
		if early && m.cut != nil {
			m.cut(p, why)
		}
		if m.closed != nil {
			m.closed(p, b.ifaces[i], early)
		}
	}
}

// frameRef is a buffered frame: where it lives, so ordering never moves
// the (large) frames.
type frameRef struct {
	b *batch
	i int32
}
