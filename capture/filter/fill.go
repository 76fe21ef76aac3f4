package filter

import (
	"encoding/binary"
	"net/netip"

	"github.com/pathtrace/pathtrace/capture"
)

// Fill sets f to the view of data, a frame of link type link whose length
// on the wire was wireLen, as the Fields contract says (libpcap's offsets,
// no header validation, Have bits by captured length). For the view of a
// tunnelled frame, call it again on the inner frame with its own link type
// (Ethernet for VXLAN/GENEVE/GRE-TEB, raw IP for IP-in-IP and the like) and
// wireLen less the outer headers. It reports false for link types the
// decoder does not decode.
func Fill(f *Fields, link capture.LinkType, data []byte, wireLen int) bool {
	*f = Fields{WireLen: wireLen}
	l3, ok := linkFields(f, link, data)
	if ok {
		netFields(f, data, l3)
	}
	return ok
}

// linkFields fills the link-layer fields and returns where the network
// header starts; ok is false for link types the product does not decode.
func linkFields(f *Fields, link capture.LinkType, data []byte) (int, bool) {
	be := binary.BigEndian
	switch link {
	case capture.LinkTypeEthernet:
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
	case capture.LinkTypeLinuxSLL:
		if len(data) >= 16 {
			f.EtherType, f.Have = be.Uint16(data[14:]), f.Have|HaveEtherType
		}
		return 16, true
	case capture.LinkTypeSLL2:
		if len(data) >= 2 {
			f.EtherType, f.Have = be.Uint16(data[0:]), f.Have|HaveEtherType
		}
		return 20, true
	case capture.LinkTypeRaw, 12, 14: // LINKTYPE_RAW and the DLT_RAW values
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
	case capture.LinkTypeIPv4:
		f.EtherType, f.Have = EtherTypeIPv4, f.Have|HaveEtherType
		return 0, true
	case capture.LinkTypeIPv6:
		f.EtherType, f.Have = EtherTypeIPv6, f.Have|HaveEtherType
		return 0, true
	case capture.LinkTypeNull, capture.LinkTypeLoop:
		if len(data) >= 4 {
			fam := binary.LittleEndian.Uint32(data)
			if link == capture.LinkTypeLoop || fam > 0xffff {
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
// returns where a UDP header starts (0: no UDP header to look into).
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
			return l3 + ihl
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
			return l3 + 40
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
