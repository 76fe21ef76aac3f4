package correlate

import "strconv"

// Message types of the keys (Key.Kind), as the protocols number them.
const (
	ICMPEchoReply    = 0
	ICMPEchoRequest  = 8
	ICMPv6EchoReq    = 128
	ICMPv6EchoReply  = 129
	NDRouterSolicit  = 133
	NDRouterAdvert   = 134
	NDNeighborSolic  = 135
	NDNeighborAdvert = 136
	NDRedirect       = 137
	ARPRequest       = 1
	ARPReply         = 2
)

// isEchoRequest and isEchoReply hold for ICMP and ICMPv6 alike.
func (k *Key) isEchoRequest() bool {
	return (k.Proto == ProtoICMP && k.Kind == ICMPEchoRequest) || (k.Proto == ProtoICMPv6 && k.Kind == ICMPv6EchoReq)
}

func (k *Key) isEchoReply() bool {
	return (k.Proto == ProtoICMP && k.Kind == ICMPEchoReply) || (k.Proto == ProtoICMPv6 && k.Kind == ICMPv6EchoReply)
}

// neighbour: ARP and ND, which no router forwards.
func (k *Key) neighbour() bool { return k.Proto == ProtoARP || k.Proto == ProtoND }

// typeName is a trace's "type" in the report.
func typeName(k Key) string {
	switch k.Proto {
	case ProtoICMP, ProtoICMPv6:
		switch {
		case k.isEchoRequest():
			return "echo-request"
		case k.isEchoReply():
			return "echo-reply"
		}
	case ProtoARP:
		switch k.Kind {
		case ARPRequest:
			return "arp-request"
		case ARPReply:
			return "arp-reply"
		}
		return "arp-op-" + strconv.Itoa(int(k.Kind))
	case ProtoND:
		switch k.Kind {
		case NDRouterSolicit:
			return "router-solicitation"
		case NDRouterAdvert:
			return "router-advertisement"
		case NDNeighborSolic:
			return "neighbor-solicitation"
		case NDNeighborAdvert:
			return "neighbor-advertisement"
		case NDRedirect:
			return "redirect"
		}
	case ProtoTCP:
		return tcpFlags(k.Kind)
	case ProtoUDP:
		return "datagram"
	case ProtoIP:
		switch k.Kind {
		case ipProtoICMP:
			return "icmp-" + icmpName(uint8(k.Seq>>8), uint8(k.Seq))
		case ipProtoICMPv6:
			return "icmpv6-" + icmpv6Name(uint8(k.Seq>>8), uint8(k.Seq))
		case ipProtoIGMP:
			return "igmp"
		}
		return "proto-" + strconv.Itoa(int(k.Kind))
	}
	return "type-" + strconv.Itoa(int(k.Kind))
}

// tcpFlags names a TCP flag set the way people say it: syn-ack, psh-ack.
func tcpFlags(f uint8) string {
	names := [...]string{"fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr"}
	order := [...]int{1, 2, 0, 3, 4, 5, 6, 7} // syn, rst, fin, psh, ack...
	s := ""
	for _, b := range order {
		if f&(1<<uint(b)) != 0 {
			if s != "" {
				s += "-"
			}
			s += names[b]
		}
	}
	if s == "" {
		return "none"
	}
	return s
}

// IP protocol numbers of ICMP messages keyed as other IP payload (errors,
// which quote the packet they are about); Key.Seq holds type<<8 | code.
const (
	ipProtoICMP   = 1
	ipProtoIGMP   = 2
	ipProtoICMPv6 = 58
)

// icmpName names the ICMP errors that explain a path: unreachable (port,
// host, fragmentation needed: the path MTU), time exceeded, redirect.
func icmpName(typ, code uint8) string {
	switch typ {
	case 3:
		if names := [...]string{"net-unreachable", "host-unreachable", "proto-unreachable", "port-unreachable", "frag-needed"}; int(code) < len(names) {
			return names[code]
		}
		if code == 13 {
			return "admin-prohibited"
		}
		return "unreachable-" + strconv.Itoa(int(code))
	case 5:
		return "redirect"
	case 11:
		return "time-exceeded"
	case 12:
		return "param-problem"
	}
	return "type-" + strconv.Itoa(int(typ)) + "-code-" + strconv.Itoa(int(code))
}

func icmpv6Name(typ, code uint8) string {
	switch typ {
	case 1:
		if names := [...]string{"no-route", "admin-prohibited", "beyond-scope", "addr-unreachable", "port-unreachable"}; int(code) < len(names) {
			return names[code]
		}
		return "unreachable-" + strconv.Itoa(int(code))
	case 2:
		return "packet-too-big"
	case 3:
		return "time-exceeded"
	case 4:
		return "param-problem"
	}
	return "type-" + strconv.Itoa(int(typ)) + "-code-" + strconv.Itoa(int(code))
}
