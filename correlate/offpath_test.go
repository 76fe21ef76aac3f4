package correlate

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// tcpSeg is a TCP segment seen at point, from a to b.
func tcpSeg(point int, ts int64, seq uint32, a, b netip.Addr) Frame {
	return Frame{
		Point: point, Time: ts, Num: 1,
		Key:   Key{Proto: ProtoTCP, Kind: 0x18, Seq: seq, Hash: uint64(seq), Len: 100},
		SrcIP: a, DstIP: b, SrcPort: 6443, DstPort: 51000, HasPorts: true, WireLen: 154, CapLen: 154,
	}
}

var (
	nodeA  = netip.MustParseAddr("192.168.10.1")
	nodeB  = netip.MustParseAddr("192.168.10.2")
	apiSrv = netip.MustParseAddr("192.168.10.100")
)

// TestOffPathIsNotLoss: two node NICs. The pods' echoes cross both; an API
// server conversation only ever touches NIC A: its traces are off-path, not
// lost, and the verdict is about the echoes.
func TestOffPathIsNotLoss(t *testing.T) {
	c := cfgFor("nicA", "nicB")
	var fs []Frame
	ms := int64(1e6)
	for i := range 5 {
		t0 := int64(i) * 100 * ms
		fs = append(fs,
			echo(0, t0, 8, uint32(i), pod1MAC, pod2MAC, pod1IP, pod2IP, 63),
			echo(1, t0+40_000, 8, uint32(i), pod1MAC, pod2MAC, pod1IP, pod2IP, 63),
			echo(1, t0+ms, 0, uint32(i), pod2MAC, pod1MAC, pod2IP, pod1IP, 63),
			echo(0, t0+ms+40_000, 0, uint32(i), pod2MAC, pod1MAC, pod2IP, pod1IP, 63),
			tcpSeg(0, t0+2*ms, uint32(1000+i), nodeA, apiSrv),
			tcpSeg(0, t0+3*ms, uint32(5000+i), apiSrv, nodeA),
		)
	}
	r := analyze(t, c, fs)
	s := r.Summary
	if s.Lost != 0 || s.OffPath != 10 || s.OffPathFlows != 1 || s.Complete != 10 || !s.Clean {
		t.Fatalf("summary %+v", s)
	}
	for _, tr := range r.Traces {
		if tr.Protocol == ProtoTCP && (tr.LostAfter != "" || len(tr.Flags) != 0) {
			t.Errorf("off-path trace %d: lost_after %q flags %v", tr.N, tr.LostAfter, tr.Flags)
		}
	}
	if !strings.HasPrefix(s.Verdict, "OK: all 10 traces") || !strings.Contains(s.Verdict, "10 traces of 1 flows seen at one point only") {
		t.Errorf("verdict %q", s.Verdict)
	}
}

// TestLossWhereTheFlowGoesOn: a flow seen at both NICs earlier loses a
// frame after NIC A: that is loss. So is a frame to a destination known to
// sit behind NIC B (learned from its own frames) — a total blackhole.
func TestLossWhereTheFlowGoesOn(t *testing.T) {
	c := cfgFor("nicA", "nicB")
	ms := int64(1e6)
	fs := []Frame{
		tcpSeg(0, 0, 1, nodeA, nodeB),
		tcpSeg(1, 50_000, 1, nodeA, nodeB),
		tcpSeg(0, 200*ms, 2, nodeA, nodeB), // lost after nicA: the flow goes on
		echo(0, 400*ms, 8, 1, pod1MAC, pod2MAC, pod1IP, pod2IP, 63),
		// pod2's own ARP reply shows it behind nicB: the echo's way goes there
		arp(1, 300*ms, 2, pod2MAC, pod1MAC, pod2IP, pod1IP),
		arp(0, 300*ms+40_000, 2, pod2MAC, pod1MAC, pod2IP, pod1IP),
	}
	slices.SortStableFunc(fs, func(a, b Frame) int { return cmp64(a.Time, b.Time) })
	r := analyze(t, c, fs)
	var lost []int
	for _, tr := range r.Traces {
		if tr.LostAfter != "" {
			lost = append(lost, tr.N)
		}
	}
	if r.Summary.Lost != 2 || r.Summary.OffPath != 0 {
		t.Fatalf("lost %v, summary %+v", lost, r.Summary)
	}
}

// TestNoSharedFrames: two captures of one lab from different runs share no
// frame: a warning naming both points, and no loss between them.
func TestNoSharedFrames(t *testing.T) {
	c := cfgFor("pod1", "pod1-veth")
	var fs []Frame
	for i := range 3 {
		fs = append(fs, echo(1, int64(i)*200e6, 8, uint32(i), pod1MAC, pod2MAC, pod1IP, pod2IP, 64),
			echo(1, int64(i)*200e6+30e3, 0, uint32(i), pod2MAC, pod1MAC, pod2IP, pod1IP, 64))
	}
	for i := range 3 { // the other run: later, other seqs
		t0 := 10e9 + int64(i)*200e6
		fs = append(fs, echo(0, t0, 8, uint32(100+i), pod1MAC, pod2MAC, pod1IP, pod2IP, 64),
			echo(0, t0+40e3, 0, uint32(100+i), pod2MAC, pod1MAC, pod2IP, pod1IP, 64))
	}
	r := analyze(t, c, fs)
	var a *Anomaly
	for i := range r.Anomalies {
		if r.Anomalies[i].Kind == KindNoSharedFrames {
			a = &r.Anomalies[i]
		}
	}
	if a == nil || a.Point != "pod1 and pod1-veth" || a.Severity != Warning {
		t.Fatalf("anomalies %+v", r.Anomalies)
	}
	if r.Summary.Lost != 0 || r.Summary.Clean || !strings.Contains(r.Summary.Verdict, "pod1 and pod1-veth share no frame: not captured at the same time, or not on one path") {
		t.Fatalf("summary %+v", r.Summary)
	}
}

// TestParallelPingsSameSeqAndPayload: two pings with different echo ids
// carry the same seq and payload microseconds apart: each frame joins its
// own ping's trace and none is a duplicate.
func TestParallelPingsSameSeqAndPayload(t *testing.T) {
	c := cfgFor(seedPath...)
	var fs []Frame
	for i, id := range []uint16{0x1111, 0x2222} {
		for p := range 5 {
			f := echo(p, int64(p)*10_000+int64(i)*3_000, 8, 7, pod1MAC, pod2MAC, pod1IP, pod2IP, 64)
			f.EchoID = id
			fs = append(fs, f)
		}
	}
	slices.SortStableFunc(fs, func(a, b Frame) int { return cmp64(a.Time, b.Time) })
	r := analyze(t, c, fs)
	if len(r.Traces) != 2 {
		t.Fatalf("%d traces, want 2", len(r.Traces))
	}
	for _, tr := range r.Traces {
		if len(tr.Hops) != 5 || len(tr.Flags) != 0 {
			t.Errorf("trace %d: %d hops, flags %v", tr.N, len(tr.Hops), tr.Flags)
		}
	}
	if r.Traces[0].ID.V == r.Traces[1].ID.V {
		t.Errorf("both traces carry id %#x", r.Traces[0].ID.V)
	}
}
