package decode

import (
	"encoding/binary"
	"net/netip"

	"github.com/pathtrace/pathtrace/correlate"
)

// The fast path decodes the frames a busy path is made of — an unfragmented
// IPv4 packet with a plain 20-byte header, captured whole, carrying an ICMP
// echo, TCP, or UDP that is no tunnel (tunnel.go) — by reading the headers directly:
// gopacket's parser costs several times as much per frame. It fills exactly
// what the general path fills (TestFastPathMatchesGeneral checks every frame
// of the test captures and the fuzz corpus both ways) and declines, leaving
// f untouched, whatever else it meets: options, fragments, truncation, TSO
// lengths, other protocols and tunnels go the general way.

// fastIPv4 decodes the IPv4 packet at base[ipOff:] into f when it is one
// the fast path takes; eth says base starts with an Ethernet header whose
// addresses go into f.
func (d *Decoder) fastIPv4(base []byte, ipOff int, f *correlate.Frame, eth bool) bool {
	if d.general || len(base) < ipOff+20 {
		return false
	}
	ip := base[ipOff:]
	if ip[0] != 0x45 { // version 4, 20-byte header
		return false
	}
	declared := int(binary.BigEndian.Uint16(ip[2:4]))
	if declared < 20 || declared > len(ip) {
		return false // a TSO length (0), a lying one, or cut by the snaplen
	}
	flags := binary.BigEndian.Uint16(ip[6:8])
	if flags&0x3fff != 0 { // more fragments, or an offset
		return false
	}
	payOff := ipOff + 20
	end := ipOff + declared
	l4 := base[payOff:end]
	proto := ip[9]
	switch proto {
	case uint8(protoICMP):
		if len(l4) < 8 || (l4[0] != 8 && l4[0] != 0) { // echo request, reply
			return false
		}
	case uint8(protoTCP):
		if len(l4) < 20 || l4[12]>>4 < 5 {
			return false
		}
	case uint8(protoUDP):
		if len(l4) < 8 {
			return false
		}
		if n := binary.BigEndian.Uint16(l4[4:6]); n != 0 && n < 8 {
			return false // gopacket rejects it: the general path says why
		}
		if udpTunnel(l4) {
			return false
		}
	default:
		return false
	}

	if eth {
		copy(f.DstMAC[:], base[0:6])
		copy(f.SrcMAC[:], base[6:12])
		f.HasSrcMAC, f.HasDstMAC = true, true
	}
	id := binary.BigEndian.Uint16(ip[4:6])
	f.SrcIP = netip.AddrFrom4([4]byte(ip[12:16]))
	f.DstIP = netip.AddrFrom4([4]byte(ip[16:20]))
	f.TTL, f.HasTTL = ip[8], true
	f.IPID, f.HasIPID = id, true
	f.IPLen = declared
	f.DF = flags&0x4000 != 0
	k := &f.Key
	switch proto {
	case uint8(protoICMP):
		k.Proto = correlate.ProtoICMP
		k.Kind = l4[0]
		k.Seq = uint32(binary.BigEndian.Uint16(l4[6:8]))
		f.EchoID, f.HasEchoID = binary.BigEndian.Uint16(l4[4:6]), true
		payloadKey(k, base, payOff+8, end)
	case uint8(protoTCP):
		f.SrcPort = binary.BigEndian.Uint16(l4[0:2])
		f.DstPort = binary.BigEndian.Uint16(l4[2:4])
		f.HasPorts = true
		k.Proto = correlate.ProtoTCP
		k.Kind = l4[13]
		k.Seq = binary.BigEndian.Uint32(l4[4:8])
		k.Ack = binary.BigEndian.Uint32(l4[8:12])
		payloadKey(k, base, payOff+int(l4[12]>>4)*4, end)
	case uint8(protoUDP):
		f.SrcPort = binary.BigEndian.Uint16(l4[0:2])
		f.DstPort = binary.BigEndian.Uint16(l4[2:4])
		f.HasPorts = true
		k.Proto = correlate.ProtoUDP
		k.Kind = uint8(protoUDP)
		k.IPID = uint32(id)
		payloadKey(k, base, payOff+8, end)
	}
	return true
}

// udpTunnel: the datagram (header and payload, as far as the IP packet
// goes) may be one the general path enters or marks as a tunnel's
// (tunnel.go), so the fast path leaves it: a tunnel's port, IPsec's NAT
// traversal port, or what reads as a WireGuard message. The payload and
// its declared length are taken as gopacket's UDP layer takes them.
func udpTunnel(l4 []byte) bool {
	sp, dp := binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
	switch {
	case dp == portVXLANIANA, dp == portVXLANLinux, dp == portGENEVE, dp == portFlannelUDP,
		sp == portNATT, dp == portNATT:
		return true
	}
	p, n := l4[8:], len(l4)-8
	if ulen := int(binary.BigEndian.Uint16(l4[4:6])); ulen >= 8 {
		if ulen < len(l4) {
			p = l4[8:ulen]
		}
		n = ulen - 8
	}
	return wireGuard(p, n)
}
