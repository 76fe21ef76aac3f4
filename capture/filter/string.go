package filter

import (
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"strconv"
)

// appendAST writes x in canonical form. Since and/or have equal precedence
// and group left to right, only a right operand that is itself and/or
// needs parentheses; a left operand of the other operator gets them too,
// for the reader.
func appendAST(b []byte, x *ast) []byte {
	switch x.op {
	case astNot:
		b = append(b, "not "...)
		return appendOperand(b, x.l, true)
	case astAnd, astOr:
		b = appendOperand(b, x.l, x.l.op != x.op)
		if x.op == astAnd {
			b = append(b, " and "...)
		} else {
			b = append(b, " or "...)
		}
		return appendOperand(b, x.r, true)
	}
	return x.prim.appendTo(b)
}

func appendOperand(b []byte, x *ast, paren bool) []byte {
	if paren && (x.op == astAnd || x.op == astOr) {
		b = append(b, '(')
		b = appendAST(b, x)
		return append(b, ')')
	}
	return appendAST(b, x)
}

var protoWords = map[keyword]string{
	kwLink: "ether", kwIP: "ip", kwIP6: "ip6", kwARP: "arp", kwRARP: "rarp", kwTCP: "tcp",
	kwUDP: "udp", kwSCTP: "sctp", kwICMP: "icmp", kwICMP6: "icmp6", kwIGMP: "igmp",
	kwIGRP: "igrp", kwPIM: "pim", kwVRRP: "vrrp", kwCARP: "carp", kwAH: "ah", kwESP: "esp",
}

var dirWords = [...]string{dirDefault: "", dirSrc: "src ", dirDst: "dst ", dirOr: "src or dst ", dirAnd: "src and dst "}

func (pr *prim) qualifiers(b []byte) []byte {
	if w := protoWords[pr.proto]; w != "" {
		b = append(b, w...)
		b = append(b, ' ')
	}
	return append(b, dirWords[pr.dir]...)
}

func (pr *prim) appendTo(b []byte) []byte {
	switch pr.kind {
	case primHost:
		b = pr.qualifiers(b)
		var a [4]byte
		a[0], a[1], a[2], a[3] = byte(pr.addr4>>24), byte(pr.addr4>>16), byte(pr.addr4>>8), byte(pr.addr4)
		addr := netip.AddrFrom4(a).String()
		if pr.mask4 == 0xffffffff {
			return append(append(b, "host "...), addr...)
		}
		b = append(append(b, "net "...), addr...)
		if ones := bits.LeadingZeros32(^pr.mask4); pr.mask4<<ones == 0 {
			return strconv.AppendInt(append(b, '/'), int64(ones), 10)
		}
		var m [4]byte
		m[0], m[1], m[2], m[3] = byte(pr.mask4>>24), byte(pr.mask4>>16), byte(pr.mask4>>8), byte(pr.mask4)
		return append(append(b, " mask "...), netip.AddrFrom4(m).String()...)
	case primHost6:
		b = pr.qualifiers(b)
		ones, _ := net.IPMask(pr.mask6[:]).Size()
		addr := netip.AddrFrom16(pr.addr6).String()
		if ones == 128 {
			return append(append(b, "host "...), addr...)
		}
		b = append(append(b, "net "...), addr...)
		return strconv.AppendInt(append(b, '/'), int64(ones), 10)
	case primEther:
		b = pr.qualifiers(b)
		return append(append(b, "host "...), net.HardwareAddr(pr.mac[:]).String()...)
	case primEtherBroadcast:
		return append(b, "ether broadcast"...)
	case primEtherMulticast:
		return append(b, "ether multicast"...)
	case primIPBroadcast:
		return append(b, "ip broadcast"...)
	case primIPMulticast:
		return append(b, "ip multicast"...)
	case primIP6Multicast:
		return append(b, "ip6 multicast"...)
	case primPort:
		b = pr.qualifiers(b)
		if pr.lo == pr.hi {
			return strconv.AppendUint(append(b, "port "...), uint64(pr.lo), 10)
		}
		return fmt.Appendf(b, "portrange %d-%d", pr.lo, pr.hi)
	case primProto:
		b = pr.qualifiers(b)
		if pr.proto == kwLink {
			return fmt.Appendf(b, "proto 0x%04x", pr.n)
		}
		return strconv.AppendUint(append(b, "proto "...), uint64(pr.n), 10)
	case primAbbrev:
		return append(b, protoWords[pr.proto]...)
	case primVLAN:
		if pr.hasID {
			return strconv.AppendUint(append(b, "vlan "...), uint64(pr.n), 10)
		}
		return append(b, "vlan"...)
	case primLess:
		return strconv.AppendUint(append(b, "less "...), uint64(pr.n), 10)
	case primGreater:
		return strconv.AppendUint(append(b, "greater "...), uint64(pr.n), 10)
	}
	return b
}
