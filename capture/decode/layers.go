package decode

import (
	"encoding/binary"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/zeebo/xxh3"

	"github.com/pathtrace/pathtrace/correlate"
)

// hashBytes is how much of a payload goes into Key.Hash. Key.Len comes from
// the lengths the IP header declares, not from the bytes captured, so a
// point captured with a small snaplen still matches a point that captured
// whole frames, as long as it got the first hashBytes bytes of the payload
// (or all of a shorter one). Ethernet padding never enters the hash: the
// payload ends where the IP header says it does.
const hashBytes = 64

// IP protocol numbers used as Key.Kind and to pick the key.
const (
	protoICMP   = layers.IPProtocolICMPv4
	protoTCP    = layers.IPProtocolTCP
	protoUDP    = layers.IPProtocolUDP
	protoICMPv6 = layers.IPProtocolICMPv6
)

// layerSet is one set of preallocated gopacket layers with parsers over
// them, one parser per layer a frame can start with.
type layerSet struct {
	eth   layers.Ethernet
	dot1q layers.Dot1Q
	ip4   ipv4Layer
	ip6   ipv6Layer
	ext   ipv6ExtLayer
	frag  layers.IPv6Fragment
	arp   layers.ARP
	tcp   layers.TCP
	udp   layers.UDP
	icmp4 layers.ICMPv4
	icmp6 layers.ICMPv6

	fromEth, fromDot1Q, fromIPv4, fromIPv6, fromARP *gopacket.DecodingLayerParser
	decoded                                         []gopacket.LayerType
}

func (ls *layerSet) init() {
	// Sparse is gopacket's fastest container: a slice indexed by layer type.
	dlc := gopacket.DecodingLayerContainer(gopacket.DecodingLayerSparse(nil))
	// ext registers for every IPv6 extension type; frag comes after it so
	// that fragment headers are decoded for their offset and id.
	for _, l := range []gopacket.DecodingLayer{&ls.eth, &ls.dot1q, &ls.ip4, &ls.ip6, &ls.ext,
		&ls.frag, &ls.arp, &ls.tcp, &ls.udp, &ls.icmp4, &ls.icmp6} {
		dlc = dlc.Put(l)
	}
	parser := func(first gopacket.LayerType) *gopacket.DecodingLayerParser {
		p := gopacket.NewDecodingLayerParser(first)
		p.SetDecodingLayerContainer(dlc)
		// Decoding stops quietly at the first layer not in the set (LLC,
		// DNS, a fragment's payload...): what was decoded up to there is
		// all the key needs.
		p.IgnoreUnsupported = true
		return p
	}
	ls.fromEth = parser(layers.LayerTypeEthernet)
	ls.fromDot1Q = parser(layers.LayerTypeDot1Q)
	ls.fromIPv4 = parser(layers.LayerTypeIPv4)
	ls.fromIPv6 = parser(layers.LayerTypeIPv6)
	ls.fromARP = parser(layers.LayerTypeARP)
	ls.decoded = make([]gopacket.LayerType, 0, 16)
}

func (ls *layerSet) parser(first gopacket.LayerType) *gopacket.DecodingLayerParser {
	switch first {
	case layers.LayerTypeEthernet:
		return ls.fromEth
	case layers.LayerTypeDot1Q:
		return ls.fromDot1Q
	case layers.LayerTypeIPv4:
		return ls.fromIPv4
	case layers.LayerTypeIPv6:
		return ls.fromIPv6
	case layers.LayerTypeARP:
		return ls.fromARP
	}
	return nil
}

// The IP layers stop the parser at IP-in-IP: the same layer struct would
// otherwise be decoded again with the inner header, losing the outer one.
// decap decodes the inner packet with the other layer set.
type (
	ipv4Layer    struct{ layers.IPv4 }
	ipv6Layer    struct{ layers.IPv6 }
	ipv6ExtLayer struct{ layers.IPv6ExtensionSkipper }
)

func (l *ipv4Layer) NextLayerType() gopacket.LayerType {
	return notTunnel(l.IPv4.NextLayerType())
}

func (l *ipv6Layer) NextLayerType() gopacket.LayerType {
	return notTunnel(l.IPv6.NextLayerType())
}

func (l *ipv6ExtLayer) NextLayerType() gopacket.LayerType {
	return notTunnel(l.IPv6ExtensionSkipper.NextLayerType())
}

func notTunnel(t gopacket.LayerType) gopacket.LayerType {
	if t == layers.LayerTypeIPv4 || t == layers.LayerTypeIPv6 {
		return gopacket.LayerTypeZero
	}
	return t
}

// ipState is what the IP layers say about where the payload is. Offsets are
// absolute within the frame.
type ipState struct {
	ver      int
	ipOff    int // first byte of the IP header
	end      int // end of the IP packet as its header declares it
	capEnd   int // end of what was captured of it: min(end, frame length)
	payOff   int // first byte after the IP header and extension headers
	proto    layers.IPProtocol
	ipid     uint32 // IPv4 id or IPv6 fragment id; 0 otherwise
	nonFirst bool   // a fragment other than the first: no L4 header
	l4       gopacket.LayerType
}

// decodeFrom decodes data, a suffix of base (the whole frame), starting with
// layer first, into f. The link header fields already in f stay unless
// data starts with Ethernet.
func (d *Decoder) decodeFrom(ls *layerSet, base, data []byte, first gopacket.LayerType, f *correlate.Frame, outer bool) bool {
	p := ls.parser(first)
	if p == nil {
		return false
	}
	// An error leaves the layers decoded before it in ls.decoded, and those
	// are valid: a frame cut short keeps its outer headers.
	_ = p.DecodeLayers(data, &ls.decoded)

	// off is a slice's offset within the frame. Every layer slice is a
	// reslice of base, so their capacities tell where they start.
	off := func(s []byte) int { return cap(base) - cap(s) }

	var st ipState
	for _, t := range ls.decoded {
		switch t {
		case layers.LayerTypeEthernet:
			copy(f.SrcMAC[:], ls.eth.SrcMAC)
			copy(f.DstMAC[:], ls.eth.DstMAC)
			f.HasSrcMAC, f.HasDstMAC = true, true
		case layers.LayerTypeARP:
			return ls.keyARP(f)
		case layers.LayerTypeIPv4:
			ip := &ls.ip4
			st.ver = 4
			st.ipOff = off(ip.Contents)
			declared := int(binary.BigEndian.Uint16(ip.Contents[2:4]))
			if declared == 0 {
				// TSO/GSO frames captured before segmentation carry no
				// length: the packet runs to the end of the frame.
				declared = max(len(base), d.wireLen) - st.ipOff
			}
			st.end = st.ipOff + declared
			st.payOff = off(ip.Payload)
			st.proto = ip.Protocol
			st.ipid = uint32(ip.Id)
			st.nonFirst = ip.FragOffset != 0
			f.SrcIP = netip.AddrFrom4([4]byte(ip.SrcIP))
			f.DstIP = netip.AddrFrom4([4]byte(ip.DstIP))
			f.TTL, f.HasTTL = ip.TTL, true
			f.IPID, f.HasIPID = ip.Id, true
			f.IPLen = declared
			f.DF = ip.Flags&layers.IPv4DontFragment != 0
			f.Fragment = ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0
		case layers.LayerTypeIPv6:
			ip := &ls.ip6
			st.ver = 6
			st.ipOff = off(ip.Contents)
			st.payOff = off(ip.Payload)
			st.end = st.ipOff + 40 + int(ip.Length)
			if ip.Length == 0 { // jumbogram: gopacket cut the payload to the jumbo length
				st.end = st.payOff + len(ip.Payload)
			}
			st.proto = ip.NextHeader
			if ip.HopByHop != nil {
				st.proto = ip.HopByHop.NextHeader
			}
			f.SrcIP = netip.AddrFrom16([16]byte(ip.SrcIP))
			f.DstIP = netip.AddrFrom16([16]byte(ip.DstIP))
			f.TTL, f.HasTTL = ip.HopLimit, true
			f.IPLen = st.end - st.ipOff
		case layers.LayerTypeIPv6HopByHop, layers.LayerTypeIPv6Routing, layers.LayerTypeIPv6Destination:
			st.proto = ls.ext.NextHeader
			st.payOff = off(ls.ext.Payload)
		case layers.LayerTypeIPv6Fragment:
			st.proto = ls.frag.NextHeader
			st.payOff = off(ls.frag.Payload)
			st.ipid = ls.frag.Identification
			st.nonFirst = ls.frag.FragmentOffset != 0
			f.Fragment = true
		case layers.LayerTypeTCP, layers.LayerTypeUDP, layers.LayerTypeICMPv4, layers.LayerTypeICMPv6:
			st.l4 = t
		}
	}
	if st.ver == 0 {
		return false
	}
	// A packet cannot run past the frame's original length: a header that
	// says so lies (fuzzed or corrupt), and the wire length is the truth.
	st.end = min(st.end, max(d.wireLen, len(base)))
	st.capEnd = min(st.end, len(base))
	if st.payOff > st.capEnd {
		st.payOff = st.capEnd
	}
	if st.l4 == gopacket.LayerTypeZero && f.Fragment && !st.nonFirst {
		// gopacket stops at every fragment, first ones included; the first
		// one still starts with the L4 header the key needs.
		st.l4 = ls.decodeL4(st.proto, base[st.payOff:st.capEnd])
	}

	if !outer {
		return ls.keyIP(f, &st, base)
	}
	if !f.Fragment {
		if keyed, entered := d.decap(ls, &st, base, f); entered {
			return keyed
		}
	}
	keyed := ls.keyIP(f, &st, base)
	markEncrypted(ls, &st, f)
	return keyed
}

// decodeL4 decodes the L4 header of a first fragment with the set's layers.
func (ls *layerSet) decodeL4(proto layers.IPProtocol, data []byte) gopacket.LayerType {
	var l gopacket.DecodingLayer
	var t gopacket.LayerType
	switch proto {
	case protoTCP:
		l, t = &ls.tcp, layers.LayerTypeTCP
	case protoUDP:
		l, t = &ls.udp, layers.LayerTypeUDP
	case protoICMP:
		l, t = &ls.icmp4, layers.LayerTypeICMPv4
	case protoICMPv6:
		l, t = &ls.icmp6, layers.LayerTypeICMPv6
	default:
		return gopacket.LayerTypeZero
	}
	if l.DecodeFromBytes(data, gopacket.NilDecodeFeedback) != nil {
		return gopacket.LayerTypeZero
	}
	return t
}

func (ls *layerSet) keyARP(f *correlate.Frame) bool {
	a := &ls.arp
	k := &f.Key
	k.Proto = correlate.ProtoARP
	k.Kind = uint8(a.Operation)
	if len(a.SourceHwAddress) == 6 {
		copy(k.MAC[:], a.SourceHwAddress)
	}
	k.Addr1 = protoAddr(a.SourceProtAddress)
	k.Addr2 = protoAddr(a.DstProtAddress)
	return true
}

func protoAddr(b []byte) netip.Addr {
	switch len(b) {
	case 4:
		return netip.AddrFrom4([4]byte(b))
	case 16:
		return netip.AddrFrom16([16]byte(b))
	}
	return netip.Addr{}
}

// keyIP builds the key of an IP packet. It returns false when the L4 header
// the key needs was not captured whole.
func (ls *layerSet) keyIP(f *correlate.Frame, st *ipState, base []byte) bool {
	k := &f.Key
	l4 := base[st.payOff:st.capEnd] // captured L4 bytes, without Ethernet padding
	if st.nonFirst {
		keyOther(k, st, base, st.payOff)
		return true
	}
	switch st.proto {
	case protoTCP:
		// Fall back to the fixed header when gopacket gave up on options
		// cut by the snaplen: a SYN's key needs nothing past byte 20.
		if len(l4) < 20 || l4[12]>>4 < 5 {
			return false
		}
		f.SrcPort = binary.BigEndian.Uint16(l4[0:2])
		f.DstPort = binary.BigEndian.Uint16(l4[2:4])
		f.HasPorts = true
		k.Proto = correlate.ProtoTCP
		k.Kind = l4[13] // CWR ECE URG ACK PSH RST SYN FIN
		k.Seq = binary.BigEndian.Uint32(l4[4:8])
		k.Ack = binary.BigEndian.Uint32(l4[8:12])
		payloadKey(k, base, st.payOff+int(l4[12]>>4)*4, st.end)
		return true
	case protoUDP:
		if st.l4 != layers.LayerTypeUDP {
			return false
		}
		f.SrcPort, f.DstPort, f.HasPorts = uint16(ls.udp.SrcPort), uint16(ls.udp.DstPort), true
		k.Proto = correlate.ProtoUDP
		k.Kind = uint8(protoUDP)
		k.IPID = st.ipid
		payloadKey(k, base, st.payOff+8, st.end)
		return true
	case protoICMP:
		if st.l4 != layers.LayerTypeICMPv4 {
			return false
		}
		switch ls.icmp4.TypeCode.Type() {
		case layers.ICMPv4TypeEchoRequest, layers.ICMPv4TypeEchoReply:
			k.Proto = correlate.ProtoICMP
			k.Kind = ls.icmp4.TypeCode.Type()
			k.Seq = uint32(ls.icmp4.Seq)
			f.EchoID, f.HasEchoID = ls.icmp4.Id, true
			payloadKey(k, base, st.payOff+8, st.end)
		default:
			keyOther(k, st, base, st.payOff)
			k.Seq = uint32(ls.icmp4.TypeCode) // names it: port-unreachable, frag-needed, ...
		}
		return true
	case protoICMPv6:
		if st.l4 != layers.LayerTypeICMPv6 {
			return false
		}
		typ := ls.icmp6.TypeCode.Type()
		switch typ {
		case layers.ICMPv6TypeEchoRequest, layers.ICMPv6TypeEchoReply:
			if len(l4) < 8 {
				return false
			}
			k.Proto = correlate.ProtoICMPv6
			k.Kind = typ
			k.Seq = uint32(binary.BigEndian.Uint16(l4[6:8]))
			f.EchoID, f.HasEchoID = binary.BigEndian.Uint16(l4[4:6]), true
			payloadKey(k, base, st.payOff+8, st.end)
		case layers.ICMPv6TypeRouterSolicitation, layers.ICMPv6TypeRouterAdvertisement,
			layers.ICMPv6TypeNeighborSolicitation, layers.ICMPv6TypeNeighborAdvertisement,
			layers.ICMPv6TypeRedirect:
			// Where the options start: after the fixed part of each message.
			opts := 24 // NS, NA: reserved/flags + target
			switch typ {
			case layers.ICMPv6TypeRouterSolicitation:
				opts = 8
			case layers.ICMPv6TypeRouterAdvertisement:
				opts = 16
			case layers.ICMPv6TypeRedirect:
				opts = 40 // target + destination
			}
			if len(l4) < opts {
				return false
			}
			k.Proto = correlate.ProtoND
			k.Kind = typ
			if opts >= 24 {
				k.Addr1 = netip.AddrFrom16([16]byte(l4[8:24]))
			}
			payloadKey(k, base, st.payOff+opts, st.end)
		default:
			keyOther(k, st, base, st.payOff)
			k.Seq = uint32(ls.icmp6.TypeCode) // names it: packet-too-big, ...
		}
		return true
	}
	keyOther(k, st, base, st.payOff)
	return true
}

// keyOther keys any other IP payload, ICMP errors and non-first fragments
// included: protocol, IP id (or IPv6 fragment id) and the payload after the
// IP headers.
func keyOther(k *correlate.Key, st *ipState, base []byte, payOff int) {
	k.Proto = correlate.ProtoIP
	k.Kind = uint8(st.proto)
	k.IPID = st.ipid
	payloadKey(k, base, payOff, st.end)
}

// payloadKey sets Hash over the first hashBytes captured bytes of the
// payload at [off, end) of base, and Len to its declared length end-off.
func payloadKey(k *correlate.Key, base []byte, off, end int) {
	if end < off { // headers longer than the length the IP header declares
		end = off
	}
	k.Len = uint32(end - off)
	capEnd := min(end, len(base), off+hashBytes)
	if off > capEnd {
		off = capEnd
	}
	k.Hash = xxh3.Hash(base[off:capEnd])
}
