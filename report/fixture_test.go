package report

import (
	"net"
	"net/netip"
	"time"

	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/discover"
)

// The fixture is a Flannel node: pod1 10.244.1.2 and pod2 10.244.1.3 on
// cni0 10.244.1.1. pod2-veth was captured with `tcpdump -i any` (SLL2), so
// it has no interface name and no destination MACs.
const (
	macPod1     = "5e:1a:9c:11:22:01"
	macPod1Veth = "7a:3c:ee:40:51:02"
	macCni0     = "0a:58:0a:f4:01:01"
	macPod2Veth = "be:71:08:aa:93:04"
	macPod2     = "ca:bb:af:bd:e5:3a"
	macBcast    = "ff:ff:ff:ff:ff:ff"
)

// base is 2025-03-14 09:26:53 UTC; every stamp below is base + ns.
var base = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC).UnixNano()

func ts(ns int64) correlate.Timestamp   { return correlate.Timestamp(base + ns) }
func pts(ns int64) *correlate.Timestamp { t := ts(ns); return &t }

func mac(s string) correlate.OptMAC {
	hw, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	var m correlate.MAC
	copy(m[:], hw)
	return correlate.OptMAC{V: m, Valid: true}
}

func hw(s string) discover.MAC {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return discover.MAC(m)
}

func u(v uint64) correlate.OptUint { return correlate.OptUint{V: v, Valid: true} }
func i64(v int64) correlate.OptInt { return correlate.OptInt{V: v, Valid: true} }
func s(v string) correlate.OptString {
	return correlate.OptString{V: v, Valid: true}
}
func ip(v string) correlate.OptAddr { return correlate.OptAddr{V: netip.MustParseAddr(v)} }

// hops builds hops from (point, offset ns, src, dst, ttl) and fills DeltaNs
// the way the correlator does: from the previous hop in crossing order.
type hopSpec struct {
	point    string
	at       int64
	src, dst string // "" = not recorded
	ttl      uint64 // 0 = no IP header
	dir      correlate.LinkDir
	refl     bool
}

func hops(specs ...hopSpec) []correlate.Hop {
	out := make([]correlate.Hop, len(specs))
	for i, h := range specs {
		hp := correlate.Hop{Point: h.point, Time: ts(h.at), Dir: h.dir, Frame: 10 + i, Reflection: h.refl}
		if h.src != "" {
			hp.SrcMAC = mac(h.src)
		}
		if h.dst != "" {
			hp.DstMAC = mac(h.dst)
		}
		if h.ttl != 0 {
			hp.TTL = u(h.ttl)
		}
		if i > 0 {
			hp.DeltaNs = h.at - specs[i-1].at
		}
		out[i] = hp
	}
	return out
}

func fixtureResult() *correlate.Result {
	cov := func(first, last int64, frames int, drops correlate.OptUint) correlate.Coverage {
		return correlate.Coverage{First: pts(first), Last: pts(last), Frames: frames, Decoded: frames,
			KernelDrops: drops, Snaplen: i64(262144)}
	}
	points := []correlate.PointRep{
		{Name: "pod1", Interface: s("eth0"), IfIndex: i64(3), Source: "pod1.pcapng", MTU: i64(1450),
			MACs:     []correlate.MACSeen{{MAC: mac(macPod1).V, Owner: "pod1 eth0", Frames: 5}},
			Coverage: cov(1_000, 2_100_000_000, 9, u(0))},
		{Name: "pod1-veth", Interface: s("veth9903a3d4"), IfIndex: i64(7), Source: "pod1-veth.pcapng", MTU: i64(1450),
			MACs: []correlate.MACSeen{{MAC: mac(macPod1).V, Owner: "pod1 eth0", Frames: 5},
				{MAC: mac(macCni0).V, Owner: "cni0", Frames: 1}, {MAC: mac(macPod2).V, Owner: "pod2 eth0", Frames: 2}},
			Coverage: cov(2_000, 2_100_001_000, 10, u(0))},
		{Name: "cni0", Interface: s("cni0"), IfIndex: i64(5), Source: "cni0.pcapng", MTU: i64(1450),
			MACs:     []correlate.MACSeen{{MAC: mac(macPod1).V, Owner: "pod1 eth0", Frames: 5}, {MAC: mac(macPod2).V, Owner: "pod2 eth0", Frames: 2}},
			Coverage: cov(3_000, 2_100_002_000, 8, u(2))},
		{Name: "pod2-veth", IfIndex: i64(9), Source: "pod2-veth.pcap",
			MACs:     []correlate.MACSeen{{MAC: mac(macPod1).V, Owner: "pod1 eth0", Frames: 3}, {MAC: mac(macCni0).V, Owner: "cni0", Frames: 1}, {MAC: mac(macPod2).V, Owner: "pod2 eth0", Frames: 2}},
			Coverage: cov(4_000, 2_100_003_000, 6, correlate.OptUint{})},
		{Name: "pod2", Interface: s("eth0"), IfIndex: i64(3), Source: "pod2.pcapng", MTU: i64(1450),
			MACs:     []correlate.MACSeen{{MAC: mac(macPod2).V, Owner: "pod2 eth0", Frames: 2}},
			Coverage: cov(5_000, 2_100_004_000, 6, u(0))},
	}

	traces := []correlate.Trace{
		// #1 ARP who-has flooded by cni0, and reflected back to pod1's port
		// (hairpin on).
		{N: 1, Protocol: correlate.ProtoARP, Type: "arp-request", SrcIP: ip("10.244.1.2"), DstIP: ip("10.244.1.3"), Length: 42, Direction: correlate.Forward,
			Hops: hops(
				hopSpec{"pod1", 100_000, macPod1, macBcast, 0, correlate.DirOut, false},
				hopSpec{"pod1-veth", 112_345, macPod1, macBcast, 0, correlate.DirIn, false},
				hopSpec{"cni0", 125_000, macPod1, macBcast, 0, correlate.DirIn, false},
				hopSpec{"pod2-veth", 139_870, macPod1, "", 0, correlate.DirOut, false},
				hopSpec{"pod2", 151_002, macPod1, macBcast, 0, correlate.DirIn, false},
				hopSpec{"pod1-veth", 152_500, macPod1, macBcast, 0, correlate.DirOut, true},
			),
			Flags: []correlate.Flag{correlate.FlagReflection}},
		// #2 ARP reply.
		{N: 2, Protocol: correlate.ProtoARP, Type: "arp-reply", SrcIP: ip("10.244.1.3"), DstIP: ip("10.244.1.2"), Length: 42, Direction: correlate.Reverse,
			Hops: hops(
				hopSpec{"pod2", 170_000, macPod2, macPod1, 0, correlate.DirOut, false},
				hopSpec{"pod2-veth", 181_250, macPod2, "", 0, correlate.DirIn, false},
				hopSpec{"cni0", 192_500, macPod2, macPod1, 0, correlate.DirIn, false},
				hopSpec{"pod1-veth", 203_750, macPod2, macPod1, 0, correlate.DirOut, false},
				hopSpec{"pod1", 215_000, macPod2, macPod1, 0, correlate.DirIn, false},
			)},
		// #3 echo request, complete.
		{N: 3, Protocol: correlate.ProtoICMP, Type: "echo-request", ID: u(0x1a2b), Seq: u(1), IPID: u(0x4d21), SrcIP: ip("10.244.1.2"), DstIP: ip("10.244.1.3"),
			Length: 98, Direction: correlate.Forward,
			Hops: hops(
				hopSpec{"pod1", 300_000, macPod1, macPod2, 64, correlate.DirOut, false},
				hopSpec{"pod1-veth", 312_345, macPod1, macPod2, 64, correlate.DirIn, false},
				hopSpec{"cni0", 324_690, macPod1, macPod2, 64, correlate.DirIn, false},
				hopSpec{"pod2-veth", 335_001, macPod1, "", 64, correlate.DirOut, false},
				hopSpec{"pod2", 340_100, macPod1, macPod2, 64, correlate.DirIn, false},
			)},
		// #4 its reply.
		{N: 4, Protocol: correlate.ProtoICMP, Type: "echo-reply", ID: u(0x1a2b), Seq: u(1), IPID: u(0x9e02), SrcIP: ip("10.244.1.3"), DstIP: ip("10.244.1.2"),
			Length: 98, Direction: correlate.Reverse,
			Hops: hops(
				hopSpec{"pod2", 345_100, macPod2, macPod1, 64, correlate.DirOut, false},
				hopSpec{"pod2-veth", 350_200, macPod2, "", 64, correlate.DirIn, false},
				hopSpec{"cni0", 361_000, macPod2, macPod1, 64, correlate.DirIn, false},
				hopSpec{"pod1-veth", 373_400, macPod2, macPod1, 64, correlate.DirOut, false},
				hopSpec{"pod1", 385_250, macPod2, macPod1, 64, correlate.DirIn, false},
			),
			ReplyTo: i64(3),
			RTT:     &correlate.RTT{TotalNs: 85_250, ForwardNs: 40_100, TurnaroundNs: 5_000, ReverseNs: 40_150}},
		// #5 echo request dropped by the bridge.
		{N: 5, Protocol: correlate.ProtoICMP, Type: "echo-request", ID: u(0x1a2b), Seq: u(2), IPID: u(0x4e10), SrcIP: ip("10.244.1.2"), DstIP: ip("10.244.1.3"),
			Length: 98, Direction: correlate.Forward,
			Hops: hops(
				hopSpec{"pod1", 1_000_300_000, macPod1, macPod2, 64, correlate.DirOut, false},
				hopSpec{"pod1-veth", 1_000_311_900, macPod1, macPod2, 64, correlate.DirIn, false},
				hopSpec{"cni0", 1_000_323_004, macPod1, macPod2, 64, correlate.DirIn, false},
			),
			LostAfter: "cni0", Missing: []string{"pod2-veth", "pod2"}, Flags: []correlate.Flag{correlate.FlagLost}},
		// #6 echo request not seen on the bridge (a gap: seen after it), and
		// pod2's socket stamped it before pod2-veth's.
		{N: 6, Protocol: correlate.ProtoICMP, Type: "echo-request", ID: u(0x1a2b), Seq: u(3), IPID: u(0x4f77), SrcIP: ip("10.244.1.2"), DstIP: ip("10.244.1.3"),
			Length: 98, Direction: correlate.Forward,
			Hops: hops(
				hopSpec{"pod1", 2_000_300_000, macPod1, macPod2, 64, correlate.DirOut, false},
				hopSpec{"pod1-veth", 2_000_312_000, macPod1, macPod2, 64, correlate.DirIn, false},
				hopSpec{"pod2-veth", 2_000_341_500, macPod1, "", 64, correlate.DirOut, false},
				hopSpec{"pod2", 2_000_338_290, macPod1, macPod2, 64, correlate.DirIn, false},
			),
			Missing: []string{"cni0"}, Flags: []correlate.Flag{correlate.FlagGap, correlate.FlagNegativeDelta}},
		// #7 echo request to a ClusterIP: routed by the host, so the MACs
		// and TTL change after cni0 and kube-proxy rewrote the address.
		{N: 7, Protocol: correlate.ProtoICMP, Type: "echo-request", ID: u(0x77), Seq: u(1), IPID: u(0x0101), SrcIP: ip("10.244.1.2"), DstIP: ip("10.96.0.10"),
			Length: 98, Direction: correlate.Forward,
			Hops: hops(
				hopSpec{"pod1", 2_050_000_000, macPod1, macCni0, 64, correlate.DirOut, false},
				hopSpec{"pod1-veth", 2_050_012_000, macPod1, macCni0, 64, correlate.DirIn, false},
				hopSpec{"cni0", 2_050_024_500, macPod1, macCni0, 64, correlate.DirIn, false},
				hopSpec{"pod2-veth", 2_050_071_000, macCni0, "", 63, correlate.DirOut, false},
				hopSpec{"pod2", 2_050_076_125, macCni0, macPod2, 63, correlate.DirIn, false},
			),
			Rewrites: []correlate.Rewrite{
				{Point: "pod2-veth", Field: correlate.FieldSrcMAC, From: macPod1, To: macCni0},
				{Point: "pod2", Field: correlate.FieldDstMAC, From: macCni0, To: macPod2},
				{Point: "pod2-veth", Field: correlate.FieldTTL, From: "64", To: "63"},
				{Point: "pod2-veth", Field: correlate.FieldDstIP, From: "10.96.0.10", To: "10.244.1.3"},
			}},
	}

	return &correlate.Result{
		Version: correlate.SchemaVersion,
		Points:  points,
		Traces:  traces,
		HopLatency: []correlate.HopStat{
			{From: "pod1", To: "pod1-veth", Count: 5, MinNs: 11_900, P50Ns: 12_000, P99Ns: 12_345, MaxNs: 12_345, Exact: true},
			{From: "pod1-veth", To: "cni0", Count: 4, MinNs: 11_104, P50Ns: 12_345, P99Ns: 12_655, MaxNs: 12_655, Exact: true},
			{From: "cni0", To: "pod2-veth", Count: 3, MinNs: 10_311, P50Ns: 14_870, P99Ns: 46_500, MaxNs: 46_500, Exact: true},
			{From: "pod2", To: "pod2-veth", Count: 2, MinNs: 5_100, P50Ns: 5_100, P99Ns: 11_250, MaxNs: 11_250, Exact: false},
		},
		Anomalies: []correlate.Anomaly{
			{Kind: correlate.KindLoss, Severity: correlate.Warning, Point: "cni0", Count: 1, Traces: []int{5},
				Message: "1 frame seen at cni0 never reached pod2-veth (cni0 kernel drops: 2)"},
			{Kind: correlate.KindGap, Severity: correlate.Warning, Point: "cni0", Count: 1, Traces: []int{6},
				Message: "1 frame crossed cni0 unseen (capture not promiscuous?)"},
			{Kind: correlate.KindNegativeDelta, Severity: correlate.Info, Point: "pod2", Count: 1, Traces: []int{6},
				Message: "pod2 stamped 1 frame 3.210 µs before pod2-veth: stamps come from different sockets"},
			{Kind: correlate.KindReflection, Severity: correlate.Info, Point: "pod1-veth", Count: 1, Traces: []int{1},
				Message: "cni0 sent 1 broadcast back out the port it came in (hairpin on)"},
		},
		Warnings: []string{"pod2-veth: SLL2 capture records no destination MAC"},
		Summary: correlate.Summary{
			Frames: 39, Decoded: 39, Traces: 7, Complete: 4, Lost: 1, WithGaps: 1,
			ByProto: map[string]int{"arp": 2, "icmp": 5},
			Verdict: "NOT CLEAN: 1 of 7 traces lost after cni0 (cni0 reports 2 kernel drops); 1 crossed cni0 unseen",
			Clean:   false,
		},
	}
}

func fixturePath() *discover.Path {
	on := true
	return &discover.Path{
		Src: discover.Endpoint{Arg: "pod1", Label: "pod1", NetnsPath: "/run/netns/pod1", Inode: 4026532301,
			Interface: "eth0", IfIndex: 3, MAC: hw(macPod1), IP: netip.MustParseAddr("10.244.1.2")},
		Dst: discover.Endpoint{Arg: "pod2", Label: "pod2", NetnsPath: "/run/netns/pod2", Inode: 4026532402,
			Interface: "eth0", IfIndex: 3, MAC: hw(macPod2), IP: netip.MustParseAddr("10.244.1.3")},
		Points: []discover.Point{
			{Name: "pod1", Role: discover.RoleEndpoint, Netns: "pod1", NetnsPath: "/run/netns/pod1", Inode: 4026532301, Interface: "eth0", IfIndex: 3,
				MAC: hw(macPod1), MTU: 1450, Peer: "veth9903a3d4@node1 (ifindex 7)", Addrs: []netip.Prefix{netip.MustParsePrefix("10.244.1.2/24")}},
			{Name: "pod1-veth", Role: discover.RoleVeth, Netns: "node1", NetnsPath: "/proc/1/ns/net", Inode: 4026531840, Interface: "veth9903a3d4", IfIndex: 7,
				MAC: hw(macPod1Veth), MTU: 1450, Master: "cni0", Peer: "eth0@pod1 (ifindex 3)", Hairpin: &on},
			{Name: "cni0", Role: discover.RoleBridge, Netns: "node1", NetnsPath: "/proc/1/ns/net", Inode: 4026531840, Interface: "cni0", IfIndex: 5,
				MAC: hw(macCni0), MTU: 1450, Promisc: true, Addrs: []netip.Prefix{netip.MustParsePrefix("10.244.1.1/24")}},
			{Name: "pod2-veth", Role: discover.RoleVeth, Netns: "node1", NetnsPath: "/proc/1/ns/net", Inode: 4026531840, Interface: "veth51c0e2b7", IfIndex: 9,
				MAC: hw(macPod2Veth), MTU: 1450, Master: "cni0", Peer: "eth0@pod2 (ifindex 3)", Hairpin: &on},
			{Name: "pod2", Role: discover.RoleEndpoint, Netns: "pod2", NetnsPath: "/run/netns/pod2", Inode: 4026532402, Interface: "eth0", IfIndex: 3,
				MAC: hw(macPod2), MTU: 1450, Peer: "veth51c0e2b7@node1 (ifindex 9)", Addrs: []netip.Prefix{netip.MustParsePrefix("10.244.1.3/24")}},
		},
		FDB: []discover.FDBEntry{
			{Bridge: "cni0", MAC: hw(macPod1), Port: "veth9903a3d4", Owner: "pod1 eth0"},
			{Bridge: "cni0", MAC: hw(macPod2), Port: "veth51c0e2b7", Owner: "pod2 eth0"},
		},
		Owners: map[string]string{
			macPod1:     "pod1 eth0",
			macPod1Veth: "pod1-veth (node1 veth9903a3d4)",
			macCni0:     "cni0",
			macPod2Veth: "pod2-veth (node1 veth51c0e2b7)",
			macPod2:     "pod2 eth0",
		},
		Notes: []string{"cni0 is captured in promiscuous mode: bridged unicast is invisible otherwise"},
	}
}

func fixtureLive() *LiveInfo {
	return &LiveInfo{Probes: 3, Sent: 3, Replies: 1, EchoID: 0x4f21,
		Started: time.Unix(0, base).UTC(), Ended: time.Unix(0, base+2_100_005_000).UTC(),
		Evidence: []string{"pathtrace-20250314T092653/pod1.pcapng", "pathtrace-20250314T092653/result.json"}}
}
