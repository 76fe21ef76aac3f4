package nftrace

import (
	"fmt"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

// iptables-nft keeps some of iptables' matches and targets as xtables
// compat expressions (`match name icmp`, `target name REJECT`). nft prints
// them through libxtables' translations; these are the common ones, the
// rest shows as xt match "name" / xt target "name" like nft without
// libxtables.

// xtMatchText renders an xt match; comment says it is a rule comment
// (printed last).
func xtMatchText(m *expr.Match) (text string, comment bool) {
	switch info := m.Info.(type) {
	case *xt.Comment:
		return fmt.Sprintf("comment %q", string(*info)), true
	case *xt.Tcp:
		return portsText("tcp", info.SrcPorts, info.DstPorts), false
	case *xt.Udp:
		return portsText("udp", info.SrcPorts, info.DstPorts), false
	case *xt.ConntrackMtinfo1:
		return "ct state " + ctStateText(uint32(info.StateMask)), false
	case *xt.ConntrackMtinfo2:
		return "ct state " + ctStateText(uint32(info.StateMask)), false
	case *xt.ConntrackMtinfo3:
		return "ct state " + ctStateText(uint32(info.StateMask)), false
	case *xt.Unknown:
		if m.Name == "icmp" && len(*info) >= 3 {
			// struct ipt_icmp: type, code range [2], invflags.
			b := *info
			s := "icmp type " + formatValue(tICMPType, b[:1])
			if b[1] == b[2] {
				s += fmt.Sprintf(" icmp code %d", b[1])
			}
			return s, false
		}
	}
	return fmt.Sprintf("xt match %q", m.Name), false
}

func portsText(proto string, src, dst [2]uint16) string {
	var s string
	one := func(dir string, r [2]uint16) {
		if r == [2]uint16{0, 0xffff} {
			return
		}
		if s != "" {
			s += " "
		}
		if r[0] == r[1] {
			s += fmt.Sprintf("%s %s %d", proto, dir, r[0])
		} else {
			s += fmt.Sprintf("%s %s %d-%d", proto, dir, r[0], r[1])
		}
	}
	one("sport", src)
	one("dport", dst)
	if s == "" {
		return "meta l4proto " + proto
	}
	return s
}

func xtTargetText(t *expr.Target) string {
	switch t.Name {
	case "REJECT":
		return "reject"
	case "LOG":
		return "log"
	case "ACCEPT":
		return "accept"
	case "DROP":
		return "drop"
	}
	return fmt.Sprintf("xt target %q", t.Name)
}
