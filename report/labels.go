package report

// Trace labels of the timeline: "icmp echo-request seq=1", addresses
// shortened against the path's main pair, MAC names, µs numbers.

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/discover"
)

// mainPair is the two addresses most traces are between: the endpoints of
// a live run, else the commonest pair among the traces that carry IPs.
// Labels leave it out, which keeps them short.
func mainPair(d Document) ([2]netip.Addr, bool) {
	if p := d.Path; p != nil && p.Src.IP.IsValid() && p.Dst.IP.IsValid() {
		return [2]netip.Addr{p.Src.IP, p.Dst.IP}, true
	}
	count := map[[2]netip.Addr]int{}
	var best [2]netip.Addr
	n := 0
	for i := range d.Result.Traces {
		tr := &d.Result.Traces[i]
		if neighbour(tr) || !tr.SrcIP.V.IsValid() || !tr.DstIP.V.IsValid() {
			continue
		}
		k := [2]netip.Addr{tr.SrcIP.V, tr.DstIP.V}
		if k[1].Less(k[0]) {
			k[0], k[1] = k[1], k[0]
		}
		count[k]++
		if count[k] > n {
			best, n = k, count[k]
		}
	}
	if n == 0 {
		return best, false
	}
	// Show the pair the way the first such trace went.
	for i := range d.Result.Traces {
		tr := &d.Result.Traces[i]
		if !neighbour(tr) && tr.SrcIP.V == best[1] && tr.DstIP.V == best[0] {
			return [2]netip.Addr{best[1], best[0]}, true
		}
		if !neighbour(tr) && tr.SrcIP.V == best[0] && tr.DstIP.V == best[1] {
			break
		}
	}
	return best, true
}

// traceLabel is "arp request .2→.3", "icmp echo-request seq=1": protocol,
// type, sequence, and the addresses when they say something the title does
// not (ARP asks about an address; other traces off the main pair).
func traceLabel(tr *correlate.Trace, pair [2]netip.Addr, hasPair bool) string {
	var b strings.Builder
	b.WriteString(tr.Protocol.String())
	if typ := strings.TrimPrefix(tr.Type, tr.Protocol.String()+"-"); typ != "" {
		b.WriteString(" " + typ)
	}
	if tr.Seq.Valid && (tr.Protocol == correlate.ProtoICMP || tr.Protocol == correlate.ProtoICMPv6) {
		fmt.Fprintf(&b, " seq=%d", tr.Seq.V)
	}
	src, dst := tr.SrcIP.V, tr.DstIP.V
	onPair := hasPair && ((src == pair[0] && dst == pair[1]) || (src == pair[1] && dst == pair[0]))
	if (src.IsValid() || dst.IsValid()) && (neighbour(tr) || !onPair || tr.SrcPort.Valid) {
		s, d := shortPair(src, dst)
		if tr.SrcPort.Valid {
			s += ":" + strconv.FormatUint(tr.SrcPort.V, 10)
		}
		if tr.DstPort.Valid {
			d += ":" + strconv.FormatUint(tr.DstPort.V, 10)
		}
		b.WriteString(" " + s + "→" + d)
	}
	return b.String()
}

// neighbour reports ARP and IPv6 neighbour discovery: they ask about an
// address, so their labels always show the addresses.
func neighbour(tr *correlate.Trace) bool {
	return tr.Protocol == correlate.ProtoARP || tr.Protocol == correlate.ProtoND
}

// shortPair drops the prefix two addresses share: ".2"/".3" within a /24,
// ".1.2"/".2.2" within a /16, "::2"/"::3" within an IPv6 /64; else both in
// full.
func shortPair(a, b netip.Addr) (string, string) {
	full := func(x netip.Addr) string {
		if !x.IsValid() {
			return "?"
		}
		return x.String()
	}
	if !a.IsValid() || !b.IsValid() || a.Is4() != b.Is4() {
		return full(a), full(b)
	}
	if a.Is4() {
		x, y := a.As4(), b.As4()
		for keep := 1; keep <= 2; keep++ {
			if string(x[:4-keep]) == string(y[:4-keep]) {
				return v4tail(x, keep), v4tail(y, keep)
			}
		}
		return full(a), full(b)
	}
	x, y := a.As16(), b.As16()
	if a.Zone() == b.Zone() && [8]byte(x[:8]) == [8]byte(y[:8]) {
		return v6tail(x), v6tail(y)
	}
	return full(a), full(b)
}

func v4tail(a [4]byte, n int) string {
	var b strings.Builder
	for _, v := range a[4-n:] {
		b.WriteString("." + strconv.Itoa(int(v)))
	}
	return b.String()
}

// v6tail is the interface identifier as "::…" in the usual hex groups.
func v6tail(a [16]byte) string {
	var groups []string
	for i := 8; i < 16; i += 2 {
		g := uint16(a[i])<<8 | uint16(a[i+1])
		if len(groups) == 0 && g == 0 && i < 14 {
			continue
		}
		groups = append(groups, strconv.FormatUint(uint64(g), 16))
	}
	return "::" + strings.Join(groups, ":")
}

// firstMACs is the source and destination MAC the frame started with: the
// first hop that recorded each (SLL2 captures have no destination MAC).
func firstMACs(tr *correlate.Trace) (src, dst string, ok bool) {
	for _, h := range tr.Hops {
		if src == "" && h.SrcMAC.Valid {
			src = h.SrcMAC.V.String()
		}
		if dst == "" && h.DstMAC.Valid {
			dst = h.DstMAC.V.String()
		}
	}
	if src == "" && dst == "" {
		return "", "", false
	}
	if src == "" {
		src = "?"
	}
	if dst == "" {
		dst = "?"
	}
	return src, dst, true
}

func macName(o owners, mac string) string {
	if mac == "ff:ff:ff:ff:ff:ff" && o[mac] == "" {
		return mac + " (broadcast)"
	}
	return o.label(mac)
}

// fmtMicros is ns in µs with dec decimals (3, 1 or 0), rounded half away
// from zero; 3 decimals is exact.
func fmtMicros(ns int64, dec int) string {
	if dec >= 3 {
		return micros(ns)
	}
	sign := ""
	if ns < 0 {
		sign = "-"
		ns = -ns
	}
	if dec == 1 {
		tenths := (ns + 50) / 100
		return fmt.Sprintf("%s%d.%d", sign, tenths/10, tenths%10)
	}
	return fmt.Sprintf("%s%d", sign, (ns+500)/1000)
}

func signedMicros(ns int64, dec int) string {
	if ns >= 0 {
		return "+" + fmtMicros(ns, dec)
	}
	return fmtMicros(ns, dec)
}

// zeroNotes explain a Δ of exactly zero that is not a measurement: a
// bridge's tap gets the frame with the stamp its ingress port gave it, so
// every hop from a port into its bridge is +0.000. A point qualifies when a
// shown trace reached it at +0 from a point whose every hop to it, in the
// statistics, is 0 (a live run also needs discovery to call it a bridge).
func zeroNotes(d Document, list []correlate.Trace, dec int) []string {
	zero := map[[2]string]bool{}
	for _, h := range d.Result.HopLatency {
		zero[[2]string{h.From, h.To}] = h.Count > 0 && h.MinNs == 0 && h.MaxNs == 0
	}
	bridge := func(p string) bool {
		if d.Path == nil {
			return true
		}
		for _, pt := range d.Path.Points {
			if pt.Name == p {
				return pt.Role == discover.RoleBridge || pt.Role == discover.RoleTunnel
			}
		}
		return false
	}
	var at []string
	for i := range list {
		hops := list[i].Hops
		for j := 1; j < len(hops); j++ {
			h := &hops[j]
			if h.Reflection || hops[j-1].Reflection || h.DeltaNs != 0 || slices.Contains(at, h.Point) {
				continue
			}
			if zero[[2]string{hops[j-1].Point, h.Point}] && bridge(h.Point) {
				at = append(at, h.Point)
			}
		}
	}
	if len(at) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%s at %s: the stamp of the way in (a bridge keeps its ingress port's, a tunnel its underlay's), not a latency",
		signedMicros(0, dec), strings.Join(at, ", "))}
}
