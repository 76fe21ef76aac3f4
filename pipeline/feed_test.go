package pipeline

import (
	"slices"
	"testing"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
)

// TestFeedOrdersInterleavedPoints: frames of two points delivered out of
// stamp order reach the correlator in order, all of them, and only those
// older than the lag before Flush.
func TestFeedOrdersInterleavedPoints(t *testing.T) {
	eng, err := correlate.New(correlate.Config{Points: []correlate.PointSpec{{Name: "a", IfIndex: -1}, {Name: "b", IfIndex: -1}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := newFeed(eng, 10)
	add := func(p int, ts int64) {
		rf := capture.RawFrame{Data: []byte{0}, Time: ts, LinkType: capture.LinkTypeEthernet}
		f.add(p, &rf)
	}
	add(0, 100)
	add(0, 105)
	add(1, 101) // delivered late
	add(1, 103)
	add(0, 130) // newest 130: everything before 120 goes
	if got := f.buffered(); !slices.Equal(got, []int64{130}) {
		t.Fatalf("after release: buffered %v", got)
	}
	add(1, 125)
	add(0, 126)
	add(0, 124) // an inversion within one point
	if got := f.buffered(); !slices.Equal(got, []int64{124, 126, 130, 125}) {
		t.Fatalf("buffered %v, want each point's queue sorted", got)
	}
	f.flush()
	if got := f.buffered(); len(got) != 0 {
		t.Fatalf("flush left %v", got)
	}
	r := eng.Finish()
	if r.Summary.Frames != 8 {
		t.Fatalf("engine saw %d frames, want 8", r.Summary.Frames)
	}
}

// buffered lists the stamps still queued, point by point.
func (f *feed) buffered() []int64 {
	var s []int64
	for p := range f.queued.qs {
		for i := range f.queued.len(p) {
			s = append(s, f.queued.qs[p].At(i).v.t)
		}
	}
	return s
}
