package filter

// keyword is a reserved word of libpcap's scanner.
type keyword uint8

const (
	kwNone keyword = iota
	kwNot
	kwAnd
	kwOr

	// Direction qualifiers.
	kwSrc
	kwDst

	// Address-type qualifiers and their relatives.
	kwHost
	kwNet
	kwMask
	kwPort
	kwPortrange
	kwProto
	kwProtochain
	kwGateway

	// Protocol qualifiers implemented here (pname in grammar.y).
	kwLink // link, ether, ppp, slip, fddi, tr, wlan
	kwIP
	kwIP6
	kwARP
	kwRARP
	kwTCP
	kwUDP
	kwSCTP
	kwICMP
	kwICMP6
	kwIGMP
	kwIGRP
	kwPIM
	kwVRRP
	kwCARP
	kwAH
	kwESP
	// kwOtherProto: protocol qualifiers not implemented (atalk, decnet,
	// iso, stp, ...).
	kwOtherProto

	// Special primitives.
	kwLess
	kwGreater
	kwBroadcast
	kwMulticast
	kwVLAN
	kwLen
	// kwOther: keywords of primitives not implemented (mpls, pppoes,
	// geneve, inbound, llc, 802.11 and pf fields, ATM, MTP...).
	kwOther
)

var keywords = map[string]keyword{
	"not": kwNot, "and": kwAnd, "or": kwOr,
	"src": kwSrc, "dst": kwDst,
	"host": kwHost, "net": kwNet, "mask": kwMask, "port": kwPort, "portrange": kwPortrange,
	"proto": kwProto, "protochain": kwProtochain, "gateway": kwGateway,

	"link": kwLink, "ether": kwLink, "ppp": kwLink, "slip": kwLink,
	"fddi": kwLink, "tr": kwLink, "wlan": kwLink,
	"ip": kwIP, "ip6": kwIP6, "arp": kwARP, "rarp": kwRARP,
	"tcp": kwTCP, "udp": kwUDP, "sctp": kwSCTP, "icmp": kwICMP, "icmp6": kwICMP6,
	"igmp": kwIGMP, "igrp": kwIGRP, "pim": kwPIM, "vrrp": kwVRRP, "carp": kwCARP,
	"ah": kwAH, "esp": kwESP,

	"radio": kwOtherProto, "atalk": kwOtherProto, "aarp": kwOtherProto, "decnet": kwOtherProto,
	"lat": kwOtherProto, "sca": kwOtherProto, "moprc": kwOtherProto, "mopdl": kwOtherProto,
	"iso": kwOtherProto, "esis": kwOtherProto, "es-is": kwOtherProto, "isis": kwOtherProto,
	"is-is": kwOtherProto, "l1": kwOtherProto, "l2": kwOtherProto, "iih": kwOtherProto,
	"lsp": kwOtherProto, "snp": kwOtherProto, "csnp": kwOtherProto, "psnp": kwOtherProto,
	"clnp": kwOtherProto, "stp": kwOtherProto, "ipx": kwOtherProto, "netbeui": kwOtherProto,

	"less": kwLess, "greater": kwGreater, "broadcast": kwBroadcast, "multicast": kwMulticast,
	"vlan": kwVLAN, "len": kwLen, "length": kwLen,

	"type": kwOther, "subtype": kwOther, "direction": kwOther, "dir": kwOther,
	"address1": kwOther, "addr1": kwOther, "address2": kwOther, "addr2": kwOther,
	"address3": kwOther, "addr3": kwOther, "address4": kwOther, "addr4": kwOther,
	"ra": kwOther, "ta": kwOther, "byte": kwOther, "inbound": kwOther, "outbound": kwOther,
	"ifindex": kwOther, "mpls": kwOther, "pppoed": kwOther, "pppoes": kwOther,
	"geneve": kwOther, "lane": kwOther, "llc": kwOther, "metac": kwOther, "bcc": kwOther,
	"oam": kwOther, "oamf4": kwOther, "oamf4ec": kwOther, "oamf4sc": kwOther, "sc": kwOther,
	"ilmic": kwOther, "vpi": kwOther, "vci": kwOther, "connectmsg": kwOther,
	"metaconnect": kwOther, "on": kwOther, "ifname": kwOther, "rset": kwOther,
	"ruleset": kwOther, "rnr": kwOther, "rulenum": kwOther, "srnr": kwOther,
	"subrulenum": kwOther, "reason": kwOther, "action": kwOther, "fisu": kwOther,
	"lssu": kwOther, "lsu": kwOther, "msu": kwOther, "hfisu": kwOther, "hlssu": kwOther,
	"hmsu": kwOther, "sio": kwOther, "opc": kwOther, "dpc": kwOther, "sls": kwOther,
	"hsio": kwOther, "hopc": kwOther, "hdpc": kwOther, "hsls": kwOther,
}

// isPname reports whether k is a protocol qualifier.
func (k keyword) isPname() bool { return k >= kwLink && k <= kwOtherProto }

// namedNums are the field offsets and values scanner.l turns into numbers
// (for packet data access, which is not implemented, but they must scan
// as numbers to be reported as such).
var namedNums = map[string]uint32{
	"icmptype": 0, "icmpcode": 1, "icmp6type": 0, "icmp6code": 1, "tcpflags": 13,
	"icmp-echoreply": 0, "icmp-unreach": 3, "icmp-sourcequench": 4, "icmp-redirect": 5,
	"icmp-echo": 8, "icmp-routeradvert": 9, "icmp-routersolicit": 10, "icmp-timxceed": 11,
	"icmp-paramprob": 12, "icmp-tstamp": 13, "icmp-tstampreply": 14, "icmp-ireq": 15,
	"icmp-ireqreply": 16, "icmp-maskreq": 17, "icmp-maskreply": 18,
	"icmp6-destinationunreach": 1, "icmp6-packettoobig": 2, "icmp6-timeexceeded": 3,
	"icmp6-parameterproblem": 4, "icmp6-echo": 128, "icmp6-echoreply": 129,
	"icmp6-multicastlistenerquery": 130, "icmp6-multicastlistenerreportv1": 131,
	"icmp6-multicastlistenerdone": 132, "icmp6-routersolicit": 133,
	"icmp6-routeradvert": 134, "icmp6-neighborsolicit": 135, "icmp6-neighboradvert": 136,
	"icmp6-redirect": 137, "icmp6-routerrenum": 138, "icmp6-nodeinformationquery": 139,
	"icmp6-nodeinformationresponse": 140, "icmp6-ineighbordiscoverysolicit": 141,
	"icmp6-ineighbordiscoveryadvert": 142, "icmp6-multicastlistenerreportv2": 143,
	"icmp6-homeagentdiscoveryrequest": 144, "icmp6-homeagentdiscoveryreply": 145,
	"icmp6-mobileprefixsolicit": 146, "icmp6-mobileprefixadvert": 147,
	"icmp6-certpathsolicit": 148, "icmp6-certpathadvert": 149,
	"icmp6-multicastrouteradvert": 151, "icmp6-multicastroutersolicit": 152,
	"icmp6-multicastrouterterm": 153,
	"tcp-fin":                   0x01, "tcp-syn": 0x02, "tcp-rst": 0x04, "tcp-push": 0x08,
	"tcp-ack": 0x10, "tcp-urg": 0x20, "tcp-ece": 0x40, "tcp-cwr": 0x80,
}

// ipProtoNames are the IP protocol names "proto \name" accepts: the
// common entries of /etc/protocols (libpcap asks getprotobyname; a
// fixed table keeps the filter's meaning the same on every machine).
var ipProtoNames = map[string]uint8{
	"ip": 0, "hopopt": 0, "icmp": 1, "igmp": 2, "ipencap": 4, "ipip": 4, "tcp": 6,
	"egp": 8, "igp": 9, "udp": 17, "dccp": 33, "ipv6": 41, "ipv6-route": 43,
	"ipv6-frag": 44, "rsvp": 46, "gre": 47, "esp": 50, "ah": 51, "ipv6-icmp": 58,
	"icmp6": 58, "ipv6-nonxt": 59, "ipv6-opts": 60, "ospf": 89, "pim": 103, "vrrp": 112,
	"l2tp": 115, "sctp": 132, "udplite": 136, "mpls-in-ip": 137,
}

// etherProtoNames are libpcap's eproto_db entries this filter implements
// ("ether proto \name").
var etherProtoNames = map[string]uint16{
	"ip": EtherTypeIPv4, "ip6": EtherTypeIPv6, "arp": EtherTypeARP, "rarp": EtherTypeRARP,
	"aarp": 0x80f3, "atalk": 0x809b, "decnet": 0x6003, "lat": 0x6004, "loopback": 0x9000,
	"mopdl": 0x6001, "moprc": 0x6002, "sca": 0x6007,
}
