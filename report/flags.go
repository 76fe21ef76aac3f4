package report

// The findings a timeline row shows in its last column, long and short.

import (
	"fmt"
	"strings"

	"github.com/pathtrace/pathtrace/correlate"
)

// trFlag is one finding in a trace row's last column, in a long form
// ("MAC/TTL rewrite @cni1") and a short one ("rewrite") used when the long
// forms do not fit the width. A finding the anomalies name has one form,
// their word: "reflection ×2", "flooding".
type trFlag struct{ long, short string }

// traceFlags are the findings the matrix cells do not already show: loss,
// gaps and negative deltas are visible in the cells, so they have no flag.
func traceFlags(tr *correlate.Trace) []trFlag {
	var f []trFlag
	n := 0
	for _, h := range tr.Hops {
		if h.Reflection {
			n++
		}
	}
	if n > 0 {
		// The anomaly's kind: a broadcast reflected by hairpin mode, or a
		// unicast frame flooded back by a bridge that did not know its
		// destination; the Anomalies section says where and why.
		word := reflectionWord(tr)
		if n > 1 {
			word = fmt.Sprintf("%s ×%d", word, n)
		}
		f = append(f, trFlag{word, word})
	}
	if unseen(tr) {
		f = append(f, trFlag{"lost before the first point", "lost"})
	}
	for _, fl := range tr.Flags {
		switch fl {
		case correlate.FlagReflection, correlate.FlagLost, correlate.FlagGap, correlate.FlagNegativeDelta:
		default:
			// The JSON's word, one form: "duplicate", "fragment", "over-mtu".
			f = append(f, trFlag{fl.String(), fl.String()})
		}
	}
	if len(tr.Rewrites) > 0 {
		var kinds, at []string
		for _, rw := range tr.Rewrites {
			k := rewriteKind(rw.Field)
			if !containsStr(kinds, k) {
				kinds = append(kinds, k)
			}
			if !containsStr(at, rw.Point) {
				at = append(at, rw.Point)
			}
		}
		f = append(f, trFlag{strings.Join(kinds, "/") + " rewrite @" + strings.Join(at, ","), "rewrite"})
	}
	if tr.RTT != nil {
		s := "rtt " + micros1(tr.RTT.TotalNs) + " µs"
		f = append(f, trFlag{s, s})
	}
	return f
}

// reflectionWord is the anomaly's word for a trace's reflected hops:
// "reflection" (a broadcast or multicast back out its port: hairpin mode),
// "flooding" (a unicast frame the bridge did not know where to send), or ""
// without reflected hops.
func reflectionWord(tr *correlate.Trace) string {
	for _, h := range tr.Hops {
		if h.Reflection {
			if group, known := groupDst(tr); known && !group {
				return "flooding"
			}
			return "reflection"
		}
	}
	return ""
}

// groupDst reports whether the trace's destination MAC is a broadcast or
// multicast address (a flood, so a reflection is hairpin mode doing its
// job), and whether any hop recorded it at all.
func groupDst(tr *correlate.Trace) (group, known bool) {
	for _, h := range tr.Hops {
		if h.DstMAC.Valid {
			return h.DstMAC.V[0]&1 == 1, true
		}
	}
	return false, false
}

func rewriteKind(field correlate.Field) string {
	switch field {
	case correlate.FieldSrcMAC, correlate.FieldDstMAC:
		return "MAC"
	case correlate.FieldTTL:
		return "TTL"
	case correlate.FieldSrcIP, correlate.FieldDstIP, correlate.FieldSrcPort, correlate.FieldDstPort:
		return "NAT"
	}
	return field.String()
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
