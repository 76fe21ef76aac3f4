package nftrace

import (
	"fmt"
	"strings"

	"github.com/google/nftables/expr"
)

// Names and statement texts as nft prints them.

func metaName(k expr.MetaKey) string {
	switch k {
	case expr.MetaKeyIIF:
		return "iif"
	case expr.MetaKeyOIF:
		return "oif"
	case expr.MetaKeyIIFNAME:
		return "iifname"
	case expr.MetaKeyOIFNAME:
		return "oifname"
	case expr.MetaKeyIIFTYPE:
		return "iiftype"
	case expr.MetaKeyOIFTYPE:
		return "oiftype"
	case expr.MetaKeyIIFGROUP:
		return "iifgroup"
	case expr.MetaKeyOIFGROUP:
		return "oifgroup"
	}
	names := map[expr.MetaKey]string{
		expr.MetaKeyLEN: "length", expr.MetaKeyPROTOCOL: "protocol", expr.MetaKeyPRIORITY: "priority",
		expr.MetaKeyMARK: "mark", expr.MetaKeySKUID: "skuid", expr.MetaKeySKGID: "skgid",
		expr.MetaKeyNFTRACE: "nftrace", expr.MetaKeyRTCLASSID: "rtclassid", expr.MetaKeySECMARK: "secmark",
		expr.MetaKeyNFPROTO: "nfproto", expr.MetaKeyL4PROTO: "l4proto", expr.MetaKeyBRIIIFNAME: "ibrname",
		expr.MetaKeyBRIOIFNAME: "obrname", expr.MetaKeyPKTTYPE: "pkttype", expr.MetaKeyCPU: "cpu",
		expr.MetaKeyCGROUP: "cgroup", expr.MetaKeyPRANDOM: "random",
	}
	if n, ok := names[k]; ok {
		return "meta " + n
	}
	return fmt.Sprintf("meta key%d", uint32(k))
}

func metaType(k expr.MetaKey) valueType {
	switch k {
	case expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME, expr.MetaKeyBRIIIFNAME, expr.MetaKeyBRIOIFNAME:
		return tIfname
	case expr.MetaKeyL4PROTO:
		return tL4Proto
	case expr.MetaKeyNFPROTO:
		return tNFProto
	case expr.MetaKeyPROTOCOL:
		return tEtherType
	case expr.MetaKeyMARK:
		return tHostHex
	}
	return tHostInt
}

func ctName(k expr.CtKey) string {
	names := map[expr.CtKey]string{
		expr.CtKeySTATE: "state", expr.CtKeyDIRECTION: "direction", expr.CtKeySTATUS: "status",
		expr.CtKeyMARK: "mark", expr.CtKeySECMARK: "secmark", expr.CtKeyEXPIRATION: "expiration",
		expr.CtKeyHELPER: "helper", expr.CtKeyPROTOCOL: "protocol", expr.CtKeyZONE: "zone",
		expr.CtKeyPKTS: "packets", expr.CtKeyBYTES: "bytes", expr.CtKeyLABELS: "label",
	}
	if n, ok := names[k]; ok {
		return n
	}
	return fmt.Sprintf("key%d", uint32(k))
}

func verdictText(v *expr.Verdict) string {
	switch v.Kind {
	case expr.VerdictAccept:
		return "accept"
	case expr.VerdictDrop:
		return "drop"
	case expr.VerdictReturn:
		return "return"
	case expr.VerdictContinue:
		return "continue"
	case expr.VerdictJump:
		return "jump " + v.Chain
	case expr.VerdictGoto:
		return "goto " + v.Chain
	case expr.VerdictQueue:
		return "queue"
	case expr.VerdictStop:
		return "stop"
	}
	return fmt.Sprintf("verdict %d", int32(v.Kind))
}

func limitText(l *expr.Limit) string {
	unit := map[expr.LimitTime]string{expr.LimitTimeSecond: "second", expr.LimitTimeMinute: "minute", expr.LimitTimeHour: "hour", expr.LimitTimeDay: "day", expr.LimitTimeWeek: "week"}[l.Unit]
	var b strings.Builder
	b.WriteString("limit rate ")
	if l.Over {
		b.WriteString("over ")
	}
	if l.Type == expr.LimitTypePktBytes {
		fmt.Fprintf(&b, "%d bytes/%s", l.Rate, unit)
		if l.Burst != 0 {
			fmt.Fprintf(&b, " burst %d bytes", l.Burst)
		}
		return b.String()
	}
	fmt.Fprintf(&b, "%d/%s", l.Rate, unit)
	if l.Burst != 5 && l.Burst != 0 {
		fmt.Fprintf(&b, " burst %d packets", l.Burst)
	}
	return b.String()
}

func logText(l *expr.Log) string {
	s := "log"
	if len(l.Data) > 0 {
		s += fmt.Sprintf(" prefix %q", strings.TrimRight(string(l.Data), "\x00"))
	}
	if l.Group != 0 {
		s += fmt.Sprintf(" group %d", l.Group)
	}
	return s
}

// rejectText: nft prints the family's default (ICMP port unreachable for
// ip, ICMPv6 for ip6, ICMPx for inet/bridge) as plain "reject", anything
// else with its type; l3 is the rule's network protocol so far.
func rejectText(fam Family, l3 string, r *expr.Reject) string {
	const (
		icmpUnreach  = 0 // NFT_REJECT_ICMP_UNREACH
		tcpRST       = 1 // NFT_REJECT_TCP_RST
		icmpxUnreach = 2 // NFT_REJECT_ICMPX_UNREACH
	)
	switch r.Type {
	case tcpRST:
		return "reject with tcp reset"
	case icmpxUnreach:
		if r.Code == 1 { // NFT_REJECT_ICMPX_PORT_UNREACH
			return "reject"
		}
		return "reject with icmpx " + codeName(map[uint8]string{0: "no-route", 2: "host-unreachable", 3: "admin-prohibited"}, r.Code)
	case icmpUnreach:
		if fam == FamilyIPv6 || (fam != FamilyIPv4 && l3 == "ip6") {
			if fam == FamilyIPv6 && r.Code == 4 {
				return "reject"
			}
			return "reject with icmpv6 " + codeName(map[uint8]string{0: "no-route", 1: "admin-prohibited", 3: "addr-unreachable", 4: "port-unreachable", 5: "policy-fail", 6: "reject-route"}, r.Code)
		}
		if fam == FamilyIPv4 && r.Code == 3 {
			return "reject"
		}
		return "reject with icmp " + codeName(map[uint8]string{0: "net-unreachable", 1: "host-unreachable", 2: "prot-unreachable", 3: "port-unreachable", 9: "net-prohibited", 10: "host-prohibited", 13: "admin-prohibited"}, r.Code)
	}
	return "reject"
}

func codeName(names map[uint8]string, c uint8) string {
	if n, ok := names[c]; ok {
		return n
	}
	return fmt.Sprint(c)
}
