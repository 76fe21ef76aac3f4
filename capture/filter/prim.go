package filter

import (
	"context"
	"net"
	"net/netip"
)

// The gen* functions check one primitive and give it its meaning, as
// libpcap's gen_ncode, gen_mcode, gen_mcode6, gen_ecode, gen_scode and
// gen_proto do, with tcpdump's messages where it has one.

type primKind uint8

const (
	primHost           primKind = iota // IPv4 address or network: ip, arp, rarp
	primHost6                          // IPv6 address or network
	primEther                          // ether host/src/dst
	primEtherBroadcast                 // ether broadcast
	primEtherMulticast                 // ether multicast
	primIPBroadcast                    // ip broadcast (netmask unknown, as tcpdump -r)
	primIPMulticast                    // ip multicast
	primIP6Multicast                   // ip6 multicast
	primPort                           // port and portrange
	primProto                          // [ip|ip6|ether] proto N
	primAbbrev                         // tcp, udp, icmp, ip, arp, ...
	primVLAN                           // vlan [id]
	primLess                           // less N
	primGreater                        // greater N
)

// prim is one primitive with all its qualifiers resolved.
type prim struct {
	kind  primKind
	depth uint8   // VLAN tags before the network header, from "vlan" keywords before it
	proto keyword // protocol qualifier; for primAbbrev the protocol itself
	dir   dirQual

	addr4, mask4 uint32
	addr6, mask6 [16]byte
	mac          [6]byte
	lo, hi       uint16 // ports, lo <= hi
	isRange      bool   // written as portrange
	n            uint32 // protocol number, VLAN id, length
	hasID        bool   // vlan with an id
}

func (p *parser) newPrim(kind primKind, q qual) *prim {
	return &prim{kind: kind, depth: p.depth, proto: q.proto, dir: q.dir}
}

func (p *parser) noQualifier(tok token) {
	p.fail(ErrSyntax, tok, "%s has no qualifier to inherit: write host, net, port... before it", quote(tok.text))
}

// atoin converts a dotted IPv4 address of 1 to 4 parts, as __pcap_atoin,
// returning the value and its length in bits.
func (p *parser) atoin(tok token) (uint32, uint32) {
	var v, part uint32
	var bits uint32
	digits := 0
	s := tok.text
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if digits == 0 || part > 255 {
				p.fail(ErrInvalid, tok, "invalid IPv4 address %s", quote(s))
			}
			v, bits, part, digits = v<<8|part, bits+8, 0, 0
			continue
		}
		if !isDigit(s[i]) || part > 25 {
			p.fail(ErrInvalid, tok, "invalid IPv4 address %s", quote(s))
		}
		part, digits = part*10+uint32(s[i]-'0'), digits+1
	}
	return v, bits
}

// genNum gives meaning to a number or a dotted IPv4 address.
func (p *parser) genNum(tok token, q qual) *prim {
	switch q.addr {
	case addrUndef:
		p.noQualifier(tok)
	case addrDefault, addrHost, addrNet:
		if q.proto == kwLink {
			p.fail(ErrInvalid, tok, "illegal link layer address %s", quote(tok.text))
		}
		v, vlen := tok.num, uint32(32)
		if tok.kind == tHID {
			v, vlen = p.atoin(tok)
		}
		mask := uint32(0xffffffff)
		if tok.kind == tNum && q.addr == addrNet {
			// "net 10" is 10.0.0.0/8: promote a short net number.
			for v != 0 && v&0xff000000 == 0 {
				v, mask = v<<8, mask<<8
			}
		} else {
			// "host 10.1" is 10.1.0.0/16, as in libpcap.
			v, mask = v<<(32-vlen), mask<<(32-vlen)
		}
		return p.genHost(tok, v, mask, q)
	case addrPort, addrPortrange:
		p.checkPortProto(tok, q)
		if tok.num > 65535 {
			p.fail(ErrInvalid, tok, "illegal port number %d > 65535", tok.num)
		}
		pr := p.newPrim(primPort, q)
		pr.lo, pr.hi, pr.isRange = uint16(tok.num), uint16(tok.num), q.addr == addrPortrange
		return pr
	case addrProto:
		return p.genProto(tok, tok.num, q)
	}
	return nil
}

// genMasked gives meaning to "A/len" and "A mask M".
func (p *parser) genMasked(tok token, mask uint32, q qual) *prim {
	n, nlen := p.atoin(tok)
	n <<= 32 - nlen
	if n&^mask != 0 {
		p.fail(ErrInvalid, tok, "non-network bits set in %s", quote(tok.text))
	}
	if q.addr == addrUndef {
		p.noQualifier(tok)
	}
	if q.addr != addrNet {
		p.fail(ErrInvalid, tok, "mask syntax is for networks only (net %s)", tok.text)
	}
	return p.genHost(tok, n, mask, q)
}

func typeWord(q qual) string {
	if q.addr == addrNet {
		return "net"
	}
	return "host"
}

// genHost checks the protocol qualifier of an IPv4 host or network.
func (p *parser) genHost(tok token, addr, mask uint32, q qual) *prim {
	switch q.proto {
	case kwNone, kwIP, kwARP, kwRARP:
	case kwLink:
		p.fail(ErrInvalid, tok, "link-layer modifier applied to %s", typeWord(q))
	case kwIP6:
		p.fail(ErrInvalid, tok, "'ip6' modifier applied to ip host %s", tok.text)
	default:
		p.fail(ErrInvalid, tok, "'%s' modifier applied to %s", q.protoText, typeWord(q))
	}
	pr := p.newPrim(primHost, q)
	pr.addr4, pr.mask4 = addr, mask
	return pr
}

// genIPv6 gives meaning to an IPv6 address with an optional /len.
func (p *parser) genIPv6(tok token, masklen uint32, q qual) *prim {
	a, err := netip.ParseAddr(tok.text)
	if err != nil || !a.Is6() || a.Zone() != "" {
		p.fail(ErrInvalid, tok, "bogus IPv6 address %s", quote(tok.text))
	}
	if masklen > 128 {
		p.fail(ErrInvalid, tok, "mask length must be <= 128")
	}
	addr := a.As16()
	var mask [16]byte
	for i := range mask {
		bits := min(8, max(0, int(masklen)-8*i))
		mask[i] = byte(uint16(0xff00) >> bits)
		if addr[i]&^mask[i] != 0 {
			p.fail(ErrInvalid, tok, "non-network bits set in %s/%d", quote(tok.text), masklen)
		}
	}
	switch q.addr {
	case addrUndef:
		p.noQualifier(tok)
	case addrDefault, addrHost:
		if masklen != 128 {
			p.fail(ErrInvalid, tok, "mask syntax is for networks only (net %s/%d)", tok.text, masklen)
		}
	case addrNet:
	default:
		p.fail(ErrInvalid, tok, "invalid qualifier against IPv6 address %s", tok.text)
	}
	switch q.proto {
	case kwNone, kwIP6:
	case kwLink:
		p.fail(ErrInvalid, tok, "link-layer modifier applied to ip6 %s", typeWord(q))
	default:
		p.fail(ErrInvalid, tok, "'%s' modifier applied to ip6 %s", q.protoText, typeWord(q))
	}
	pr := p.newPrim(primHost6, q)
	pr.addr6, pr.mask6 = addr, mask
	return pr
}

// genEther gives meaning to a MAC address: only "ether [src|dst] [host]".
func (p *parser) genEther(tok token, q qual) *prim {
	if (q.addr != addrHost && q.addr != addrDefault) || q.proto != kwLink {
		p.fail(ErrInvalid, tok, "ethernet address used in non-ether expression")
	}
	pr := p.newPrim(primEther, q)
	pr.mac = parseMAC(tok.text)
	return pr
}

// parseMAC reads a MAC the scanner accepted, as pcap_ether_aton: one or
// two hex digits per byte, separators skipped.
func parseMAC(s string) [6]byte {
	var mac [6]byte
	i := 0
	for b := range mac {
		for i < len(s) && !isHex(s[i]) {
			i++
		}
		n := hexRun(s[i:], 2)
		for _, c := range []byte(s[i : i+n]) {
			mac[b] = mac[b]<<4 | hexVal(c)
		}
		i += n
	}
	return mac
}

func hexVal(c byte) byte {
	if isDigit(c) {
		return c - '0'
	}
	return c | 0x20 - 'a' + 10
}

func (p *parser) checkPortProto(tok token, q qual) {
	switch q.proto {
	case kwNone, kwTCP, kwUDP, kwSCTP:
		return
	}
	word := "port"
	if q.addr == addrPortrange {
		word = "portrange"
	}
	p.fail(ErrInvalid, tok, "illegal qualifier of '%s': %s", word, q.protoText)
}

// genName gives meaning to a name: a service for port and portrange, a
// protocol for proto. Host, network and ethers names are not looked up:
// a filter's meaning must not depend on the resolver of the machine that
// reads the capture.
func (p *parser) genName(tok token, q qual) *prim {
	switch q.addr {
	case addrUndef:
		p.noQualifier(tok)
	case addrNet:
		p.fail(ErrUnsupported, tok, "network names are not supported: give the network as an address")
	case addrDefault, addrHost:
		if q.proto == kwLink {
			p.fail(ErrUnsupported, tok, "ethernet host names are not supported: give a MAC address")
		}
		p.fail(ErrUnsupported, tok, "host names are not resolved: give an IP address instead of %s", quote(tok.text))
	case addrPort:
		p.checkPortProto(tok, q)
		port, proto, ok := lookupService(tok.text)
		if !ok {
			p.fail(ErrInvalid, tok, "unknown port %s", quote(tok.text))
		}
		pr := p.newPrim(primPort, q)
		pr.proto = p.portProto(tok, "port", proto, q)
		pr.lo, pr.hi = port, port
		return pr
	case addrPortrange:
		p.checkPortProto(tok, q)
		lo, hi, proto := p.portRange(tok)
		pr := p.newPrim(primPort, q)
		pr.proto = p.portProto(tok, "port in range", proto, q)
		pr.lo, pr.hi, pr.isRange = min(lo, hi), max(lo, hi), true
		return pr
	case addrProto:
		return p.genProto(tok, p.lookupProto(tok, q), q)
	}
	return nil
}

// lookupService returns the port of a service name and the protocol it is
// defined for (kwNone when TCP and UDP agree), as pcap_nametoport.
func lookupService(name string) (uint16, keyword, bool) {
	tcp, errT := net.DefaultResolver.LookupPort(context.Background(), "tcp", name)
	udp, errU := net.DefaultResolver.LookupPort(context.Background(), "udp", name)
	switch {
	case errT == nil && errU == nil && tcp == udp:
		return uint16(tcp), kwNone, tcp >= 0 && tcp <= 65535
	case errT == nil:
		return uint16(tcp), kwTCP, tcp >= 0 && tcp <= 65535
	case errU == nil:
		return uint16(udp), kwUDP, udp >= 0 && udp <= 65535
	}
	return 0, kwNone, false
}

// portProto reconciles the protocol a service name is defined for with the
// protocol qualifier written.
func (p *parser) portProto(tok token, what string, real keyword, q qual) keyword {
	if q.proto == kwNone || real == kwNone || real == q.proto {
		if q.proto != kwNone {
			return q.proto
		}
		return real
	}
	name := map[keyword]string{kwTCP: "tcp", kwUDP: "udp"}[real]
	p.fail(ErrInvalid, tok, "%s '%s' is %s", what, tok.text, name)
	return kwNone
}

// portRange reads "lo-hi", numbers or service names, as
// pcap_nametoportrange.
func (p *parser) portRange(tok token) (uint16, uint16, keyword) {
	s := tok.text
	if lo, hi, ok := scanRange(s); ok {
		for _, v := range []int64{lo, hi} {
			if v < 0 || v > 65535 {
				p.fail(ErrInvalid, tok, "illegal port number %d in range %s", v, quote(s))
			}
		}
		return uint16(lo), uint16(hi), kwNone
	}
	dash := -1
	for i := range len(s) {
		if s[i] == '-' {
			dash = i
			break
		}
	}
	if dash < 0 {
		p.fail(ErrInvalid, tok, "unknown port in range %s", quote(s))
	}
	lo, p1, ok1 := lookupService(s[:dash])
	hi, p2, ok2 := lookupService(s[dash+1:])
	if !ok1 || !ok2 {
		p.fail(ErrInvalid, tok, "unknown port in range %s", quote(s))
	}
	if p1 != p2 {
		p1 = kwNone
	}
	return lo, hi, p1
}

// scanRange does sscanf(s, "%d-%d").
func scanRange(s string) (int64, int64, bool) {
	num := func(s string) (int64, int, bool) {
		i, neg := 0, false
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			neg, i = s[i] == '-', i+1
		}
		start := i
		var v int64
		for i < len(s) && isDigit(s[i]) && v < 1<<32 {
			v, i = v*10+int64(s[i]-'0'), i+1
		}
		if i == start {
			return 0, 0, false
		}
		if neg {
			v = -v
		}
		return v, i, true
	}
	lo, n, ok := num(s)
	if !ok || n >= len(s) || s[n] != '-' {
		return 0, 0, false
	}
	hi, _, ok := num(s[n+1:])
	return lo, hi, ok
}

// lookupProto resolves "proto \name".
func (p *parser) lookupProto(tok token, q qual) uint32 {
	if q.proto == kwLink {
		v, ok := etherProtoNames[tok.text]
		if !ok {
			p.fail(ErrInvalid, tok, "unknown ether proto %s", quote(tok.text))
		}
		return uint32(v)
	}
	v, ok := ipProtoNames[tok.text]
	if !ok {
		p.fail(ErrInvalid, tok, "unknown ip proto %s", quote(tok.text))
	}
	return uint32(v)
}

// genProto gives meaning to [ip|ip6|ether] proto N.
func (p *parser) genProto(tok token, v uint32, q qual) *prim {
	if q.dir != dirDefault {
		p.fail(ErrInvalid, tok, "direction applied to 'proto'")
	}
	switch q.proto {
	case kwNone, kwIP, kwIP6:
	case kwLink:
		// libpcap tests 802.2 LLC headers for these values.
		if v <= 1500 || v == 0x809b || v == 0x80f3 {
			p.fail(ErrUnsupported, tok, "ether proto %s (an LLC or AppleTalk type) is not supported", tok.text)
		}
	case kwARP, kwRARP:
		p.fail(ErrInvalid, tok, "%s does not encapsulate another protocol", q.protoText)
	default:
		p.fail(ErrInvalid, tok, "'%s proto' is bogus", q.protoText)
	}
	pr := p.newPrim(primProto, q)
	pr.n = v
	return pr
}

// genAbbrev gives meaning to a protocol name alone ("tcp", "ip6", ...).
func (p *parser) genAbbrev(tok token) *prim {
	if tok.kw == kwLink {
		p.fail(ErrSyntax, tok, "%s needs a qualifier after it (host, src, proto...)", quote(tok.text))
	}
	return &prim{kind: primAbbrev, depth: p.depth, proto: tok.kw}
}

// genCast gives meaning to [ether|ip|ip6] broadcast|multicast.
func (p *parser) genCast(tok, ptok token) *prim {
	pr := &prim{depth: p.depth, proto: ptok.kw}
	switch {
	case tok.kw == kwBroadcast && (ptok.kw == kwNone || ptok.kw == kwLink):
		pr.kind = primEtherBroadcast
	case tok.kw == kwBroadcast && ptok.kw == kwIP:
		pr.kind = primIPBroadcast
	case tok.kw == kwBroadcast:
		p.fail(ErrInvalid, tok, "only link-layer/IP broadcast filters supported")
	case ptok.kw == kwNone || ptok.kw == kwLink:
		pr.kind = primEtherMulticast
	case ptok.kw == kwIP:
		pr.kind = primIPMulticast
	case ptok.kw == kwIP6:
		pr.kind = primIP6Multicast
	default:
		p.fail(ErrInvalid, tok, "only IP multicast filters supported on ethernet")
	}
	return pr
}
