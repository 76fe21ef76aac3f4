package pipeline

import (
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/pcapfile"
	"github.com/pathtrace/pathtrace/correlate"
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

// TestBundleMeasuresSpans: a bundle's files are read once for their stamps
// before they are merged, and each is read ahead only as far as it steps
// back: the `-i any` file (SLL2: its records name their interfaces), the
// single-interface files, in order, dumpcap's pcapng of several
// interfaces; a compressed file, which is not read twice, by the whole
// reorder span. (Outside tests a span is at least minSpan.)
func TestBundleMeasuresSpans(t *testing.T) {
	for _, tc := range []struct {
		dir   string
		files []string
	}{
		{"any", []string{"pod1.cap", "node-any.cap", "pod2.cap"}},
		{"dumpcap-multi", []string{"pod1.cap", "node.pcapng", "pod2.cap"}},
		{"flood-wrap", []string{"pod1.cap.gz", "cni0.cap.gz", "pod2.cap.gz"}},
	} {
		var inputs []Input
		for _, f := range tc.files {
			inputs = append(inputs, Input{Path: filepath.Join("..", "testdata", "captures", tc.dir, f)})
		}
		b, err := OpenBundle(inputs, nil, correlate.DefaultWindow)
		if err != nil {
			t.Fatal(err)
		}
		m, files, err := b.Open(DefaultReorder, nil)
		if err != nil {
			t.Fatal(err)
		}
		m.minSpan = 0 // the spans as measured
		if m.Next() == nil {
			t.Fatalf("%s: no frame", tc.dir)
		}
		// Every reader has sent its first batch, after setting its span.
		for fi, in := range m.inputs {
			want := int64(DefaultReorder)
			if !strings.HasSuffix(in.name, ".gz") {
				back := fileStepBack(t, in.name, b.ifaceMap(fi))
				if strings.HasSuffix(in.name, "node-any.cap") && back == 0 {
					t.Errorf("%s: the file steps back (FACTS.md), measured none", in.name)
				}
				want = back
			}
			if in.span != want {
				t.Errorf("%s: span %d, want %d", in.name, in.span, want)
			}
		}
		m.Close()
		files.Close()
	}
}

// fileStepBack is the largest step back of the stamps of a file's frames
// whose interfaces have points.
func fileStepBack(t *testing.T, path string, points []int) int64 {
	t.Helper()
	src, err := pcapfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var ts []int64
	for {
		rf, err := src.Next()
		if err != nil {
			break
		}
		if rf.Iface >= 0 && rf.Iface < len(points) && points[rf.Iface] >= 0 {
			ts = append(ts, rf.Time)
		}
	}
	return stepBack(ts)
}
