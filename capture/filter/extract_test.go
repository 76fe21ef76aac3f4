package filter

import (
	"encoding/binary"
	"net/netip"

	"github.com/gopacket/gopacket/layers"
)

// The test side's decoder: it fills Fields from a raw frame the way the
// Fields contract says (libpcap's offsets, no header validation, Have bits
// by captured length) and finds a VXLAN frame's inner Ethernet frame the
// way the product decoder does (UDP to 4789 or 8472, unfragmented, I flag,
// at least an Ethernet header inside). It is independent of the product
// decoder on purpose: the differential tests check the filter against
// tcpdump; the lead re-runs them through the product decoder.

// extract fills the view of a frame of the given link type and, for a
// VXLAN frame, the inner view (nil otherwise).
// innerOff is where the inner frame starts in data.
func extract(link layers.LinkType, data []byte, wireLen int) (outer Fields, inner *Fields, innerOff int) {
	l3, ok := linkFields(&outer, link, data)
	if !ok {
		return outer, nil, 0
	}
	outer.WireLen = wireLen
	if innerOff = netFields(&outer, data, l3); innerOff > 0 {
		in := Fields{WireLen: wireLen - innerOff}
		l3in, _ := linkFields(&in, layers.LinkTypeEthernet, data[innerOff:])
		netFields(&in, data[innerOff:], l3in)
		return outer, &in, innerOff
	}
	return outer, nil, 0
}

// linkFields fills the link-layer fields and returns where the network
// header starts; ok is false for link types the product does not decode.
func linkFields(f *Fields, link layers.LinkType, data []byte) (int, bool) {
	be := binary.BigEndian
	switch link {
	case layers.LinkTypeEthernet:
		if len(data) >= 12 {
			f.HasMAC = true
			copy(f.DstMAC[:], data[0:6])
			copy(f.SrcMAC[:], data[6:12])
		}
		off := 12
		for int(f.NumVLAN) < MaxVLANs && len(data) >= off+4 && IsVLANTPID(be.Uint16(data[off:])) {
			f.VLANs[f.NumVLAN] = VLANTag{TPID: be.Uint16(data[off:]), ID: be.Uint16(data[off+2:]) & 0x0fff}
			f.NumVLAN++
			off += 4
		}
		if len(data) >= off+2 {
			f.EtherType, f.Have = be.Uint16(data[off:]), f.Have|HaveEtherType
		}
		return off + 2, true
	case layers.LinkTypeLinuxSLL:
		if len(data) >= 16 {
			f.EtherType, f.Have = be.Uint16(data[14:]), f.Have|HaveEtherType
		}
		return 16, true
	case 276: // LINUX_SLL2
		if len(data) >= 2 {
			f.EtherType, f.Have = be.Uint16(data[0:]), f.Have|HaveEtherType
		}
		return 20, true
	case layers.LinkTypeRaw, 12, 14: // LINKTYPE_RAW and the DLT_RAW values
		if len(data) >= 1 {
			f.Have |= HaveEtherType
			switch data[0] >> 4 {
			case 4:
				f.EtherType = EtherTypeIPv4
			case 6:
				f.EtherType = EtherTypeIPv6
			}
		}
		return 0, true
	case layers.LinkTypeIPv4:
		f.EtherType, f.Have = EtherTypeIPv4, f.Have|HaveEtherType
		return 0, true
	case layers.LinkTypeIPv6:
		f.EtherType, f.Have = EtherTypeIPv6, f.Have|HaveEtherType
		return 0, true
	case layers.LinkTypeNull, layers.LinkTypeLoop:
		if len(data) >= 4 {
			fam := binary.LittleEndian.Uint32(data)
			if link == layers.LinkTypeLoop || fam > 0xffff {
				fam = be.Uint32(data)
			}
			f.Have |= HaveEtherType
			switch fam {
			case 2:
				f.EtherType = EtherTypeIPv4
			case 24, 28, 30:
				f.EtherType = EtherTypeIPv6
			}
		}
		return 4, true
	}
	return 0, false
}

// netFields fills the network and transport fields from data[l3:] and
// returns the offset of a VXLAN inner frame, or 0.
func netFields(f *Fields, data []byte, l3 int) int {
	be := binary.BigEndian
	has := func(n int) bool { return len(data) >= l3+n }
	addr4 := func(off int) netip.Addr {
		if !has(off + 4) {
			return netip.Addr{}
		}
		return netip.AddrFrom4([4]byte(data[l3+off:]))
	}
	if f.Have&HaveEtherType == 0 {
		return 0
	}
	switch f.EtherType {
	case EtherTypeIPv4:
		if has(10) {
			f.Have |= HaveProto
			f.Proto = data[l3+9]
			f.NonFirstFragment = be.Uint16(data[l3+6:])&0x1fff != 0
		}
		f.Src, f.Dst = addr4(12), addr4(16)
		if !has(1) {
			return 0
		}
		ihl := int(data[l3]&0x0f) * 4
		ports(f, data, l3+ihl)
		if has(10) && f.Proto == 17 && ihl >= 20 && be.Uint16(data[l3+6:])&0x3fff == 0 {
			return vxlan(f, data, l3+ihl)
		}
	case EtherTypeIPv6:
		if has(7) {
			f.Have |= HaveProto
			f.Proto = data[l3+6]
		}
		if has(24) {
			f.Src = netip.AddrFrom16([16]byte(data[l3+8:]))
		}
		if has(40) {
			f.Dst = netip.AddrFrom16([16]byte(data[l3+24:]))
		}
		if has(41) {
			f.Have |= HaveFragProto
			f.FragProto = data[l3+40]
		}
		ports(f, data, l3+40)
		if has(7) && f.Proto == 17 {
			return vxlan(f, data, l3+40)
		}
	case EtherTypeARP, EtherTypeRARP:
		f.ARPSender, f.ARPTarget = addr4(14), addr4(24)
	}
	return 0
}

func ports(f *Fields, data []byte, l4 int) {
	if len(data) >= l4+2 {
		f.Have |= HaveSrcPort
		f.SrcPort = binary.BigEndian.Uint16(data[l4:])
	}
	if len(data) >= l4+4 {
		f.Have |= HaveDstPort
		f.DstPort = binary.BigEndian.Uint16(data[l4+2:])
	}
}

// vxlan returns the offset of the Ethernet frame inside a VXLAN packet
// whose UDP header starts at l4, or 0.
func vxlan(f *Fields, data []byte, l4 int) int {
	if f.Have&HaveDstPort == 0 || (f.DstPort != 4789 && f.DstPort != 8472) {
		return 0
	}
	in := l4 + 8 + 8
	if len(data) < in+14 || data[l4+8]&0x08 == 0 {
		return 0
	}
	return in
}
