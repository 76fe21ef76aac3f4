package filter

import (
	"net/netip"
	"os"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

var (
	podA  = netip.MustParseAddr("10.244.1.2")
	podB  = netip.MustParseAddr("10.244.2.3")
	nodeA = netip.MustParseAddr("192.168.0.10")
	nodeB = netip.MustParseAddr("192.168.0.11")
	v6A   = netip.MustParseAddr("fd00::1")
	v6B   = netip.MustParseAddr("fd00::2")
)

const allHave = HaveEtherType | HaveProto | HaveFragProto | HaveSrcPort | HaveDstPort

func ipv4Fields(src, dst netip.Addr, proto uint8, sport, dport uint16) Fields {
	return Fields{
		WireLen: 100, HasMAC: true, SrcMAC: [6]byte{2, 0, 0, 0, 0, 1}, DstMAC: [6]byte{2, 0, 0, 0, 0, 2},
		EtherType: EtherTypeIPv4, Have: allHave &^ HaveFragProto,
		Src: src, Dst: dst, Proto: proto, SrcPort: sport, DstPort: dport,
	}
}

func mustCompile(t testing.TB, expr string) *Filter {
	t.Helper()
	f, err := Compile(expr)
	if err != nil {
		t.Fatalf("Compile(%q): %v", expr, err)
	}
	return f
}

type matchCase struct {
	expr string
	want bool
}

func checkMatches(t *testing.T, name string, v *Fields, cases []matchCase) {
	t.Helper()
	for _, c := range cases {
		if got := mustCompile(t, c.expr).Match(v); got != c.want {
			t.Errorf("%s: %q = %v, want %v", name, c.expr, got, c.want)
		}
	}
}

func TestMatchBasics(t *testing.T) {
	tcp := ipv4Fields(podA, podB, 6, 40000, 80)
	checkMatches(t, "tcp", &tcp, []matchCase{
		{"host 10.244.1.2", true}, {"src host 10.244.1.2", true}, {"dst host 10.244.1.2", false},
		{"src and dst host 10.244.1.2", false}, {"host 10.244.1.2 and host 10.244.2.3", true},
		{"net 10.244.0.0/16", true}, {"dst net 10.244.1.0/24", false}, {"host 10.244", true},
		{"net 10.244.0.0 mask 255.255.0.255", false}, {"net 10.244.0.2 mask 255.255.0.255", true},
		{"arp host 10.244.1.2", false}, {"ip6", false}, {"host fd00::1", false},
		{"tcp", true}, {"udp", false}, {"ip proto 6", true}, {"proto \\tcp", true},
		{"port 80", true}, {"src port 80", false}, {"dst port 80", true}, {"udp port 80", false},
		{"portrange 79-81", true}, {"portrange 40001-50000", false}, {"tcp src portrange 40000-40000", true},
		{"ether src 02:00:00:00:00:01", true}, {"ether dst 02:00:00:00:00:01", false},
		{"ether broadcast", false}, {"ether multicast", false},
		{"greater 100", true}, {"greater 101", false}, {"less 100", true}, {"less 99", false},
		{"vlan", false}, {"not vlan", true}, {"ether proto 0x800", true},
		{"tcp and not port 22", true}, {"not (tcp and port 80)", false},
	})

	arp := Fields{WireLen: 42, HasMAC: true, DstMAC: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		EtherType: EtherTypeARP, Have: HaveEtherType, ARPSender: podA, ARPTarget: podB}
	checkMatches(t, "arp", &arp, []matchCase{
		{"arp", true}, {"host 10.244.2.3", true}, {"arp dst host 10.244.2.3", true},
		{"ip host 10.244.2.3", false}, {"rarp host 10.244.2.3", false}, {"ether broadcast", true},
		{"broadcast and arp", true}, {"ether multicast", true}, {"ip", false}, {"port 80", false},
	})

	nd := Fields{WireLen: 86, HasMAC: true, DstMAC: [6]byte{0x33, 0x33, 0xff, 0, 0, 2}, EtherType: EtherTypeIPv6,
		Have: allHave, Src: v6A, Dst: netip.MustParseAddr("ff02::1:ff00:2"), Proto: 58}
	checkMatches(t, "nd", &nd, []matchCase{
		{"icmp6", true}, {"icmp", false}, {"ip6 multicast", true}, {"ip multicast", false},
		{"host fd00::1", true}, {"ip6 src net fd00::/8", true}, {"dst net ff02::/16", true},
		{"ether multicast", true}, {"ip6 proto 58", true}, {"proto 58", true},
	})
}

// TestMatchIPv6Chain: tcpdump looks at the Next Header of the fixed header
// and behind a fragment header only; ports only when TCP/UDP follows the
// fixed header directly.
func TestMatchIPv6Chain(t *testing.T) {
	base := Fields{WireLen: 200, HasMAC: true, EtherType: EtherTypeIPv6, Have: allHave, Src: v6A, Dst: v6B,
		SrcPort: 0x1111, DstPort: 53}
	hbh := base
	hbh.Proto, hbh.FragProto = 0, 0x3a // hop-by-hop, then ICMPv6 (MLD)
	checkMatches(t, "hop-by-hop", &hbh, []matchCase{{"icmp6", false}, {"ip6 proto 0", true}, {"ip6", true}})

	frag := base
	frag.Proto, frag.FragProto = 44, 17 // every fragment of a UDP datagram
	checkMatches(t, "fragment", &frag, []matchCase{
		{"udp", true}, {"ip6 proto 17", true}, {"ip6 proto 44", true}, {"port 53", false}, {"tcp", false},
	})
	frag.Have &^= HaveFragProto // a fragment header cut by the snap length
	checkMatches(t, "cut fragment", &frag, []matchCase{{"udp", false}, {"not udp", false}, {"ip6", true}})
}

// TestMatchFragments: ports are never read from non-first IPv4 fragments.
func TestMatchFragments(t *testing.T) {
	f := ipv4Fields(podA, podB, 17, 1234, 53)
	f.NonFirstFragment = true
	checkMatches(t, "non-first", &f, []matchCase{{"udp", true}, {"port 53", false}, {"not port 53", true}})
	f.NonFirstFragment = false
	checkMatches(t, "first", &f, []matchCase{{"udp", true}, {"port 53", true}})
}

// TestMatchTruncated: a field the filter must read but that was not
// captured rejects the frame, whatever the rest of the expression says,
// as a BPF load past the captured bytes does.
func TestMatchTruncated(t *testing.T) {
	f := ipv4Fields(podA, netip.Addr{}, 6, 0, 0)
	f.Have &^= HaveSrcPort | HaveDstPort
	checkMatches(t, "cut", &f, []matchCase{
		{"tcp", true}, {"src host 10.244.1.2", true}, {"dst host 10.244.1.2", false},
		{"not dst host 10.244.1.2", false}, {"port 80", false}, {"not port 80", false},
		{"port 80 or tcp", false}, {"tcp or port 80", true}, {"udp port 53", false}, {"not udp port 53", true},
		{"net 0.0.0.0/0", true}, {"dst net 0.0.0.0/0", true},
	})
	none := Fields{WireLen: 10, HasMAC: false}
	checkMatches(t, "no type", &none, []matchCase{{"ip", false}, {"not ip", false}, {"greater 5", true}})
}

// TestMatchVLAN: every "vlan" moves the primitives after it one tag in;
// a frame with fewer tags than that matches nothing there (libpcap would
// read payload bytes as the type field).
func TestMatchVLAN(t *testing.T) {
	qinq := ipv4Fields(podA, podB, 1, 0, 0)
	qinq.VLANs[0] = VLANTag{TPID: EtherTypeQinQ, ID: 100}
	qinq.VLANs[1] = VLANTag{TPID: EtherTypeVLAN, ID: 200}
	qinq.NumVLAN = 2
	checkMatches(t, "qinq", &qinq, []matchCase{
		{"vlan", true}, {"vlan 100", true}, {"vlan 200", false}, {"vlan 100 and vlan 200", true},
		{"vlan and vlan 200 and icmp", true}, {"vlan and icmp", false}, {"vlan and vlan and ip", true},
		{"vlan and vlan and vlan", false}, {"ip", false}, {"ether proto 0x88a8", true},
		{"vlan and ether proto 0x8100", true}, {"vlan 100 and vlan 200 and host 10.244.1.2", true},
		{"vlan 100 and vlan 200 and not host 10.244.1.2", false}, {"ether src 02:00:00:00:00:01 and vlan", true},
	})
	plain := ipv4Fields(podA, podB, 1, 0, 0)
	checkMatches(t, "untagged", &plain, []matchCase{
		{"vlan", false}, {"not vlan", true}, {"vlan or ip", false}, {"ip or vlan", true}, {"not vlan and ip", false},
	})
	cut := Fields{HasMAC: true, EtherType: EtherTypeVLAN, Have: HaveEtherType} // TCI not captured
	checkMatches(t, "cut tag", &cut, []matchCase{{"vlan", true}, {"vlan 1", false}, {"not vlan 1", false}})
}

// TestMatchTunnel: a filter on pod addresses keeps the VXLAN copy of a pod
// packet on the node's NIC through its inner view.
func TestMatchTunnel(t *testing.T) {
	outer := ipv4Fields(nodeA, nodeB, 17, 51000, 4789)
	inner := ipv4Fields(podA, podB, 1, 0, 0)
	for _, c := range []matchCase{
		{"host 10.244.2.3", true}, {"icmp", true}, {"udp port 4789", true}, {"host 192.168.0.10", true},
		{"host 10.244.1.2 and host 192.168.0.11", false}, {"tcp", false}, {"not udp", true},
	} {
		if got := mustCompile(t, c.expr).Match(&outer, &inner); got != c.want {
			t.Errorf("%q on outer+inner = %v, want %v", c.expr, got, c.want)
		}
	}
	if !(*Filter)(nil).Match(&outer) || !mustCompile(t, "").Match(&outer) {
		t.Error("a nil or empty filter must match every frame")
	}
	if mustCompile(t, "ip").Match() || mustCompile(t, "ip").Match(nil, nil) {
		t.Error("no view must match nothing")
	}
}

// TestTunnelCaptures: on real VXLAN captures, a filter on the inner (pod)
// addresses keeps exactly the tunnelled frames that carry them.
func TestTunnelCaptures(t *testing.T) {
	tcpdump := needTcpdump(t)
	files := []struct {
		path, expr string
	}{
		{"testdata/veth.pcap", "host 10.244.7.2"},
		{"testdata/veth.pcap", "host 10.244.8.1 and icmp"},
		{"testdata/veth.pcap", "host fd44::2"},
	}
	if dir := corpusDir(t); dir != "" {
		files = append(files, struct{ path, expr string }{dir + "/tcpdump/vxlan.pcap", "icmp and host 192.168.203.5"},
			struct{ path, expr string }{dir + "/tcpdump/vxlan_port_8472.pcap", "icmp and host 192.168.203.5"})
	}
	for _, c := range files {
		if _, err := os.Stat(c.path); err != nil {
			t.Fatalf("%v", err)
		}
		link, frames, err := tcpdumpFrames(tcpdump, c.path, "")
		if err != nil {
			t.Fatal(err)
		}
		_, outerKept, err := tcpdumpFrames(tcpdump, c.path, c.expr)
		if err != nil {
			t.Fatal(err)
		}
		if len(outerKept) != 0 {
			t.Errorf("%s: tcpdump keeps %d frames for %q on the outer headers; the test wants pod addresses that only the inner frames carry", c.path, len(outerKept), c.expr)
		}
		f := mustCompile(t, c.expr)
		kept, tunnelled := 0, 0
		for i, fr := range frames {
			outer, inner, _ := extract(link, fr.data, fr.wire)
			if inner != nil {
				tunnelled++
			}
			if f.Match(&outer, inner) {
				kept++
				if inner == nil || !f.Match(inner) {
					t.Errorf("%s frame %d kept for %q but its inner frame does not match", c.path, i+1, c.expr)
				}
			}
		}
		if kept == 0 {
			t.Errorf("%s: %q keeps none of the %d tunnelled frames", c.path, c.expr, tunnelled)
		}
		t.Logf("%s: %q keeps %d of %d frames (%d tunnelled); tcpdump on the outer headers keeps 0",
			c.path, c.expr, kept, len(frames), tunnelled)
		if link != layers.LinkTypeEthernet && link != 276 {
			t.Errorf("%s: unexpected link type %v", c.path, link)
		}
	}
}
