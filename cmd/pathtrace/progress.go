package main

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sys/unix"
)

// isTTY reports whether w is a terminal: progress goes only there, so a
// redirected or piped stderr stays clean.
func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// readProgress shows bytes read of the total and the frame rate while
// `analyze` reads large inputs. A nil *readProgress does nothing.
type readProgress struct {
	p      *mpb.Progress
	bar    *mpb.Bar
	frames atomic.Int64
	start  time.Time
}

func newReadProgress(w io.Writer, quiet bool, total int64) *readProgress {
	if quiet || !isTTY(w) || total <= 0 {
		return nil
	}
	rp := &readProgress{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithRefreshRate(200*time.Millisecond)), start: time.Now()}
	rp.bar = rp.p.New(total, mpb.BarStyle(),
		mpb.PrependDecorators(decor.Name("reading "), decor.CountersKibiByte("% .1f / % .1f")),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
			s := time.Since(rp.start).Seconds()
			if s <= 0 {
				return ""
			}
			return fmt.Sprintf("%.0f frames/s", float64(rp.frames.Load())/s)
		})),
		mpb.BarRemoveOnComplete(),
	)
	return rp
}

func (rp *readProgress) update(read int64, frames int) {
	if rp == nil {
		return
	}
	rp.frames.Store(int64(frames))
	rp.bar.SetCurrent(read)
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

func newPointCounters(w io.Writer, quiet bool, names []string) *pointCounters {
	if quiet || !isTTY(w) {
		return nil
	}
	pc := &pointCounters{p: mpb.New(mpb.WithOutput(w), mpb.WithRefreshRate(100*time.Millisecond)), counts: make([]atomic.Int64, len(names))}
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
