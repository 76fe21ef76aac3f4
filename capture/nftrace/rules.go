package nftrace

import (
	"bytes"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"

	"github.com/pathtrace/pathtrace/netns"
)

// ruleCache reads and renders the dropping rules, each once a second at
// most (a flood of dropped probes hits the same rule over and over).
type ruleCache struct {
	ns   *netns.Handle
	mu   sync.Mutex
	seen map[ruleKey]cached
}

type ruleKey struct {
	fam          Family
	table, chain string
	handle       uint64
}

type cached struct {
	at   time.Time
	text string
	err  error
}

const ruleCacheTTL = time.Second

func newRuleCache(ns *netns.Handle) *ruleCache {
	return &ruleCache{ns: ns, seen: map[ruleKey]cached{}}
}

// describe: "<family> <table> <chain> handle <N>: <rule text>", or
// "<family> <table> <chain> policy drop".
func (c *ruleCache) describe(ev Event) (string, error) {
	head := fmt.Sprintf("%s %s %s", ev.Family, ev.Table, ev.Chain)
	if ev.Type == TracePolicy {
		return head + " policy " + ev.Policy.String(), nil
	}
	k := ruleKey{ev.Family, ev.Table, ev.Chain, ev.Handle}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.seen[k]; ok && time.Since(v.at) < ruleCacheTTL {
		return v.text, v.err
	}
	text, err := ReadRule(c.ns, ev.Family, ev.Table, ev.Chain, ev.Handle)
	if err == nil {
		text = fmt.Sprintf("%s handle %d: %s", head, ev.Handle, text)
	}
	c.seen[k] = cached{time.Now(), text, err}
	return text, err
}

// ReadRule reads rule handle of family/table/chain in ns from the kernel
// and renders it (renderRule).
func ReadRule(ns *netns.Handle, fam Family, table, chain string, handle uint64) (string, error) {
	conn, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
	if err != nil {
		return "", fmt.Errorf("nftables in %s: %w", ns.Path, err)
	}
	t := &nftables.Table{Name: table, Family: nftables.TableFamily(fam)}
	rules, err := conn.GetRules(t, &nftables.Chain{Name: chain, Table: t})
	if err != nil {
		return "", fmt.Errorf("read rules of %s %s %s in %s: %w", fam, table, chain, ns.Path, err)
	}
	for _, r := range rules {
		if r.Handle == handle {
			sets := func(name string, vt valueType) string { return setText(conn, t, name, vt) }
			return renderRule(fam, r.Exprs, r.UserData, sets), nil
		}
	}
	return "", fmt.Errorf("%s %s %s has no rule with handle %d (removed?)", fam, table, chain, handle)
}

// setText renders a lookup's set: the elements of an anonymous set
// ("{ 22, 80 }", sorted like nft sorts them), a named one as "@name".
func setText(conn *nftables.Conn, t *nftables.Table, name string, vt valueType) string {
	if !strings.HasPrefix(name, "__set") {
		return "@" + name
	}
	s, err := conn.GetSetByName(t, name)
	if err != nil {
		return "@" + name
	}
	elems, err := conn.GetSetElements(s)
	if err != nil {
		return "@" + name
	}
	sort.Slice(elems, func(i, j int) bool { return bytes.Compare(elems[i].Key, elems[j].Key) < 0 })
	var out []string
	for i := 0; i < len(elems); i++ {
		e := elems[i]
		if e.IntervalEnd {
			continue
		}
		// An interval set stores [start, end): the next element ends it.
		if s.Interval && i+1 < len(elems) && elems[i+1].IntervalEnd {
			out = append(out, rangeText(vt, e.Key, elems[i+1].Key))
			continue
		}
		out = append(out, formatValue(vt, e.Key))
	}
	return "{ " + strings.Join(out, ", ") + " }"
}

// rangeText prints [start, end) as one value, a prefix (addresses) or a-b.
func rangeText(vt valueType, start, end []byte) string {
	last := decrement(end)
	if bytes.Equal(start, last) {
		return formatValue(vt, start)
	}
	if vt == tAddr4 || vt == tAddr6 {
		if a, ok := netip.AddrFromSlice(start); ok {
			for bits := 0; bits <= a.BitLen(); bits++ {
				p := netip.PrefixFrom(a, bits)
				if p.Masked().Addr() != a {
					continue
				}
				if b, ok := netip.AddrFromSlice(last); ok && p.Contains(b) && lastOf(p) == b {
					return p.String()
				}
			}
		}
	}
	return formatValue(vt, start) + "-" + formatValue(vt, last)
}

func decrement(b []byte) []byte {
	out := append([]byte(nil), b...)
	for i := len(out) - 1; i >= 0; i-- {
		out[i]--
		if out[i] != 0xff {
			break
		}
	}
	return out
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := range b {
		keep := p.Bits() - i*8
		switch {
		case keep <= 0:
			b[i] = 0xff
		case keep < 8:
			b[i] |= 0xff >> keep
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
