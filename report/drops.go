package report

import (
	"strings"

	"github.com/pathtrace/pathtrace/correlate"
)

// dropNote says why the kernel freed a trace's frame, as every text report
// words it: "dropped by the kernel: NETFILTER_DROP in node1 on veth1 at
// nft_do_chain+0x46f, rule bridge guard forward handle 4: icmp type
// echo-request counter drop". "" without a drop.
func dropNote(tr *correlate.Trace) string {
	d := tr.Drop
	if d == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString("dropped by the kernel: " + d.Reason + " in " + d.Netns)
	if d.Interface != "" {
		b.WriteString(" on " + d.Interface)
	}
	b.WriteString(" at " + d.Location)
	if d.Rule != "" {
		b.WriteString(", rule " + d.Rule)
	}
	return b.String()
}

// unseen: a probe that was sent but that no point saw.
func unseen(tr *correlate.Trace) bool {
	return len(tr.Hops) == 0 && tr.LostAfter == "" && hasFlag(tr, correlate.FlagLost)
}

// unseenNote words unseen.
const unseenNote = "sent, seen at no capturing point"

func hasFlag(tr *correlate.Trace, f correlate.Flag) bool {
	for _, x := range tr.Flags {
		if x == f {
			return true
		}
	}
	return false
}
