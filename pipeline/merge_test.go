package pipeline

import (
	"io"
	"slices"
	"testing"

	"github.com/pathtrace/pathtrace/capture"
)

// MemorySource replays frames held in memory as a
// capture.Source, one interface per source.
type MemorySource struct {
	Iface  capture.Interface
	Frames []capture.RawFrame
	next   int
}

var _ capture.Source = (*MemorySource)(nil)

func (m *MemorySource) Next() (capture.RawFrame, error) {
	if m.next >= len(m.Frames) {
		return capture.RawFrame{}, io.EOF
	}
	rf := m.Frames[m.next]
	m.next++
	rf.Iface = 0
	return rf, nil
}

func (m *MemorySource) Interfaces() []capture.Interface { return []capture.Interface{m.Iface} }
func (m *MemorySource) Warnings() []string              { return nil }
func (m *MemorySource) Close() error                    { return nil }

func memSource(times ...int64) *MemorySource {
	m := &MemorySource{}
	for i, t := range times {
		m.Frames = append(m.Frames, capture.RawFrame{Data: []byte{0}, Time: t, Num: i + 1, LinkType: capture.LinkTypeEthernet})
	}
	return m
}

// TestMergerOrdersWithinReorderSpan: sources with inversions (an `-i any`
// file) come out in stamp order, equal stamps in source order, every frame
// once; closed is called per point at the end of its source.
func TestMergerOrdersWithinReorderSpan(t *testing.T) {
	var closed []int
	m := NewMerger(100, func(p int, _ capture.Interface, early bool) {
		closed = append(closed, p)
		if early {
			t.Errorf("point %d: clean end reported as early", p)
		}
	})
	m.Add("a", memSource(10, 30, 20, 50, 40, 60), []int{0}) // inversions of 10
	m.Add("b", memSource(20, 25, 90), []int{1})
	m.Add("c", memSource(), []int{2})
	var got []int64
	var pts []int
	for f := m.Next(); f != nil; f = m.Next() {
		got = append(got, f.Time)
		pts = append(pts, f.Point)
	}
	want := []int64{10, 20, 20, 25, 30, 40, 50, 60, 90}
	if !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	// b's 20 is read (arrives) before a's late 20: equal stamps keep arrival order.
	if pts[1] != 1 || pts[2] != 0 {
		t.Errorf("equal stamps out of arrival order: points %v", pts)
	}
	slices.Sort(closed)
	if !slices.Equal(closed, []int{0, 1, 2}) {
		t.Errorf("closed %v", closed)
	}
}

// TestMergerFramesBeyondSpan: an inversion larger than the reorder span is
// not lost, only released late (the correlator tolerates it within its window).
func TestMergerFramesBeyondSpan(t *testing.T) {
	m := NewMerger(5, nil)
	m.Add("a", memSource(100, 200, 50, 300), []int{0})
	n := 0
	for f := m.Next(); f != nil; f = m.Next() {
		n++
	}
	if n != 4 {
		t.Fatalf("%d frames out, want 4", n)
	}
}

// TestMergerOutlierStamp: one record stamped a day ahead (a corrupt record)
// does not hold back the rest of its source; it comes out last.
func TestMergerOutlierStamp(t *testing.T) {
	m := NewMerger(10, nil)
	day := int64(86400e9)
	m.Add("a", memSource(1, 2, day, 3, 4, 5), []int{0})
	m.Add("b", memSource(1, 2, 3, 4, 5, 6), []int{1})
	var got []int64
	for f := m.Next(); f != nil; f = m.Next() {
		got = append(got, f.Time)
	}
	want := []int64{1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, day}
	if !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}
