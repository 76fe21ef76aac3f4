package nftrace

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// valueType says how nft prints a value of a field.
type valueType int

const (
	tInt       valueType = iota // big-endian unsigned, decimal
	tHostInt                    // host-endian unsigned (meta), decimal
	tHex                        // 0x...
	tHostHex                    // host-endian, 0x%08x (marks)
	tAddr4                      // IPv4 address
	tAddr6                      // IPv6 address
	tEther                      // MAC address
	tEtherType                  // ip, ip6, arp, vlan, ...
	tL4Proto                    // icmp, tcp, udp, ...
	tNFProto                    // ipv4, ipv6
	tICMPType                   // echo-request, ...
	tICMP6Type                  // echo-request, nd-neighbor-solicit, ...
	tIfname                     // "eth0"
	tCtState                    // established,related
)

// field is one protocol header field nft knows by name.
type field struct {
	name     string
	off, len uint32 // bytes
	typ      valueType
}

// Header fields by protocol, as nft names them (offsets in bytes from the
// header's start).
var (
	fieldsEther = []field{{"daddr", 0, 6, tEther}, {"saddr", 6, 6, tEther}, {"type", 12, 2, tEtherType}}
	fieldsIP    = []field{{"length", 2, 2, tInt}, {"id", 4, 2, tInt}, {"ttl", 8, 1, tInt}, {"protocol", 9, 1, tL4Proto}, {"checksum", 10, 2, tInt}, {"saddr", 12, 4, tAddr4}, {"daddr", 16, 4, tAddr4}}
	fieldsIP6   = []field{{"length", 4, 2, tInt}, {"nexthdr", 6, 1, tL4Proto}, {"hoplimit", 7, 1, tInt}, {"saddr", 8, 16, tAddr6}, {"daddr", 24, 16, tAddr6}}
	fieldsARP   = []field{{"htype", 0, 2, tInt}, {"ptype", 2, 2, tEtherType}, {"hlen", 4, 1, tInt}, {"plen", 5, 1, tInt}, {"operation", 6, 2, tInt}, {"saddr ether", 8, 6, tEther}, {"saddr ip", 14, 4, tAddr4}, {"daddr ether", 18, 6, tEther}, {"daddr ip", 24, 4, tAddr4}}
	fieldsICMP  = []field{{"type", 0, 1, tICMPType}, {"code", 1, 1, tInt}, {"checksum", 2, 2, tInt}, {"id", 4, 2, tInt}, {"sequence", 6, 2, tInt}}
	fieldsICMP6 = []field{{"type", 0, 1, tICMP6Type}, {"code", 1, 1, tInt}, {"checksum", 2, 2, tInt}, {"id", 4, 2, tInt}, {"sequence", 6, 2, tInt}}
	fieldsTCP   = []field{{"sport", 0, 2, tInt}, {"dport", 2, 2, tInt}, {"sequence", 4, 4, tInt}, {"ackseq", 8, 4, tInt}, {"flags", 13, 1, tHex}, {"window", 14, 2, tInt}, {"checksum", 16, 2, tInt}, {"urgptr", 18, 2, tInt}}
	fieldsUDP   = []field{{"sport", 0, 2, tInt}, {"dport", 2, 2, tInt}, {"length", 4, 2, tInt}, {"checksum", 6, 2, tInt}}
	fieldsTH    = []field{{"sport", 0, 2, tInt}, {"dport", 2, 2, tInt}}
)

// l4 protocol numbers and nft's names for them.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

var l4Names = map[byte]string{1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 33: "dccp", 47: "gre", 50: "esp", 51: "ah", 58: "ipv6-icmp", 132: "sctp", 136: "udplite"}

// l4Fields: the header nft names for transport protocol p ("th" if none).
func l4Fields(p byte) (string, []field) {
	switch p {
	case protoICMP:
		return "icmp", fieldsICMP
	case protoICMPv6:
		return "icmpv6", fieldsICMP6
	case protoTCP:
		return "tcp", fieldsTCP
	case protoUDP:
		return "udp", fieldsUDP
	}
	return "th", fieldsTH
}

func l3Fields(l3 string) []field {
	switch l3 {
	case "ip":
		return fieldsIP
	case "ip6":
		return fieldsIP6
	case "arp":
		return fieldsARP
	}
	return nil
}

// findField: the field at off; exact when len matches, else a prefix of
// an address field (nft loads only the bytes a prefix needs).
func findField(fs []field, off, n uint32) (field, bool, bool) {
	for _, f := range fs {
		if f.off == off && f.len == n {
			return f, true, false
		}
		if f.off == off && n < f.len && (f.typ == tAddr4 || f.typ == tAddr6) {
			return f, true, true
		}
	}
	return field{}, false, false
}

var icmpTypes = map[byte]string{0: "echo-reply", 3: "destination-unreachable", 4: "source-quench", 5: "redirect", 8: "echo-request", 9: "router-advertisement", 10: "router-solicitation", 11: "time-exceeded", 12: "parameter-problem", 13: "timestamp-request", 14: "timestamp-reply", 15: "info-request", 16: "info-reply", 17: "address-mask-request", 18: "address-mask-reply"}

var icmp6Types = map[byte]string{1: "destination-unreachable", 2: "packet-too-big", 3: "time-exceeded", 4: "parameter-problem", 128: "echo-request", 129: "echo-reply", 130: "mld-listener-query", 131: "mld-listener-report", 132: "mld-listener-done", 133: "nd-router-solicit", 134: "nd-router-advert", 135: "nd-neighbor-solicit", 136: "nd-neighbor-advert", 137: "nd-redirect", 143: "mld2-listener-report"}

var etherTypes = map[uint16]string{0x0800: "ip", 0x86dd: "ip6", 0x0806: "arp", 0x8100: "8021q", 0x88a8: "8021ad"}

// ctStates in the order nft prints them.
var ctStates = []struct {
	bit  uint32
	name string
}{{1, "invalid"}, {2, "established"}, {4, "related"}, {8, "new"}, {64, "untracked"}}

func ctStateText(mask uint32) string {
	var names []string
	for _, s := range ctStates {
		if mask&s.bit != 0 {
			names = append(names, s.name)
			mask &^= s.bit
		}
	}
	if mask != 0 {
		names = append(names, fmt.Sprintf("%#x", mask))
	}
	return strings.Join(names, ",")
}

// uintBE/uintHost read up to 8 bytes as an unsigned number.
func uintBE(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

func uintHost(b []byte) uint64 {
	var p [8]byte
	copy(p[:], b)
	return binary.NativeEndian.Uint64(p[:])
}

// formatValue prints b as nft prints a value of type t.
func formatValue(t valueType, b []byte) string {
	switch t {
	case tInt:
		if len(b) <= 8 {
			return fmt.Sprint(uintBE(b))
		}
	case tHostInt:
		if len(b) <= 8 {
			return fmt.Sprint(uintHost(b))
		}
	case tHostHex:
		if len(b) <= 8 {
			return fmt.Sprintf("0x%08x", uintHost(b))
		}
	case tAddr4:
		if len(b) == 4 {
			return netip.AddrFrom4([4]byte(b)).String()
		}
	case tAddr6:
		if len(b) == 16 {
			return netip.AddrFrom16([16]byte(b)).String()
		}
	case tEther:
		if len(b) == 6 {
			return net.HardwareAddr(b).String()
		}
	case tEtherType:
		if len(b) == 2 {
			if n, ok := etherTypes[binary.BigEndian.Uint16(b)]; ok {
				return n
			}
			return fmt.Sprintf("0x%04x", binary.BigEndian.Uint16(b))
		}
	case tL4Proto:
		if len(b) == 1 {
			if n, ok := l4Names[b[0]]; ok {
				return n
			}
			return fmt.Sprint(b[0])
		}
	case tNFProto:
		if len(b) == 1 {
			switch b[0] {
			case 2:
				return "ipv4"
			case 10:
				return "ipv6"
			}
			return fmt.Sprint(b[0])
		}
	case tICMPType, tICMP6Type:
		if len(b) == 1 {
			names := icmpTypes
			if t == tICMP6Type {
				names = icmp6Types
			}
			if n, ok := names[b[0]]; ok {
				return n
			}
			return fmt.Sprint(b[0])
		}
	case tIfname:
		return fmt.Sprintf("%q", strings.TrimRight(string(b), "\x00"))
	case tCtState:
		if len(b) <= 8 {
			return ctStateText(uint32(uintHost(b)))
		}
	}
	return fmt.Sprintf("0x%x", b)
}
