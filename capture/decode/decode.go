package decode

import (
	"encoding/binary"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
)

// Decoder turns raw frames into correlate.Frame values. It keeps
// preallocated gopacket layers and parsers, so decoding a well-formed frame
// allocates nothing. A Decoder is not safe for concurrent use: give each
// goroutine its own.
type Decoder struct {
	outer layerSet
	// inner decodes the frame inside a tunnel (tunnel.go). It is a separate set
	// because gopacket layers are overwritten on each decode and the outer
	// headers must survive until the inner frame is known to be decodable.
	inner layerSet
	// wireLen is the frame's original length: where an IP packet whose
	// header gives no length (TSO) ends.
	wireLen int
	// tunnelOff and tunnelLink say where the last decoded frame's inner
	// frame starts and what it starts with (0: not tunnelled).
	tunnelOff  int
	tunnelLink capture.LinkType
	// general turns the fast path off (tests compare both paths).
	general bool
}

// Tunnel says where the inner frame of the last frame Decode decoded
// starts within its data, and its link type (Ethernet for VXLAN); off is 0
// when the frame was not tunnelled. A filter's inner view reads it there.
func (d *Decoder) Tunnel() (off int, link capture.LinkType) { return d.tunnelOff, d.tunnelLink }

// New returns a Decoder ready for use.
func New() *Decoder {
	d := &Decoder{}
	d.outer.init()
	d.inner.init()
	return d
}

// Decode fills f from rf and reports whether the frame carries an identity
// key the correlator can use (IP, ARP, ND); it returns false for frames such
// as LLDP or STP, for unsupported link types and for frames too truncated to
// key. f is reused by callers: every field but Point is overwritten, and
// whatever could be decoded is filled in even when Decode returns false.
func (d *Decoder) Decode(rf *capture.RawFrame, f *correlate.Frame) bool {
	// Cleared in place, then set: a composite literal is built on the
	// stack and copied over, twice the stores for a frame of ~300 bytes.
	point := f.Point
	*f = correlate.Frame{}
	f.Point, f.Time, f.Stamp, f.Num, f.Dir = point, rf.Time, rf.Time, rf.Num, rf.Dir
	f.WireLen, f.CapLen = rf.WireLen, len(rf.Data)
	d.wireLen = rf.WireLen
	d.tunnelOff = 0
	data := rf.Data
	var first gopacket.LayerType
	ipOff := -1 // where an IPv4 packet starts, for the fast path
	switch rf.LinkType {
	case capture.LinkTypeEthernet:
		first = layers.LayerTypeEthernet
		if len(data) >= 14 && binary.BigEndian.Uint16(data[12:14]) == etherTypeIPv4 {
			ipOff = 14
		}
	case capture.LinkTypeLinuxSLL:
		// The SLL headers are parsed by hand rather than with gopacket's
		// LinuxSLL/LinuxSLL2 layers: those reject an address length above 8,
		// which real captures contain, although the rest of the header is
		// fixed-size and the payload perfectly decodable (tshark decodes it).
		if len(data) < 16 {
			return false
		}
		d.sllAddr(f, binary.BigEndian.Uint16(data[0:2]), int(binary.BigEndian.Uint16(data[4:6])), data[6:14])
		first = layers.EthernetType(binary.BigEndian.Uint16(data[14:16])).LayerType()
		if first == layers.LayerTypeIPv4 {
			ipOff = 16
		}
		data = data[16:]
	case capture.LinkTypeSLL2:
		if len(data) < 20 {
			return false
		}
		d.sllAddr(f, uint16(data[10]), int(data[11]), data[12:20])
		first = layers.EthernetType(binary.BigEndian.Uint16(data[0:2])).LayerType()
		if first == layers.LayerTypeIPv4 {
			ipOff = 20
		}
		data = data[20:]
	case capture.LinkTypeRaw, capture.LinkTypeIPv4, capture.LinkTypeIPv6:
		first = ipVersionLayer(data)
		if first == layers.LayerTypeIPv4 {
			ipOff = 0
		}
	case capture.LinkTypeNull, capture.LinkTypeLoop:
		// A 4-byte address family: host byte order of the capturing machine
		// for NULL, network order for LOOP. AF_INET is 2 everywhere; AF_INET6
		// is 10 on Linux, 24/28/30 on the BSDs and Darwin. Check both orders.
		if len(data) < 4 {
			return false
		}
		fam := binary.LittleEndian.Uint32(data)
		if fam > 0xffff {
			fam = binary.BigEndian.Uint32(data)
		}
		switch fam {
		case 2:
			first = layers.LayerTypeIPv4
			ipOff = 4
		case 10, 24, 28, 30:
			first = layers.LayerTypeIPv6
		default:
			return false
		}
		data = data[4:]
	default:
		return false
	}
	if ipOff >= 0 && d.fastIPv4(rf.Data, ipOff, f, rf.LinkType == capture.LinkTypeEthernet) {
		return true
	}
	return d.decodeFrom(&d.outer, rf.Data, data, first, f, true)
}

// sllAddr records what a Linux cooked header says: the sender's link address
// (our own MAC for outgoing frames, the frame's source MAC for incoming ones;
// there is no destination MAC) and, when the source did not say, the
// direction.
func (d *Decoder) sllAddr(f *correlate.Frame, pktType uint16, haLen int, addr []byte) {
	const pktOutgoing = 4
	// As tshark does, a 6-byte address is a MAC whatever the ARPHRD type
	// says: tunnels record none (or an IP address, 4 bytes).
	if haLen == 6 {
		copy(f.SrcMAC[:], addr[:6])
		f.HasSrcMAC = true
	}
	if f.Dir == correlate.DirUnknown {
		switch {
		case pktType == pktOutgoing:
			f.Dir = correlate.DirOut
		case pktType < pktOutgoing: // host, broadcast, multicast, otherhost
			f.Dir = correlate.DirIn
		}
	}
}

// ipVersionLayer picks the layer of a raw IP packet from its version nibble.
func ipVersionLayer(data []byte) gopacket.LayerType {
	if len(data) == 0 {
		return gopacket.LayerTypeZero
	}
	switch data[0] >> 4 {
	case 4:
		return layers.LayerTypeIPv4
	case 6:
		return layers.LayerTypeIPv6
	}
	return gopacket.LayerTypeZero
}

// DecodeAny decodes rf into f like Decode; a frame it cannot key still gets
// its stamp and lengths, because it proves the point was capturing.
func (d *Decoder) DecodeAny(rf *capture.RawFrame, f *correlate.Frame) {
	if !d.Decode(rf, f) {
		*f = correlate.Frame{Time: rf.Time, Stamp: rf.Time, Num: rf.Num, Dir: rf.Dir, WireLen: rf.WireLen, CapLen: len(rf.Data)}
	}
}
