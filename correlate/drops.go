package correlate

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Drops: the kernel says why it frees a packet (the skb:kfree_skb
// tracepoint's reason and location) and, for a netfilter drop, nftables'
// trace names the rule. A drop joins the trace of the frame it freed, by
// the same key the correlator matches frames with — never by time alone:
// the tracepoint fires for unrelated packets all the time, and for frames
// that were delivered (the probe socket's copy of a reply, freed with
// NO_SOCKET), which must not look lost.

// Drop is one freed packet of the run.
type Drop struct {
	Key       Key    // the packet's identity, decoded from its headers like a captured frame
	Time      int64  // ns since the Unix epoch
	Reason    string // NETFILTER_DROP, NEIGH_FAILED, ... as the running kernel names them
	Location  string // "nft_do_chain+0x46f", or the address where symbols are hidden
	Netns     string // the namespace's name where known, else its inode
	Interface string // the device the packet was on, "" if none
	Rule      string // netfilter drops: "<family> <table> <chain> handle <N>: <rule text>"
}

// TraceDrop is the drop on a trace, as the report gives it.
type TraceDrop struct {
	Reason    string    `json:"reason"`
	Location  string    `json:"location"`
	Netns     string    `json:"netns"`
	Interface string    `json:"interface"`
	Time      Timestamp `json:"time"`
	Rule      string    `json:"rule,omitempty"`
}

// dropSlack: a drop's stamp (another clock source than the captures')
// may precede the frame's last capture stamp by a little.
const dropSlack int64 = 1e6

// AttachDrops gives each trace that was lost, has a gap or (an echo
// request) went unanswered the drop of its frame: the same key, freed
// after the frame's first sighting and within late of its last. Traces of
// frames that got where they were going take none. It returns the drops
// that joined no trace.
func AttachDrops(traces []Trace, drops []Drop, late int64) []Drop {
	answered := map[int]bool{}
	for i := range traces {
		if traces[i].ReplyTo.Valid {
			answered[int(traces[i].ReplyTo.V)] = true
		}
	}
	used := make([]bool, len(drops))
	for i := range traces {
		t := &traces[i]
		unanswered := t.key.isEchoRequest() && !answered[t.N]
		if t.LostAfter == "" && len(t.Missing) == 0 && !unanswered && len(t.Hops) > 0 {
			continue
		}
		first, last := int64(-1<<63), int64(1<<63-1)
		for k, h := range t.Hops {
			at := int64(h.Time) - h.ClockOffsetNs
			if k == 0 {
				first, last = at, at
			}
			first, last = min(first, at), max(last, at)
		}
		best := -1
		for j := range drops {
			d := &drops[j]
			if used[j] || d.Key != t.key || (len(t.Hops) > 0 && (d.Time < first-dropSlack || d.Time > last+late)) {
				continue
			}
			if best < 0 || d.Time < drops[best].Time {
				best = j
			}
		}
		if best >= 0 {
			used[best] = true
			d := &drops[best]
			t.Drop = &TraceDrop{Reason: d.Reason, Location: d.Location, Netns: d.Netns, Interface: d.Interface,
				Time: Timestamp(d.Time), Rule: d.Rule}
		}
	}
	var left []Drop
	for j := range drops {
		if !used[j] {
			left = append(left, drops[j])
		}
	}
	return left
}

// LostProbe notes a probe that was sent but that no point saw (dropped
// before the first capture point, e.g. queued behind an ARP request nobody
// answered). Finish emits it after every other trace: no hops, lost before
// the first point, counted in the summary.
func (e *Engine) LostProbe(k Key, id uint16, src, dst netip.Addr) {
	e.lostProbes = append(e.lostProbes, lostProbe{k, id, src, dst})
}

type lostProbe struct {
	key      Key
	id       uint16
	src, dst netip.Addr
}

func (e *Engine) emitLostProbe(p *lostProbe) {
	out := &e.out
	*out = Trace{N: e.next, Protocol: p.key.Proto, Type: typeName(p.key), ID: someU(uint64(p.id)), Seq: someU(uint64(p.key.Seq)),
		SrcIP: addr(p.src), DstIP: addr(p.dst), Direction: Forward,
		Hops: out.Hops[:0], Missing: out.Missing[:0], Rewrites: out.Rewrites[:0], Flags: out.Flags[:0], key: p.key}
	e.next++
	e.sum.Traces++
	e.sum.ByProto[out.Protocol.String()]++
	e.sum.Lost++
	e.flag(out, FlagLost)
	e.anomaly(KindLoss, "", out.N, func() string {
		return "probes sent but seen at no capturing point (dropped before the first)"
	})
	if e.sink != nil {
		e.sink(out)
	}
}

// Key is the trace's identity key (what its frames were matched by).
func (t *Trace) Key() Key { return t.key }

// DropVerdict says in one phrase why the traces' frames were dropped, by
// reason, place and rule: "dropped by the kernel: NETFILTER_DROP ×3 in node
// on veth-pod2 at nft_do_chain+0x46f, rule bridge guard forward handle 4:
// icmp type echo-request counter drop". "" when no trace carries a drop.
func DropVerdict(traces []Trace) string {
	type cause struct{ reason, where, rule string }
	count := map[cause]int{}
	var order []cause
	for i := range traces {
		d := traces[i].Drop
		if d == nil {
			continue
		}
		where := "in " + d.Netns
		if d.Interface != "" {
			where += " on " + d.Interface
		}
		c := cause{d.Reason, where + " at " + d.Location, d.Rule}
		if count[c] == 0 {
			order = append(order, c)
		}
		count[c]++
	}
	if len(order) == 0 {
		return ""
	}
	slices.SortStableFunc(order, func(a, b cause) int { return count[b] - count[a] })
	var parts []string
	for _, c := range order {
		s := fmt.Sprintf("%s ×%d %s", c.reason, count[c], c.where)
		if c.rule != "" {
			s += ", rule " + c.rule
		}
		parts = append(parts, s)
	}
	return "dropped by the kernel: " + strings.Join(parts, "; ")
}
