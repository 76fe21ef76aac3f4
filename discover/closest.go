package discover

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// The closest candidates for an endpoint that matched nothing: a node has
// dozens of namespaces (one per process group), so an error names how many
// there are and only the few a user most likely meant.

// closestNames is "41 namespaces on this node, the closest named: a, b, c
// (ip netns list)": named namespaces ranked by the prefix they share with
// arg, then by edit distance.
func closestNames(arg string, cands []candidate, n int) string {
	var named []string
	for _, c := range cands {
		if c.label != "root" && !strings.HasPrefix(c.label, "pid ") {
			named = append(named, c.label)
		}
	}
	head := fmt.Sprintf("%d namespaces on this node", len(cands))
	if len(named) == 0 {
		return head + ", none of them named"
	}
	rank := func(s string) (int, int) { return -commonPrefix(arg, s), editDistance(arg, s) }
	slices.SortFunc(named, func(a, b string) int {
		pa, da := rank(a)
		pb, db := rank(b)
		if pa != pb {
			return pa - pb
		}
		if da != db {
			return da - db
		}
		return strings.Compare(a, b)
	})
	if len(named) > n {
		named = named[:n]
	}
	return fmt.Sprintf("%s, the closest named: %s (ip netns list)", head, strings.Join(named, ", "))
}

// held is an address a namespace holds.
type held struct {
	label string
	addr  netip.Addr
}

// closestAddrs is "; nearest: pod2 10.244.1.3, pod1 10.244.1.2": the
// namespaces holding the addresses that share the most leading bits with
// ip, one entry per namespace.
func closestAddrs(ip netip.Addr, hs []held, n int) string {
	slices.SortStableFunc(hs, func(a, b held) int { return commonBits(ip, b.addr) - commonBits(ip, a.addr) })
	var out []string
	seen := map[string]bool{}
	for _, h := range hs {
		if len(out) == n || commonBits(ip, h.addr) == 0 {
			break
		}
		if !seen[h.label] && !h.addr.IsLoopback() {
			seen[h.label] = true
			out = append(out, h.label+" "+h.addr.String())
		}
	}
	if len(out) == 0 {
		return ""
	}
	return "; nearest: " + strings.Join(out, ", ")
}

func commonBits(a, b netip.Addr) int {
	if a.Is4() != b.Is4() {
		return 0
	}
	x, y := a.As16(), b.As16()
	n := 0
	start := 0
	if a.Is4() {
		start = 12
	}
	for i := start; i < 16; i++ {
		d := x[i] ^ y[i]
		for bit := 7; bit >= 0; bit-- {
			if d&(1<<bit) != 0 {
				return n
			}
			n++
		}
	}
	return n
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
