package report

import (
	"bytes"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/discover"
)

// testdata/result_*.json are `pathtrace analyze -f json` of the repository's
// real captures (testdata/captures/{promisc,nft-drop,seed,routed}), so the
// layout tests run on what the kernel really did rather than on numbers
// made up to fit. loadResult reads one back into a correlate.Result; the
// schema has no decoder because nothing else needs one.

type jsonPoint struct {
	Name      string              `json:"name"`
	Interface *string             `json:"interface"`
	IfIndex   *int64              `json:"ifindex"`
	Source    string              `json:"source"`
	MTU       *int64              `json:"mtu"`
	MACs      []correlate.MACSeen `json:"macs"`
	Coverage  struct {
		First       *string `json:"first"`
		Last        *string `json:"last"`
		Frames      int     `json:"frames"`
		Decoded     int     `json:"decoded"`
		KernelDrops *uint64 `json:"kernel_drops"`
		Truncated   int     `json:"truncated"`
		Snaplen     *int64  `json:"snaplen"`
	} `json:"coverage"`
}

type jsonHop struct {
	Point      string  `json:"point"`
	Time       string  `json:"time"`
	DeltaNs    int64   `json:"delta_ns"`
	SrcMAC     *string `json:"src_mac"`
	DstMAC     *string `json:"dst_mac"`
	TTL        *uint64 `json:"ttl"`
	Dir        string  `json:"dir"`
	Frame      int     `json:"frame"`
	Reflection bool    `json:"reflection"`
}

type jsonTrace struct {
	N         int                 `json:"n"`
	Protocol  string              `json:"protocol"`
	Type      string              `json:"type"`
	ID        *uint64             `json:"id"`
	Seq       *uint64             `json:"seq"`
	IPID      *uint64             `json:"ip_id"`
	SrcIP     *string             `json:"src_ip"`
	DstIP     *string             `json:"dst_ip"`
	SrcPort   *uint64             `json:"src_port"`
	DstPort   *uint64             `json:"dst_port"`
	Length    int                 `json:"length"`
	Direction string              `json:"direction"`
	Hops      []jsonHop           `json:"hops"`
	LostAfter string              `json:"lost_after"`
	Missing   []string            `json:"missing"`
	Rewrites  []correlate.Rewrite `json:"rewrites"`
	ReplyTo   *int64              `json:"reply_to"`
	RTT       *correlate.RTT      `json:"rtt"`
	Flags     []string            `json:"flags"`
}

type jsonResult struct {
	Version    int                 `json:"version"`
	Points     []jsonPoint         `json:"points"`
	Traces     []jsonTrace         `json:"traces"`
	HopLatency []correlate.HopStat `json:"hop_latency"`
	Anomalies  []correlate.Anomaly `json:"anomalies"`
	Warnings   []string            `json:"warnings"`
	Summary    correlate.Summary   `json:"summary"`
}

func loadResult(t *testing.T, name string) *correlate.Result {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var j jsonResult
	if err := json.Unmarshal(raw, &j); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	stamp := func(s string) correlate.Timestamp {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatalf("%s: stamp %q: %v", name, s, err)
		}
		return correlate.Timestamp(tm.UnixNano())
	}
	pstamp := func(s *string) *correlate.Timestamp {
		if s == nil {
			return nil
		}
		v := stamp(*s)
		return &v
	}
	optU := func(v *uint64) correlate.OptUint {
		if v == nil {
			return correlate.OptUint{}
		}
		return correlate.OptUint{V: *v, Valid: true}
	}
	optI := func(v *int64) correlate.OptInt {
		if v == nil {
			return correlate.OptInt{}
		}
		return correlate.OptInt{V: *v, Valid: true}
	}
	optS := func(v *string) correlate.OptString {
		if v == nil {
			return correlate.OptString{}
		}
		return correlate.OptString{V: *v, Valid: true}
	}
	optA := func(v *string) correlate.OptAddr {
		if v == nil {
			return correlate.OptAddr{}
		}
		return correlate.OptAddr{V: netip.MustParseAddr(*v)}
	}
	optM := func(v *string) correlate.OptMAC {
		if v == nil {
			return correlate.OptMAC{}
		}
		hw, err := net.ParseMAC(*v)
		if err != nil {
			t.Fatal(err)
		}
		var m correlate.MAC
		copy(m[:], hw)
		return correlate.OptMAC{V: m, Valid: true}
	}

	r := &correlate.Result{Version: j.Version, HopLatency: j.HopLatency, Anomalies: j.Anomalies,
		Warnings: j.Warnings, Summary: j.Summary}
	for _, p := range j.Points {
		c := p.Coverage
		r.Points = append(r.Points, correlate.PointRep{Name: p.Name, Interface: optS(p.Interface), IfIndex: optI(p.IfIndex),
			Source: p.Source, MTU: optI(p.MTU), MACs: p.MACs,
			Coverage: correlate.Coverage{First: pstamp(c.First), Last: pstamp(c.Last), Frames: c.Frames, Decoded: c.Decoded,
				KernelDrops: optU(c.KernelDrops), Truncated: c.Truncated, Snaplen: optI(c.Snaplen)}})
	}
	for _, jt := range j.Traces {
		tr := correlate.Trace{N: jt.N, Protocol: jt.Protocol, Type: jt.Type, ID: optU(jt.ID), Seq: optU(jt.Seq),
			IPID: optU(jt.IPID), SrcIP: optA(jt.SrcIP), DstIP: optA(jt.DstIP), SrcPort: optU(jt.SrcPort),
			DstPort: optU(jt.DstPort), Length: jt.Length, Direction: jt.Direction, LostAfter: jt.LostAfter,
			Missing: jt.Missing, Rewrites: jt.Rewrites, ReplyTo: optI(jt.ReplyTo), RTT: jt.RTT, Flags: jt.Flags}
		for _, h := range jt.Hops {
			tr.Hops = append(tr.Hops, correlate.Hop{Point: h.Point, Time: stamp(h.Time), DeltaNs: h.DeltaNs,
				SrcMAC: optM(h.SrcMAC), DstMAC: optM(h.DstMAC), TTL: optU(h.TTL), Dir: h.Dir, Frame: h.Frame,
				Reflection: h.Reflection})
		}
		r.Traces = append(r.Traces, tr)
	}

	// The decoder is only trusted if rendering it gives the file back.
	var b bytes.Buffer
	if err := JSON(&b, Document{Result: r}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), raw) {
		t.Fatalf("%s does not survive decode and JSON(): the test decoder or the schema changed", name)
	}
	return r
}

// promiscPath is what discovery reports for testdata/captures/promisc,
// from its FACTS.md (interfaces, ifindexes and MACs of the lab run).
func promiscPath() *discover.Path {
	on := true
	const (
		pod1, pod1Veth, cni0 = "f2:c2:bd:7a:6c:ca", "7a:60:1e:61:ef:b9", "a6:c5:94:a1:8d:e7"
		pod2Veth, pod2       = "6e:da:4a:ff:d9:e8", "02:84:9d:0d:2a:c5"
	)
	return &discover.Path{
		Src: discover.Endpoint{Arg: "pod1", Label: "pod1", NetnsPath: "/run/netns/pod1", Interface: "eth0", IfIndex: 2,
			MAC: pod1, IP: netip.MustParseAddr("10.244.1.2")},
		Dst: discover.Endpoint{Arg: "pod2", Label: "pod2", NetnsPath: "/run/netns/pod2", Interface: "eth0", IfIndex: 2,
			MAC: pod2, IP: netip.MustParseAddr("10.244.1.3")},
		Points: []discover.Point{
			{Name: "pod1", Role: "endpoint", Netns: "pod1", Interface: "eth0", IfIndex: 2, MAC: pod1, MTU: 1450,
				Peer: "vetha6bc7cdf@node1 (ifindex 3)"},
			{Name: "pod1-veth", Role: "veth", Netns: "node1", Interface: "vetha6bc7cdf", IfIndex: 3, MAC: pod1Veth, MTU: 1450,
				Master: "cni0", Peer: "eth0@pod1 (ifindex 2)", Hairpin: &on},
			{Name: "cni0", Role: "bridge", Netns: "node1", Interface: "cni0", IfIndex: 2, MAC: cni0, MTU: 1450, Promisc: true},
			{Name: "pod2-veth", Role: "veth", Netns: "node1", Interface: "vethb3089664", IfIndex: 4, MAC: pod2Veth, MTU: 1450,
				Master: "cni0", Peer: "eth0@pod2 (ifindex 2)", Hairpin: &on},
			{Name: "pod2", Role: "endpoint", Netns: "pod2", Interface: "eth0", IfIndex: 2, MAC: pod2, MTU: 1450,
				Peer: "vethb3089664@node1 (ifindex 4)"},
		},
		FDB: []discover.FDBEntry{{Bridge: "cni0", MAC: pod1, Port: "vetha6bc7cdf", Owner: "pod1 eth0"}},
		Owners: map[string]string{pod1: "pod1 eth0", pod1Veth: "pod1-veth (node1 vetha6bc7cdf)", cni0: "cni0",
			pod2Veth: "pod2-veth (node1 vethb3089664)", pod2: "pod2 eth0"},
	}
}

func promiscLive(r *correlate.Result) *LiveInfo {
	first, last := *r.Points[0].Coverage.First, *r.Points[0].Coverage.Last
	return &LiveInfo{Probes: 3, Sent: 3, Replies: 3,
		Started: time.Unix(0, int64(first)).UTC(), Ended: time.Unix(0, int64(last)).UTC()}
}
