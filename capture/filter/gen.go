package filter

import "encoding/binary"

// builder appends the nodes of an AST to a program.
type builder struct{ p *program }

func (b *builder) add(n node) int32 {
	b.p.nodes = append(b.p.nodes, n)
	return int32(len(b.p.nodes) - 1)
}

func (b *builder) nary(o op, kids ...int32) int32 {
	if len(kids) == 1 {
		return kids[0]
	}
	start := len(b.p.kids)
	b.p.kids = append(b.p.kids, kids...)
	return b.add(node{op: o, v: uint32(start), m: uint32(len(kids))})
}

func (b *builder) all(kids ...int32) int32 { return b.nary(opAll, kids...) }
func (b *builder) any(kids ...int32) int32 { return b.nary(opAny, kids...) }

func (b *builder) etherType(depth uint8, t uint32) int32 {
	return b.add(node{op: opEtherType, depth: depth, v: t})
}

// tree compiles x; and/or chains become one n-ary node.
func (b *builder) tree(x *ast) int32 {
	switch x.op {
	case astNot:
		return b.add(node{op: opNot, v: uint32(b.tree(x.l))})
	case astAnd, astOr:
		var kids []int32
		var walk func(y *ast)
		walk = func(y *ast) {
			if y.op == x.op {
				walk(y.l)
				walk(y.r)
				return
			}
			kids = append(kids, b.tree(y))
		}
		walk(x)
		if x.op == astAnd {
			return b.all(kids...)
		}
		return b.any(kids...)
	}
	return b.prim(x.prim)
}

// ipProto is "ip proto v", "ip6 proto v" or both (kwNone).
func (b *builder) ipProto(depth uint8, proto keyword, v uint32) int32 {
	fam := uint8(famIP | famIP6)
	switch proto {
	case kwIP:
		fam = famIP
	case kwIP6:
		fam = famIP6
	}
	return b.add(node{op: opIPProto, depth: depth, fam: fam, v: v})
}

// abbrevProto maps a protocol name alone to the ip/ip6 protocol it means
// and the header families it applies to (kwNone: both).
var abbrevProto = map[keyword]struct {
	family keyword
	v      uint32
}{
	kwTCP: {kwNone, 6}, kwUDP: {kwNone, 17}, kwSCTP: {kwNone, 132}, kwPIM: {kwNone, 103},
	kwAH: {kwNone, 51}, kwESP: {kwNone, 50},
	kwICMP: {kwIP, 1}, kwIGMP: {kwIP, 2}, kwIGRP: {kwIP, 9}, kwVRRP: {kwIP, 112}, kwCARP: {kwIP, 112},
	kwICMP6: {kwIP6, 58},
}

var abbrevEtherType = map[keyword]uint16{
	kwIP: EtherTypeIPv4, kwIP6: EtherTypeIPv6, kwARP: EtherTypeARP, kwRARP: EtherTypeRARP,
}

func (b *builder) prim(pr *prim) int32 {
	d := pr.depth
	switch pr.kind {
	case primHost:
		fam := map[keyword]uint8{kwNone: famIP | famARP | famRARP, kwIP: famIP, kwARP: famARP, kwRARP: famRARP}[pr.proto]
		return b.add(node{op: opHost4, depth: d, dir: pr.dir, fam: fam, v: pr.addr4, m: pr.mask4})
	case primHost6:
		return b.add(node{op: opHost6, depth: d, dir: pr.dir, a6: split128(pr.addr6), m6: split128(pr.mask6)})
	case primEther:
		return b.add(node{op: opEther, dir: pr.dir, mac: pr.mac})
	case primEtherBroadcast:
		return b.add(node{op: opEther, dir: dirDst, mac: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}})
	case primEtherMulticast:
		return b.add(node{op: opEtherMcast})
	case primIPBroadcast:
		// With no netmask (as tcpdump -r): all-zeros or all-ones.
		return b.any(b.add(node{op: opHost4, depth: d, dir: dirDst, fam: famIP, v: 0, m: 0xffffffff}),
			b.add(node{op: opHost4, depth: d, dir: dirDst, fam: famIP, v: 0xffffffff, m: 0xffffffff}))
	case primIPMulticast:
		return b.add(node{op: opHost4, depth: d, dir: dirDst, fam: famIP, v: 0xe0000000, m: 0xe0000000})
	case primIP6Multicast:
		return b.add(node{op: opHost6, depth: d, dir: dirDst, a6: [2]uint64{0xff << 56, 0}, m6: [2]uint64{0xff << 56, 0}})
	case primPort:
		fam := map[keyword]uint8{kwNone: famTCP | famUDP | famSCTP, kwTCP: famTCP, kwUDP: famUDP, kwSCTP: famSCTP}[pr.proto]
		return b.add(node{op: opPort, depth: d, dir: pr.dir, fam: fam, lo: pr.lo, hi: pr.hi})
	case primProto:
		if pr.proto == kwLink {
			return b.etherType(d, pr.n)
		}
		return b.ipProto(d, pr.proto, pr.n)
	case primAbbrev:
		if t, ok := abbrevEtherType[pr.proto]; ok {
			return b.etherType(d, uint32(t))
		}
		ap := abbrevProto[pr.proto]
		return b.ipProto(d, ap.family, ap.v)
	case primVLAN:
		if pr.hasID {
			return b.add(node{op: opVLANID, depth: d, v: pr.n})
		}
		return b.add(node{op: opVLAN, depth: d})
	case primLess:
		return b.add(node{op: opLenLE, v: pr.n})
	case primGreater:
		return b.add(node{op: opLenGE, v: pr.n})
	}
	panic("filter: unknown primitive")
}

func split128(a [16]byte) [2]uint64 {
	return [2]uint64{binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])}
}
