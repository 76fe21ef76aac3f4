package correlate

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

var (
	pod1MAC  = MAC{0x6a, 0x6d, 0x35, 0x69, 0x37, 0xfe}
	pod2MAC  = MAC{0xca, 0xbb, 0xaf, 0xbd, 0xe5, 0x3a}
	cni0MAC  = MAC{0x9a, 0x50, 0x49, 0x2d, 0x65, 0x48}
	bcast    = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	pod1IP   = netip.MustParseAddr("10.244.1.2")
	pod2IP   = netip.MustParseAddr("10.244.1.3")
	gwIP     = netip.MustParseAddr("10.244.1.1")
	seedPath = []string{"pod1", "pod1-veth", "cni0", "pod2-veth", "pod2"}
)

func cfgFor(names ...string) Config {
	var c Config
	for _, n := range names {
		c.Points = append(c.Points, PointSpec{Name: n, IfIndex: -1})
	}
	return c
}

func echo(point int, ts int64, typ uint8, seq uint32, src, dst MAC, sip, dip netip.Addr, ttl uint8) Frame {
	return Frame{
		Point: point, Time: ts, Num: 1,
		Key:    Key{Proto: ProtoICMP, Kind: typ, Seq: seq, Hash: 0xabc + uint64(seq), Len: 56},
		SrcMAC: src, DstMAC: dst, HasSrcMAC: true, HasDstMAC: true,
		SrcIP: sip, DstIP: dip, TTL: ttl, HasTTL: true, EchoID: 0x1234, HasEchoID: true,
		IPLen: 84, WireLen: 98, CapLen: 98,
	}
}

func arp(point int, ts int64, op uint8, src, dst MAC, sender, target netip.Addr) Frame {
	return Frame{
		Point: point, Time: ts, Num: 1,
		Key:    Key{Proto: ProtoARP, Kind: op, MAC: src, Addr1: sender, Addr2: target},
		SrcMAC: src, DstMAC: dst, HasSrcMAC: true, HasDstMAC: true, WireLen: 42, CapLen: 42,
	}
}

// request/reply at all five points, 10 µs per hop; bridge tied with its ingress port.
func pingFrames(t0 int64, seq uint32) []Frame {
	us := int64(1000)
	var fs []Frame
	req := []int64{0, 10, 10, 20, 30}
	for p, d := range req {
		fs = append(fs, echo(p, t0+d*us, 8, seq, pod1MAC, pod2MAC, pod1IP, pod2IP, 64))
	}
	rep := []int64{90, 80, 70, 70, 60}
	for p, d := range rep {
		fs = append(fs, echo(p, t0+d*us, 0, seq, pod2MAC, pod1MAC, pod2IP, pod1IP, 64))
	}
	slices.SortStableFunc(fs, func(a, b Frame) int { return cmp64(a.Time, b.Time) })
	return fs
}

func analyze(t *testing.T, c Config, fs []Frame) *Result {
	t.Helper()
	r, err := Analyze(c, fs)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func hopNames(tr Trace) []string {
	var s []string
	for _, h := range tr.Hops {
		n := h.Point
		if h.Reflection {
			n += "*"
		}
		s = append(s, n)
	}
	return s
}

func TestEchoForwardAndReverse(t *testing.T) {
	r := analyze(t, cfgFor(seedPath...), pingFrames(1e18, 1))
	if len(r.Traces) != 2 {
		t.Fatalf("traces = %d, want 2", len(r.Traces))
	}
	req, rep := r.Traces[0], r.Traces[1]
	if req.Direction.String() != "forward" || rep.Direction.String() != "reverse" {
		t.Errorf("directions %s/%s", req.Direction, rep.Direction)
	}
	if got := hopNames(req); !slices.Equal(got, seedPath) {
		t.Errorf("request hops %v", got)
	}
	want := []string{"pod2", "pod2-veth", "cni0", "pod1-veth", "pod1"}
	if got := hopNames(rep); !slices.Equal(got, want) {
		t.Errorf("reply hops %v, want %v", got, want)
	}
	deltas := []int64{0, 10000, 0, 10000, 10000}
	for i, h := range req.Hops {
		if h.DeltaNs != deltas[i] {
			t.Errorf("hop %d delta %d want %d", i, h.DeltaNs, deltas[i])
		}
	}
	if !rep.ReplyTo.Valid || rep.ReplyTo.V != int64(req.N) {
		t.Errorf("reply_to %+v", rep.ReplyTo)
	}
	if rep.RTT == nil || rep.RTT.TotalNs != 90000 || rep.RTT.ForwardNs != 30000 || rep.RTT.TurnaroundNs != 30000 || rep.RTT.ReverseNs != 30000 {
		t.Errorf("rtt %+v", rep.RTT)
	}
	if !r.Summary.Clean || r.Summary.Complete != 2 {
		t.Errorf("summary %+v anomalies %+v", r.Summary, r.Anomalies)
	}
	// hop latency: 4 forward pairs and 4 reverse pairs
	if len(r.HopLatency) != 8 || r.HopLatency[0].From != "pod1" || r.HopLatency[0].To != "pod1-veth" || r.HopLatency[4].From != "pod2" {
		t.Errorf("hop latency %+v", r.HopLatency)
	}
}

func TestWindowSeparatesRepeatedKeys(t *testing.T) {
	// The same seq (and payload) 1.3 s apart — a wrapped seq — must be two traces.
	fs := append(pingFrames(1e18, 7), pingFrames(1e18+1.3e9, 7)...)
	r := analyze(t, cfgFor(seedPath...), fs)
	if len(r.Traces) != 4 {
		t.Fatalf("traces = %d, want 4", len(r.Traces))
	}
	for _, tr := range r.Traces {
		if len(tr.Hops) != 5 {
			t.Errorf("trace %d has %d hops", tr.N, len(tr.Hops))
		}
	}
	// With a 2 s window the second copy cannot join the first (all points
	// already seen, too late for a reflection): still 4 traces.
	c := cfgFor(seedPath...)
	c.Window = 2e9
	if r := analyze(t, c, fs); len(r.Traces) != 4 {
		t.Fatalf("2s window: traces = %d, want 4", len(r.Traces))
	}
}

func TestIdenticalFramesMicrosecondsApartKeepFIFO(t *testing.T) {
	us := int64(1000)
	var fs []Frame
	for p := 0; p < 5; p++ {
		a := echo(p, 1e18+int64(p)*10*us, 8, 1, pod1MAC, pod2MAC, pod1IP, pod2IP, 64)
		b := a
		b.Time += 3 * us
		fs = append(fs, a, b)
	}
	r := analyze(t, cfgFor(seedPath...), fs)
	if len(r.Traces) != 2 {
		t.Fatalf("traces = %d, want 2", len(r.Traces))
	}
	for _, tr := range r.Traces {
		for i, h := range tr.Hops[1:] {
			if h.DeltaNs != 10*us {
				t.Errorf("trace %d hop %d delta %d, want 10µs (FIFO pairing)", tr.N, i+1, h.DeltaNs)
			}
		}
	}
}

func TestHairpinReflectionStaysInTrace(t *testing.T) {
	us := int64(1000)
	t0 := int64(1e18)
	fs := []Frame{
		arp(0, t0, 1, pod1MAC, bcast, pod1IP, pod2IP),
		arp(1, t0+5*us, 1, pod1MAC, bcast, pod1IP, pod2IP),
		arp(2, t0+5*us, 1, pod1MAC, bcast, pod1IP, pod2IP),
		arp(3, t0+8*us, 1, pod1MAC, bcast, pod1IP, pod2IP),
		arp(1, t0+9*us, 1, pod1MAC, bcast, pod1IP, pod2IP), // hairpin copy out of pod1-veth
		arp(4, t0+12*us, 1, pod1MAC, bcast, pod1IP, pod2IP),
		arp(0, t0+14*us, 1, pod1MAC, bcast, pod1IP, pod2IP), // back at pod1
		arp(4, t0+30*us, 2, pod2MAC, pod1MAC, pod2IP, pod1IP),
		arp(3, t0+31*us, 2, pod2MAC, pod1MAC, pod2IP, pod1IP),
		arp(1, t0+40*us, 2, pod2MAC, pod1MAC, pod2IP, pod1IP),
		arp(0, t0+41*us, 2, pod2MAC, pod1MAC, pod2IP, pod1IP),
	}
	r := analyze(t, cfgFor(seedPath...), fs)
	if len(r.Traces) != 2 {
		t.Fatalf("traces = %d, want 2: %+v", len(r.Traces), r.Traces)
	}
	want := []string{"pod1", "pod1-veth", "cni0", "pod2-veth", "pod2", "pod1-veth*", "pod1*"}
	if got := hopNames(r.Traces[0]); !slices.Equal(got, want) {
		t.Errorf("hops %v want %v", got, want)
	}
	if d := r.Traces[0].Hops[5].DeltaNs; d != 4*us {
		t.Errorf("reflection delta %d, want 4µs from cni0", d)
	}
	rep := r.Traces[1]
	if rep.Direction.String() != "reverse" || !slices.Equal(rep.Missing, []string{"cni0"}) || rep.LostAfter != "" {
		t.Errorf("reply: dir %s missing %v lost %q", rep.Direction, rep.Missing, rep.LostAfter)
	}
	if !rep.ReplyTo.Valid || rep.ReplyTo.V != 1 {
		t.Errorf("arp reply_to %+v", rep.ReplyTo)
	}
	kinds := map[string]string{}
	for _, a := range r.Anomalies {
		kinds[a.Kind.String()] = a.Severity.String()
	}
	if kinds["reflection"] != "info" || kinds["gap"] != "warning" {
		t.Errorf("anomalies %+v", r.Anomalies)
	}
}

func TestReflectionByDirection(t *testing.T) {
	// With recorded direction, a retransmission 5 ms later in the same
	// direction is a new trace, while the opposite direction is a reflection.
	t0 := int64(1e18)
	a := arp(0, t0, 1, pod1MAC, bcast, pod1IP, pod2IP)
	a.Dir = DirOut
	b := arp(1, t0+1000, 1, pod1MAC, bcast, pod1IP, pod2IP)
	b.Dir = DirIn
	c := a
	c.Time = t0 + 5e6
	d := a
	d.Time, d.Dir = t0+2000, DirIn
	r := analyze(t, cfgFor(seedPath[:2]...), []Frame{a, b, d, c})
	if len(r.Traces) != 2 {
		t.Fatalf("traces = %d, want 2", len(r.Traces))
	}
	if got := hopNames(r.Traces[0]); !slices.Equal(got, []string{"pod1", "pod1-veth", "pod1*"}) {
		t.Errorf("hops %v", got)
	}
}

// TestReflectionWindow: a copy coming back to a point within reflectWindow
// of the trace's last hop is a reflection, also once the trace crossed every
// point (it is kept that long); later it is a new transmission — with and
// without recorded direction. Without direction, a copy back at the point
// the frame entered by must come within reflectEntry (arping repeats the
// same bytes milliseconds apart).
func TestReflectionWindow(t *testing.T) {
	for _, withDir := range []bool{true, false} {
		window := reflectWindow
		if !withDir {
			window = reflectEntry
		}
		for _, late := range []int64{window - window/2, window + 5e6} {
			t0 := int64(1e18)
			a := arp(0, t0, 1, pod1MAC, bcast, pod1IP, pod2IP)
			b := arp(1, t0+1000, 1, pod1MAC, bcast, pod1IP, pod2IP)
			back := arp(0, t0+1000+late, 1, pod1MAC, bcast, pod1IP, pod2IP)
			if withDir {
				a.Dir, b.Dir, back.Dir = DirOut, DirIn, DirIn
			}
			// Other traffic keeps the stream moving past the copy.
			after := echo(1, t0+1000+late+1e6, 8, 1, pod1MAC, pod2MAC, pod1IP, pod2IP, 64)
			r := analyze(t, cfgFor(seedPath[:2]...), []Frame{a, b, back, after})
			reflected := late <= window
			want := 3 // the ARP, the copy as a new trace, the echo
			if reflected {
				want = 2
			}
			if len(r.Traces) != want {
				t.Fatalf("direction %v, copy %v later: %d traces, want %d", withDir, time.Duration(late), len(r.Traces), want)
			}
			if got := hopNames(r.Traces[0]); reflected != slices.Equal(got, []string{"pod1", "pod1-veth", "pod1*"}) {
				t.Errorf("direction %v, copy %v later: hops %v", withDir, time.Duration(late), got)
			}
		}
	}
}

func TestLossAndCoverage(t *testing.T) {
	us := int64(1000)
	t0 := int64(1e18)
	var fs []Frame
	// seq 1 crosses all; seq 2 dies after cni0; a later frame at pod2 proves
	// pod2 and pod2-veth were still capturing.
	for p := 0; p < 5; p++ {
		fs = append(fs, echo(p, t0+int64(p)*us, 8, 1, pod1MAC, pod2MAC, pod1IP, pod2IP, 64))
	}
	for p := 0; p < 3; p++ {
		fs = append(fs, echo(p, t0+200e6+int64(p)*us, 8, 2, pod1MAC, pod2MAC, pod1IP, pod2IP, 64))
	}
	for p := 4; p >= 0; p-- {
		fs = append(fs, arp(p, t0+400e6-int64(p)*us, 1, pod2MAC, bcast, pod2IP, gwIP))
	}
	// seq 3 after pod2-veth's capture ended early (a truncated file): not
	// covered there, so not lost; pod2 (normal end) still covers it.
	for p := 0; p < 3; p++ {
		fs = append(fs, echo(p, t0+600e6+int64(p)*us, 8, 3, pod1MAC, pod2MAC, pod1IP, pod2IP, 64))
	}
	slices.SortStableFunc(fs, func(a, b Frame) int { return cmp64(a.Time, b.Time) })
	var traces []Trace
	e, _ := New(cfgFor(seedPath...), func(tr *Trace) { traces = append(traces, tr.Clone()) })
	for i := range fs {
		if fs[i].Time > t0+500e6 {
			e.Close(3, true)
			e.Close(4, true)
		}
		e.Add(&fs[i])
	}
	r := e.Finish()
	r.Traces = traces
	bySeq := map[uint64]Trace{}
	for _, tr := range r.Traces {
		if tr.Protocol.String() == "icmp" {
			bySeq[tr.Seq.V] = tr
		}
	}
	if bySeq[1].LostAfter != "" || bySeq[2].LostAfter != "cni0" || bySeq[3].LostAfter != "" {
		t.Errorf("lost_after: %q %q %q", bySeq[1].LostAfter, bySeq[2].LostAfter, bySeq[3].LostAfter)
	}
	if r.Summary.Clean || r.Summary.Lost != 1 || r.Summary.Traces != 4 {
		t.Errorf("summary %+v", r.Summary)
	}
}

func TestMissingPointAndPointNotStarted(t *testing.T) {
	us := int64(1000)
	t0 := int64(1e18)
	var fs []Frame
	for _, p := range []int{0, 1, 3, 4} {
		fs = append(fs, echo(p, t0+int64(p)*us, 8, 1, pod1MAC, pod2MAC, pod1IP, pod2IP, 64))
	}
	// cni0 saw an ARP before: it was capturing, so it is missing.
	withCni := append([]Frame{arp(2, t0-1000, 1, pod1MAC, bcast, pod1IP, pod2IP)}, fs...)
	r := analyze(t, cfgFor(seedPath...), withCni)
	var tr Trace
	for _, x := range r.Traces {
		if x.Protocol.String() == "icmp" {
			tr = x
		}
	}
	if !slices.Equal(tr.Missing, []string{"cni0"}) || tr.LostAfter != "" {
		t.Errorf("missing %v lost %q", tr.Missing, tr.LostAfter)
	}
	// cni0 never captured anything: neither missing nor lost.
	r = analyze(t, cfgFor(seedPath...), fs)
	if len(r.Traces[0].Missing) != 0 || !r.Summary.Clean {
		t.Errorf("not-started point reported: %+v %+v", r.Traces[0].Missing, r.Summary)
	}
}

func TestInversionKeepsTopologyOrder(t *testing.T) {
	us := int64(1000)
	t0 := int64(1e18)
	fs := []Frame{
		echo(1, t0, 8, 1, pod1MAC, pod2MAC, pod1IP, pod2IP, 64), // veth stamped 2 µs before pod1
		echo(0, t0+2*us, 8, 1, pod1MAC, pod2MAC, pod1IP, pod2IP, 64),
		echo(2, t0+3*us, 8, 1, pod1MAC, pod2MAC, pod1IP, pod2IP, 64),
		echo(3, t0+9*us, 8, 1, pod1MAC, pod2MAC, pod1IP, pod2IP, 64),
		echo(4, t0+20*us, 8, 1, pod1MAC, pod2MAC, pod1IP, pod2IP, 64),
	}
	r := analyze(t, cfgFor(seedPath...), fs)
	tr := r.Traces[0]
	if tr.Direction.String() != "forward" || !slices.Equal(hopNames(tr), seedPath) {
		t.Fatalf("dir %s hops %v", tr.Direction, hopNames(tr))
	}
	if tr.Hops[1].DeltaNs != -2*us {
		t.Errorf("negative delta reported as %d", tr.Hops[1].DeltaNs)
	}
	if !hasFlag(tr.Flags, "negative-delta") {
		t.Errorf("flags %v", tr.Flags)
	}
}

func TestGatewayARPFromMidPath(t *testing.T) {
	// cni0 answers pod1's ARP for the gateway: the reply starts mid-path and
	// goes reverse; pod2's side is not on its way.
	us := int64(1000)
	t0 := int64(1e18)
	fs := []Frame{
		arp(0, t0, 1, pod1MAC, bcast, pod1IP, gwIP),
		arp(1, t0+2*us, 1, pod1MAC, bcast, pod1IP, gwIP),
		arp(2, t0+2*us, 1, pod1MAC, bcast, pod1IP, gwIP),
		arp(3, t0+4*us, 1, pod1MAC, bcast, pod1IP, gwIP),
		arp(4, t0+6*us, 1, pod1MAC, bcast, pod1IP, gwIP),
		arp(2, t0+10*us, 2, cni0MAC, pod1MAC, gwIP, pod1IP),
		arp(1, t0+11*us, 2, cni0MAC, pod1MAC, gwIP, pod1IP),
		arp(0, t0+13*us, 2, cni0MAC, pod1MAC, gwIP, pod1IP),
	}
	r := analyze(t, cfgFor(seedPath...), fs)
	rep := r.Traces[1]
	if rep.Direction.String() != "reverse" || !slices.Equal(hopNames(rep), []string{"cni0", "pod1-veth", "pod1"}) || rep.LostAfter != "" {
		t.Errorf("reply %s %v lost %q", rep.Direction, hopNames(rep), rep.LostAfter)
	}
	if !r.Summary.Clean {
		t.Errorf("verdict %q anomalies %+v", r.Summary.Verdict, r.Anomalies)
	}
}

func TestRoutedRewrites(t *testing.T) {
	us := int64(1000)
	t0 := int64(1e18)
	cni1MAC := MAC{0x02, 0, 0, 0, 0, 1}
	pod3MAC := MAC{0x02, 0, 0, 0, 0, 3}
	pod3IP := netip.MustParseAddr("10.244.2.2")
	fs := []Frame{
		echo(0, t0, 8, 1, pod1MAC, cni0MAC, pod1IP, pod3IP, 64),
		echo(1, t0+1*us, 8, 1, pod1MAC, cni0MAC, pod1IP, pod3IP, 64),
		echo(2, t0+1*us, 8, 1, pod1MAC, cni0MAC, pod1IP, pod3IP, 64),
		echo(3, t0+5*us, 8, 1, cni1MAC, pod3MAC, pod1IP, pod3IP, 63),
		echo(4, t0+6*us, 8, 1, cni1MAC, pod3MAC, pod1IP, pod3IP, 63),
		echo(5, t0+8*us, 8, 1, cni1MAC, pod3MAC, pod1IP, pod3IP, 63),
	}
	r := analyze(t, cfgFor("pod1", "pod1-veth", "cni0", "cni1", "pod3-veth", "pod3"), fs)
	var fields []string
	for _, rw := range r.Traces[0].Rewrites {
		if rw.Point != "cni1" {
			t.Errorf("rewrite at %s", rw.Point)
		}
		fields = append(fields, rw.Field.String()+":"+rw.From+">"+rw.To)
	}
	want := []string{"src_mac:" + cni0MAC.String() + ">" + cni1MAC.String(), "dst_mac:" + cni0MAC.String() + ">" + pod3MAC.String(), "ttl:64>63"}
	// src MAC pod1→cni1 (rewrite of the source), dst cni0→pod3
	want[0] = "src_mac:" + pod1MAC.String() + ">" + cni1MAC.String()
	if !slices.Equal(fields, want) {
		t.Errorf("rewrites %v want %v", fields, want)
	}
}

func TestUnansweredAndStreamingEmitsInOrder(t *testing.T) {
	t0 := int64(1e18)
	var got []int
	e, err := New(cfgFor("a", "b"), func(tr *Trace) { got = append(got, tr.N) })
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		ts := t0 + int64(i)*100e6
		for p := 0; p < 2; p++ {
			f := echo(p, ts+int64(p)*1000, 8, uint32(i), pod1MAC, pod2MAC, pod1IP, pod2IP, 64)
			e.Add(&f)
		}
	}
	// streaming: by the last frame (9.9 s), traces older than the window are out
	if len(got) < 80 {
		t.Errorf("only %d traces emitted before Finish: not streaming", len(got))
	}
	r := e.Finish()
	if len(got) != 100 || !slices.IsSorted(got) {
		t.Errorf("emitted %d traces, sorted=%v", len(got), slices.IsSorted(got))
	}
	un := 0
	for _, a := range r.Anomalies {
		if a.Kind.String() == "unanswered-echo" {
			un = a.Count
		}
	}
	// every request but the last ones (capture ended) is unanswered
	if un < 95 || un > 100 {
		t.Errorf("unanswered = %d", un)
	}
}

func TestSteadyStateAllocations(t *testing.T) {
	e, err := New(cfgFor(seedPath...), func(*Trace) {})
	if err != nil {
		t.Fatal(err)
	}
	base := pingFrames(1e18, 0)
	ts := int64(1e18)
	seq := uint32(0)
	run := func() {
		seq++
		ts += 20e6
		for i := range base {
			f := base[i]
			f.Time += ts - 1e18
			f.Key.Seq = seq
			e.Add(&f)
		}
	}
	for i := 0; i < 2000; i++ { // warm up: pools, maps, stats buffers
		run()
	}
	if a := testing.AllocsPerRun(500, run); a > 1 {
		t.Errorf("%.1f allocs per 10 frames in steady state", a)
	}
}

func TestLatencyQuantiles(t *testing.T) {
	var l latency
	for i := int64(1); i <= 100; i++ {
		l.add(i * 1000)
	}
	if l.quantile(0.5) != 50000 || l.quantile(0.99) != 99000 || l.min != 1000 || l.max != 100000 {
		t.Errorf("exact: p50 %d p99 %d", l.quantile(0.5), l.quantile(0.99))
	}
	var h latency
	var all []int64
	for i := int64(0); i < exactCap+50000; i++ {
		v := 1000 + (i*7919)%100000
		h.add(v)
		all = append(all, v)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.99} {
		want := all[int(q*float64(len(all)))-1]
		got := h.quantile(q)
		if h.hist == nil || float64(absDiff(got, want)) > 0.01*float64(want) {
			t.Errorf("histogram p%.0f = %d, exact %d: more than 1%% off", q*100, got, want)
		}
	}
}

func TestDuplicateAtOnePoint(t *testing.T) {
	// The same frame twice at pod1 within 1 ms, in the same direction, each
	// copy crossing the path: two traces, both flagged duplicate.
	us := int64(1000)
	t0 := int64(1e18)
	var fs []Frame
	for p := 0; p < 5; p++ {
		for c := int64(0); c < 2; c++ {
			f := echo(p, t0+int64(p)*10*us+c*200*us, 8, 1, pod1MAC, pod2MAC, pod1IP, pod2IP, 64)
			f.Dir = DirOut
			fs = append(fs, f)
		}
	}
	slices.SortStableFunc(fs, func(a, b Frame) int { return cmp64(a.Time, b.Time) })
	r := analyze(t, cfgFor(seedPath...), fs)
	if len(r.Traces) != 2 {
		t.Fatalf("traces = %d, want 2", len(r.Traces))
	}
	for _, tr := range r.Traces {
		if !hasFlag(tr.Flags, "duplicate") || len(tr.Hops) != 5 {
			t.Errorf("trace %d: flags %v, %d hops", tr.N, tr.Flags, len(tr.Hops))
		}
	}
	if r.Summary.Clean {
		t.Error("duplicates must not be clean")
	}
}

func TestPointStartedLateIsNotLoss(t *testing.T) {
	// pod2's capture starts after seq 1 crossed: seq 1 is not lost at pod2,
	// seq 2 (after pod2 started) is lost when pod2 does not see it.
	us := int64(1000)
	t0 := int64(1e18)
	var fs []Frame
	for p := 0; p < 4; p++ {
		fs = append(fs, echo(p, t0+int64(p)*us, 8, 1, pod1MAC, pod2MAC, pod1IP, pod2IP, 64))
	}
	fs = append(fs, arp(4, t0+100e6, 1, pod2MAC, bcast, pod2IP, gwIP)) // pod2's first frame
	for p := 0; p < 4; p++ {
		fs = append(fs, echo(p, t0+200e6+int64(p)*us, 8, 2, pod1MAC, pod2MAC, pod1IP, pod2IP, 64))
	}
	r := analyze(t, cfgFor(seedPath...), fs)
	lost := map[uint64]string{}
	for _, tr := range r.Traces {
		if tr.Protocol.String() == "icmp" {
			lost[tr.Seq.V] = tr.LostAfter
		}
	}
	if lost[1] != "" || lost[2] != "pod2-veth" {
		t.Errorf("lost_after: seq1 %q, seq2 %q", lost[1], lost[2])
	}
}

func TestNearestWinsBeyondDupWindow(t *testing.T) {
	// Identical frames at point 0 at 0, 0.9 and 1.8 ms; one at point 1 at
	// 1.8 ms: the nearest is the third (0 ms); the oldest within 1 ms of that
	// is the second (0.9 ms) — never the first (1.8 ms away).
	t0 := int64(1e18)
	var fs []Frame
	for _, d := range []int64{0, 900e3, 1800e3} {
		fs = append(fs, echo(0, t0+d, 8, 1, pod1MAC, pod2MAC, pod1IP, pod2IP, 64))
	}
	fs = append(fs, echo(1, t0+1800e3, 8, 1, pod1MAC, pod2MAC, pod1IP, pod2IP, 64))
	r := analyze(t, cfgFor("a", "b"), fs)
	if len(r.Traces) != 3 {
		t.Fatalf("traces = %d", len(r.Traces))
	}
	if len(r.Traces[1].Hops) != 2 || len(r.Traces[0].Hops) != 1 || len(r.Traces[2].Hops) != 1 {
		t.Errorf("hops per trace: %d %d %d", len(r.Traces[0].Hops), len(r.Traces[1].Hops), len(r.Traces[2].Hops))
	}
}

func TestDirectionFromOwnersNotStamps(t *testing.T) {
	// Two points whose stamps are inverted for one request: with the
	// addresses' owners known (as discovery knows them), it stays forward
	// and shows the negative delta.
	c := cfgFor("pod1", "pod2")
	c.IPOwners = map[netip.Addr]Owner{pod1IP: {Point: 0}, pod2IP: {Point: 1}}
	fs := []Frame{
		echo(1, 1e18, 8, 1, pod1MAC, pod2MAC, pod1IP, pod2IP, 64),
		echo(0, 1e18+500, 8, 1, pod1MAC, pod2MAC, pod1IP, pod2IP, 64),
	}
	r := analyze(t, c, fs)
	tr := r.Traces[0]
	if tr.Direction.String() != "forward" || tr.Hops[0].Point != "pod1" || tr.Hops[1].DeltaNs != -500 {
		t.Errorf("direction %s, hops %v, delta %d", tr.Direction, hopNames(tr), tr.Hops[1].DeltaNs)
	}
}

func TestDirectionFromTTLNotStamps(t *testing.T) {
	// Stamps falling along the path order say reverse; where the TTLs
	// differ they decide (a TTL only falls), at any hop; where they all
	// agree (bridged), the stamps do.
	for _, c := range []struct {
		name string
		ttls []uint8 // at points 0, 1, 2
		want string
	}{
		{"routed at the end", []uint8{64, 64, 63}, "forward"},
		{"routed at the start", []uint8{64, 63, 63}, "forward"},
		{"bridged", []uint8{64, 64, 64}, "reverse"},
	} {
		var fs []Frame
		for _, p := range []int{2, 1, 0} { // latest point first
			fs = append(fs, echo(p, 1e18+int64(2-p)*1000, 8, 1, pod1MAC, pod2MAC, pod1IP, pod2IP, c.ttls[p]))
		}
		r := analyze(t, cfgFor("a", "b", "c"), fs)
		if len(r.Traces) != 1 {
			t.Errorf("%s: %d traces, want 1", c.name, len(r.Traces))
		} else if d := r.Traces[0].Direction.String(); d != c.want {
			t.Errorf("%s: direction %s, want %s", c.name, d, c.want)
		}
	}
}

func TestLostFrameDoesNotHoldTheQueue(t *testing.T) {
	// A request lost after pod1, then a request every 10 ms crossing all
	// five points: once every point has moved 100 ms past the lost one, it
	// is emitted (and everything behind it) without waiting a 1 s window.
	emitted := 0
	e, err := New(cfgFor(seedPath...), func(*Trace) { emitted++ })
	if err != nil {
		t.Fatal(err)
	}
	t0 := int64(1e18)
	for p := 0; p < 5; p++ { // every point capturing before the loss
		f := arp(p, t0-50e6+int64(p)*1000, 1, pod1MAC, bcast, pod1IP, pod2IP)
		e.Add(&f)
	}
	f := echo(0, t0, 8, 0, pod1MAC, pod2MAC, pod1IP, pod2IP, 64)
	e.Add(&f)
	for i := 1; i <= 50; i++ {
		for p := 0; p < 5; p++ {
			f := echo(p, t0+int64(i)*10e6+int64(p)*1000, 8, uint32(i), pod1MAC, pod2MAC, pod1IP, pod2IP, 64)
			e.Add(&f)
		}
	}
	// 500 ms in: all but the last ~100 ms of traces must be out.
	if emitted < 36 {
		t.Errorf("%d of 52 traces emitted at 500 ms: a lost frame holds the queue", emitted)
	}
	r := e.Finish()
	if r.Summary.Lost != 1 || r.Summary.Traces != 52 {
		t.Errorf("summary %+v", r.Summary)
	}
}

func hasFlag(flags []Flag, name string) bool {
	for _, f := range flags {
		if f.String() == name {
			return true
		}
	}
	return false
}

// TestRoutingHopFromTTL: a TTL that differs between neighbouring points
// marks a routing hop between them, whatever order the hops arrive in and
// however many hops agreed before (addHop compares a hop with its
// neighbours only once the trace's TTLs disagree).
func TestRoutingHopFromTTL(t *testing.T) {
	us := int64(1000)
	for _, c := range []struct {
		name   string
		points []int   // arrival order
		ttls   []uint8 // TTL at points 0, 1, 2, 3
		want   uint64  // routed bits
	}{
		{"bridged", []int{0, 1, 2, 3}, []uint8{64, 64, 64, 64}, 0},
		{"routed after two agree", []int{0, 1, 2, 3}, []uint8{64, 64, 63, 63}, 1 << 2},
		{"routed, last point first", []int{3, 0, 1, 2}, []uint8{64, 64, 64, 63}, 1 << 3},
		{"routed, middle last", []int{0, 2, 3, 1}, []uint8{64, 63, 63, 63}, 1 << 1},
		{"two routing hops", []int{0, 1, 2, 3}, []uint8{64, 63, 63, 62}, 1<<1 | 1<<3},
	} {
		e, err := New(cfgFor("a", "b", "c", "d"), nil)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range c.points {
			f := echo(p, int64(i)*us, 8, 1, pod1MAC, pod2MAC, pod1IP, pod2IP, c.ttls[p])
			e.Add(&f)
		}
		if e.routed != c.want {
			t.Errorf("%s: routed %b, want %b", c.name, e.routed, c.want)
		}
	}
}

// TestAnsweredEchoesLeaveTheQueue: under a flood the requests waiting for
// their replies are those in flight, not two windows of answered ones (a
// flood's 60,000, grown into fresh memory and looked up again on expiry);
// a request left unanswered is still reported once two windows pass.
func TestAnsweredEchoesLeaveTheQueue(t *testing.T) {
	e, err := New(cfgFor(seedPath...), func(*Trace) {})
	if err != nil {
		t.Fatal(err)
	}
	base := pingFrames(1e18, 0)
	const pings, lost = 30_000, 5_000
	most := 0
	for seq := range uint32(pings) {
		off := int64(seq) * 100e3 // 10,000 pings a second
		for i := range base {
			f := base[i]
			if seq == lost && f.Key.Kind == 0 {
				continue // its reply never comes
			}
			f.Time += off
			f.Key.Seq = seq
			e.Add(&f)
		}
		most = max(most, e.echoQ.Len())
	}
	// Behind the unanswered request, answered ones wait until it expires
	// (two windows: 20,000 pings); the rest leave at once.
	if most > 20_100 || e.echoQ.Len() > 10 {
		t.Errorf("echo queue held up to %d requests, %d at the end; want the unanswered one's two windows at most, then those in flight", most, e.echoQ.Len())
	}
	r := e.Finish()
	un := 0
	for _, a := range r.Anomalies {
		if a.Kind.String() == "unanswered-echo" {
			un += a.Count
		}
	}
	if un != 1 {
		t.Errorf("%d unanswered echo requests reported, want 1", un)
	}
}
