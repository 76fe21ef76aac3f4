package filter

import "net/netip"

// MaxVLANs is how many VLAN tags a Fields value records.
const MaxVLANs = 4

// EtherType values the filter tests. For links without an Ethernet header
// the decoder maps the link's own protocol field onto these.
const (
	EtherTypeIPv4 uint16 = 0x0800
	EtherTypeARP  uint16 = 0x0806
	EtherTypeRARP uint16 = 0x8035
	EtherTypeIPv6 uint16 = 0x86dd
	// VLAN tag protocol identifiers, as libpcap's "vlan" accepts them.
	EtherTypeVLAN  uint16 = 0x8100
	EtherTypeQinQ  uint16 = 0x88a8
	EtherTypeQinQ2 uint16 = 0x9100
)

// IsVLANTPID reports whether t introduces a VLAN tag.
func IsVLANTPID(t uint16) bool {
	return t == EtherTypeVLAN || t == EtherTypeQinQ || t == EtherTypeQinQ2
}

// VLANTag is one 802.1Q/802.1ad tag.
type VLANTag struct {
	TPID uint16 // 0x8100, 0x88a8 or 0x9100
	ID   uint16 // the 12-bit VLAN identifier (TCI & 0x0fff)
}

// Have says which header fields of a Fields value were captured. A field
// the filter must read but that was cut off by the snap length makes the
// whole filter reject the frame, as a BPF load past the captured bytes
// does in libpcap ("not port 80" does not keep a TCP packet whose ports
// were not captured).
type Have uint8

// Have bits. Addresses need no bit: an invalid netip.Addr means "not
// captured".
const (
	// HaveEtherType: EtherType was captured (and, for raw IP links, the
	// version nibble; for NULL/LOOP links the 4-byte family).
	HaveEtherType Have = 1 << iota
	// HaveProto: the IPv4 Protocol byte (and with it the fragment field)
	// or the IPv6 Next Header byte was captured.
	HaveProto
	// HaveFragProto: IPv6 with Next Header 44 whose fragment header's
	// Next Header byte (byte 40 of the IPv6 packet) was captured.
	HaveFragProto
	// HaveSrcPort, HaveDstPort: the first and second 16-bit words of the
	// transport header were captured.
	HaveSrcPort
	HaveDstPort
)

// Fields is what the filter reads of one view of a frame: the frame as
// captured, or the Ethernet frame inside a tunnel (VXLAN) as a second view.
// The decoder fills it once per view; Match only reads it.
//
// The fields follow libpcap's reading of the headers, because the filter's
// answers must be tcpdump's: they are the values at libpcap's fixed
// offsets, filled whenever those bytes were captured, whether or not the
// rest of the header is valid, and they do not walk IPv6 extension headers
// (tcpdump's "tcp" does not match TCP after an IPv6 hop-by-hop header).
type Fields struct {
	// WireLen is the length of the view on the wire (the frame's original
	// length; for a tunnelled view, the original length less the outer
	// headers): what "greater" and "less" compare.
	WireLen int

	// HasMAC: the link has an Ethernet header (LINKTYPE_ETHERNET). Cooked
	// (SLL) and raw IP captures have none; "ether" primitives, which
	// tcpdump refuses on those links, never match them.
	HasMAC         bool
	SrcMAC, DstMAC [6]byte

	// VLANs are the 802.1Q/802.1ad tags after the MAC addresses, outermost
	// first, each with its identifier captured; NumVLAN counts them. A
	// live capture whose kernel stripped the tag into metadata records it
	// here all the same.
	VLANs   [MaxVLANs]VLANTag
	NumVLAN uint8

	// EtherType is the type field after the recorded VLAN tags (itself a
	// TPID when more tags follow than were recorded). Links without an
	// Ethernet header map their protocol field as libpcap does for
	// savefiles: Linux SLL/SLL2 protocol as is; raw IP by version nibble
	// (4 -> 0x0800, 6 -> 0x86dd, else 0); LINKTYPE_IPV4/IPV6 always
	// 0x0800/0x86dd; NULL/LOOP family 2 -> 0x0800, 24/28/30 -> 0x86dd
	// (not Linux's 10: libpcap does not test it in savefiles), else 0.
	EtherType uint16

	// Have says which of the fields below were captured.
	Have Have

	// IPv4 (EtherType 0x0800) or IPv6 (0x86dd) header: source and
	// destination, invalid when not captured.
	Src, Dst netip.Addr
	// Proto is the IPv4 Protocol field or the IPv6 Next Header field of
	// the fixed header (not the protocol after extension headers).
	Proto uint8
	// FragProto is, for IPv6 whose Next Header is 44 (fragment), the
	// fragment header's Next Header: tcpdump's "tcp" and "icmp6" look
	// there too, on every fragment.
	FragProto uint8
	// NonFirstFragment: an IPv4 fragment with a non-zero offset, whose
	// payload does not start with the transport header.
	NonFirstFragment bool
	// SrcPort, DstPort are the first two 16-bit words of the transport
	// header: for IPv4 at the header length the IHL field gives, for IPv6
	// right after the 40-byte fixed header. Filled whatever Proto is;
	// read only for TCP, UDP and SCTP.
	SrcPort, DstPort uint16

	// ARP or RARP (EtherType 0x0806/0x8035): the IPv4 addresses at
	// offsets 14 (sender) and 24 (target) of the ARP packet, as for an
	// Ethernet/IPv4 ARP; invalid when not captured.
	ARPSender, ARPTarget netip.Addr
}

// etherTypeAt returns the type field the filter sees after depth VLAN
// tags, as libpcap's offsets shifted by depth "vlan" keywords do: ok is
// false when it was not captured (the filter rejects the frame); known is
// false when the frame has fewer tags than depth, where libpcap would read
// bytes of the payload as a type field and this filter matches nothing.
func (f *Fields) etherTypeAt(depth uint8) (t uint16, known, ok bool) {
	switch {
	case depth < f.NumVLAN:
		return f.VLANs[depth].TPID, true, true
	case depth == f.NumVLAN:
		return f.EtherType, true, f.Have&HaveEtherType != 0
	}
	return 0, false, true
}
