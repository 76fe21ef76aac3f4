package filter

import (
	"encoding/binary"
	"net/netip"
)

// The compiled form: a flat list of nodes, and/or nodes being n-ary over a
// run of child indices, evaluated per frame without allocating. Each
// primitive expands into the same tests, in the same order, as the BPF
// code libpcap generates for it, so that a field missing from a truncated
// frame aborts the filter at the same point.

type op uint8

const (
	opAll op = iota // every child (short-circuit, in order)
	opAny           // some child
	opNot
	opEtherType  // type field at depth == v
	opVLAN       // type field at depth is a VLAN TPID
	opVLANID     // ... and that tag's ID == v
	opHost4      // IPv4 (fam: ip, arp, rarp) source/destination & m == v
	opHost6      // IPv6 source/destination & m6 == a6
	opPort       // TCP/UDP/SCTP (fam) port in [lo, hi]
	opIPProto    // ip (fam ip) / ip6 (fam ip6) protocol == v
	opEther      // source/destination MAC == mac
	opEtherMcast // destination MAC has the group bit
	opLenLE      // WireLen <= v
	opLenGE      // WireLen >= v
)

// Families of opHost4 and opIPProto, protocols of opPort.
const (
	famIP = 1 << iota
	famARP
	famRARP
	famIP6
	famTCP
	famUDP
	famSCTP
)

// node is one and/or/not or one primitive. A primitive's node does the
// tests of libpcap's code for it in the same order, so that a field
// missing from a truncated frame aborts at the same point.
type node struct {
	op     op
	depth  uint8   // VLAN tags before the type field read
	dir    dirQual // source, destination, either, both
	fam    uint8
	lo, hi uint16
	v, m   uint32 // for opAll/opAny: first child in kids, child count
	a6, m6 [2]uint64
	mac    [6]byte
}

type program struct {
	nodes []node
	kids  []int32
	root  int32
}

// res is a tri-state test result: a test that needs a field the frame did
// not capture aborts the whole filter, as a BPF load out of bounds does.
type res uint8

const (
	resNo res = iota
	resYes
	resAbort
)

func b2r(b bool) res {
	if b {
		return resYes
	}
	return resNo
}

// both combines a source and a destination test as the direction says;
// the destination test runs only when the source one leaves the answer
// open, as in libpcap's code.
func both(d dirQual, src func() res, dst func() res) res {
	switch d {
	case dirSrc:
		return src()
	case dirDst:
		return dst()
	case dirAnd:
		if r := src(); r != resYes {
			return r
		}
		return dst()
	}
	if r := src(); r != resNo {
		return r
	}
	return dst()
}

func (p *program) eval(i int32, f *Fields) res {
	n := &p.nodes[i]
	switch n.op {
	case opAll:
		for _, k := range p.kids[n.v : n.v+n.m] {
			if r := p.eval(k, f); r != resYes {
				return r
			}
		}
		return resYes
	case opAny:
		for _, k := range p.kids[n.v : n.v+n.m] {
			if r := p.eval(k, f); r != resNo {
				return r
			}
		}
		return resNo
	case opNot:
		switch p.eval(int32(n.v), f) {
		case resYes:
			return resNo
		case resNo:
			return resYes
		}
		return resAbort
	case opEther:
		if !f.HasMAC {
			return resNo
		}
		return both(n.dir, func() res { return b2r(f.SrcMAC == n.mac) }, func() res { return b2r(f.DstMAC == n.mac) })
	case opEtherMcast:
		return b2r(f.HasMAC && f.DstMAC[0]&1 != 0)
	case opLenLE:
		return b2r(int64(f.WireLen) <= int64(n.v))
	case opLenGE:
		return b2r(int64(f.WireLen) >= int64(n.v))
	}
	// The rest start with the type field.
	t, known, ok := f.etherTypeAt(n.depth)
	if !ok {
		return resAbort
	}
	if !known {
		return resNo
	}
	switch n.op {
	case opEtherType:
		return b2r(uint32(t) == n.v)
	case opVLAN, opVLANID:
		switch {
		case !IsVLANTPID(t):
			return resNo
		case n.op == opVLAN:
			return resYes
		case n.depth < f.NumVLAN:
			return b2r(uint32(f.VLANs[n.depth].ID) == n.v)
		}
		return resAbort // a tag whose ID was not recorded
	case opHost4:
		switch {
		case t == EtherTypeIPv4 && n.fam&famIP != 0:
			return both(n.dir, func() res { return match4(f.Src, n) }, func() res { return match4(f.Dst, n) })
		case t == EtherTypeARP && n.fam&famARP != 0, t == EtherTypeRARP && n.fam&famRARP != 0:
			return both(n.dir, func() res { return match4(f.ARPSender, n) }, func() res { return match4(f.ARPTarget, n) })
		}
		return resNo
	case opHost6:
		if t != EtherTypeIPv6 {
			return resNo
		}
		return both(n.dir, func() res { return match6(f.Src, n) }, func() res { return match6(f.Dst, n) })
	case opIPProto:
		switch {
		case t == EtherTypeIPv4 && n.fam&famIP != 0:
			return protoIs(f, n.v)
		case t == EtherTypeIPv6 && n.fam&famIP6 != 0:
			// libpcap: Next Header == v, or a fragment header whose
			// Next Header == v.
			if r := protoIs(f, n.v); r != resNo {
				return r
			}
			if f.Proto != 44 {
				return resNo
			}
			if f.Have&HaveFragProto == 0 {
				return resAbort
			}
			return b2r(uint32(f.FragProto) == n.v)
		}
		return resNo
	case opPort:
		if t != EtherTypeIPv4 && t != EtherTypeIPv6 {
			return resNo
		}
		if f.Have&HaveProto == 0 {
			return resAbort
		}
		var fam uint8
		switch f.Proto {
		case 6:
			fam = famTCP
		case 17:
			fam = famUDP
		case 132:
			fam = famSCTP
		}
		if n.fam&fam == 0 || t == EtherTypeIPv4 && f.NonFirstFragment {
			return resNo
		}
		return both(n.dir, func() res {
			if f.Have&HaveSrcPort == 0 {
				return resAbort
			}
			return b2r(f.SrcPort >= n.lo && f.SrcPort <= n.hi)
		}, func() res {
			if f.Have&HaveDstPort == 0 {
				return resAbort
			}
			return b2r(f.DstPort >= n.lo && f.DstPort <= n.hi)
		})
	}
	return resNo
}

func protoIs(f *Fields, v uint32) res {
	if f.Have&HaveProto == 0 {
		return resAbort
	}
	return b2r(uint32(f.Proto) == v)
}

func match4(a netip.Addr, n *node) res {
	if n.m == 0 {
		// libpcap's optimizer folds a test under an all-zero mask to
		// true and drops the load: nothing is read, nothing can abort.
		return resYes
	}
	if !a.IsValid() {
		return resAbort
	}
	if !a.Is4() {
		return resNo
	}
	b := a.As4()
	return b2r(binary.BigEndian.Uint32(b[:])&n.m == n.v)
}

func match6(a netip.Addr, n *node) res {
	if n.m6 == [2]uint64{} {
		return resYes // as match4
	}
	if !a.IsValid() {
		return resAbort
	}
	if !a.Is6() {
		return resNo
	}
	b := a.As16()
	return b2r(binary.BigEndian.Uint64(b[:8])&n.m6[0] == n.a6[0] &&
		binary.BigEndian.Uint64(b[8:])&n.m6[1] == n.a6[1])
}
