package pipeline

import (
	"slices"
	"strings"
	"sync"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/pcapfile"
	"github.com/pathtrace/pathtrace/correlate"
)

// spanScan is the stamps pass of one file (MeasureSpan) started ahead, on
// its own goroutine, while the clock pre-pass reads the first frames: the
// pass took ~40 ms of set1x's 0.8 s before the first frame, on the core
// the pre-pass leaves half idle. It measures on the file's own stamps, so
// the merge takes its span only when no clock drift corrects the file's
// points (one host's bundle, the commonest, or captures too short for a
// drift to show); otherwise it measures again, with the lines, as it did
// without it.
type spanScan struct {
	in   *mergeInput // reopen and points; the pass's progress (Merger.Scan)
	most int64
	stop chan struct{}
	once sync.Once
	done chan struct{}
	span int64 // once done is closed
}

func startSpanScan(reopen func() (capture.Source, error), points []int, most int64) *spanScan {
	s := &spanScan{in: &mergeInput{reopen: reopen, points: points}, most: most, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.span = s.in.measureSpan(most, s.stop)
	}()
	return s
}

// cancel ends the pass early (its span is then most); safe to repeat.
func (s *spanScan) cancel() { s.once.Do(func() { close(s.stop) }) }

// serves reports whether the pass measured what in's own would: the same
// bound, the same interfaces merged, and on their points one constant
// clock offset at most (it moves every stamp alike: steps back stay as
// long; a drift stretches them).
func (s *spanScan) serves(in *mergeInput, most int64) bool {
	if s.most != most || !slices.EqualFunc(s.in.points, in.points, func(a, b int) bool { return (a < 0) == (b < 0) }) {
		return false
	}
	var line *correlate.ClockLine
	for _, p := range in.points {
		if p < 0 || p >= len(in.clocks) {
			continue
		}
		l := &in.clocks[p]
		if l.Drift != 0 || (line != nil && l.Offset != line.Offset) {
			return false
		}
		line = l
	}
	return true
}

// StartSpanScans starts, for every file Open will read twice, its stamps
// pass, to run while the clock pre-pass does; Open hands each to the merge.
// reorder is Open's. The returned func ends the passes not yet done (call
// it when the analysis ends).
func (b *Bundle) StartSpanScans(reorder int64) (stop func()) {
	most := reorderSpan(reorder)
	measure := b.measurable()
	b.scans = make([]*spanScan, len(b.files))
	for fi, f := range b.files {
		if !measure[fi] || strings.HasSuffix(f.format, ".gz") {
			continue
		}
		path := f.path
		b.scans[fi] = startSpanScan(func() (capture.Source, error) { return pcapfile.Open(path) }, b.ifaceMap(fi), most)
	}
	return func() {
		for _, s := range b.scans {
			if s != nil {
				s.cancel()
			}
		}
	}
}
