package pipeline

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/pcapfile"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/discover"
)

// TestStreamMatchesFiles: the five points of a real capture set handed to
// the agent's stream as capture goroutines would (each its own, in lockstep
// 5 ms steps of capture time, frames of other points in between) come out as
// one pcapng in stamp order that holds every frame at its point, carries
// the agent record, and analyses to exactly the traces of the five files.
func TestStreamMatchesFiles(t *testing.T) {
	names := []string{"pod1", "pod1-veth", "cni0", "pod2-veth", "pod2"}
	var inputs []Input
	path := &discover.Path{Src: discover.Endpoint{Label: "pod1", IP: netip.MustParseAddr("10.244.1.2")},
		Dst: discover.Remote(netip.MustParseAddr("10.244.1.3"))}
	for i, n := range names {
		inputs = append(inputs, Input{Path: filepath.Join("..", "testdata", "captures", "promisc", n+".cap")})
		path.Points = append(path.Points, discover.Point{Name: n, Netns: "node1", Interface: n, IfIndex: i + 2, MTU: 1450, Node: "node1"})
	}
	var want []correlate.Trace
	if _, err := Run(context.Background(), Options{Inputs: inputs, Sink: func(tr *correlate.Trace) { want = append(want, tr.Clone()) }}); err != nil {
		t.Fatal(err)
	}
	_, frames := pointFrames(t, inputs)

	out := filepath.Join(t.TempDir(), "stream.pcapng")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := newStream(f, path, 0, func(err error) { t.Errorf("stream failed: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	rec := NewAgentRecord(path, SideSrc, "host1", "")
	s.start(rec.note())
	lockstep(frames, func(p int, rf *capture.RawFrame) { s.frame(p, rf) }, nil)
	if err := s.finish(&correlate.Result{}); err != nil {
		t.Fatal(err)
	}

	src, err := pcapfile.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	got := make([][]capture.RawFrame, len(frames))
	last := int64(0)
	for {
		rf, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rf.Time < last {
			t.Fatalf("frame %d of the stream at %d, before the one before it (%d)", rf.Num, rf.Time, last)
		}
		last = rf.Time
		rf.Data = slices.Clone(rf.Data)
		got[rf.Iface] = append(got[rf.Iface], rf)
	}
	for p := range frames {
		if len(got[p]) != len(frames[p]) {
			t.Fatalf("%s: %d frames in the stream, %d in its file", names[p], len(got[p]), len(frames[p]))
		}
		for i := range frames[p] {
			if got[p][i].Time != frames[p][i].Time || !slices.Equal(got[p][i].Data, frames[p][i].Data) {
				t.Fatalf("%s frame %d differs", names[p], i+1)
			}
		}
	}
	secs := src.Sections()
	if len(secs) != 1 || !slices.ContainsFunc(secs[0].Comments, func(c string) bool { return strings.HasPrefix(c, agentNotePrefix) }) {
		t.Fatalf("sections %+v: want one with the agent record", secs)
	}
	r, err := agentRecordIn(secs[0].Comments)
	if err != nil || r == nil || !reflect.DeepEqual(*r, rec) {
		t.Fatalf("record read back %+v (%v), wrote %+v", r, err, rec)
	}

	var fromStream []correlate.Trace
	res, err := Run(context.Background(), Options{Inputs: []Input{{Path: out}}, Sink: func(tr *correlate.Trace) { fromStream = append(fromStream, tr.Clone()) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(fromStream) != len(want) {
		t.Fatalf("stream: %d traces, files %d", len(fromStream), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(fromStream[i], want[i]) {
			t.Fatalf("trace %d differs:\nstream %+v\nfiles  %+v", i+1, fromStream[i], want[i])
		}
	}
	t.Logf("%d frames, %d traces equal", res.Summary.Frames, len(want))
}

// A reader that falls behind costs frames, never unbounded memory: beyond
// its byte limit the stream counts each frame as a drop of its point, and
// takes frames again once it has written what it held.
func TestStreamBounded(t *testing.T) {
	path := &discover.Path{Points: []discover.Point{{Name: "a", Interface: "eth0", MTU: 1500}, {Name: "b", Interface: "eth0", MTU: 1500}}}
	s, err := newStream(io.Discard, path, 1000, func(err error) { t.Errorf("stream failed: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	frame := func(point int, ts int64) {
		s.frame(point, &capture.RawFrame{Time: ts, Data: make([]byte, 600), WireLen: 600, LinkType: capture.LinkTypeEthernet})
	}
	frame(0, 1)
	frame(1, 2) // 1200 bytes: no room
	frame(0, 3)
	if s.dropped[0] != 1 || s.dropped[1] != 1 || s.bytes != 600 {
		t.Fatalf("dropped %v, %d bytes queued; want [1 1], 600", s.dropped, s.bytes)
	}
	s.start()
	s.release(true)
	if s.bytes != 0 {
		t.Fatalf("%d bytes queued after a release, want 0", s.bytes)
	}
	frame(1, 4)
	if s.dropped[1] != 1 || s.bytes != 600 {
		t.Errorf("after the release: dropped %v, %d bytes queued; want point b's frame taken", s.dropped, s.bytes)
	}
	if err := s.finish(&correlate.Result{}); err != nil {
		t.Fatal(err)
	}
}
