package filter

import (
	"github.com/gopacket/gopacket/layers"
	"github.com/pathtrace/pathtrace/capture"
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
	l3, ok := linkFields(&outer, capture.LinkType(link), data)
	if !ok {
		return outer, nil, 0
	}
	outer.WireLen = wireLen
	if udp := netFields(&outer, data, l3); udp > 0 {
		if innerOff = vxlan(&outer, data, udp); innerOff > 0 {
			in := Fields{}
			Fill(&in, capture.LinkTypeEthernet, data[innerOff:], wireLen-innerOff)
			return outer, &in, innerOff
		}
	}
	return outer, nil, 0
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
