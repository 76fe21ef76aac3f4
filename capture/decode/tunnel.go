package decode

import (
	"encoding/binary"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
)

// Tunnels Kubernetes networks use, recognised on the outer packet only: a
// tunnel inside a tunnel is keyed as the inner packet's own protocol (one
// level of decapsulation, like the kernel's own devices do per device).
//
// The headers are read by hand rather than with gopacket's GRE and Geneve
// layers: those allocate (Geneve options, GRE routing) and the decoder must
// not.
const (
	portVXLANIANA  = 4789 // IANA VXLAN
	portVXLANLinux = 8472 // Linux's default, Flannel's vxlan backend
	portGENEVE     = 6081
	portFlannelUDP = 8285 // Flannel's udp backend: a bare IP packet per datagram
	portNATT       = 4500 // IPsec NAT traversal: ESP in UDP (RFC 3948)

	protoIPIP = layers.IPProtocolIPv4 // 4: IPv4 in IP (Calico's tunl0)
	protoIP6  = layers.IPProtocolIPv6 // 41: IPv6 in IP
	protoGRE  = layers.IPProtocolGRE  // 47
	protoESP  = layers.IPProtocolESP  // 50

	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	etherTypeTEB  = 0x6558 // transparent Ethernet bridging: an Ethernet frame inside
)

// decap enters the tunnel the outer headers in ls and st describe, if the
// packet is one: f is then the inner frame, its Encap the outer headers, and
// entered is true with keyed what decoding the inner frame reported. A
// packet whose tunnel header is malformed, or whose inner packet does not
// start as its header says, is not entered: it is keyed as the outer packet
// it is.
func (d *Decoder) decap(ls *layerSet, st *ipState, base []byte, f *correlate.Frame) (keyed, entered bool) {
	var e correlate.Encap
	var inner []byte
	var first gopacket.LayerType
	switch st.proto {
	case protoIPIP, protoIP6:
		inner = base[st.payOff:st.capEnd]
		first = layers.LayerTypeIPv4
		if st.proto == protoIP6 {
			first = layers.LayerTypeIPv6
		}
		// Without a tunnel header, only the inner packet's first byte
		// says that this is one.
		if len(inner) == 0 || !startsAs(inner, first) {
			return false, false
		}
		e.Type = correlate.EncapIPIP
	case protoGRE:
		var ok bool
		if inner, first, e.VNI, e.HasVNI, ok = greHeader(base[st.payOff:st.capEnd]); !ok {
			return false, false
		}
		e.Type = correlate.EncapGRE
	case protoUDP:
		if st.l4 != layers.LayerTypeUDP {
			return false, false
		}
		p := ls.udp.Payload
		var ok bool
		switch ls.udp.DstPort {
		case portVXLANIANA, portVXLANLinux:
			inner, first, e.VNI, ok = vxlanHeader(p)
			e.Type, e.HasVNI = correlate.EncapVXLAN, true
		case portGENEVE:
			inner, first, e.VNI, ok = geneveHeader(p)
			e.Type, e.HasVNI = correlate.EncapGENEVE, true
		case portFlannelUDP:
			inner, first, ok = p, ipVersionLayer(p), saneIP(p, udpPayloadLen(&ls.udp))
			e.Type = correlate.EncapUDP
		}
		if !ok {
			return false, false
		}
		e.SrcPort, e.DstPort = uint16(ls.udp.SrcPort), uint16(ls.udp.DstPort)
	default:
		return false, false
	}
	outerInto(&e, f)
	// The frame is the inner one, wherever it was captured: only its
	// identity matches what the pods see on their side of the tunnel.
	*f = correlate.Frame{
		Point: f.Point, Time: f.Time, Stamp: f.Stamp, Num: f.Num, Dir: f.Dir,
		WireLen: f.WireLen, CapLen: f.CapLen, Encap: e,
	}
	// Where the inner frame starts, for a filter's inner view.
	d.tunnelOff, d.tunnelLink = cap(base)-cap(inner), capture.LinkTypeRaw
	if first == layers.LayerTypeEthernet {
		d.tunnelLink = capture.LinkTypeEthernet
	}
	return d.decodeFrom(&d.inner, base, inner, first, f, false), true
}

// outerInto copies the outer headers already decoded into f to e.
func outerInto(e *correlate.Encap, f *correlate.Frame) {
	e.SrcIP, e.DstIP, e.TTL = f.SrcIP, f.DstIP, f.TTL
	e.SrcMAC, e.DstMAC, e.HasSrcMAC, e.HasDstMAC = f.SrcMAC, f.DstMAC, f.HasSrcMAC, f.HasDstMAC
}

// markEncrypted marks an outer packet of an encrypted tunnel (IPsec ESP,
// also in UDP 4500; WireGuard). Its inner packet cannot be read, so the
// frame stays keyed as the outer packet: the same ESP packet is still the
// same packet at two points of the underlay.
func markEncrypted(ls *layerSet, st *ipState, f *correlate.Frame) {
	var t correlate.EncapType
	switch {
	case st.proto == protoESP:
		t = correlate.EncapESP
	case st.proto != protoUDP || st.l4 != layers.LayerTypeUDP || f.Fragment:
		return
	case (ls.udp.DstPort == portNATT || ls.udp.SrcPort == portNATT) && natTESP(ls.udp.Payload):
		t = correlate.EncapESP
	case wireGuard(ls.udp.Payload, udpPayloadLen(&ls.udp)):
		t = correlate.EncapWireGuard
	default:
		return
	}
	f.Encap = correlate.Encap{Type: t}
	outerInto(&f.Encap, f)
	if st.proto == protoUDP {
		f.Encap.SrcPort, f.Encap.DstPort = uint16(ls.udp.SrcPort), uint16(ls.udp.DstPort)
	}
}

// startsAs reports whether b can start a packet of layer t: an IP packet
// of the right version. A packet cut short by the snaplen (even to nothing)
// is still entered when a tunnel header announced it, and then not keyed,
// as a frame cut in its L4 header is not.
func startsAs(b []byte, t gopacket.LayerType) bool {
	switch t {
	case layers.LayerTypeEthernet:
		return true
	case layers.LayerTypeIPv4:
		return len(b) == 0 || b[0]>>4 == 4
	case layers.LayerTypeIPv6:
		return len(b) == 0 || b[0]>>4 == 6
	}
	return false
}

// innerType is the layer an EtherType-style protocol field announces.
func innerType(proto uint16) gopacket.LayerType {
	switch proto {
	case etherTypeTEB:
		return layers.LayerTypeEthernet
	case etherTypeIPv4:
		return layers.LayerTypeIPv4
	case etherTypeIPv6:
		return layers.LayerTypeIPv6
	}
	return gopacket.LayerTypeZero
}

// vxlanHeader reads RFC 7348's 8 bytes: flags with the I bit (a valid VNI),
// 24-bit VNI; an Ethernet frame follows.
func vxlanHeader(p []byte) (inner []byte, first gopacket.LayerType, vni uint32, ok bool) {
	if len(p) < 8 || p[0]&0x08 == 0 {
		return nil, 0, 0, false
	}
	vni = uint32(p[4])<<16 | uint32(p[5])<<8 | uint32(p[6])
	inner, first = p[8:], layers.LayerTypeEthernet
	return inner, first, vni, startsAs(inner, first)
}

// geneveHeader reads RFC 8926's header: version 0, options length in
// 4-byte words (skipped), protocol type, 24-bit VNI.
func geneveHeader(p []byte) (inner []byte, first gopacket.LayerType, vni uint32, ok bool) {
	if len(p) < 8 || p[0]>>6 != 0 {
		return nil, 0, 0, false
	}
	hl := 8 + int(p[0]&0x3f)*4
	if len(p) < hl {
		return nil, 0, 0, false
	}
	vni = uint32(p[4])<<16 | uint32(p[5])<<8 | uint32(p[6])
	inner, first = p[hl:], innerType(binary.BigEndian.Uint16(p[2:4]))
	return inner, first, vni, startsAs(inner, first)
}

// greHeader reads a GRE header (RFC 2784 with RFC 2890's key and sequence
// number): version 0 only (1 is PPTP's), no routing (RFC 1701, obsolete).
// The optional checksum and sequence number are skipped; the key is
// returned as the tunnel's identifier.
func greHeader(p []byte) (inner []byte, first gopacket.LayerType, key uint32, hasKey, ok bool) {
	const flagC, flagR, flagK, flagS = 0x80, 0x40, 0x20, 0x10
	if len(p) < 4 || p[1]&0x07 != 0 || p[0]&flagR != 0 {
		return nil, 0, 0, false, false
	}
	hl := 4
	if p[0]&flagC != 0 {
		hl += 4 // checksum and reserved
	}
	if p[0]&flagK != 0 {
		if len(p) < hl+4 {
			return nil, 0, 0, false, false
		}
		key, hasKey = binary.BigEndian.Uint32(p[hl:]), true
		hl += 4
	}
	if p[0]&flagS != 0 {
		hl += 4
	}
	if len(p) < hl {
		return nil, 0, 0, false, false
	}
	inner, first = p[hl:], innerType(binary.BigEndian.Uint16(p[2:4]))
	return inner, first, key, hasKey, startsAs(inner, first)
}

// udpPayloadLen is the payload length the UDP header declares (a length of
// 0, a jumbogram's, runs to the end of what was captured).
func udpPayloadLen(u *layers.UDP) int {
	if u.Length < 8 {
		return len(u.Payload)
	}
	return int(u.Length) - 8
}

// saneIP reports whether p, a datagram's payload of declared length n, is
// one whole IP packet: how Flannel's udp backend is told from any other
// traffic that happens to use port 8285. IPv4: a header whose length
// fields agree with the datagram and whose checksum is right; IPv6: a
// payload length that fills the datagram exactly.
func saneIP(p []byte, n int) bool {
	if len(p) == 0 {
		return false
	}
	switch p[0] >> 4 {
	case 4:
		ihl := int(p[0]&0x0f) * 4
		if ihl < 20 || len(p) < ihl || int(binary.BigEndian.Uint16(p[2:4])) != n {
			return false
		}
		var sum uint32
		for i := 0; i < ihl; i += 2 {
			sum += uint32(p[i])<<8 | uint32(p[i+1])
		}
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		return sum == 0xffff
	case 6:
		return len(p) >= 40 && int(binary.BigEndian.Uint16(p[4:6]))+40 == n
	}
	return false
}

// natTESP tells ESP in UDP from IKE on port 4500: IKE starts with four
// zero bytes (the non-ESP marker), ESP with its non-zero SPI; a one-byte
// 0xff is a NAT keepalive.
func natTESP(p []byte) bool {
	return len(p) >= 4 && binary.BigEndian.Uint32(p) != 0
}

// wireGuard recognises WireGuard's messages, on any port, as Wireshark's
// heuristic does: a type 1..4, three reserved zero bytes and the length
// each type has (handshake initiation 148, response 92, cookie reply 64;
// transport data a 16-byte header, the padded ciphertext and a 16-byte
// tag: at least 32 and a multiple of 16). n is the declared length.
func wireGuard(p []byte, n int) bool {
	if len(p) < 4 || p[1]|p[2]|p[3] != 0 {
		return false
	}
	switch p[0] {
	case 1:
		return n == 148
	case 2:
		return n == 92
	case 3:
		return n == 64
	case 4:
		return n >= 32 && n%16 == 0
	}
	return false
}
