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
	"golang.org/x/sys/cpu"
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
// released only once every open source has read past its stamp plus that
// source's span (the reorder span, or less: MeasureSpan), so memory depends
// on the traffic rate and the spans, never on file sizes.
//
// The correlator (the caller of Next) has a core to itself; the merge
// goroutine reads and decodes the sources' frames into batches
// (mergeread.go), orders them by their stamps alone and copies each, as it
// leaves its reorder buffer, into batches for Next, which returns them in
// place. The frames the correlator reads were written a moment ago, in one
// stream, not a reorder span ago in five: handing out references into the
// sources' batches instead saves the copy but costs the correlator's core
// more in cache misses than it saves.
//
// A source read twice (MeasureSpan: a plain file, its pages in the page
// cache after the stamps pass) is read by the merge goroutine itself, when
// it needs the source's next batch. A source slow to read (gzip, a pipe, a
// bundle too large to read twice) has a goroutine of its own reading
// ahead. A reader goroutine per file ran wherever the scheduler put it,
// often on the correlator's core while it waited, so frames crossed cores
// twice and every batch woke a goroutine: reading inline takes 5-7% less
// CPU (set1x 0.86 -> 0.80 s, 10 interleaved runs; set10x 6.19 -> 5.86 s)
// at the same wall time; a gzip bundle read inline took 20% longer.
type Merger struct {
	reorder int64
	minSpan int64 // the least span measured (minSpan; tests lower it)
	inputs  []*mergeInput
	started bool
	stop    chan struct{} // closed by Stop: the goroutines give up
	helper  Helper        // SetHelper
	ready   <-chan struct{}
	stopper sync.Once
	wg      sync.WaitGroup
	closed  func(point int, ifc capture.Interface, early bool)
	cut     func(point int, why string)
	warn    []string // the caller's (Next's goroutine)

	// The merge goroutine's.
	queued *stampMerge[rawRef] // per input: read, not yet released

	// Between the merge goroutine and Next: decoded batches in order, and
	// the empty ones back.
	out   chan *frameBatch
	spare chan *frameBatch
	// Next's: the batch being handed out and where. pos changes once a
	// frame: on a cache line of its own, or the merge goroutine, reading
	// queued as often, misses its cache each time.
	_        cpu.CacheLinePad
	cur      *frameBatch
	pos, ev  int
	finished bool
	_        cpu.CacheLinePad
}

// rawRef is a record waiting in a reorder buffer: where it lives, so
// ordering never moves it.
type rawRef struct {
	b *rawBatch
	i int32
}

// frameBatch is decoded frames in merge order. A source's end comes as an
// event at the position it had in the stream, so Next reports it exactly
// where the single-goroutine merger did (the correlator's coverage depends
// on it).
type frameBatch struct {
	frames []correlate.Frame
	ends   []endEvent
	last   bool // nothing follows
}

// endEvent: input in ended (its last batch b) before frames[at].
type endEvent struct {
	at int
	in *mergeInput
	b  *rawBatch
}

const (
	outFrames = 256 // per frameBatch: tens of KiB in flight, cache-sized
	// outBatches are queued between the merge goroutine and Next: 8,192
	// frames, 2.4 MiB. The merge goroutine, which also reads the plain
	// files, shares its core with the GC (and any reader goroutines), and
	// falls behind for a while now and then: with 4 batches the
	// correlator waited for one ~650 times on set1x, 95 of its 580 ms, and
	// the analysis took 0.75 s; with 16, ~30–40 times and 0.66 s; with 32
	// 0.59 s where 16 took 0.62 (64: no faster, 2 MiB more).
	outBatches = 32
)

// NewMerger returns a Merger. closed, if not nil, is called for each point
// when its source has no more frames, with the interface as the source
// finally describes it (pcapng statistics come at the end of a file) and
// whether the source ended early (an error, a truncated or broken file).
func NewMerger(reorder int64, closed func(point int, ifc capture.Interface, early bool)) *Merger {
	return &Merger{reorder: reorderSpan(reorder), minSpan: minSpan, closed: closed, stop: make(chan struct{})}
}

// reorderSpan is the reorder span a merger given reorder uses.
func reorderSpan(reorder int64) int64 {
	if reorder <= 0 {
		return DefaultReorder
	}
	return reorder
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
		raw: newBatchSource(src), rfs: make([]capture.RawFrame, 0, readFrames)}
	m.inputs = append(m.inputs, in)
}

// Stop makes Next return nil from now on (an interrupted analysis), also
// while it waits for the first frame behind the stamps pass; safe from any
// goroutine.
func (m *Merger) Stop() {
	m.stopper.Do(func() {
		close(m.stop)
		for _, in := range m.inputs {
			if in.pre != nil {
				in.pre.cancel()
			}
		}
	})
}

// Close stops the goroutines (an analysis ended early) and waits for them;
// call it before closing the sources.
func (m *Merger) Close() {
	m.Stop()
	if m.started {
		m.wg.Wait()
		m.started = false
	}
}

// start launches the merge goroutine and a reader for each source read
// ahead.
func (m *Merger) start() {
	m.started = true
	m.out = make(chan *frameBatch, outBatches)
	// Enough that the merge goroutine always finds one: outBatches queued,
	// one held by Next, one being filled.
	m.spare = make(chan *frameBatch, outBatches+2)
	for range outBatches + 2 {
		m.spare <- &frameBatch{frames: make([]correlate.Frame, 0, outFrames)}
	}
	m.queued = newStampMerge[rawRef](len(m.inputs))
	for _, in := range m.inputs {
		if in.reopen != nil {
			continue // read by the merge goroutine (see Merger)
		}
		in.batches = make(chan *rawBatch, batchesPer)
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			in.produce(m.stop, m.reorder, m.minSpan)
		}()
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.merge()
	}()
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

// MeasureSpan makes the most recently added source measure, before it is
// merged, how far back in time its frames jump: reopen opens the same
// capture again, read once for the stamps alone (mergeread.go). Its span is
// then that, at most the reorder span, instead of the reorder span: a
// capture in stamp order is read no further ahead than the others need.
func (m *Merger) MeasureSpan(reopen func() (capture.Source, error)) {
	if n := len(m.inputs); n > 0 {
		m.inputs[n-1].reopen = reopen
	}
}

// Scan tells how far the stamps pass (MeasureSpan) has read: bytes of the
// sources that measure, read and in all (as far as they tell: pcapfile's
// files do), and whether any is still at it. Safe from any goroutine.
func (m *Merger) Scan() (read, total int64, scanning bool) {
	for _, in := range m.inputs {
		if in.reopen == nil {
			continue
		}
		var all int64
		if p, ok := in.src.(progresser); ok {
			_, all = p.Progress()
		}
		total += max(all, 0)
		st := in
		if in.onPre.Load() {
			st = in.pre.in
		}
		switch sc := st.scan.Load(); {
		case st.scanned.Load():
			read += max(all, 0)
		case sc != nil:
			r, _ := (*sc).Progress()
			read += min(r, max(all, 0))
			scanning = true
		default:
			scanning = true
		}
	}
	return read, total, scanning
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
// is valid until the next call: it lives in a batch that is recycled once
// every frame of it has been returned.
func (m *Merger) Next() *correlate.Frame {
	if m.finished {
		return nil
	}
	if !m.started {
		select {
		case <-m.stop:
			m.finished = true
			return nil
		default:
		}
		if len(m.inputs) == 0 {
			m.finished = true
			return nil
		}
		m.start()
	}
	for {
		if b := m.cur; b != nil {
			for m.ev < len(b.ends) && b.ends[m.ev].at == m.pos {
				m.end(b.ends[m.ev].in, b.ends[m.ev].b)
				m.ev++
			}
			if m.pos < len(b.frames) {
				m.pos++
				return &b.frames[m.pos-1]
			}
			if b.last {
				m.finished = true
				return nil
			}
			m.spare <- b // never blocks: the channel holds every batch
		}
		for len(m.out) == 0 && m.help() {
		}
		select {
		case m.cur = <-m.out:
			m.pos, m.ev = 0, 0
		case <-m.stop:
			m.cur, m.finished = nil, true
			return nil
		}
	}
}

// merge is the merge goroutine: it reads ahead until every open source is
// past the earliest queued frame's stamp plus the source's span, so nothing
// earlier can still arrive, then copies that frame into the batch for Next.
func (m *Merger) merge() {
	m.beginInline()
	ob := m.nextBatch()
	if ob == nil {
		return
	}
	// Only read changes what the pass over the inputs decides on: while
	// the open input that read least far is past best's stamp plus the
	// span, the pass would read nothing, and best leaves at once.
	lowest, started, known := int64(0), false, false
	for {
		best := m.queued.earliest()
		if !known {
			lowest, started = m.lowest()
			known = true
		}
		if best < 0 || !started || lowest <= m.queued.frontTime(best) {
			progressed := false
			for i, in := range m.inputs {
				if in.done || (best >= 0 && in.frames > 0 && in.maxTime-in.span > m.queued.frontTime(best)) {
					continue
				}
				if !m.read(i, ob) {
					return
				}
				progressed = true
			}
			if progressed {
				known = false
				continue
			}
			if best < 0 {
				ob.last = true
				m.send(ob)
				return
			}
		}
		r := m.queued.pop(best)
		// Grown, then assigned in place: append builds the 300-byte frame
		// on the stack first and copies it twice.
		n := len(ob.frames)
		ob.frames = ob.frames[:n+1]
		ob.frames[n] = r.b.frames[r.i]
		r.b.unref()
		if len(ob.frames) == outFrames {
			if !m.send(ob) {
				return
			}
			if ob = m.nextBatch(); ob == nil {
				return
			}
		}
	}
}

// beginInline sets the span of every source the merge goroutine reads
// itself, all at once, before their first batches: a span the stamps pass
// started ahead cannot serve (clock drift) is measured by reading the file
// again, and those reads overlap, as the reader goroutines' did.
func (m *Merger) beginInline() {
	var wg sync.WaitGroup
	for _, in := range m.inputs {
		if in.batches == nil {
			wg.Go(func() { in.begin(m.stop, m.reorder, m.minSpan) })
		}
	}
	wg.Wait()
}

// lowest is the least stamp an open input may still produce (its maxTime
// less its span), and whether every one of them has read a frame (the
// merge goroutine's).
func (m *Merger) lowest() (low int64, started bool) {
	low = 1<<63 - 1
	for _, in := range m.inputs {
		if in.done {
			continue
		}
		if in.frames == 0 {
			return 0, false
		}
		low = min(low, in.maxTime-in.span)
	}
	return low, true
}

// nextBatch is an empty batch to fill, nil once stopped. Rather than
// wait for one, it does the helper's work (mergehelp.go).
func (m *Merger) nextBatch() *frameBatch {
	for {
		select {
		case b := <-m.spare:
			return b.empty()
		default:
		}
		if m.help() {
			continue
		}
		select {
		case b := <-m.spare:
			return b.empty()
		case <-m.stop:
			return nil
		case <-m.ready:
		}
	}
}

// empty is b emptied for filling.
func (b *frameBatch) empty() *frameBatch {
	b.frames, b.ends, b.last = b.frames[:0], b.ends[:0], false
	return b
}

// send hands a batch to Next; false once stopped. Rather than wait, it
// does the helper's work.
func (m *Merger) send(b *frameBatch) bool {
	for {
		select {
		case m.out <- b:
			return true
		default:
		}
		if m.help() {
			continue
		}
		select {
		case m.out <- b:
			return true
		case <-m.stop:
			return false
		case <-m.ready:
		}
	}
}

// read queues the next frame of input idx (the merge goroutine's); at the
// source's end it notes the end in ob instead. False once stopped.
func (m *Merger) read(idx int, ob *frameBatch) bool {
	in := m.inputs[idx]
	for in.cur == nil || in.pos == len(in.cur.times) {
		if in.cur != nil {
			if in.cur.eof {
				in.done = true
				ob.ends = append(ob.ends, endEvent{at: len(ob.frames), in: in, b: in.cur})
				return true
			}
			in.cur.unref() // recycles it at once if no frame of it is queued
		}
		if in.batches != nil {
			select {
			case in.cur = <-in.batches:
			case <-m.stop:
				return false
			}
		} else {
			select {
			case <-m.stop:
				return false
			default:
			}
			in.cur = in.getSpare()
			in.fill(in.cur)
		}
		in.pos = 0
		in.cur.refs = 1 // held by in.cur until all of it is read
	}
	i := in.pos
	in.pos++
	in.cur.refs++
	t := in.cur.times[i]
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
	*m.queued.push(idx, t) = rawRef{b: in.cur, i: int32(i)}
	return true
}

// end handles a source's last batch (on Next's goroutine, at the source's
// place in the stream): warnings, and the closed callback per point with
// the interfaces as the source finally describes them.
func (m *Merger) end(in *mergeInput, b *rawBatch) {
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
