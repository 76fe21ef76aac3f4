package afpacket

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

var (
	filterMACA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xa}
	filterMACB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb}
)

// pkt serializes layers behind an Ethernet header (optionally 802.1Q
// tagged), with lengths and checksums computed as a kernel would.
func pkt(t *testing.T, ethType layers.EthernetType, vlan bool, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: filterMACA, DstMAC: filterMACB, EthernetType: ethType}
	all := []gopacket.SerializableLayer{eth}
	if vlan {
		eth.EthernetType = layers.EthernetTypeDot1Q
		all = append(all, &layers.Dot1Q{VLANIdentifier: 42, Type: ethType})
	}
	all = append(all, ls...)
	for _, l := range ls {
		if n, ok := l.(interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		}); ok {
			for _, nl := range ls {
				if ip, ok := nl.(gopacket.NetworkLayer); ok {
					if err := n.SetNetworkLayerForChecksum(ip); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, all...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return buf.Bytes()
}

func ip4(src, dst string, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto,
		SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
}

func ip6(src, dst string, nh layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: nh,
		SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
}

func echo4(src, dst string) []gopacket.SerializableLayer {
	return []gopacket.SerializableLayer{ip4(src, dst, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 7, Seq: 1}, gopacket.Payload("pathtrace")}
}

func arp(sender, target string) *layers.ARP {
	return &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: 1,
		SourceHwAddress: filterMACA, SourceProtAddress: net.ParseIP(sender).To4(),
		DstHwAddress: make([]byte, 6), DstProtAddress: net.ParseIP(target).To4()}
}

func icmp6(src, dst string, typ uint8, body gopacket.SerializableLayer) []gopacket.SerializableLayer {
	return []gopacket.SerializableLayer{ip6(src, dst, layers.IPProtocolICMPv6),
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}, body}
}

func TestFilterVM(t *testing.T) {
	a, b := "10.251.1.2", "10.251.1.3"
	a6, b6 := "fd00:251::2", "fd00:251::3"
	prog, err := Filter(netip.MustParseAddr(a), netip.MustParseAddr(b))
	if err != nil {
		t.Fatal(err)
	}
	prog6, err := Filter(netip.MustParseAddr(a6), netip.MustParseAddr(b6))
	if err != nil {
		t.Fatal(err)
	}
	same, err := Filter(netip.MustParseAddr(a), netip.MustParseAddr(a))
	if err != nil {
		t.Fatal(err)
	}
	mixed, err := Filter(netip.MustParseAddr(a), netip.MustParseAddr(b6))
	if err != nil {
		t.Fatal(err)
	}
	svc := "10.96.0.10"
	withTCP, err := FilterFor([]netip.Addr{netip.MustParseAddr(a), netip.MustParseAddr(b), netip.MustParseAddr(svc)}, true)
	if err != nil {
		t.Fatal(err)
	}
	withTCP6, err := FilterFor([]netip.Addr{netip.MustParseAddr(a6), netip.MustParseAddr(b6)}, true)
	if err != nil {
		t.Fatal(err)
	}
	udp := &layers.UDP{SrcPort: 1000, DstPort: 53}
	tcp := &layers.TCP{SrcPort: 1000, DstPort: 80, SYN: true, Window: 100}
	ns := func(target string) *layers.ICMPv6NeighborSolicitation {
		return &layers.ICMPv6NeighborSolicitation{TargetAddress: net.ParseIP(target)}
	}
	na := func(target string) *layers.ICMPv6NeighborAdvertisement {
		return &layers.ICMPv6NeighborAdvertisement{TargetAddress: net.ParseIP(target), Flags: 0x60}
	}
	echo6 := &layers.ICMPv6Echo{Identifier: 7, SeqNumber: 1}
	solB := solicitedNode(netip.MustParseAddr(b6)).String()
	frag := ip4(b, "10.9.9.9", layers.IPProtocolICMPv4)
	frag.FragOffset = 100

	cases := []struct {
		name string
		prog []bpf.RawInstruction
		data []byte
		want bool
	}{
		{"echo a->b", prog, pkt(t, layers.EthernetTypeIPv4, false, echo4(a, b)...), true},
		{"echo b->a", prog, pkt(t, layers.EthernetTypeIPv4, false, echo4(b, a)...), true},
		{"echo a->other", prog, pkt(t, layers.EthernetTypeIPv4, false, echo4(a, "8.8.8.8")...), true},
		{"echo unrelated", prog, pkt(t, layers.EthernetTypeIPv4, false, echo4("10.0.0.1", "10.0.0.2")...), false},
		{"echo a->b vlan", prog, pkt(t, layers.EthernetTypeIPv4, true, echo4(a, b)...), true},
		{"echo unrelated vlan", prog, pkt(t, layers.EthernetTypeIPv4, true, echo4("10.0.0.1", "10.0.0.2")...), false},
		{"icmp non-first fragment", prog, pkt(t, layers.EthernetTypeIPv4, false, frag, gopacket.Payload("xxxxxxxx")), true},
		{"udp a->b", prog, pkt(t, layers.EthernetTypeIPv4, false, ip4(a, b, layers.IPProtocolUDP), udp, gopacket.Payload("x")), false},
		{"tcp a->b vlan", prog, pkt(t, layers.EthernetTypeIPv4, true, ip4(a, b, layers.IPProtocolTCP), tcp), false},
		{"arp a asks b", prog, pkt(t, layers.EthernetTypeARP, false, arp(a, b)), true},
		{"arp gw asks a", prog, pkt(t, layers.EthernetTypeARP, false, arp("10.251.1.1", a)), true},
		{"arp b asks gw vlan", prog, pkt(t, layers.EthernetTypeARP, true, arp(b, "10.251.1.1")), true},
		{"arp unrelated", prog, pkt(t, layers.EthernetTypeARP, false, arp("10.251.1.1", "10.251.1.9")), false},
		{"v6 frame on v4 filter", prog, pkt(t, layers.EthernetTypeIPv6, false, icmp6(a6, b6, 128, echo6)...), false},
		{"truncated", prog, pkt(t, layers.EthernetTypeIPv4, false, echo4(a, b)...)[:28], false},
		{"a==b: echo a->x", same, pkt(t, layers.EthernetTypeIPv4, false, echo4(a, "10.9.9.9")...), true},
		{"a==b: echo b->x", same, pkt(t, layers.EthernetTypeIPv4, false, echo4(b, "10.9.9.9")...), false},

		{"echo6 a->b", prog6, pkt(t, layers.EthernetTypeIPv6, false, icmp6(a6, b6, 128, echo6)...), true},
		{"echo6 reply b->a vlan", prog6, pkt(t, layers.EthernetTypeIPv6, true, icmp6(b6, a6, 129, echo6)...), true},
		{"echo6 unrelated", prog6, pkt(t, layers.EthernetTypeIPv6, false, icmp6("fd00::1", "fd00::2", 128, echo6)...), false},
		{"ns for b from link-local", prog6, pkt(t, layers.EthernetTypeIPv6, false, icmp6("fe80::1", solB, 135, ns(b6))...), true},
		{"dad ns for a", prog6, pkt(t, layers.EthernetTypeIPv6, false, icmp6("::", solicitedNode(netip.MustParseAddr(a6)).String(), 135, ns(a6))...), true},
		{"na for a link-local", prog6, pkt(t, layers.EthernetTypeIPv6, false, icmp6("fe80::2", "fe80::1", 136, na(a6))...), true},
		{"unicast nud ns for b", prog6, pkt(t, layers.EthernetTypeIPv6, false, icmp6("fe80::1", "fe80::3", 135, ns(b6))...), true},
		{"ns for other", prog6, pkt(t, layers.EthernetTypeIPv6, false, icmp6("fe80::1", "ff02::1:ff00:9", 135, ns("fd00:251::9"))...), false},
		{"udp6 a->b", prog6, pkt(t, layers.EthernetTypeIPv6, false, ip6(a6, b6, layers.IPProtocolUDP), udp, gopacket.Payload("x")), false},
		{"v4 on v6 filter", prog6, pkt(t, layers.EthernetTypeIPv4, false, echo4(a, b)...), false},

		{"tcp: syn a->svc", withTCP, pkt(t, layers.EthernetTypeIPv4, false, ip4(a, svc, layers.IPProtocolTCP), tcp), true},
		{"tcp: syn-ack svc->a vlan", withTCP, pkt(t, layers.EthernetTypeIPv4, true, ip4(svc, a, layers.IPProtocolTCP), tcp), true},
		{"tcp: dnat'd syn x->b", withTCP, pkt(t, layers.EthernetTypeIPv4, false, ip4("10.9.9.9", b, layers.IPProtocolTCP), tcp), true},
		{"tcp: unrelated", withTCP, pkt(t, layers.EthernetTypeIPv4, false, ip4("10.9.9.9", "10.9.9.8", layers.IPProtocolTCP), tcp), false},
		{"tcp: echo a->b still", withTCP, pkt(t, layers.EthernetTypeIPv4, false, echo4(a, b)...), true},
		{"tcp: no arp a asks b", withTCP, pkt(t, layers.EthernetTypeARP, false, arp(a, b)), false},
		{"tcp6: no ns for b", withTCP6, pkt(t, layers.EthernetTypeIPv6, false, icmp6("fe80::1", solB, 135, ns(b6))...), false},
		{"tcp: udp a->b", withTCP, pkt(t, layers.EthernetTypeIPv4, false, ip4(a, b, layers.IPProtocolUDP), udp, gopacket.Payload("x")), false},
		{"tcp6: syn a->b", withTCP6, pkt(t, layers.EthernetTypeIPv6, false, ip6(a6, b6, layers.IPProtocolTCP), tcp), true},
		{"tcp6: unrelated", withTCP6, pkt(t, layers.EthernetTypeIPv6, false, ip6("fd00::1", "fd00::2", layers.IPProtocolTCP), tcp), false},
		{"tcp6: echo6 a->b still", withTCP6, pkt(t, layers.EthernetTypeIPv6, false, icmp6(a6, b6, 128, echo6)...), true},

		{"mixed: echo4 a", mixed, pkt(t, layers.EthernetTypeIPv4, false, echo4(a, "10.9.9.9")...), true},
		{"mixed: echo6 b", mixed, pkt(t, layers.EthernetTypeIPv6, false, icmp6("fd00::9", b6, 128, echo6)...), true},
		{"mixed: echo6 a6", mixed, pkt(t, layers.EthernetTypeIPv6, false, icmp6(a6, "fd00::9", 128, echo6)...), false},
	}
	for _, c := range cases {
		vm, err := bpf.NewVM(disasm(t, c.prog))
		if err != nil {
			t.Fatalf("%s: vm: %v", c.name, err)
		}
		n, err := vm.Run(c.data)
		if err != nil {
			t.Fatalf("%s: run: %v", c.name, err)
		}
		if got := n > 0; got != c.want {
			t.Errorf("%s: accepted=%v (verdict %d), want %v", c.name, got, n, c.want)
		}
	}
}

func disasm(t *testing.T, raw []bpf.RawInstruction) []bpf.Instruction {
	t.Helper()
	ins, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("filter has instructions x/net/bpf cannot disassemble")
	}
	return ins
}

func TestSolicitedNode(t *testing.T) {
	got := solicitedNode(netip.MustParseAddr("fd00::12:3456:789a"))
	if want := netip.MustParseAddr("ff02::1:ff56:789a"); got != want {
		t.Fatalf("solicited-node = %v, want %v", got, want)
	}
}

func TestFilterRejectsInvalid(t *testing.T) {
	if _, err := Filter(netip.Addr{}, netip.MustParseAddr("10.0.0.1")); err == nil {
		t.Fatal("Filter accepted an invalid address")
	}
}
