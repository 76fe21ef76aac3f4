package analysis

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
	f := NewFeed(eng, 10)
	add := func(p int, ts int64) {
		rf := capture.RawFrame{Data: []byte{0}, Time: ts, LinkType: capture.LinkTypeEthernet}
		f.Add(p, &rf)
	}
	add(0, 100)
	add(0, 105)
	add(1, 101) // delivered late
	add(1, 103)
	add(0, 130) // newest 130: everything before 120 goes
	if bs := times(f.buf[f.head:]); !slices.Equal(bs, []int64{130}) {
		t.Fatalf("after release: head %d, buffered %v", f.head, times(f.buf[f.head:]))
	}
	add(1, 125)
	add(0, 126)
	if bs := times(f.buf[f.head:]); !slices.Equal(bs, []int64{125, 126, 130}) {
		t.Fatalf("buffer %v, want sorted [125 126 130]", bs)
	}
	f.Flush()
	if f.head != 0 || len(f.buf) != 0 {
		t.Fatalf("flush left %d frames", len(f.buf)-f.head)
	}
	r := eng.Finish()
	if r.Summary.Frames != 7 {
		t.Fatalf("engine saw %d frames, want 7", r.Summary.Frames)
	}
}

func times(fs []correlate.Frame) []int64 {
	var s []int64
	for _, f := range fs {
		s = append(s, f.Time)
	}
	return s
}
