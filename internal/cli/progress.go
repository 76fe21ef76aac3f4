package cli

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pathtrace/pathtrace/internal/iostreams"
	"github.com/pathtrace/pathtrace/pipeline"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// readProgress shows bytes read of the total and the frame rate while
// `analyze` reads large inputs, after the pass that reads their stamps
// alone ("scanning"). A nil *readProgress does nothing.
type readProgress struct {
	p        *mpb.Progress
	bar      *mpb.Bar
	frames   atomic.Int64
	scanning atomic.Bool
	total    int64
	start    atomic.Int64 // ns: the frame rate counts from the read pass's start (the bar's goroutine reads it)
}

func newReadProgress(ios *iostreams.IOStreams, quiet bool, total int64) *readProgress {
	if quiet || !ios.IsStderrTTY() || total <= 0 {
		return nil
	}
	rp := &readProgress{p: mpb.New(mpb.WithOutput(ios.ErrOut), mpb.WithWidth(40), mpb.WithRefreshRate(200*time.Millisecond)), total: total}
	rp.start.Store(time.Now().UnixNano())
	rp.bar = rp.p.New(total, mpb.BarStyle(),
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
			if rp.scanning.Load() {
				return "scanning stamps "
			}
			return "reading "
		}), decor.CountersKibiByte("% .1f / % .1f")),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
			s := time.Since(time.Unix(0, rp.start.Load())).Seconds()
			if s <= 0 || rp.scanning.Load() {
				return ""
			}
			return fmt.Sprintf("%.0f frames/s", float64(rp.frames.Load())/s)
		})),
		mpb.BarRemoveOnComplete(),
	)
	return rp
}

func (rp *readProgress) update(p pipeline.Progress) {
	if rp == nil {
		return
	}
	if rp.scanning.Swap(p.Scanning) && !p.Scanning {
		rp.start.Store(time.Now().UnixNano())
	}
	if p.Total > 0 && p.Total != rp.total {
		rp.total = p.Total
		rp.bar.SetTotal(p.Total, false)
	}
	rp.frames.Store(int64(p.Frames))
	if p.Scanning {
		p.Read = min(p.Read, rp.total-1) // a full bar is removed: the read pass follows
	}
	rp.bar.SetCurrent(p.Read)
}

func (rp *readProgress) done() {
	if rp == nil {
		return
	}
	rp.bar.Abort(true)
	rp.p.Wait()
}

// pointCounters shows a live frame counter per capture point.
type pointCounters struct {
	p      *mpb.Progress
	bars   []*mpb.Bar
	counts []atomic.Int64
}

func newPointCounters(ios *iostreams.IOStreams, quiet bool, names []string) *pointCounters {
	if quiet || !ios.IsStderrTTY() {
		return nil
	}
	pc := &pointCounters{p: mpb.New(mpb.WithOutput(ios.ErrOut), mpb.WithRefreshRate(100*time.Millisecond)), counts: make([]atomic.Int64, len(names))}
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	for i, n := range names {
		pc.bars = append(pc.bars, pc.p.New(0, mpb.NopStyle(),
			mpb.PrependDecorators(decor.Name(n, decor.WC{W: width + 1, C: decor.DindentRight})),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
				return fmt.Sprintf("%d frames", pc.counts[i].Load())
			})),
			mpb.BarRemoveOnComplete(),
		))
	}
	return pc
}

func (pc *pointCounters) frame(point int) {
	if pc == nil || point >= len(pc.counts) {
		return
	}
	pc.counts[point].Add(1)
}

func (pc *pointCounters) done() {
	if pc == nil {
		return
	}
	for _, b := range pc.bars {
		b.Abort(true)
	}
	pc.p.Wait()
}
