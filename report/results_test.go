package report

import (
	"bytes"
	"encoding/json"
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
// made up to fit. loadResult reads one back into a correlate.Result.

func loadResult(t *testing.T, name string) *correlate.Result {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	r := &correlate.Result{}
	if err := json.Unmarshal(raw, r); err != nil {
		t.Fatalf("decode %s: %v", name, err)
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
			MAC: hw(pod1), IP: netip.MustParseAddr("10.244.1.2")},
		Dst: discover.Endpoint{Arg: "pod2", Label: "pod2", NetnsPath: "/run/netns/pod2", Interface: "eth0", IfIndex: 2,
			MAC: hw(pod2), IP: netip.MustParseAddr("10.244.1.3")},
		Points: []discover.Point{
			{Name: "pod1", Role: discover.RoleEndpoint, Netns: "pod1", Interface: "eth0", IfIndex: 2, MAC: hw(pod1), MTU: 1450,
				Peer: "vetha6bc7cdf@node1 (ifindex 3)"},
			{Name: "pod1-veth", Role: discover.RoleVeth, Netns: "node1", Interface: "vetha6bc7cdf", IfIndex: 3, MAC: hw(pod1Veth), MTU: 1450,
				Master: "cni0", Peer: "eth0@pod1 (ifindex 2)", Hairpin: &on},
			{Name: "cni0", Role: discover.RoleBridge, Netns: "node1", Interface: "cni0", IfIndex: 2, MAC: hw(cni0), MTU: 1450, Promisc: true},
			{Name: "pod2-veth", Role: discover.RoleVeth, Netns: "node1", Interface: "vethb3089664", IfIndex: 4, MAC: hw(pod2Veth), MTU: 1450,
				Master: "cni0", Peer: "eth0@pod2 (ifindex 2)", Hairpin: &on},
			{Name: "pod2", Role: discover.RoleEndpoint, Netns: "pod2", Interface: "eth0", IfIndex: 2, MAC: hw(pod2), MTU: 1450,
				Peer: "vethb3089664@node1 (ifindex 4)"},
		},
		FDB: []discover.FDBEntry{{Bridge: "cni0", MAC: hw(pod1), Port: "vetha6bc7cdf", Owner: "pod1 eth0"}},
		Owners: map[string]string{pod1: "pod1 eth0", pod1Veth: "pod1-veth (node1 vetha6bc7cdf)", cni0: "cni0",
			pod2Veth: "pod2-veth (node1 vethb3089664)", pod2: "pod2 eth0"},
	}
}

func promiscLive(r *correlate.Result) *LiveInfo {
	first, last := *r.Points[0].Coverage.First, *r.Points[0].Coverage.Last
	return &LiveInfo{Probes: 3, Sent: 3, Replies: 3,
		Started: time.Unix(0, int64(first)).UTC(), Ended: time.Unix(0, int64(last)).UTC()}
}
