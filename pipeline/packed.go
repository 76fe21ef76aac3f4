package pipeline

import (
	"net/netip"

	"github.com/pathtrace/pathtrace/correlate"
)

// packed is a decoded frame in 112 bytes instead of a correlate.Frame's
// 296: a live capture's frames wait in the feed's queues for the whole lag
// (a flood's hundred thousand of them), and cross the spool and agent
// streams in it (put, get). It holds a frame without a key, or one with an
// IPv4 (or no) header and a key of its own fields (what a flood is made
// of): pack refuses anything else (tunnelled frames, IPv6, ARP and ND
// keys), which travels as a whole Frame. unpack(pack(f)) == f, field for
// field (TestPackedRoundTrip).
type packed struct {
	t, stamp   int64 // on the reference clock (the merge's key), as captured
	num        int64
	hash       uint64
	seq, ack   uint32
	kipid, len uint32 // Key.IPID, Key.Len
	ipLen      uint32
	wire, cap  uint32
	point      int32
	full       int32 // >= 0: the frame travels whole, at this index of its batch
	src, dst   [4]byte
	srcMAC     correlate.MAC
	dstMAC     correlate.MAC
	sport      uint16
	dport      uint16
	echoID     uint16
	ipid       uint16
	bits       uint16
	proto      correlate.Proto
	kind       uint8
	ttl        uint8
	dir        correlate.LinkDir
}

// packed.bits
const (
	pkSrcIP = 1 << iota
	pkDstIP
	pkSrcMAC
	pkDstMAC
	pkTTL
	pkPorts
	pkEchoID
	pkIPID
	pkFragment
	pkDF
)

// fits: v is a length that a uint32 holds.
func fits(v int) bool { return v >= 0 && v <= 1<<32-1 }

// pack packs f into p (p.t and p.full are left alone); false when f is
// not one packed can hold.
func pack(f *correlate.Frame, p *packed) bool {
	k := &f.Key
	if f.Encap != (correlate.Encap{}) || k.MAC != (correlate.MAC{}) || k.Addr1.IsValid() || k.Addr2.IsValid() ||
		(f.SrcIP.IsValid() && !f.SrcIP.Is4()) || (f.DstIP.IsValid() && !f.DstIP.Is4()) ||
		!fits(f.IPLen) || !fits(f.WireLen) || !fits(f.CapLen) || int(int32(f.Point)) != f.Point {
		return false
	}
	var bits uint16
	set := func(b bool, bit uint16) {
		if b {
			bits |= bit
		}
	}
	set(f.SrcIP.IsValid(), pkSrcIP)
	set(f.DstIP.IsValid(), pkDstIP)
	set(f.HasSrcMAC, pkSrcMAC)
	set(f.HasDstMAC, pkDstMAC)
	set(f.HasTTL, pkTTL)
	set(f.HasPorts, pkPorts)
	set(f.HasEchoID, pkEchoID)
	set(f.HasIPID, pkIPID)
	set(f.Fragment, pkFragment)
	set(f.DF, pkDF)
	if bits&pkSrcIP != 0 {
		p.src = f.SrcIP.As4()
	} else {
		p.src = [4]byte{}
	}
	if bits&pkDstIP != 0 {
		p.dst = f.DstIP.As4()
	} else {
		p.dst = [4]byte{}
	}
	p.stamp, p.num, p.point = f.Stamp, int64(f.Num), int32(f.Point)
	p.hash, p.seq, p.ack, p.kipid, p.len = k.Hash, k.Seq, k.Ack, k.IPID, k.Len
	p.proto, p.kind = k.Proto, k.Kind
	p.ipLen, p.wire, p.cap = uint32(f.IPLen), uint32(f.WireLen), uint32(f.CapLen)
	p.srcMAC, p.dstMAC = f.SrcMAC, f.DstMAC
	p.sport, p.dport, p.echoID, p.ipid = f.SrcPort, f.DstPort, f.EchoID, f.IPID
	p.ttl, p.dir, p.bits = f.TTL, f.Dir, bits
	return true
}

// unpack writes the frame p holds into f, every field. f is cleared in
// place, then set, instead of assigned a composite literal, which is built
// on the stack and copied over: the live correlator unpacks every spooled
// frame (34 → 23 ns, BenchmarkUnpack).
func unpack(p *packed, f *correlate.Frame) {
	bits := p.bits
	*f = correlate.Frame{}
	f.Point, f.Time, f.Stamp, f.Num = int(p.point), p.t, p.stamp, int(p.num)
	k := &f.Key
	k.Proto, k.Kind, k.Seq, k.Ack, k.IPID, k.Len, k.Hash = p.proto, p.kind, p.seq, p.ack, p.kipid, p.len, p.hash
	f.IPLen, f.WireLen, f.CapLen = int(p.ipLen), int(p.wire), int(p.cap)
	f.SrcMAC, f.DstMAC = p.srcMAC, p.dstMAC
	f.SrcPort, f.DstPort, f.EchoID, f.IPID, f.TTL, f.Dir = p.sport, p.dport, p.echoID, p.ipid, p.ttl, p.dir
	f.HasSrcMAC, f.HasDstMAC, f.HasTTL = bits&pkSrcMAC != 0, bits&pkDstMAC != 0, bits&pkTTL != 0
	f.HasPorts, f.HasEchoID, f.HasIPID = bits&pkPorts != 0, bits&pkEchoID != 0, bits&pkIPID != 0
	f.Fragment, f.DF = bits&pkFragment != 0, bits&pkDF != 0
	if bits&pkSrcIP != 0 {
		f.SrcIP = netip.AddrFrom4(p.src)
	}
	if bits&pkDstIP != 0 {
		f.DstIP = netip.AddrFrom4(p.dst)
	}
}

// packedBytes is a packed frame's size in a live spool slab (point, t and
// full are the slab's business).
const packedBytes = 88

// put writes p into b (packedBytes long), in the machine's byte order.
func (p *packed) put(b []byte) {
	_ = b[packedBytes-1]
	ne.PutUint64(b[0:], uint64(p.stamp))
	ne.PutUint64(b[8:], uint64(p.num))
	ne.PutUint64(b[16:], p.hash)
	ne.PutUint32(b[24:], p.seq)
	ne.PutUint32(b[28:], p.ack)
	ne.PutUint32(b[32:], p.kipid)
	ne.PutUint32(b[36:], p.len)
	ne.PutUint32(b[40:], p.ipLen)
	ne.PutUint32(b[44:], p.wire)
	ne.PutUint32(b[48:], p.cap)
	copy(b[52:56], p.src[:])
	copy(b[56:60], p.dst[:])
	copy(b[60:66], p.srcMAC[:])
	copy(b[66:72], p.dstMAC[:])
	ne.PutUint16(b[72:], p.sport)
	ne.PutUint16(b[74:], p.dport)
	ne.PutUint16(b[76:], p.echoID)
	ne.PutUint16(b[78:], p.ipid)
	ne.PutUint16(b[80:], p.bits)
	b[82], b[83], b[84], b[85] = byte(p.proto), p.kind, p.ttl, byte(p.dir)
}

// get reads what put wrote.
func (p *packed) get(b []byte) {
	_ = b[packedBytes-1]
	p.stamp = int64(ne.Uint64(b[0:]))
	p.num = int64(ne.Uint64(b[8:]))
	p.hash = ne.Uint64(b[16:])
	p.seq = ne.Uint32(b[24:])
	p.ack = ne.Uint32(b[28:])
	p.kipid = ne.Uint32(b[32:])
	p.len = ne.Uint32(b[36:])
	p.ipLen = ne.Uint32(b[40:])
	p.wire = ne.Uint32(b[44:])
	p.cap = ne.Uint32(b[48:])
	copy(p.src[:], b[52:56])
	copy(p.dst[:], b[56:60])
	copy(p.srcMAC[:], b[60:66])
	copy(p.dstMAC[:], b[66:72])
	p.sport = ne.Uint16(b[72:])
	p.dport = ne.Uint16(b[74:])
	p.echoID = ne.Uint16(b[76:])
	p.ipid = ne.Uint16(b[78:])
	p.bits = ne.Uint16(b[80:])
	p.proto, p.kind, p.ttl, p.dir = correlate.Proto(b[82]), b[83], b[84], correlate.LinkDir(b[85])
}
