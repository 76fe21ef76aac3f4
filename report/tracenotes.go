// The notes under a trace's row (MACs, encapsulation, rewrites, drops),
// shared by every format.

package report

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pathtrace/pathtrace/correlate"
)

// traceNotes are the findings under a trace group, most important first:
// where it was lost, where it was not seen, what changed on the way, and for
// echo replies the round trip.
func traceNotes(o owners, t *correlate.Trace) []string {
	var n []string
	if t.LostAfter != "" {
		n = append(n, "lost after "+t.LostAfter)
	}
	if unseen(t) {
		n = append(n, unseenNote)
	}
	if len(t.Missing) > 0 {
		n = append(n, "missing: "+strings.Join(t.Missing, ", "))
	}
	if d := dropNote(t); d != "" {
		n = append(n, d)
	}
	if word := reflectionWord(t); word != "" {
		var at []string
		for i := range t.Hops {
			if t.Hops[i].Reflection && !slices.Contains(at, t.Hops[i].Point) {
				at = append(at, t.Hops[i].Point)
			}
		}
		why := "the bridge sent it back out the port it came in by (hairpin mode)"
		if word == "flooding" {
			why = "the bridge flooded it back: it did not know the destination MAC"
		}
		n = append(n, word+" at "+strings.Join(at, ", ")+": "+why)
	}
	n = append(n, rewriteNotes(o, t.Rewrites)...)
	var rt []string
	if t.ReplyTo.Valid {
		rt = append(rt, fmt.Sprintf("reply to #%d", t.ReplyTo.V))
	}
	if t.RTT != nil {
		rt = append(rt, fmt.Sprintf("rtt %s µs (fwd %s / turn %s / rev %s)",
			micros1(t.RTT.TotalNs), micros1(t.RTT.ForwardNs), micros1(t.RTT.TurnaroundNs), micros1(t.RTT.ReverseNs)))
	}
	if len(rt) > 0 {
		n = append(n, strings.Join(rt, ", "))
	}
	for _, f := range t.Flags {
		// Flags already spelled out above from the fields they summarise.
		switch {
		case f == correlate.FlagReflection,
			f == correlate.FlagLost && (t.LostAfter != "" || unseen(t)),
			f == correlate.FlagGap && len(t.Missing) > 0:
			continue
		}
		n = append(n, f.String())
	}
	return n
}

// rewriteNotes phrase rewrites the way one would say them in the incident:
// "MAC rewritten at pod2-veth: src … → …, dst 0a:… (cni0) → ca:… (pod2 eth0)",
// "TTL 64→63 at cni1". MAC changes at one point share a note, in the order
// the correlator listed them.
func rewriteNotes(o owners, rs []correlate.Rewrite) []string {
	var out []string
	macAt := map[string]int{} // point → index in out of its MAC note
	for _, r := range rs {
		switch r.Field {
		case correlate.FieldSrcMAC, correlate.FieldDstMAC:
			side := "src "
			if r.Field == correlate.FieldDstMAC {
				side = "dst "
			}
			change := side + o.label(r.From) + " → " + o.label(r.To)
			if i, ok := macAt[r.Point]; ok {
				out[i] += ", " + change
				continue
			}
			macAt[r.Point] = len(out)
			out = append(out, "MAC rewritten at "+r.Point+": "+change)
		case correlate.FieldTTL:
			out = append(out, fmt.Sprintf("TTL %s→%s at %s", r.From, r.To, r.Point))
		default:
			name := strings.ReplaceAll(r.Field.String(), "_", " ")
			if strings.HasSuffix(name, " ip") {
				name = strings.TrimSuffix(name, "ip") + "IP"
			}
			out = append(out, fmt.Sprintf("%s %s → %s at %s", name, r.From, r.To, r.Point))
		}
	}
	return out
}
