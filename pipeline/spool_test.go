package pipeline

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/decode"
	"github.com/pathtrace/pathtrace/capture/pcapfile"
	"github.com/pathtrace/pathtrace/correlate"
	"golang.org/x/sys/unix"
)

// pointFrames reads every frame of the inputs, per point in path order, with
// private copies of the data.
func pointFrames(t *testing.T, inputs []Input) (*Bundle, [][]capture.RawFrame) {
	t.Helper()
	b, err := OpenBundle(inputs, nil, correlate.DefaultWindow)
	if err != nil {
		t.Fatal(err)
	}
	frames := make([][]capture.RawFrame, len(b.Points))
	for p, in := range inputs {
		src, err := pcapfile.Open(in.Path)
		if err != nil {
			t.Fatal(err)
		}
		for {
			rf, err := src.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			rf.Data = append([]byte(nil), rf.Data...)
			frames[p] = append(frames[p], rf)
		}
		src.Close()
	}
	return b, frames
}

// TestLiveMatchesOffline: a bundle's frames captured "live" — every point on
// its own goroutine, in lockstep 5 ms steps of capture time as rings would
// deliver them, through a spool small enough that the points wait for
// recycled slabs — give the same traces as `analyze` of the files.
func TestLiveMatchesOffline(t *testing.T) {
	for _, set := range []struct {
		name   string
		points []string
	}{
		{"promisc", []string{"pod1", "pod1-veth", "cni0", "pod2-veth", "pod2"}},
		{"flood-wrap", []string{"pod1", "cni0", "pod2"}},
	} {
		t.Run(set.name, func(t *testing.T) {
			var inputs []Input
			for _, p := range set.points {
				name := p + ".cap"
				if set.name == "flood-wrap" {
					name += ".gz"
				}
				inputs = append(inputs, Input{Path: filepath.Join("..", "testdata", "captures", set.name, name)})
			}
			var want []correlate.Trace
			ref, err := Run(context.Background(), Options{Inputs: inputs, Sink: func(tr *correlate.Trace) { want = append(want, tr.Clone()) }})
			if err != nil {
				t.Fatal(err)
			}

			b, frames := pointFrames(t, inputs)
			var got []correlate.Trace
			eng, err := correlate.New(correlate.Config{Points: b.Specs(), Window: correlate.DefaultWindow},
				func(tr *correlate.Trace) { got = append(got, tr.Clone()) })
			if err != nil {
				t.Fatal(err)
			}
			var tapped [8]int
			live, err := startSpool(eng, len(frames), 1, -1, func(p int, rf *capture.RawFrame) { tapped[p]++ })
			if err != nil {
				t.Fatal(err)
			}
			lockstep(frames, func(p int, rf *capture.RawFrame) { live.sinks[p].Frame(rf) }, func(p int) { live.sinks[p].Idle() })
			live.close()
			res := eng.Finish()

			for p := range frames {
				if tapped[p] != len(frames[p]) {
					t.Errorf("point %d: tap saw %d frames of %d", p, tapped[p], len(frames[p]))
				}
			}
			if res.Summary.Frames != ref.Summary.Frames || len(got) != len(want) {
				t.Fatalf("live: %d frames, %d traces; offline: %d frames, %d traces",
					res.Summary.Frames, len(got), ref.Summary.Frames, len(want))
			}
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("trace %d differs:\nlive    %+v\noffline %+v", i+1, got[i], want[i])
				}
			}
			t.Logf("%d frames, %d traces equal", res.Summary.Frames, len(got))
		})
	}
}

// TestLiveSpoolBackpressure: far more than the spool holds goes through it
// (a point waits for the correlator to free slabs); nothing is lost or
// reordered, and a steady capture allocates nothing per frame.
func TestLiveSpoolBackpressure(t *testing.T) {
	eng, live := onePointSpool(t)
	if live.limit != minSpoolSlabs {
		t.Fatalf("spool of %d slabs, want the minimum %d", live.limit, minSpoolSlabs)
	}
	sink := live.sinks[0]
	// Half of them not decodable (counted, keyed by nothing), packed; half
	// IPv6 UDP, which packed does not hold: spooled raw, decoded again.
	data := make([]byte, 1000)
	v6 := make([]byte, 1000)
	v6[12], v6[13], v6[14] = 0x86, 0xdd, 0x60
	binary.BigEndian.PutUint16(v6[18:], 1000-54) // payload length
	v6[20], v6[21] = 17, 64                      // UDP, hop limit
	v6[22], v6[23], v6[37] = 0xfd, 0, 1          // fd00::1
	v6[38], v6[39], v6[53] = 0xfd, 0, 2          // fd00::2
	binary.BigEndian.PutUint16(v6[54:], 40000)
	binary.BigEndian.PutUint16(v6[56:], 9999)
	binary.BigEndian.PutUint16(v6[58:], 1000-54)
	const n = 40000 // 22 MB through a 2 MiB spool
	rf := capture.RawFrame{Data: data, Time: 1e18, WireLen: len(data), LinkType: capture.LinkTypeEthernet}
	feed := func() { // one frame variable, as capture.RunLive's readers have
		rf.Time += 1000
		rf.Num++
		rf.Data = data
		if rf.Num%2 == 0 {
			binary.BigEndian.PutUint64(v6[62:], uint64(rf.Num)) // a payload, and key, of its own
			rf.Data = v6
		}
		sink.Frame(&rf)
	}
	for range n / 2 {
		feed()
	}
	allocs := testing.AllocsPerRun(n/2, feed)
	sink.Idle()
	live.close()
	res := eng.Finish()
	if res.Summary.Frames != n+1 { // AllocsPerRun runs once more to warm up
		t.Fatalf("correlator saw %d frames, want %d", res.Summary.Frames, n+1)
	}
	if res.Summary.Decoded != (n+1)/2 {
		t.Fatalf("correlator keyed %d frames, want the %d IPv6 ones", res.Summary.Decoded, (n+1)/2)
	}
	if allocs > 0.01 {
		t.Errorf("%.3f allocations per spooled frame, want ~0", allocs)
	}
	live.mu.Lock()
	defer live.mu.Unlock()
	if len(live.slabs) != 0 {
		t.Errorf("%d slabs still mapped after Close", len(live.slabs))
	}
}

// TestSlabRoundTrip: every field a decoder or evidence writer reads comes
// back from the spool as it went in: raw frames, packed ones, and slim ones
// (including those slim cannot hold, which go in packed).
func TestSlabRoundTrip(t *testing.T) {
	sl, err := newSlab(slabBytes)
	if err != nil {
		t.Fatal(err)
	}
	in := []capture.RawFrame{
		{Data: []byte{1, 2, 3}, Time: 1764100000123456789, WireLen: 1514, LinkType: capture.LinkTypeEthernet, Dir: correlate.DirOut, Num: 7},
		{Data: make([]byte, 1500), Time: -5, WireLen: 1500, LinkType: capture.LinkTypeRaw, Dir: correlate.DirIn, Num: 1 << 40},
		{Data: nil, Time: 0, WireLen: 60, LinkType: 276, Num: 9},
	}
	in[1].Data[1499] = 0xee
	odd := packed{stamp: -1 << 63, num: 1<<63 - 1, hash: 1<<64 - 1, seq: 1, ack: 2, kipid: 3, len: 4, ipLen: 5, wire: 1<<32 - 1, cap: 7,
		src: [4]byte{1, 2, 3, 4}, dst: [4]byte{5, 6, 7, 8}, srcMAC: correlate.MAC{9, 10, 11, 12, 13, 14}, dstMAC: correlate.MAC{15, 16, 17, 18, 19, 20},
		sport: 21, dport: 22, echoID: 23, ipid: 24, bits: 0x3ff, proto: correlate.ProtoTCP, kind: 26, ttl: 27, dir: correlate.DirOut}
	var want []packed
	for i := range in {
		sl.put(&in[i], kindRaw+byte(i%2))
		sl.putPacked(int64(i), &odd)
		w := odd
		w.t = int64(i)
		want = append(want, w)
	}
	// Slim: a flood's frames (two flows), then 40 flows, more than a
	// slab's table holds, a record number too far from the slab's first,
	// a stamp other than the capture's, a wire length slim cannot split.
	flood := odd
	flood.stamp, flood.num, flood.wire, flood.ipLen, flood.cap, flood.sport = 1000, 100, 98, 84, 98, 1<<15
	slims, packs := 0, 0
	put := func(p packed) {
		if sl.putSlim(p.stamp, &p) {
			slims++
		} else {
			sl.putPacked(p.stamp, &p)
			packs++
		}
		p.t = p.stamp
		want = append(want, p)
	}
	for i := range 100 {
		p := flood
		p.stamp += int64(i)
		p.num += int64(i)
		p.seq, p.hash, p.ipid, p.kipid = uint32(i), uint64(i)*0x9e3779b97f4a7c15, uint16(i), uint32(i)
		if i%2 == 1 {
			p.src, p.dst, p.srcMAC, p.dstMAC, p.dir = p.dst, p.src, p.dstMAC, p.srcMAC, correlate.DirIn
		}
		put(p)
	}
	for i := range slabFlows + 8 {
		p := flood
		p.sport = uint16(i)
		put(p)
	}
	far := flood
	far.num = 1 << 40
	put(far)
	skew := flood
	skew.stamp = 5
	if sl.putSlim(6, &skew) {
		t.Fatal("a frame whose stamp is not its capture time went in slim")
	}
	wide := flood
	wide.wire, wide.ipLen = 1<<32-1, 0
	put(wide)
	// The table's room: the flood's 2 flows and 30 of the 40.
	if slims != 100+slabFlows-2 || packs != 10+2 {
		t.Fatalf("%d slim, %d packed: want %d and %d", slims, packs, 100+slabFlows-2, 10+2)
	}
	var out []capture.RawFrame
	var unkeyed []bool
	var got []*packed
	sl.each(func(ts int64) *packed {
		p := &packed{t: ts}
		got = append(got, p)
		return p
	}, func(rf *capture.RawFrame, u bool) {
		c := *rf
		c.Data = append([]byte{}, rf.Data...)
		out = append(out, c)
		unkeyed = append(unkeyed, u)
	})
	for i := range in {
		in[i].Data = append([]byte{}, in[i].Data...)
	}
	if !reflect.DeepEqual(in, out) || !reflect.DeepEqual(unkeyed, []bool{false, true, false}) {
		t.Fatalf("round trip:\nin  %+v\nout %+v %v", in, out, unkeyed)
	}
	if len(got) != len(want) {
		t.Fatalf("%d packed frames back, want %d", len(got), len(want))
	}
	for i, p := range got {
		if *p != want[i] {
			t.Fatalf("packed %d: %+v, want %+v", i, *p, want[i])
		}
	}
	// Past slabMisses frames the full table had no room for, the slab
	// stops looking: even a flow in its table goes packed.
	for i := range slabMisses {
		p := flood
		p.sport = uint16(1000 + i)
		if sl.putSlim(p.stamp, &p) {
			t.Fatalf("new flow %d went in slim with the table full", i)
		}
	}
	if p := flood; sl.putSlim(p.stamp, &p) {
		t.Fatal("a slab past its misses still took a slim entry")
	}
	// A slab given back starts its table afresh.
	sl.reset()
	if p := flood; !sl.putSlim(p.stamp, &p) || len(sl.flows) != 1 || sl.numBase != flood.num {
		t.Fatalf("after reset: %d flows, base %d", len(sl.flows), sl.numBase)
	}
}

// TestLiveSpoolFilled: a capture goroutine that finds the spool full waits
// for the correlator to free a slab, and the run says so.
func TestLiveSpoolFilled(t *testing.T) {
	_, live := onePointSpool(t)
	var held []*slab
	for range live.limit - 1 { // the sink holds one already
		held = append(held, live.get(true))
	}
	if live.filled() {
		t.Fatal("spool reported full before it was")
	}
	got := make(chan *slab)
	go func() { got <- live.get(true) }()
	for deadline := time.Now().Add(5 * time.Second); !live.filled(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a get on a full spool did not report it")
		}
	}
	select {
	case <-got:
		t.Fatal("get returned a slab beyond the spool's size")
	case <-time.After(20 * time.Millisecond):
	}
	live.put(held[0]) // the correlator frees one
	if sl := <-got; sl != held[0] {
		t.Fatal("the waiting get did not receive the freed slab")
	}
	live.close()
}

// lockstep feeds each point's frames from a goroutine of its own, as the
// capture goroutines do, in 5 ms steps of capture time that all points
// finish before the next begins (idle, if set, after each point's step).
func lockstep(frames [][]capture.RawFrame, deliver func(p int, rf *capture.RawFrame), idle func(p int)) {
	first, end := int64(1<<63-1), int64(0)
	for _, fs := range frames {
		first, end = min(first, fs[0].Time), max(end, fs[len(fs)-1].Time)
	}
	const step = 5e6
	var wg sync.WaitGroup
	steps := make([]chan int64, len(frames))
	for p := range frames {
		steps[p] = make(chan int64)
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := 0
			for bound := range steps[p] {
				for ; i < len(frames[p]) && frames[p][i].Time < bound; i++ {
					rf := frames[p][i]
					deliver(p, &rf)
				}
				if idle != nil {
					idle(p)
				}
				steps[p] <- 0
			}
		}()
	}
	for bound := first + step; bound <= end+step; bound += step {
		for p := range steps {
			steps[p] <- bound
		}
		for p := range steps {
			<-steps[p]
		}
	}
	for p := range steps {
		close(steps[p])
	}
	wg.Wait()
}

// TestLiveSinkHoldsSlabWhileBusy: while the correlator has slabs queued, a
// point's Idle keeps filling its slab rather than hand it over part empty
// (the spool counts slabs, not frames), until the slab spans holdMax of
// capture time or was begun holdMax ago; a full slab goes at once, and
// with the queue empty every Idle hands over.
func TestLiveSinkHoldsSlabWhileBusy(t *testing.T) {
	l := &spool{feed: &feed{}, queue: make(chan *slab, 8), limit: 8, memory: 8}
	l.freed = sync.NewCond(&l.mu)
	defer l.unmap()
	sink := &liveSink{live: l, dec: decode.New()}
	data := make([]byte, 100) // undecodable: spooled packed
	rf := capture.RawFrame{Data: data, Time: 1e18, WireLen: len(data), LinkType: capture.LinkTypeEthernet}
	frame := func(dt time.Duration) {
		rf.Time += int64(dt)
		rf.Num++
		sink.Frame(&rf)
	}
	queued := func(want int, what string) {
		t.Helper()
		if len(l.queue) != want {
			t.Fatalf("%s: %d slabs queued, want %d", what, len(l.queue), want)
		}
	}

	frame(0)
	sink.Idle()
	queued(1, "idle correlator, Idle")
	// The correlator has not taken that slab yet: it is busy.
	frame(time.Millisecond)
	sink.cur.begun = time.Now() // however slow this machine
	sink.Idle()
	queued(1, "busy correlator, Idle")
	if sink.cur == nil || sink.cur.used == 0 {
		t.Fatal("busy correlator: the slab held is gone")
	}
	frame(holdMax)
	sink.Idle()
	queued(2, "slab spanning holdMax of capture time, Idle")
	frame(time.Millisecond)
	sink.cur.begun = time.Now().Add(-holdMax)
	sink.Idle()
	queued(3, "slab begun holdMax ago, Idle")
	frame(time.Microsecond)
	for sink.cur.used+packedEntry <= len(sink.cur.mem) {
		frame(time.Microsecond)
	}
	queued(3, "slab full, before the next frame")
	frame(time.Microsecond)
	queued(4, "slab full, the next frame")
}

// TestLiveSpoolCloseHandsOverHeld: frames in a slab a point still holds
// (its last Idle kept it) reach the correlator when the spool closes.
func TestLiveSpoolCloseHandsOverHeld(t *testing.T) {
	eng, live := onePointSpool(t)
	data := make([]byte, 100)
	rf := capture.RawFrame{Data: data, Time: 1e18, WireLen: len(data), LinkType: capture.LinkTypeEthernet}
	const n = 10
	for range n {
		rf.Time += 1000
		rf.Num++
		live.sinks[0].Frame(&rf)
	}
	live.close() // no Idle: as if the last one had held the slab
	if got := eng.Finish().Summary.Frames; got != n {
		t.Fatalf("correlator saw %d frames, want %d", got, n)
	}
}

// onePointSpool starts the smallest spool into an engine of one point.
func onePointSpool(t *testing.T) (*correlate.Engine, *spool) {
	t.Helper()
	eng, err := correlate.New(correlate.Config{Points: []correlate.PointSpec{{Name: "a", IfIndex: -1}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	live, err := startSpool(eng, 1, 1, -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	return eng, live
}

// TestSlabMappedResident: a new slab's pages are in place before a capture
// goroutine writes the first frame into it (no page fault a 4 KiB).
func TestSlabMappedResident(t *testing.T) {
	sl, err := newSlab(slabBytes)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(sl.mem)
	vec := make([]byte, slabBytes/unix.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&sl.mem[0])), uintptr(len(sl.mem)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	for i, v := range vec {
		if v&1 == 0 {
			t.Fatalf("page %d of %d of a new slab is not resident", i, len(vec))
		}
	}
}

// TestSpoolSpills: with the correlator stalled (its sink blocks), a capture
// past the spool's memory goes on in the spool's file instead of waiting:
// the slabs mapped stay at the memory's, and the correlator, let go, gets
// every frame in order — the same traces as a spool all in memory.
func TestSpoolSpills(t *testing.T) {
	run := func(memBytes int, file *os.File) ([]correlate.Trace, int64, int) {
		gate := make(chan struct{})
		var got []correlate.Trace
		eng, err := correlate.New(correlate.Config{Points: []correlate.PointSpec{{Name: "a", IfIndex: -1}}},
			func(tr *correlate.Trace) { <-gate; got = append(got, tr.Clone()) })
		if err != nil {
			t.Fatal(err)
		}
		live, err := startSpool(eng, 1, 256<<20, memBytes, nil)
		if err != nil {
			t.Fatal(err)
		}
		live.spill.f = file
		sink := live.sinks[0]
		data := make([]byte, 200) // undecodable: spooled packed
		v6 := make([]byte, 1000)  // IPv6 UDP, a trace each: spooled raw
		v6[12], v6[13], v6[14] = 0x86, 0xdd, 0x60
		binary.BigEndian.PutUint16(v6[18:], 1000-54)
		v6[20], v6[21] = 17, 64
		v6[22], v6[23], v6[37] = 0xfd, 0, 1
		v6[38], v6[39], v6[53] = 0xfd, 0, 2
		binary.BigEndian.PutUint16(v6[54:], 40000)
		binary.BigEndian.PutUint16(v6[56:], 9999)
		binary.BigEndian.PutUint16(v6[58:], 1000-54)
		rf := capture.RawFrame{Time: 1e18, LinkType: capture.LinkTypeEthernet}
		const n = 40000 // 10 µs apart: the first trace leaves (and the sink stalls) after ~110 ms
		for i := range n {
			rf.Time += 10_000
			rf.Num++
			rf.Data = data
			if i%2 == 0 {
				binary.BigEndian.PutUint64(v6[62:], uint64(rf.Num))
				rf.Data = v6
			}
			rf.WireLen = len(rf.Data)
			sink.Frame(&rf)
			if i%500 == 0 {
				sink.Idle()
			}
		}
		live.mu.Lock()
		spilled, mapped := live.spill.bytes, len(live.slabs)
		live.mu.Unlock()
		close(gate)
		sink.Idle()
		live.close()
		res := eng.Finish()
		if res.Summary.Frames != n || res.Summary.Decoded != n/2 || len(got) != n/2 {
			t.Fatalf("memory %d: correlator saw %d frames, keyed %d, %d traces; want %d, %d, %d",
				memBytes, res.Summary.Frames, res.Summary.Decoded, len(got), n, n/2, n/2)
		}
		if live.readErr != nil || (live.spill.err != nil) != (file != nil) {
			t.Fatalf("memory %d: %v, %v", memBytes, live.readErr, live.spill.err)
		}
		return got, spilled, mapped
	}
	want, spilled, inMemory := run(-1, nil)
	if spilled != 0 || inMemory < 40 {
		t.Fatalf("all in memory: %d bytes spilled, %d slabs mapped (want 0, >= 40: the test stalls nothing)", spilled, inMemory)
	}
	got, spilled, mapped := run(2<<20, nil)
	if spilled < 8<<20 || mapped > minSpoolSlabs+1 {
		t.Errorf("2 MiB in memory: %d bytes spilled, %d slabs mapped; want >= 8 MiB, <= %d", spilled, mapped, minSpoolSlabs+1)
	}
	t.Logf("%d bytes spilled, %d slabs mapped (all in memory: %d)", spilled, mapped, inMemory)
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("trace %d differs:\nspilled   %+v\nin memory %+v", i+1, got[i], want[i])
		}
	}

	// A file it cannot write to (a full disk): the slabs stay in memory,
	// no frame is lost, and the error is kept for the report.
	f, err := os.CreateTemp(t.TempDir(), "spool")
	if err != nil {
		t.Fatal(err)
	}
	ro, err := os.Open(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, _, mapped = run(2<<20, ro)
	if mapped <= minSpoolSlabs+1 {
		t.Errorf("unwritable file: %d slabs mapped, want more than the memory's %d", mapped, minSpoolSlabs)
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("unwritable file: trace %d differs:\ngot  %+v\nwant %+v", i+1, got[i], want[i])
		}
	}
}

// TestLiveCoverageFromArming: a live point covers the capture from when its
// socket was armed (spool.arm), taken by the correlator as frames flow: the
// engine judges loss at points armed before a frame passed, not at points
// armed after. Only pod1 and pod1-veth deliver frames here, and no echo
// replies (the rest saw nothing: a drop after pod1-veth, or points not
// armed yet).
func TestLiveCoverageFromArming(t *testing.T) {
	var inputs []Input
	for _, p := range []string{"pod1", "pod1-veth", "cni0", "pod2-veth", "pod2"} {
		inputs = append(inputs, Input{Path: filepath.Join("..", "testdata", "captures", "promisc", p+".cap")})
	}
	b, frames := pointFrames(t, inputs)
	// No replies: an answered request was not lost.
	for p := range frames[:2] {
		var kept []capture.RawFrame
		for _, rf := range frames[p] {
			d := rf.Data
			if len(d) > 34 && d[12] == 0x08 && d[13] == 0 && d[23] == 1 && d[34] == 0 {
				continue // IPv4 ICMP echo reply
			}
			kept = append(kept, rf)
		}
		frames[p] = kept
	}
	first := frames[0][0].Time
	last := max(frames[0][len(frames[0])-1].Time, frames[1][len(frames[1])-1].Time)
	mid := first + (last-first)/2
	for _, c := range []struct {
		name  string
		armAt int64 // cni0, pod2-veth and pod2
		// late: armed only once the frames stamped before armAt went to
		// the correlator (it takes an arming between two slabs)
		late bool
		lost func(t int64) bool
	}{
		{"armed before", first - 1, false, func(int64) bool { return true }},
		{"armed halfway", mid, false, func(t int64) bool { return t >= mid }},
		{"armed halfway, after frames flowed", mid, true, func(t int64) bool { return t >= mid }},
		{"armed after", last + 1, false, func(int64) bool { return false }},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []correlate.Trace
			// As discovery tells a live run: where the pods are.
			owners := map[netip.Addr]correlate.Owner{
				netip.MustParseAddr("10.244.1.2"): {Point: 0, Label: "pod1 eth0"},
				netip.MustParseAddr("10.244.1.3"): {Point: 4, Label: "pod2 eth0"},
			}
			macs := map[correlate.MAC]correlate.Owner{
				{0xf2, 0xc2, 0xbd, 0x7a, 0x6c, 0xca}: {Point: 0, Label: "pod1 eth0"},
				{0x02, 0x84, 0x9d, 0x0d, 0x2a, 0xc5}: {Point: 4, Label: "pod2 eth0"},
			}
			eng, err := correlate.New(correlate.Config{Points: b.Specs(), Window: correlate.DefaultWindow, OnePath: true, IPOwners: owners, MACOwners: macs},
				func(tr *correlate.Trace) { got = append(got, tr.Clone()) })
			if err != nil {
				t.Fatal(err)
			}
			live, err := startSpool(eng, len(frames), 0, -1, nil)
			if err != nil {
				t.Fatal(err)
			}
			// lockstep over the points that have frames in fr
			deliver := func(fr [][]capture.RawFrame) {
				var idx []int
				var sub [][]capture.RawFrame
				for p, f := range fr {
					if len(f) > 0 {
						idx, sub = append(idx, p), append(sub, f)
					}
				}
				if len(sub) > 0 {
					lockstep(sub, func(i int, rf *capture.RawFrame) { live.sinks[idx[i]].Frame(rf) }, func(i int) { live.sinks[idx[i]].Idle() })
				}
			}
			armRest := func() {
				for p := 2; p < len(frames); p++ {
					live.arm(p, time.Unix(0, c.armAt))
				}
			}
			live.arm(0, time.Unix(0, first-1))
			live.arm(1, time.Unix(0, first-1))
			if !c.late {
				armRest()
				deliver(frames[:2])
			} else {
				var before, after [2][]capture.RawFrame
				for p := range before {
					for _, rf := range frames[p] {
						if rf.Time < c.armAt {
							before[p] = append(before[p], rf)
						} else {
							after[p] = append(after[p], rf)
						}
					}
				}
				deliver(before[:])
				for p := range before {
					live.sinks[p].(*liveSink).handOver()
				}
				for len(live.queue) > 0 {
					time.Sleep(time.Millisecond)
				}
				armRest()
				deliver(after[:])
			}
			live.close()
			eng.Finish()
			var lost, kept int
			for _, tr := range got {
				if len(tr.Hops) == 0 || tr.Type != "echo-request" {
					continue
				}
				// Judged at its last hop: was the point after it capturing then?
				at := int64(tr.Hops[len(tr.Hops)-1].Time)
				want := ""
				if c.lost(at) {
					want = "pod1-veth"
				}
				if tr.LostAfter != want {
					t.Errorf("trace %d at %d: lost after %q, want %q", tr.N, at, tr.LostAfter, want)
				}
				if tr.LostAfter != "" {
					lost++
				} else {
					kept++
				}
			}
			if lost+kept == 0 {
				t.Fatal("no echo request traced")
			}
			t.Logf("%d echo requests lost after pod1-veth, %d not judged", lost, kept)
		})
	}
}

// TestSpoolDiscard: a capture that failed to arm reports nothing, though
// the points armed before the failure captured frames: the spool drops
// what the correlator has not taken, and close still releases every slab.
func TestSpoolDiscard(t *testing.T) {
	b, frames := pointFrames(t, []Input{
		{Path: filepath.Join("..", "testdata", "captures", "promisc", "pod1.cap")},
		{Path: filepath.Join("..", "testdata", "captures", "promisc", "pod1-veth.cap")},
	})
	var traces int
	eng, err := correlate.New(correlate.Config{Points: b.Specs(), Window: correlate.DefaultWindow}, func(*correlate.Trace) { traces++ })
	if err != nil {
		t.Fatal(err)
	}
	live, err := startSpool(eng, len(frames), 0, -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	live.discard()
	lockstep(frames, func(p int, rf *capture.RawFrame) { live.sinks[p].Frame(rf) }, func(p int) { live.sinks[p].Idle() })
	live.close()
	res := eng.Finish()
	if res.Summary.Frames != 0 || traces != 0 {
		t.Errorf("discarded capture: %d frames correlated, %d traces; want none", res.Summary.Frames, traces)
	}
	if live.slabs != nil {
		t.Error("close left slabs mapped")
	}
}
