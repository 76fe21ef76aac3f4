package pipeline

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/internal/testenv"
)

// TestClockSampleOrder: the clock pre-pass's streamed merge and its held,
// sorted sample both feed exactly the frames, in exactly the order, of a
// stable sort of every file's keyed sample frames one file after the other
// (how the pre-pass always ordered them), on captures with stamps out of
// order (`tcpdump -i any`, a bridge) and several clock groups.
func TestClockSampleOrder(t *testing.T) {
	for _, sc := range []string{"any", "hairpin-arp", "flood-wrap", "dumpcap-multi", "promisc", "routed"} {
		dir := testenv.Captures(t, sc)
		files, _ := filepath.Glob(filepath.Join(dir, "*.cap*"))
		ng, _ := filepath.Glob(filepath.Join(dir, "*.pcapng"))
		var inputs []Input
		for _, f := range append(files, ng...) {
			inputs = append(inputs, Input{Path: f})
		}
		b, err := OpenBundle(inputs, nil, correlate.DefaultWindow)
		if err != nil {
			t.Fatal(err)
		}
		for _, perFile := range []int{7, 100, clockSampleFrames} {
			want, err := b.sampleFrames(perFile)
			if err != nil {
				t.Fatal(err)
			}
			slices.SortStableFunc(want, func(a, b correlate.Frame) int { return int(max(-1, min(1, a.Time-b.Time))) })
			s, err := b.clockSample(perFile)
			if err != nil {
				t.Fatal(err)
			}
			if s.chunks != nil {
				t.Fatalf("%s: sample held, not streamed", sc)
			}
			back := slices.Max(s.back)
			held := &clockSample{b: b, perFile: perFile}
			if err := held.hold(); err != nil {
				t.Fatal(err)
			}
			for _, c := range []*clockSample{s, held} {
				var got []correlate.Frame
				if err := c.each(func(f *correlate.Frame) { got = append(got, *f) }); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s, %d per file (held %v): %d frames fed, want %d in the stable sort's order", sc, perFile, c.chunks != nil, len(got), len(want))
				}
			}
			t.Logf("%s, %d per file: %d frames, files jump back at most %d ns", sc, perFile, len(want), back)
		}
	}
}
