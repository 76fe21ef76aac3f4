// Package analysis is the offline pipeline behind `pathtrace analyze`:
// capture files → bundle of named points in path order → time-ordered merger
// → correlator. The CLI, the benchmarks and the tests all run this one path.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/filter"
	"github.com/pathtrace/pathtrace/correlate"
)

// Options describe one analysis.
type Options struct {
	Inputs  []Input
	Order   []string      // explicit path order by point name
	MTU     int           // link MTU for points whose capture records none
	Window  time.Duration // match window; 0: correlate.DefaultWindow
	Reorder time.Duration // reorder span; 0: DefaultReorder
	Clocks  ClockOptions
	Filter  *filter.Filter // keep only matching frames (nil: all)
	// Sink, if set, receives every trace as the correlator emits it (the
	// Trace is reused afterwards), one call at a time, from whichever of
	// Run's goroutines builds the trace, and the result keeps none, so
	// memory does not grow with the input. Otherwise the first Limit
	// traces are kept in the result (0: all) and the rest only counted.
	Sink  func(*correlate.Trace)
	Limit int
	// Progress, if set, is called now and then, and once more at the end,
	// from Run's goroutine.
	Progress func(Progress)
}

// Progress is how far an analysis has read.
type Progress struct {
	Read, Total int64 // bytes
	Frames      int
	// Scanning: the files are being read for their stamps alone, before
	// the first frame (Merger.MeasureSpan); Read and Total count that
	// pass, Frames is 0.
	Scanning bool
}

// progressEvery is how many frames pass between progress calls and
// cancellation checks: rare enough to cost nothing per frame.
const progressEvery = 1 << 16

// scanTick is how often the stamps pass's progress is reported.
const scanTick = 200 * time.Millisecond

// Run analyses the inputs. Input errors (unreadable files, bad names) come
// before any trace is emitted. When ctx is cancelled it stops reading and
// returns the result so far with ErrInterrupted.
func Run(ctx context.Context, o Options) (*correlate.Result, error) {
	window := int64(o.Window)
	if window <= 0 {
		window = correlate.DefaultWindow
	}
	b, err := OpenBundle(o.Inputs, o.Order, window)
	if err != nil {
		return nil, err
	}
	specsOf := func() []correlate.PointSpec {
		specs := b.Specs()
		for i := range specs {
			if o.MTU > 0 && specs[i].MTU == 0 {
				specs[i].MTU = o.MTU
			}
		}
		return specs
	}
	// The files' stamps passes run while the clock pre-pass reads.
	defer b.StartSpanScans(int64(o.Reorder))()
	clocks, specs, err := planClocks(b, specsOf, o.Clocks, window)
	if err != nil {
		return nil, err
	}
	// A live run's evidence carries the kernel's drops: the traces wait
	// for them.
	drops, lost, noteWarnings := parseDropNotes(b.notes)
	keep := &keeper{limit: o.Limit, hold: len(drops) > 0 || len(lost) > 0}
	if o.Sink != nil {
		keep.sinks, keep.limit = append(keep.sinks, o.Sink), -1
	}
	// Every trace goes to a sink (JSON, HTML): built from a copy by
	// whichever of the merge's goroutine and this one has time (Helped).
	// Otherwise only the first few are (SetSink(nil)).
	cfg := correlate.Config{Points: specs, Window: window, ClockOffsets: clocks.offsets, ClockProblems: clocks.problems,
		Async: o.Sink != nil, Helped: true, CheckOrder: b.OrderListed}
	b.agentConfig(&cfg)
	eng, err := correlate.New(cfg, keep.add)
	if err != nil {
		return nil, err
	}
	keep.enough = func() { eng.SetSink(nil) }
	m, files, err := b.Open(int64(o.Reorder), func(p int, ifc capture.Interface, early bool) {
		eng.Close(p, early)
		if ifc.HasDrops {
			eng.SetDrops(p, ifc.Drops)
		}
		// A capture window recorded at the end of a long pcapng (past the
		// pre-pass) still counts for what is left and for the report.
		if ifc.End != 0 {
			eng.SetCoverage(p, ifc.Start, ifc.End)
		}
	})
	if err != nil {
		return nil, err
	}
	m.OnCut(eng.CutShort)
	m.SetClocks(clocks.lines)
	m.SetFilter(o.Filter)
	if h := eng.Helper(); h != nil {
		m.SetHelper(h)
	}
	defer files.Close()
	defer m.Close() // before the files: its readers may still be reading them
	// Ctrl-C also ends the stamps pass, which holds the first frame back.
	defer context.AfterFunc(ctx, m.Stop)()
	progress := func(n int) {
		if o.Progress != nil {
			read, total := files.Progress()
			o.Progress(Progress{Read: read, Total: total, Frames: n})
		}
	}
	n := 0
	var stopped error
	interrupted := func() {
		stopped = fmt.Errorf("%w after %d frames: %w", ErrInterrupted, n, context.Cause(ctx))
		eng.Warn(fmt.Sprintf("analysis interrupted after %d frames: this report covers only those", n))
	}
	for f := firstFrame(m, o.Progress); f != nil; f, n = m.Next(), n+1 {
		if n%progressEvery == 0 {
			if ctx.Err() != nil {
				interrupted()
				break
			}
			progress(n)
		}
		eng.Add(f)
	}
	if stopped == nil && ctx.Err() != nil {
		interrupted() // Stop ended the merge
	}
	progress(n)
	for _, w := range b.Warnings {
		eng.Warn(w)
	}
	for _, w := range m.Warnings() {
		eng.Warn(w)
	}
	if len(b.OrderInferred) > 0 {
		var names []string
		for _, p := range b.Points {
			names = append(names, p.Name)
		}
		eng.Warn(fmt.Sprintf("point order inferred from the traffic for %s: %s (use --order to override)",
			strings.Join(b.OrderInferred, ", "), strings.Join(names, ",")))
	}
	for _, w := range noteWarnings {
		eng.Warn(w)
	}
	addLostProbes(eng, lost, drops)
	res := eng.Finish()
	keep.release(func(traces []correlate.Trace) { joinDrops(res, traces, drops) })
	res.Traces = keep.kept
	res.Summary.FilteredOut = m.FilteredOut()
	return res, stopped
}

// firstFrame is m's first frame. While the stamps pass holds it back
// (seconds on a bundle of gigabytes from a cold disk) it reports that
// pass's progress every scanTick.
func firstFrame(m *Merger, report func(Progress)) *correlate.Frame {
	if report == nil {
		return m.Next()
	}
	got := make(chan *correlate.Frame, 1)
	go func() { got <- m.Next() }() // Next's caller, until it returns
	tick := time.NewTicker(scanTick)
	defer tick.Stop()
	for {
		select {
		case f := <-got:
			return f
		case <-tick.C:
			if read, total, scanning := m.Scan(); scanning {
				report(Progress{Read: read, Total: total, Scanning: true})
			}
		}
	}
}

// ErrInterrupted: the context was cancelled. Run still returns the result
// of the frames read so far.
var ErrInterrupted = errors.New("analysis interrupted")
