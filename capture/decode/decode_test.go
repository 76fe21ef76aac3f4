package decode

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/zeebo/xxh3"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
)

var (
	macA  = net.HardwareAddr{0x02, 0x42, 0x0a, 0xf4, 0x00, 0x05}
	macB  = net.HardwareAddr{0x02, 0x42, 0x0a, 0xf4, 0x00, 0x06}
	macO  = net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, 0x01}
	ip4A  = net.IP{10, 244, 0, 5}
	ip4B  = net.IP{10, 244, 0, 6}
	ip6A  = net.ParseIP("fd00:10:244::5")
	ip6B  = net.ParseIP("fd00:10:244::6")
	ip6LL = net.ParseIP("fe80::42:aff:fef4:5")
	data  = bytes.Repeat([]byte("0123456789abcdef"), 8) // 128 bytes: more than hashBytes
)

func mac(h net.HardwareAddr) correlate.MAC { return correlate.MAC(h) }

func addr(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	if a.Is4In6() {
		return a.Unmap()
	}
	return a
}

func sum(b []byte) uint64 { return xxh3.Hash(b[:min(len(b), hashBytes)]) }

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	for _, l := range ls {
		var nl gopacket.NetworkLayer
		for _, m := range ls {
			if n, ok := m.(gopacket.NetworkLayer); ok {
				nl = n
			}
		}
		if c, ok := l.(interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		}); ok && nl != nil {
			if err := c.SetNetworkLayerForChecksum(nl); err != nil {
				t.Fatal(err)
			}
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func ether(typ layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: typ}
}

func ipv4(proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 0x1234, Flags: layers.IPv4DontFragment,
		Protocol: proto, SrcIP: ip4A, DstIP: ip4B}
}

func ipv6(next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 63, NextHeader: next, SrcIP: ip6A, DstIP: ip6B}
}

// sll builds a LINKTYPE_LINUX_SLL header.
func sll(pktType uint16, hw net.HardwareAddr, proto layers.EthernetType) []byte {
	h := make([]byte, 16)
	binary.BigEndian.PutUint16(h[0:], pktType)
	binary.BigEndian.PutUint16(h[2:], 1) // ARPHRD_ETHER
	binary.BigEndian.PutUint16(h[4:], uint16(len(hw)))
	copy(h[6:14], hw)
	binary.BigEndian.PutUint16(h[14:], uint16(proto))
	return h
}

// sll2 builds a LINKTYPE_LINUX_SLL2 header.
func sll2(pktType uint8, hw net.HardwareAddr, proto layers.EthernetType) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], uint16(proto))
	binary.BigEndian.PutUint32(h[4:], 7) // ifindex
	binary.BigEndian.PutUint16(h[8:], 1) // ARPHRD_ETHER
	h[10] = pktType
	h[11] = uint8(len(hw))
	copy(h[12:20], hw)
	return h
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// frameFor is the part of the expected Frame that comes from the raw frame.
func frameFor(rf *capture.RawFrame) correlate.Frame {
	return correlate.Frame{Point: 3, Time: rf.Time, Stamp: rf.Time, Num: rf.Num, Dir: rf.Dir, WireLen: rf.WireLen, CapLen: len(rf.Data)}
}

func raw(link capture.LinkType, b []byte) *capture.RawFrame {
	return &capture.RawFrame{Data: b, Time: 1_700_000_000_123_456_789, WireLen: len(b), LinkType: link, Num: 42}
}

// withL2 adds Ethernet addressing to an expected frame.
func withL2(f correlate.Frame) correlate.Frame {
	f.SrcMAC, f.DstMAC, f.HasSrcMAC, f.HasDstMAC = mac(macA), mac(macB), true, true
	return f
}

func ip4Fields(f correlate.Frame, ipLen int) correlate.Frame {
	f.SrcIP, f.DstIP = addr(ip4A), addr(ip4B)
	f.TTL, f.HasTTL = 64, true
	f.IPID, f.HasIPID = 0x1234, true
	f.IPLen = ipLen
	f.DF = true
	return f
}

func ip6Fields(f correlate.Frame, ipLen int) correlate.Frame {
	f.SrcIP, f.DstIP = addr(ip6A), addr(ip6B)
	f.TTL, f.HasTTL = 63, true
	f.IPLen = ipLen
	return f
}

type decodeCase struct {
	name string
	rf   *capture.RawFrame
	ok   bool
	want func(f correlate.Frame) correlate.Frame // from frameFor(rf)
}

func checkDecode(t *testing.T, d *Decoder, c decodeCase) {
	t.Helper()
	// Start from a frame full of another frame's values: Decode must reset them.
	f := correlate.Frame{Point: 3, Key: correlate.Key{Proto: correlate.ProtoTCP, Seq: 9, Addr1: addr(ip4A)},
		HasSrcMAC: true, HasDstMAC: true, SrcIP: addr(ip6A), HasTTL: true, HasPorts: true, SrcPort: 1,
		HasEchoID: true, HasIPID: true, IPLen: 9, Fragment: true, DF: true, Encap: correlate.Encap{Type: correlate.EncapVXLAN, VNI: 5, HasVNI: true}}
	ok := d.Decode(c.rf, &f)
	want := c.want(frameFor(c.rf))
	if ok != c.ok {
		t.Errorf("%s: Decode = %v, want %v", c.name, ok, c.ok)
	}
	if f != want {
		t.Errorf("%s:\n got %+v\nwant %+v", c.name, f, want)
	}
}

func TestDecodeProtocols(t *testing.T) {
	d := New()
	echo := func(typ uint8) *layers.ICMPv4 {
		return &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: 0xbeef, Seq: 7}
	}
	icmpEcho := serialize(t, ether(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolICMPv4), echo(8), gopacket.Payload(data))
	icmpEchoWant := func(f correlate.Frame) correlate.Frame {
		f = ip4Fields(withL2(f), 20+8+len(data))
		f.EchoID, f.HasEchoID = 0xbeef, true
		f.Key = correlate.Key{Proto: correlate.ProtoICMP, Kind: 8, Seq: 7, Hash: sum(data), Len: uint32(len(data))}
		return f
	}
	ns := &layers.ICMPv6NeighborSolicitation{TargetAddress: ip6B,
		Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: macA}}}
	nsOpts := cat([]byte{1, 1}, macA)
	tcpPayload := data[:100]
	unreachQuote := serialize(t, ipv4(layers.IPProtocolUDP), &layers.UDP{SrcPort: 5353, DstPort: 53}, gopacket.Payload(data[:8]))
	unreach := serialize(t, ether(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 4), Seq: 1450}, gopacket.Payload(unreachQuote))

	cases := []decodeCase{
		{"ethernet icmp echo", raw(capture.LinkTypeEthernet, icmpEcho), true, icmpEchoWant},
		{"ethernet icmp echo reply", raw(capture.LinkTypeEthernet,
			serialize(t, ether(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolICMPv4), echo(0), gopacket.Payload(data[:56]))), true,
			func(f correlate.Frame) correlate.Frame {
				f = ip4Fields(withL2(f), 20+8+56)
				f.EchoID, f.HasEchoID = 0xbeef, true
				f.Key = correlate.Key{Proto: correlate.ProtoICMP, Kind: 0, Seq: 7, Hash: sum(data[:56]), Len: 56}
				return f
			}},
		{"802.1Q", raw(capture.LinkTypeEthernet, serialize(t, ether(layers.EthernetTypeDot1Q),
			&layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeIPv4}, ipv4(layers.IPProtocolICMPv4), echo(8), gopacket.Payload(data))),
			true, icmpEchoWant},
		{"802.1ad QinQ", raw(capture.LinkTypeEthernet, serialize(t, ether(layers.EthernetTypeQinQ),
			&layers.Dot1Q{VLANIdentifier: 100, Type: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeIPv4}, ipv4(layers.IPProtocolICMPv4), echo(8), gopacket.Payload(data))),
			true, icmpEchoWant},
		{"icmp dest unreachable", raw(capture.LinkTypeEthernet, unreach), true,
			func(f correlate.Frame) correlate.Frame {
				f = ip4Fields(withL2(f), 20+8+len(unreachQuote))
				msg := unreach[14+20:]
				if !bytes.Equal(msg[8:], unreachQuote) || msg[0] != 3 {
					t.Fatalf("bad test frame %x", msg)
				}
				f.Key = correlate.Key{Proto: correlate.ProtoIP, Kind: 1, Seq: 3<<8 | 4, IPID: 0x1234, Hash: sum(msg), Len: uint32(len(msg))}
				return f
			}},
		{"arp request", raw(capture.LinkTypeEthernet, serialize(t, ether(layers.EthernetTypeARP), &layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: 1, SourceHwAddress: macA, SourceProtAddress: ip4A, DstHwAddress: make([]byte, 6), DstProtAddress: ip4B})), true,
			func(f correlate.Frame) correlate.Frame {
				f = withL2(f)
				f.Key = correlate.Key{Proto: correlate.ProtoARP, Kind: 1, MAC: mac(macA), Addr1: addr(ip4A), Addr2: addr(ip4B)}
				return f
			}},
		{"tcp syn", raw(capture.LinkTypeEthernet, serialize(t, ether(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolTCP),
			&layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 1000, SYN: true, Window: 64240, Options: []layers.TCPOption{
				{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xb4}},
				{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2}}})), true,
			func(f correlate.Frame) correlate.Frame {
				f = ip4Fields(withL2(f), 20+28)
				f.SrcPort, f.DstPort, f.HasPorts = 40000, 80, true
				f.Key = correlate.Key{Proto: correlate.ProtoTCP, Kind: 0x02, Seq: 1000, Hash: sum(nil)}
				return f
			}},
		{"tcp data", raw(capture.LinkTypeEthernet, serialize(t, ether(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolTCP),
			&layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 1001, Ack: 5001, ACK: true, PSH: true, Window: 502}, gopacket.Payload(tcpPayload))), true,
			func(f correlate.Frame) correlate.Frame {
				f = ip4Fields(withL2(f), 20+20+len(tcpPayload))
				f.SrcPort, f.DstPort, f.HasPorts = 40000, 80, true
				f.Key = correlate.Key{Proto: correlate.ProtoTCP, Kind: 0x18, Seq: 1001, Ack: 5001, Hash: sum(tcpPayload), Len: 100}
				return f
			}},
		{"udp", raw(capture.LinkTypeEthernet, serialize(t, ether(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolUDP),
			&layers.UDP{SrcPort: 5353, DstPort: 53}, gopacket.Payload(data[:30]))), true,
			func(f correlate.Frame) correlate.Frame {
				f = ip4Fields(withL2(f), 20+8+30)
				f.SrcPort, f.DstPort, f.HasPorts = 5353, 53, true
				f.Key = correlate.Key{Proto: correlate.ProtoUDP, Kind: 17, IPID: 0x1234, Hash: sum(data[:30]), Len: 30}
				return f
			}},
		{"other ip (gre)", raw(capture.LinkTypeEthernet, serialize(t, ether(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolGRE),
			gopacket.Payload(data[:40]))), true,
			func(f correlate.Frame) correlate.Frame {
				f = ip4Fields(withL2(f), 20+40)
				f.Key = correlate.Key{Proto: correlate.ProtoIP, Kind: 47, IPID: 0x1234, Hash: sum(data[:40]), Len: 40}
				return f
			}},
		{"icmpv6 echo", raw(capture.LinkTypeEthernet, serialize(t, ether(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolICMPv6),
			&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}, &layers.ICMPv6Echo{Identifier: 0x77, SeqNumber: 3}, gopacket.Payload(data[:56]))), true,
			func(f correlate.Frame) correlate.Frame {
				f = ip6Fields(withL2(f), 40+8+56)
				f.EchoID, f.HasEchoID = 0x77, true
				f.Key = correlate.Key{Proto: correlate.ProtoICMPv6, Kind: 128, Seq: 3, Hash: sum(data[:56]), Len: 56}
				return f
			}},
		{"nd neighbor solicitation", raw(capture.LinkTypeEthernet, serialize(t, ether(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolICMPv6),
			&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(135, 0)}, ns)), true,
			func(f correlate.Frame) correlate.Frame {
				f = ip6Fields(withL2(f), 40+24+8)
				f.Key = correlate.Key{Proto: correlate.ProtoND, Kind: 135, Addr1: addr(ip6B), Hash: sum(nsOpts), Len: 8}
				return f
			}},
		{"nd neighbor advertisement", raw(capture.LinkTypeEthernet, serialize(t, ether(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolICMPv6),
			&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(136, 0)}, &layers.ICMPv6NeighborAdvertisement{Flags: 0x60, TargetAddress: ip6B})), true,
			func(f correlate.Frame) correlate.Frame {
				f = ip6Fields(withL2(f), 40+24)
				f.Key = correlate.Key{Proto: correlate.ProtoND, Kind: 136, Addr1: addr(ip6B), Hash: sum(nil)}
				return f
			}},
		{"nd router solicitation", raw(capture.LinkTypeEthernet, serialize(t, ether(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolICMPv6),
			&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(133, 0)}, &layers.ICMPv6RouterSolicitation{Options: ns.Options})), true,
			func(f correlate.Frame) correlate.Frame {
				f = ip6Fields(withL2(f), 40+8+8)
				f.Key = correlate.Key{Proto: correlate.ProtoND, Kind: 133, Hash: sum(nsOpts), Len: 8}
				return f
			}},
		{"nd router advertisement", raw(capture.LinkTypeEthernet, serialize(t, ether(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolICMPv6),
			&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(134, 0)}, &layers.ICMPv6RouterAdvertisement{HopLimit: 64, RouterLifetime: 1800, Options: ns.Options})), true,
			func(f correlate.Frame) correlate.Frame {
				f = ip6Fields(withL2(f), 40+16+8)
				f.Key = correlate.Key{Proto: correlate.ProtoND, Kind: 134, Hash: sum(nsOpts), Len: 8}
				return f
			}},
		{"nd redirect", raw(capture.LinkTypeEthernet, serialize(t, ether(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolICMPv6),
			&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(137, 0)}, &layers.ICMPv6Redirect{TargetAddress: ip6LL, DestinationAddress: ip6B, Options: ns.Options})), true,
			func(f correlate.Frame) correlate.Frame {
				f = ip6Fields(withL2(f), 40+40+8)
				f.Key = correlate.Key{Proto: correlate.ProtoND, Kind: 137, Addr1: addr(ip6LL), Hash: sum(nsOpts), Len: 8}
				return f
			}},
		{"icmpv6 time exceeded", raw(capture.LinkTypeEthernet, serialize(t, ether(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolICMPv6),
			&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(3, 0)}, gopacket.Payload(data[:52]))), true,
			func(f correlate.Frame) correlate.Frame {
				f = ip6Fields(withL2(f), 40+4+52)
				fr := serialize(t, ipv6(layers.IPProtocolICMPv6), &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(3, 0)}, gopacket.Payload(data[:52]))
				f.Key = correlate.Key{Proto: correlate.ProtoIP, Kind: 58, Seq: 3 << 8, Hash: sum(fr[40:]), Len: 56}
				return f
			}},
		{"ipv6 udp behind destination options", raw(capture.LinkTypeEthernet,
			serialize(t, ether(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolIPv6Destination), gopacket.Payload(cat(
				[]byte{17, 0, 1, 4, 0, 0, 0, 0}, // dest options: UDP next, PadN
				[]byte{0x13, 0x88, 0x00, 0x35, 0, 18, 0, 0}, data[:10])))), true,
			func(f correlate.Frame) correlate.Frame {
				f = ip6Fields(withL2(f), 40+26)
				f.SrcPort, f.DstPort, f.HasPorts = 5000, 53, true
				f.Key = correlate.Key{Proto: correlate.ProtoUDP, Kind: 17, Hash: sum(data[:10]), Len: 10}
				return f
			}},
		{"lldp is not keyed", raw(capture.LinkTypeEthernet, serialize(t, &layers.Ethernet{SrcMAC: macA,
			DstMAC: net.HardwareAddr{0x01, 0x80, 0xc2, 0, 0, 0x0e}, EthernetType: layers.EthernetTypeLinkLayerDiscovery}, gopacket.Payload(data[:40]))), false,
			func(f correlate.Frame) correlate.Frame {
				f.SrcMAC, f.DstMAC, f.HasSrcMAC, f.HasDstMAC = mac(macA), correlate.MAC{0x01, 0x80, 0xc2, 0, 0, 0x0e}, true, true
				return f
			}},
		{"stp is not keyed", raw(capture.LinkTypeEthernet, serialize(t, &layers.Ethernet{SrcMAC: macA,
			DstMAC: net.HardwareAddr{0x01, 0x80, 0xc2, 0, 0, 0}, EthernetType: 38}, gopacket.Payload(cat([]byte{0x42, 0x42, 3}, data[:35])))), false,
			func(f correlate.Frame) correlate.Frame {
				f.SrcMAC, f.DstMAC, f.HasSrcMAC, f.HasDstMAC = mac(macA), correlate.MAC{0x01, 0x80, 0xc2, 0, 0, 0}, true, true
				return f
			}},
		{"unknown link type", raw(147, icmpEcho), false, func(f correlate.Frame) correlate.Frame { return f }},
		{"empty frame", raw(capture.LinkTypeEthernet, nil), false, func(f correlate.Frame) correlate.Frame { return f }},
	}
	for _, c := range cases {
		checkDecode(t, d, c)
	}
}

func TestDecodeLinkTypes(t *testing.T) {
	d := New()
	ipPart := serialize(t, ipv4(layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 0xbeef, Seq: 7}, gopacket.Payload(data[:56]))
	ip6Part := serialize(t, ipv6(layers.IPProtocolUDP), &layers.UDP{SrcPort: 1000, DstPort: 2000}, gopacket.Payload(data[:20]))
	l3 := func(f correlate.Frame) correlate.Frame {
		f = ip4Fields(f, len(ipPart))
		f.EchoID, f.HasEchoID = 0xbeef, true
		f.Key = correlate.Key{Proto: correlate.ProtoICMP, Kind: 8, Seq: 7, Hash: sum(data[:56]), Len: 56}
		return f
	}
	l3v6 := func(f correlate.Frame) correlate.Frame {
		f = ip6Fields(f, len(ip6Part))
		f.SrcPort, f.DstPort, f.HasPorts = 1000, 2000, true
		f.Key = correlate.Key{Proto: correlate.ProtoUDP, Kind: 17, Hash: sum(data[:20]), Len: 20}
		return f
	}
	withSrc := func(dir correlate.LinkDir, next func(correlate.Frame) correlate.Frame) func(correlate.Frame) correlate.Frame {
		return func(f correlate.Frame) correlate.Frame {
			f = next(f)
			f.Dir = dir
			f.SrcMAC, f.HasSrcMAC = mac(macO), true
			return f
		}
	}
	le := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	be := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

	sllOut := raw(capture.LinkTypeLinuxSLL, cat(sll(4, macO, layers.EthernetTypeIPv4), ipPart))
	sllIn := raw(capture.LinkTypeLinuxSLL, cat(sll(0, macO, layers.EthernetTypeIPv4), ipPart))
	// A direction the source knows wins over the SLL packet type.
	sllKnown := raw(capture.LinkTypeLinuxSLL, cat(sll(0, macO, layers.EthernetTypeIPv4), ipPart))
	sllKnown.Dir = correlate.DirOut
	tunnelSLL := raw(capture.LinkTypeLinuxSLL, cat(sll(0, nil, layers.EthernetTypeIPv4), ipPart))

	cases := []decodeCase{
		{"sll outgoing", sllOut, true, withSrc(correlate.DirOut, l3)},
		{"sll incoming", sllIn, true, withSrc(correlate.DirIn, l3)},
		{"sll direction from source", sllKnown, true, withSrc(correlate.DirOut, l3)},
		{"sll without link address", tunnelSLL, true, func(f correlate.Frame) correlate.Frame {
			f = l3(f)
			f.Dir = correlate.DirIn
			return f
		}},
		{"sll ipv6", raw(capture.LinkTypeLinuxSLL, cat(sll(4, macO, layers.EthernetTypeIPv6), ip6Part)), true, withSrc(correlate.DirOut, l3v6)},
		{"sll2 outgoing", raw(capture.LinkTypeSLL2, cat(sll2(4, macO, layers.EthernetTypeIPv4), ipPart)), true, withSrc(correlate.DirOut, l3)},
		{"sll2 multicast in", raw(capture.LinkTypeSLL2, cat(sll2(2, macO, layers.EthernetTypeIPv6), ip6Part)), true, withSrc(correlate.DirIn, l3v6)},
		{"raw", raw(capture.LinkTypeRaw, ipPart), true, l3},
		{"raw ipv6", raw(capture.LinkTypeRaw, ip6Part), true, l3v6},
		{"ipv4", raw(capture.LinkTypeIPv4, ipPart), true, l3},
		{"ipv6", raw(capture.LinkTypeIPv6, ip6Part), true, l3v6},
		{"null little-endian", raw(capture.LinkTypeNull, cat(le(2), ipPart)), true, l3},
		{"null big-endian ipv6 (darwin)", raw(capture.LinkTypeNull, cat(be(30), ip6Part)), true, l3v6},
		{"loop", raw(capture.LinkTypeLoop, cat(be(2), ipPart)), true, l3},
		{"raw garbage", raw(capture.LinkTypeRaw, []byte{0x12, 1, 2, 3}), false, func(f correlate.Frame) correlate.Frame { return f }},
		{"sll too short", raw(capture.LinkTypeLinuxSLL, sllOut.Data[:15]), false, func(f correlate.Frame) correlate.Frame { return f }},
	}
	for _, c := range cases {
		checkDecode(t, d, c)
	}
}

func TestDecodeVXLAN(t *testing.T) {
	d := New()
	inner := serialize(t, ether(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 0xbeef, Seq: 7}, gopacket.Payload(data[:56]))
	for _, port := range []layers.UDPPort{4789, 8472} {
		outer := serialize(t, &layers.Ethernet{SrcMAC: macO, DstMAC: macO, EthernetType: layers.EthernetTypeIPv4},
			&layers.IPv4{Version: 4, IHL: 5, TTL: 3, Id: 9, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{192, 168, 1, 1}, DstIP: net.IP{192, 168, 1, 2}},
			&layers.UDP{SrcPort: 33333, DstPort: port}, &layers.VXLAN{ValidIDFlag: true, VNI: 1}, gopacket.Payload(inner))
		checkDecode(t, d, decodeCase{"vxlan " + port.String(), raw(capture.LinkTypeEthernet, outer), true, func(f correlate.Frame) correlate.Frame {
			f = ip4Fields(withL2(f), 20+8+56)
			f.EchoID, f.HasEchoID = 0xbeef, true
			f.Encap = correlate.Encap{Type: correlate.EncapVXLAN, VNI: 1, HasVNI: true,
				SrcIP: netip.AddrFrom4([4]byte{192, 168, 1, 1}), DstIP: netip.AddrFrom4([4]byte{192, 168, 1, 2}), TTL: 3,
				SrcMAC: mac(macO), DstMAC: mac(macO), HasSrcMAC: true, HasDstMAC: true,
				SrcPort: 33333, DstPort: uint16(port)}
			f.Key = correlate.Key{Proto: correlate.ProtoICMP, Kind: 8, Seq: 7, Hash: sum(data[:56]), Len: 56}
			return f
		}})
		// Without the I flag it is not VXLAN: the outer UDP datagram is the frame.
		notVX := bytes.Clone(outer)
		notVX[14+20+8] = 0
		checkDecode(t, d, decodeCase{"udp " + port.String() + " without vni flag", raw(capture.LinkTypeEthernet, notVX), true, func(f correlate.Frame) correlate.Frame {
			f.SrcMAC, f.DstMAC, f.HasSrcMAC, f.HasDstMAC = mac(macO), mac(macO), true, true
			f.SrcIP, f.DstIP = netip.AddrFrom4([4]byte{192, 168, 1, 1}), netip.AddrFrom4([4]byte{192, 168, 1, 2})
			f.TTL, f.HasTTL, f.IPID, f.HasIPID = 3, true, 9, true
			f.IPLen = len(outer) - 14
			f.SrcPort, f.DstPort, f.HasPorts = 33333, uint16(port), true
			f.Key = correlate.Key{Proto: correlate.ProtoUDP, Kind: 17, IPID: 9, Hash: sum(notVX[14+20+8:]), Len: uint32(len(outer) - 14 - 28)}
			return f
		}})
	}
}

func TestDecodeFragments(t *testing.T) {
	d := New()
	// A UDP datagram of 8+100 bytes split in two IPv4 fragments at 48 bytes.
	udp := serialize(t, ipv4(layers.IPProtocolUDP), &layers.UDP{SrcPort: 1000, DstPort: 2000}, gopacket.Payload(data[:100]))[20:]
	frag := func(off int, mf bool, part []byte) []byte {
		ip := ipv4(layers.IPProtocolUDP)
		ip.Flags = 0
		if mf {
			ip.Flags = layers.IPv4MoreFragments
		}
		ip.FragOffset = uint16(off / 8)
		return serialize(t, ether(layers.EthernetTypeIPv4), ip, gopacket.Payload(part))
	}
	noDF := func(f correlate.Frame, ipLen int) correlate.Frame {
		f = ip4Fields(withL2(f), ipLen)
		f.DF = false
		f.Fragment = true
		return f
	}
	checkDecode(t, d, decodeCase{"ipv4 first fragment", raw(capture.LinkTypeEthernet, frag(0, true, udp[:48])), true, func(f correlate.Frame) correlate.Frame {
		f = noDF(f, 20+48)
		f.SrcPort, f.DstPort, f.HasPorts = 1000, 2000, true
		f.Key = correlate.Key{Proto: correlate.ProtoUDP, Kind: 17, IPID: 0x1234, Hash: sum(udp[8:48]), Len: 40}
		return f
	}})
	checkDecode(t, d, decodeCase{"ipv4 last fragment", raw(capture.LinkTypeEthernet, frag(48, false, udp[48:])), true, func(f correlate.Frame) correlate.Frame {
		f = noDF(f, 20+60)
		f.Key = correlate.Key{Proto: correlate.ProtoIP, Kind: 17, IPID: 0x1234, Hash: sum(udp[48:]), Len: 60}
		return f
	}})

	// The same datagram over IPv6, with a fragment header.
	frag6 := func(off int, more bool, part []byte) []byte {
		return serialize(t, ether(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolIPv6Fragment),
			&layers.IPv6Fragment{NextHeader: layers.IPProtocolUDP, FragmentOffset: uint16(off / 8), MoreFragments: more, Identification: 0xabcdef01},
			gopacket.Payload(part))
	}
	checkDecode(t, d, decodeCase{"ipv6 first fragment", raw(capture.LinkTypeEthernet, frag6(0, true, udp[:48])), true, func(f correlate.Frame) correlate.Frame {
		f = ip6Fields(withL2(f), 40+8+48)
		f.Fragment = true
		f.SrcPort, f.DstPort, f.HasPorts = 1000, 2000, true
		f.Key = correlate.Key{Proto: correlate.ProtoUDP, Kind: 17, IPID: 0xabcdef01, Hash: sum(udp[8:48]), Len: 40}
		return f
	}})
	checkDecode(t, d, decodeCase{"ipv6 last fragment", raw(capture.LinkTypeEthernet, frag6(48, false, udp[48:])), true, func(f correlate.Frame) correlate.Frame {
		f = ip6Fields(withL2(f), 40+8+60)
		f.Fragment = true
		f.Key = correlate.Key{Proto: correlate.ProtoIP, Kind: 17, IPID: 0xabcdef01, Hash: sum(udp[48:]), Len: 60}
		return f
	}})
}

// TestDecodeSnaplen checks the promise of Key.Len and hashBytes: a frame
// cut after hashBytes bytes of payload, or padded to the Ethernet minimum,
// keeps the key of the whole frame; one cut shorter keeps Len only.
func TestDecodeSnaplen(t *testing.T) {
	d := New()
	key := func(rf *capture.RawFrame) correlate.Key {
		var f correlate.Frame
		if !d.Decode(rf, &f) {
			t.Fatalf("frame %d bytes of %d not keyed", len(rf.Data), rf.WireLen)
		}
		return f.Key
	}
	for _, proto := range []gopacket.SerializableLayer{
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 1, Seq: 2},
		&layers.UDP{SrcPort: 1, DstPort: 2},
		&layers.TCP{SrcPort: 1, DstPort: 2, Seq: 3, ACK: true, Ack: 4, DataOffset: 5},
	} {
		p := proto.LayerType()
		ipProto := map[gopacket.LayerType]layers.IPProtocol{layers.LayerTypeICMPv4: 1, layers.LayerTypeUDP: 17, layers.LayerTypeTCP: 6}[p]
		full := serialize(t, ether(layers.EthernetTypeIPv4), ipv4(ipProto), proto, gopacket.Payload(data))
		want := key(raw(capture.LinkTypeEthernet, full))
		hdr := len(full) - len(data)
		cut := raw(capture.LinkTypeEthernet, full[:hdr+hashBytes])
		cut.WireLen = len(full)
		if got := key(cut); got != want {
			t.Errorf("%v cut after %d payload bytes: key %+v, want %+v", p, hashBytes, got, want)
		}
		short := raw(capture.LinkTypeEthernet, full[:hdr+10])
		short.WireLen = len(full)
		if got := key(short); got.Len != want.Len || got.Hash == want.Hash {
			t.Errorf("%v cut after 10 payload bytes: Len %d Hash %x, want Len %d and another hash", p, got.Len, got.Hash, want.Len)
		}

		// Ethernet padding after a small packet is not payload.
		small := serialize(t, ether(layers.EthernetTypeIPv4), ipv4(ipProto), proto, gopacket.Payload(data[:2]))
		padded := append(bytes.Clone(small), make([]byte, 60-len(small))...)
		if a, b := key(raw(capture.LinkTypeEthernet, small)), key(raw(capture.LinkTypeEthernet, padded)); a != b || a.Len != 2 {
			t.Errorf("%v: padded frame key %+v, unpadded %+v (Len want 2)", p, b, a)
		}
	}
	// A TCP SYN whose options the snaplen cut is still keyed by its fixed header.
	syn := serialize(t, ether(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolTCP), &layers.TCP{SrcPort: 1, DstPort: 2, Seq: 3, SYN: true,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xb4}},
			{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}}}})
	cutSyn := raw(capture.LinkTypeEthernet, syn[:14+20+20+2])
	cutSyn.WireLen = len(syn)
	if got, want := key(cutSyn), key(raw(capture.LinkTypeEthernet, syn)); got != want {
		t.Errorf("syn cut in its options: key %+v, want %+v", got, want)
	}
	// TSO: an IPv4 total length of 0 means "up to the end of the frame".
	tso := serialize(t, ether(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolTCP), &layers.TCP{SrcPort: 1, DstPort: 2, Seq: 3, ACK: true}, gopacket.Payload(data))
	want := key(raw(capture.LinkTypeEthernet, tso))
	tso[14+2], tso[14+3] = 0, 0
	if got := key(raw(capture.LinkTypeEthernet, tso)); got != want {
		t.Errorf("tso frame: key %+v, want %+v", got, want)
	}
}

// TestDecodeTruncated cuts frames of every kind at every length: Decode must
// not panic, must report CapLen, and must key only frames whose L4 header
// survived.
func TestDecodeTruncated(t *testing.T) {
	d := New()
	frames := [][]byte{
		serialize(t, ether(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}, gopacket.Payload(data)),
		serialize(t, ether(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolICMPv6), &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(135, 0)},
			&layers.ICMPv6NeighborSolicitation{TargetAddress: ip6B}),
		serialize(t, ether(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolTCP), &layers.TCP{SrcPort: 1, DstPort: 2, DataOffset: 5}, gopacket.Payload(data)),
		serialize(t, ether(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolUDP), &layers.UDP{SrcPort: 1, DstPort: 4789}, &layers.VXLAN{ValidIDFlag: true, VNI: 7},
			ether(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolUDP), &layers.UDP{SrcPort: 1, DstPort: 2}, gopacket.Payload(data)),
	}
	for i, full := range frames {
		for n := 0; n <= len(full); n++ {
			rf := raw(capture.LinkTypeEthernet, full[:n])
			rf.WireLen = len(full)
			var f correlate.Frame
			ok := d.Decode(rf, &f)
			if f.CapLen != n || f.WireLen != len(full) {
				t.Fatalf("frame %d cut at %d: CapLen %d WireLen %d", i, n, f.CapLen, f.WireLen)
			}
			if ok && n < 14+20+4 {
				t.Errorf("frame %d cut at %d bytes: keyed %+v", i, n, f.Key)
			}
			if n == len(full) && !ok {
				t.Errorf("frame %d whole: not keyed", i)
			}
		}
	}
}

// benchFrames is a mix of the frames a pod-to-pod capture sees.
func benchFrames(t testing.TB) []*capture.RawFrame {
	icmp := serialize(t, ipv4(layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 1, Seq: 2}, gopacket.Payload(data[:56]))
	tcp := serialize(t, ipv4(layers.IPProtocolTCP), &layers.TCP{SrcPort: 1, DstPort: 2, Seq: 3, ACK: true, PSH: true, Options: []layers.TCPOption{
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)}}}, gopacket.Payload(data))
	frames := []*capture.RawFrame{
		raw(capture.LinkTypeEthernet, serialize(t, ether(layers.EthernetTypeIPv4), gopacket.Payload(icmp))),
		raw(capture.LinkTypeSLL2, cat(sll2(4, macA, layers.EthernetTypeIPv4), icmp)),
		raw(capture.LinkTypeLinuxSLL, cat(sll(0, macA, layers.EthernetTypeIPv4), tcp)),
		raw(capture.LinkTypeEthernet, serialize(t, ether(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolUDP), &layers.UDP{SrcPort: 1, DstPort: 8472},
			&layers.VXLAN{ValidIDFlag: true, VNI: 1}, ether(layers.EthernetTypeIPv4), gopacket.Payload(icmp))),
		raw(capture.LinkTypeEthernet, serialize(t, ether(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: 2, SourceHwAddress: macA, SourceProtAddress: ip4A, DstHwAddress: macB, DstProtAddress: ip4B})),
		raw(capture.LinkTypeEthernet, serialize(t, ether(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolICMPv6), &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(135, 0)},
			&layers.ICMPv6NeighborSolicitation{TargetAddress: ip6B, Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: macA}}})),
		raw(capture.LinkTypeEthernet, serialize(t, ether(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolIPv6Fragment),
			&layers.IPv6Fragment{NextHeader: layers.IPProtocolUDP, MoreFragments: true, Identification: 5}, &layers.UDP{SrcPort: 1, DstPort: 2}, gopacket.Payload(data))),
		raw(capture.LinkTypeRaw, serialize(t, ipv6(layers.IPProtocolUDP), &layers.UDP{SrcPort: 1, DstPort: 53}, gopacket.Payload(data[:40]))),
	}
	return frames
}

// TestDecodeZeroAllocs holds the decoder to its promise: no allocation per
// frame once the Decoder exists.
func TestDecodeZeroAllocs(t *testing.T) {
	d := New()
	frames := append(benchFrames(t), tunnelFrames(t)...)
	var f correlate.Frame
	for _, rf := range frames {
		if !d.Decode(rf, &f) {
			t.Fatalf("bench frame %x not keyed", rf.Data)
		}
	}
	if n := testing.AllocsPerRun(1000, func() {
		for _, rf := range frames {
			d.Decode(rf, &f)
		}
	}); n != 0 {
		t.Errorf("Decode allocates %.1f times per %d frames", n, len(frames))
	}
}

func BenchmarkDecode(b *testing.B) { benchDecode(b, benchFrames(b)) }

func benchDecode(b *testing.B, frames []*capture.RawFrame) {
	d := New()
	var f correlate.Frame
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		d.Decode(frames[i%len(frames)], &f)
	}
}

// FuzzDecode feeds arbitrary bytes under every link type: Decode must not
// panic, and must report what it was given.
func FuzzDecode(f *testing.F) {
	for _, rf := range append(benchFrames(f), tunnelFrames(f)...) {
		f.Add(rf.Data, int(rf.LinkType))
	}
	d := New()
	f.Fuzz(func(t *testing.T, b []byte, link int) {
		for _, lt := range []capture.LinkType{capture.LinkType(link), capture.LinkTypeEthernet, capture.LinkTypeLinuxSLL, capture.LinkTypeSLL2, capture.LinkTypeRaw, capture.LinkTypeNull} {
			rf := &capture.RawFrame{Data: b, WireLen: len(b) + link&0xff, LinkType: lt, Num: 1}
			var fr correlate.Frame
			ok := d.Decode(rf, &fr)
			if fr.CapLen != len(b) || fr.WireLen != rf.WireLen || fr.Num != 1 {
				t.Fatalf("frame lengths %d/%d", fr.CapLen, fr.WireLen)
			}
			if ok && fr.Key.Proto == correlate.ProtoNone {
				t.Fatalf("keyed without a key: %+v", fr)
			}
		}
	})
}
