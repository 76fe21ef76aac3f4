// Package correlate turns decoded frames seen at several capture points into
// traces: one trace per frame crossing the path, with its hops, rewrites,
// losses and anomalies. It does no I/O and allocates nothing per frame in
// steady state; callers feed it plain values.
package correlate

import (
	"fmt"
	"net"
	"net/netip"
)

// Proto is the protocol family a frame's identity key belongs to.
type Proto uint8

const (
	ProtoNone   Proto = iota
	ProtoICMP         // ICMPv4 echo request/reply
	ProtoICMPv6       // ICMPv6 echo request/reply
	ProtoARP
	ProtoND // IPv6 neighbour discovery (NS, NA, RS, RA, redirect)
	ProtoTCP
	ProtoUDP
	ProtoIP // any other IPv4/IPv6 payload, incl. ICMP errors and non-first fragments
)

var protoNames = [...]string{"", "icmp", "icmpv6", "arp", "nd", "tcp", "udp", "ip"}

func (p Proto) String() string {
	if int(p) < len(protoNames) {
		return protoNames[p]
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// MAC is a comparable Ethernet address.
type MAC [6]byte

func (m MAC) String() string {
	const hexdigits = "0123456789abcdef"
	var b [17]byte
	for i, v := range m {
		if i > 0 {
			b[i*3-1] = ':'
		}
		b[i*3] = hexdigits[v>>4]
		b[i*3+1] = hexdigits[v&0xf]
	}
	return string(b[:])
}

// ParseMAC reads an Ethernet address as net.ParseMAC does.
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(s)
	if err != nil {
		return MAC{}, err
	}
	m, ok := MACOf(hw)
	if !ok {
		return MAC{}, fmt.Errorf("%q is not a 6-byte Ethernet address", s)
	}
	return m, nil
}

// MACOf converts a 6-byte hardware address.
func MACOf(hw net.HardwareAddr) (MAC, bool) {
	var m MAC
	if len(hw) != len(m) {
		return m, false
	}
	copy(m[:], hw)
	return m, true
}

// HardwareAddr is m as a net.HardwareAddr.
func (m MAC) HardwareAddr() net.HardwareAddr { return net.HardwareAddr(m[:]) }

// IsMulticast reports a group address (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&1 == 1 }

// Key is a frame's identity: only fields that no hop of a Kubernetes path
// rewrites (MACs, TTL, addresses and ports under NAT, the ICMP id under
// masquerade are all left out). Frames with equal keys at different points
// within the match window are the same frame.
//
//   - ICMP/ICMPv6 echo: Kind=type, Seq=echo seq, Hash/Len=echo payload.
//   - ARP: Kind=op, MAC=sender MAC, Addr1=sender IP, Addr2=target IP.
//   - ND: Kind=ICMPv6 type, Addr1=target address, Hash/Len=options.
//   - TCP: Kind=flags, Seq, Ack, Hash/Len=payload.
//   - UDP and other IP: Kind=IP protocol, IPID=IPv4 id or IPv6 fragment id,
//     Hash/Len=L4 payload (UDP) or IP payload (others).
type Key struct {
	// Fields ordered so the struct has no padding: it is in every frame.
	Proto Proto
	Kind  uint8
	MAC   MAC
	Seq   uint32
	Ack   uint32
	IPID  uint32
	Len   uint32
	Hash  uint64
	Addr1 netip.Addr
	Addr2 netip.Addr
}

// equal is k == o, field by field: == on the struct is a call of memequal
// over its 80 bytes, which costs a matching frame more than these compares.
// TestKeyEqualSeesEveryField fails when a new field is left out here.
func (k *Key) equal(o *Key) bool {
	return k.Hash == o.Hash && k.Seq == o.Seq && k.Ack == o.Ack && k.IPID == o.IPID && k.Len == o.Len &&
		k.Proto == o.Proto && k.Kind == o.Kind && k.MAC == o.MAC && k.Addr1 == o.Addr1 && k.Addr2 == o.Addr2
}

// LinkDir is the direction a capture recorded for a frame, where it did.
type LinkDir uint8

const (
	DirUnknown LinkDir = iota
	DirIn              // received by the interface (SLL/SLL2 host, broadcast, multicast, otherhost; pcapng inbound)
	DirOut             // sent by the interface (SLL/SLL2 outgoing; pcapng outbound; AF_PACKET PACKET_OUTGOING)
)

// Frame is one frame as seen at one point, decoded into plain values. The
// decoder fills it in place; fields the link type does not record have their
// Has* flag false (or an invalid netip.Addr) and are reported as null.
type Frame struct {
	// Small fields are grouped so that padding does not grow the struct:
	// decoders write one per frame, and it crosses cores in batches.
	Point int   // index of the capture point, in path order
	Time  int64 // ns since the Unix epoch on the analysis's reference clock: Stamp corrected for the point's clock offset
	Stamp int64 // the capture's own stamp, as tshark shows it
	Num   int   // 1-based record number in its source (tshark's frame.number for files)

	Key Key

	SrcIP, DstIP netip.Addr // invalid when the frame carries no IP header (ARP: sender/target IPs)
	IPLen        int        // IP total length in bytes as the header states it (0 without IP)
	WireLen      int        // original frame length on the wire
	CapLen       int        // bytes captured (< WireLen when cut by snaplen)
	SrcMAC       MAC
	DstMAC       MAC
	SrcPort      uint16
	DstPort      uint16
	EchoID       uint16 // ICMP/ICMPv6 echo identifier
	IPID         uint16 // IPv4 identification
	TTL          uint8  // IPv4 TTL or IPv6 hop limit
	Dir          LinkDir
	HasSrcMAC    bool
	HasDstMAC    bool
	HasTTL       bool
	HasPorts     bool
	HasEchoID    bool
	HasIPID      bool
	Fragment     bool // IPv4 MF set or offset > 0, or IPv6 fragment header
	DF           bool // IPv4 don't-fragment
	// Encap is what the tunnel's outer headers said when the frame was seen
	// encapsulated (Encap.Type != EncapNone); the fields above are then the
	// inner frame's, whose identity is what the pods see on their side.
	Encap Encap
}

// stamp is the capture's own stamp; a frame no decoder stamped (tests)
// carries its time only.
func (f *Frame) stamp() int64 {
	if f.Stamp == 0 {
		return f.Time
	}
	return f.Stamp
}

// EncapType is the tunnel a frame was seen in.
type EncapType uint8

const (
	EncapNone   EncapType = iota
	EncapVXLAN            // UDP 4789 or 8472 (Flannel's vxlan backend)
	EncapIPIP             // IP protocol 4 (IPv4 in IP, Calico) or 41 (IPv6 in IP)
	EncapGENEVE           // UDP 6081 (OVN-Kubernetes, Cilium)
	EncapUDP              // Flannel's udp backend, UDP 8285: a bare IP packet
	EncapGRE              // IP protocol 47 carrying IP or Ethernet
	// Encrypted tunnels: the frame is the outer packet (its inner one
	// cannot be read), marked so the result can say why it is not matched
	// with the pods' frames.
	EncapESP       // IPsec ESP: IP protocol 50, or UDP 4500 (NAT traversal)
	EncapWireGuard // WireGuard's messages over UDP
)

var encapNames = names{"", "vxlan", "ipip", "geneve", "udp", "gre", "esp", "wireguard"}

// Encrypted reports a tunnel whose inner packets cannot be read.
func (t EncapType) Encrypted() bool { return t == EncapESP || t == EncapWireGuard }

func (t EncapType) String() string                { return encapNames.text(uint8(t), "encap") }
func (t EncapType) MarshalText() ([]byte, error)  { return []byte(t.String()), nil }
func (t *EncapType) UnmarshalText(b []byte) error { return parseInto(t, encapNames, b, "encap") }

// Encap describes the outer headers of a tunnelled frame. A field the
// capture does not record (SLL keeps no destination MAC) has its Has flag
// false.
type Encap struct {
	// Type first: in a Frame it then shares a cache line with the fields
	// before it, and the correlator, which checks it for every frame,
	// reads the rest (one more line) only for a tunnelled one.
	Type             EncapType
	TTL              uint8
	HasVNI           bool
	HasSrcMAC        bool
	HasDstMAC        bool
	SrcPort, DstPort uint16 // outer UDP ports (vxlan, geneve, udp, wireguard, esp in UDP)
	VNI              uint32 // VXLAN/GENEVE network identifier, GRE key
	SrcMAC, DstMAC   MAC
	SrcIP, DstIP     netip.Addr // outer addresses (the tunnel endpoints)
}
