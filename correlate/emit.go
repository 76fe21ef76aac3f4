package correlate

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
)

// maxExamples bounds the trace numbers an anomaly lists.
const maxExamples = 10

// emit finishes a trace: crossing order, deltas, rewrites, loss and gaps,
// pairing, statistics, anomalies. Then hands it to the sink.
func (e *Engine) emit(t *trace) {
	out := &e.out
	*out = Trace{
		Hops:     out.Hops[:0],
		Missing:  out.Missing[:0],
		Rewrites: out.Rewrites[:0],
		Flags:    out.Flags[:0],
	}
	h0 := &t.hops[0]
	out.N = t.n
	out.Protocol = t.key.Proto.String()
	out.Type = typeName(t.key)
	if h0.hasEcho {
		out.ID = someU(uint64(h0.echoID))
	}
	switch t.key.Proto {
	case ProtoICMP, ProtoICMPv6, ProtoTCP:
		out.Seq = someU(uint64(t.key.Seq))
	}
	if h0.hasIPID {
		out.IPID = someU(uint64(h0.ipid))
	}
	out.SrcIP, out.DstIP = addr(h0.srcIP), addr(h0.dstIP)
	if t.key.Proto == ProtoARP {
		out.SrcIP, out.DstIP = addr(t.key.Addr1), addr(t.key.Addr2)
	}
	if h0.hasPorts {
		out.SrcPort, out.DstPort = someU(uint64(h0.sport)), someU(uint64(h0.dport))
	}
	out.Length = int(h0.wireLen)

	order, prev, forward := e.crossing(t)
	if forward {
		out.Direction = "forward"
	} else {
		out.Direction = "reverse"
	}
	e.sum.Traces++
	e.sum.ByProto[out.Protocol]++

	negative := false
	for i, hi := range order {
		h := &t.hops[hi]
		var d int64
		if prev[i] >= 0 {
			p := &t.hops[prev[i]]
			d = h.time - p.time
			if d < 0 {
				negative = true
			}
			e.rewrites(out, p, h)
			if !h.refl {
				e.latency(p.point, h.point).add(d)
			}
		}
		hop := Hop{
			Point:      e.cfg.Points[h.point].Name,
			Time:       Timestamp(h.time),
			DeltaNs:    d,
			Frame:      int(h.num),
			Reflection: h.refl,
		}
		if h.hasSrc {
			hop.SrcMAC = someMAC(h.src)
		}
		if h.hasDst {
			hop.DstMAC = someMAC(h.dst)
		}
		if h.hasTTL {
			hop.TTL = someU(uint64(h.ttl))
		}
		switch h.dir {
		case DirIn:
			hop.Dir = "in"
		case DirOut:
			hop.Dir = "out"
		}
		out.Hops = append(out.Hops, hop)
	}

	// Loss and gaps, judged against each point's coverage.
	lostAt := e.lossAndGaps(t, out, forward)
	if lostAt >= 0 {
		out.LostAfter = e.cfg.Points[lostAt].Name
		e.sum.Lost++
		e.flag(out, "lost")
		e.anomaly("loss", out.LostAfter, "warning", t.n, func() string {
			return fmt.Sprintf("frames last seen at %s, never at the capturing points after it", out.LostAfter)
		})
	}
	if len(out.Missing) > 0 {
		e.sum.WithGaps++
		e.flag(out, "gap")
		for _, m := range out.Missing {
			e.anomaly("gap", m, "warning", t.n, func() string {
				return fmt.Sprintf("%s did not see frames that crossed it (bridge not in promiscuous mode, or dropped at an input hook?)", m)
			})
		}
	}
	if lostAt < 0 && len(out.Missing) == 0 {
		e.sum.Complete++
	}

	// Reflections, duplicates, flooding.
	flood := isFlood(t)
	for _, hi := range order {
		h := &t.hops[hi]
		if !h.refl {
			continue
		}
		name := e.cfg.Points[h.point].Name
		if flood {
			e.anomaly("reflection", name, "info", t.n, func() string { return "broadcast came back to the point it left (bridge hairpin mode)" })
		} else {
			e.anomaly("flooding", name, "warning", t.n, func() string {
				return "unicast frame came back to its sender's side: the bridge flooded it (destination MAC unknown to the bridge)"
			})
		}
		e.flag(out, "reflection")
	}
	if t.dup {
		e.flag(out, "duplicate")
		e.anomaly("duplicate", e.cfg.Points[h0.point].Name, "warning", t.n, func() string { return "the same frame seen twice at one point within 1 ms" })
	}
	if negative {
		e.flag(out, "negative-delta")
		e.anomaly("negative-delta", "", "info", t.n, func() string {
			return "a later point stamped the frame before an earlier one (clock or stamping order; reported as captured)"
		})
	}
	for _, hi := range order {
		h := &t.hops[hi]
		if h.frag {
			e.flag(out, "fragment")
			e.anomaly("fragmentation", e.cfg.Points[h.point].Name, "info", t.n, func() string { return "IP fragments" })
			break
		}
	}
	for _, hi := range order {
		h := &t.hops[hi]
		if mtu := e.cfg.Points[h.point].MTU; mtu > 0 && int(h.ipLen) > mtu {
			e.flag(out, "over-mtu")
			e.anomaly("over-mtu", e.cfg.Points[h.point].Name, "warning", t.n, func() string { return fmt.Sprintf("IP packet of %d bytes on a link with MTU %d", h.ipLen, mtu) })
			break
		}
	}

	e.pair(t, out, order)
	if e.sink != nil {
		e.sink(out)
	}
}

func (e *Engine) flag(out *Trace, f string) {
	if !slices.Contains(out.Flags, f) {
		out.Flags = append(out.Flags, f)
	}
}

func (e *Engine) latency(from, to int) *latency {
	k := [2]int{from, to}
	l := e.stats[k]
	if l == nil {
		l = &latency{}
		e.stats[k] = l
	}
	return l
}

// anomaly counts a finding. msg builds the message only the first time a
// kind/point pair is seen, so a flood of losses formats nothing per frame.
func (e *Engine) anomaly(kind, point, severity string, n int, msg func() string) {
	k := anomalyKey{kind, point}
	a := e.anomalies[k]
	if a == nil {
		a = &Anomaly{Kind: kind, Severity: severity, Point: point, Message: msg(), Traces: []int{}}
		e.anomalies[k] = a
		e.anomOrder = append(e.anomOrder, k)
	}
	a.Count++
	if len(a.Traces) < maxExamples && !slices.Contains(a.Traces, n) {
		a.Traces = append(a.Traces, n)
	}
}

// isFlood: a frame a bridge floods to every port.
func isFlood(t *trace) bool {
	for i := range t.hops {
		if t.hops[i].hasDst {
			return t.hops[i].dst.IsMulticast()
		}
	}
	// No destination MAC recorded (SLL): requests of ARP and ND are broadcast
	// or multicast by nature.
	return (t.key.Proto == ProtoARP && t.key.Kind == 1) || (t.key.Proto == ProtoND && t.key.Kind != 136)
}

// crossing returns the hop indices in crossing order, for each the index of
// the hop its delta is measured from (-1 for the first), and the direction.
// Order follows topology, not stamps: forward frames go up the path order,
// reverse ones down; a flood that starts mid-path lists the side it heads to
// first, then the other side from the origin again.
func (e *Engine) crossing(t *trace) (order, prev []int, forward bool) {
	order, prev = e.scratch[:0], nil
	main := order
	for i := range t.hops {
		if !t.hops[i].refl {
			main = append(main, i)
		}
	}
	forward = e.direction(t, main)
	pos := func(i int) int {
		if forward {
			return t.hops[i].point
		}
		return -t.hops[i].point
	}
	origin := main[0]
	for _, i := range main[1:] {
		if t.hops[i].time < t.hops[origin].time || (t.hops[i].time == t.hops[origin].time && pos(i) < pos(origin)) {
			origin = i
		}
	}
	branch := false
	if isFlood(t) {
		branch = true
		for _, i := range main {
			if pos(i) < pos(origin) && t.hops[i].time < t.hops[origin].time {
				branch = false
			}
		}
		behind := 0
		for _, i := range main {
			if pos(i) < pos(origin) {
				behind++
			}
		}
		branch = branch && behind > 0
	}
	if branch {
		op := pos(origin)
		slices.SortFunc(main, func(a, b int) int {
			da, db := pos(a)-op, pos(b)-op
			// ahead side (>= 0) first, by distance; then behind, by distance
			if (da >= 0) != (db >= 0) {
				if da >= 0 {
					return -1
				}
				return 1
			}
			return abs(da) - abs(db)
		})
	} else {
		slices.SortFunc(main, func(a, b int) int { return pos(a) - pos(b) })
	}
	prev = e.prevScratch[:0]
	for k, i := range main {
		switch {
		case k == 0:
			prev = append(prev, -1)
		case branch && pos(i) < pos(origin) && pos(main[k-1]) >= pos(origin):
			prev = append(prev, origin)
		default:
			prev = append(prev, main[k-1])
		}
	}
	order = main
	// Reflections after the main hops, by time; each measured from the hop
	// it most likely came from: the latest earlier hop at a neighbouring point.
	refl := len(order)
	for i := range t.hops {
		if t.hops[i].refl {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order[refl:], func(a, b int) int { return cmp64(t.hops[a].time, t.hops[b].time) })
	for k := refl; k < len(order); k++ {
		h := &t.hops[order[k]]
		from := order[k-1]
		best := int64(-1 << 63)
		for _, j := range order[:k] {
			g := &t.hops[j]
			if d := g.point - h.point; d >= -1 && d <= 1 && g.time <= h.time && g.time > best && j != order[k] {
				best, from = g.time, j
			}
		}
		prev = append(prev, from)
	}
	e.scratch, e.prevScratch = order, prev
	return order, prev, forward
}

// direction: forward when the frame goes up the path order. The owners of
// its addresses decide where known; otherwise the stamps (mostly increasing
// along the path order: forward); without stamps to tell (one hop, all
// ties), the position: at the path's start forward, at its end reverse, in
// the middle the side the destination is on.
func (e *Engine) direction(t *trace, main []int) bool {
	// Where the frame's addresses live on the path decides, when known:
	// topology, not stamps, which can tie or invert between two points.
	if src, dst := e.source(t), e.destination(t); src >= 0 && dst >= 0 && src != dst {
		return dst > src
	}
	s := 0
	for a := 0; a < len(main); a++ {
		for b := a + 1; b < len(main); b++ {
			ha, hb := &t.hops[main[a]], &t.hops[main[b]]
			dp := sign(hb.point - ha.point)
			switch {
			case ha.time < hb.time:
				s += dp
			case ha.time > hb.time:
				s -= dp
			}
		}
	}
	if s != 0 {
		return s > 0
	}
	n := len(e.cfg.Points)
	p := t.hops[main[0]].point
	if d := e.destination(t); d >= 0 && d != p {
		return d > p
	}
	return !(p == n-1 && n > 1)
}

// source is the position of the owner of the frame's source address (the
// sender IP for ARP), or -1 when unknown.
func (e *Engine) source(t *trace) int {
	ip := t.hops[0].srcIP
	if t.key.Proto == ProtoARP {
		ip = t.key.Addr1
	}
	if !ip.IsValid() {
		return -1
	}
	if o, ok := e.cfg.IPOwners[ip]; ok {
		return o.Point
	}
	return e.learned(e.ipOrigin, ip)
}

// destination is the position the frame is addressed to, where known: the
// owner of its destination IP (target IP for ARP requests), else of its
// destination MAC. -1 when unknown.
func (e *Engine) destination(t *trace) int {
	h0 := &t.hops[0]
	var ip netip.Addr
	switch t.key.Proto {
	case ProtoARP:
		if t.key.Kind == 1 {
			ip = t.key.Addr2
		}
	case ProtoND:
		if t.key.Kind == 135 {
			ip = t.key.Addr1
		} else {
			ip = h0.dstIP
		}
	default:
		ip = h0.dstIP
	}
	if ip.IsValid() {
		if o, ok := e.cfg.IPOwners[ip]; ok {
			return o.Point
		}
		if p := e.learned(e.ipOrigin, ip); p >= 0 {
			return p
		}
		if t.key.Proto != ProtoARP && t.key.Proto != ProtoND {
			return -1 // routed IP: the MAC only names the next hop
		}
	}
	for i := range t.hops {
		if h := &t.hops[i]; h.hasDst && !h.dst.IsMulticast() {
			if o, ok := e.cfg.MACOwners[h.dst]; ok {
				return o.Point
			}
			return e.learnedMAC(h.dst)
		}
	}
	return -1
}

func (e *Engine) learned(m map[netip.Addr]*[MaxPoints]int32, ip netip.Addr) int {
	c, ok := m[ip]
	if !ok {
		return -1
	}
	return argmax(c[:len(e.cfg.Points)])
}

func (e *Engine) learnedMAC(mac MAC) int {
	c, ok := e.macOrigin[mac]
	if !ok {
		return -1
	}
	return argmax(c[:len(e.cfg.Points)])
}

// argmax returns the position holding a clear majority (≥ 80%) of origins.
func argmax(c []int32) int {
	best, total := -1, int32(0)
	for i, v := range c {
		total += v
		if best < 0 || v > c[best] {
			best = i
		}
	}
	if total == 0 || c[best]*5 < total*4 {
		return -1
	}
	return best
}

// maxLearned bounds the addresses whose origin is learned, so a capture full
// of distinct addresses (a scan) cannot grow memory without bound.
const maxLearned = 1 << 14

// learnOrigin records where a frame entered the path: a MAC or IP address
// belongs to the point where frames from it originate.
func (e *Engine) learnOrigin(f *Frame) {
	if f.HasSrcMAC && !f.SrcMAC.IsMulticast() {
		c := e.macOrigin[f.SrcMAC]
		if c == nil && len(e.macOrigin) < maxLearned {
			c = new([MaxPoints]int32)
			e.macOrigin[f.SrcMAC] = c
		}
		if c != nil {
			c[f.Point]++
		}
	}
	src := f.SrcIP
	if f.Key.Proto == ProtoARP {
		src = f.Key.Addr1
	}
	if src.IsValid() && !src.IsUnspecified() {
		c := e.ipOrigin[src]
		if c == nil && len(e.ipOrigin) < maxLearned {
			c = new([MaxPoints]int32)
			e.ipOrigin[src] = c
		}
		if c != nil {
			c[f.Point]++
		}
	}
}

// covers reports whether point p was capturing at ts: a live point for the
// time its socket was armed; a file point from its first frame on, and up to
// its last only if it ended early (see Close).
func (e *Engine) covers(p int, ts int64) bool {
	if s := &e.cfg.Points[p]; s.CoverTo != 0 {
		return ts >= s.CoverFrom && ts <= s.CoverTo
	}
	c := &e.cov[p]
	return c.frames > 0 && c.first <= ts && (!c.early || c.last >= ts)
}

// lossAndGaps fills out.Missing and returns the position the frame was lost
// after, or -1.
//
// A gap is a point between two hops that was capturing but did not see the
// frame, which provably crossed it. Loss is a later point on the frame's way
// that was capturing and never saw it.
func (e *Engine) lossAndGaps(t *trace, out *Trace, forward bool) int {
	n := len(e.cfg.Points)
	lo, hi := n, -1
	var loT, hiT int64
	for i := range t.hops {
		h := &t.hops[i]
		if h.refl {
			continue
		}
		if h.point < lo {
			lo, loT = h.point, h.time
		}
		if h.point > hi {
			hi, hiT = h.point, h.time
		}
	}
	for p := lo + 1; p < hi; p++ {
		if t.seen&(1<<uint(p)) == 0 && e.covers(p, loT) {
			out.Missing = append(out.Missing, e.cfg.Points[p].Name)
		}
	}
	// The way ends at the destination, at a routing boundary for frames a
	// router does not forward (ARP, ND, link-local), else at the path's end.
	dest := e.destination(t)
	l2only := t.key.Proto == ProtoARP || t.key.Proto == ProtoND
	if forward {
		end := n - 1
		if dest >= hi {
			end = dest
		}
		for p := hi + 1; p <= end; p++ {
			if l2only && e.routedBefore(p) {
				break
			}
			if e.covers(p, hiT) {
				return hi
			}
		}
	} else {
		end := 0
		if dest >= 0 && dest <= lo {
			end = dest
		}
		for p := lo - 1; p >= end; p-- {
			if l2only && e.routedBefore(p+1) {
				break
			}
			if e.covers(p, loT) {
				return lo
			}
		}
	}
	return -1
}

// routedBefore reports a routing hop between positions p-1 and p, learned
// from TTL decrements seen between them.
func (e *Engine) routedBefore(p int) bool {
	return p > 0 && p < MaxPoints && e.routed&(1<<uint(p)) != 0
}

// rewrites appends the fields outside the key that changed from p to h.
func (e *Engine) rewrites(out *Trace, p, h *hop) {
	at := e.cfg.Points[h.point].Name
	add := func(field, from, to string) {
		out.Rewrites = append(out.Rewrites, Rewrite{Point: at, Field: field, From: from, To: to})
	}
	if p.hasSrc && h.hasSrc && p.src != h.src {
		add("src_mac", p.src.String(), h.src.String())
	}
	if p.hasDst && h.hasDst && p.dst != h.dst {
		add("dst_mac", p.dst.String(), h.dst.String())
	}
	if p.hasTTL && h.hasTTL && p.ttl != h.ttl {
		add("ttl", strconv.Itoa(int(p.ttl)), strconv.Itoa(int(h.ttl)))
	}
	if p.srcIP.IsValid() && h.srcIP.IsValid() && p.srcIP != h.srcIP {
		add("src_ip", p.srcIP.String(), h.srcIP.String())
	}
	if p.dstIP.IsValid() && h.dstIP.IsValid() && p.dstIP != h.dstIP {
		add("dst_ip", p.dstIP.String(), h.dstIP.String())
	}
	if p.hasPorts && h.hasPorts {
		if p.sport != h.sport {
			add("src_port", strconv.Itoa(int(p.sport)), strconv.Itoa(int(h.sport)))
		}
		if p.dport != h.dport {
			add("dst_port", strconv.Itoa(int(p.dport)), strconv.Itoa(int(h.dport)))
		}
	}
	if p.hasEcho && h.hasEcho && p.echoID != h.echoID {
		add("id", strconv.Itoa(int(p.echoID)), strconv.Itoa(int(h.echoID)))
	}
}

// pair links echo replies to their requests and ARP replies to requests.
func (e *Engine) pair(t *trace, out *Trace, order []int) {
	k := t.key
	// first and last in crossing order: the last is where the frame got to
	first, last := &t.hops[order[0]], &t.hops[order[0]]
	for _, i := range order {
		if !t.hops[i].refl {
			last = &t.hops[i]
		}
	}
	switch {
	case (k.Proto == ProtoICMP && k.Kind == 8) || (k.Proto == ProtoICMPv6 && k.Kind == 128):
		ek := echoKey{k.Proto, k.Seq, k.Hash, k.Len}
		h := ek.hash()
		e.echoReq[h] = echoInfo{key: ek, n: t.n, firstPoint: first.point, first: first.time, last: last.time,
			lastSeen: last.point, settled: out.LostAfter != ""}
		e.echoQ.push(pending{h, last.time})
	case (k.Proto == ProtoICMP && k.Kind == 0) || (k.Proto == ProtoICMPv6 && k.Kind == 129):
		ek := echoKey{k.Proto, k.Seq, k.Hash, k.Len}
		h := ek.hash()
		info, ok := e.echoReq[h]
		if !ok || info.key != ek {
			return
		}
		// Answered: forget it now rather than two windows later, so the
		// map holds only requests in flight and stays in cache under a
		// flood. (A second reply to one request then stays unpaired.)
		delete(e.echoReq, h)
		out.ReplyTo = someI(int64(info.n))
		rtt := &e.rtt
		*rtt = RTT{
			ForwardNs:    info.last - info.first,
			TurnaroundNs: first.time - info.last,
			ReverseNs:    last.time - first.time,
		}
		rtt.TotalNs = rtt.ForwardNs + rtt.TurnaroundNs + rtt.ReverseNs
		for _, i := range order {
			if h := &t.hops[i]; h.point == info.firstPoint && !h.refl {
				rtt.TotalNs = h.time - info.first
			}
		}
		out.RTT = rtt
	case k.Proto == ProtoARP && k.Kind == 1:
		// A repeated request replaces the previous one, so its reply pairs
		// with the latest; a previous one nobody answered was a retry's cause.
		ak := arpKey{k.Addr1, k.Addr2}
		if old, ok := e.arpReq[ak]; !ok {
			e.arpQ.push(ak)
		} else if !old.answered {
			e.unansweredARP(ak, old)
		}
		e.arpReq[ak] = arpInfo{n: t.n, time: first.time, point: first.point}
	case k.Proto == ProtoARP && k.Kind == 2:
		ak := arpKey{k.Addr2, k.Addr1}
		if info, ok := e.arpReq[ak]; ok {
			info.answered = true
			e.arpReq[ak] = info
			out.ReplyTo = someI(int64(info.n))
		}
	}
}

// expireRequests reports requests whose answer can no longer come: older
// than two windows behind the newest stamp. A request counts as unanswered
// only if its point went on capturing after it, so a request cut off by the
// end of the capture is not blamed.
func (e *Engine) expireRequests() {
	horizon := e.mark - 2*e.window
	if e.mark == 1<<63-1 {
		horizon = e.mark
	}
	// The queue carries each request's time, so the common case (nothing to
	// expire) touches no map.
	for e.echoQ.len() > 0 && e.echoQ.peek().last <= horizon {
		q := e.echoQ.pop()
		info, ok := e.echoReq[q.h]
		if !ok || info.last != q.last {
			continue // gone, or replaced by a later request with its own entry
		}
		delete(e.echoReq, q.h)
		if !info.settled && e.capturedAfter(info.firstPoint, info.last) {
			e.anomaly("unanswered-echo", e.cfg.Points[info.lastSeen].Name, "warning", info.n, func() string {
				return fmt.Sprintf("echo request never answered; last seen at %s", e.cfg.Points[info.lastSeen].Name)
			})
		}
	}
	for e.arpQ.len() > 0 {
		k := e.arpQ.peek()
		info, ok := e.arpReq[k]
		if ok && info.time > horizon {
			break
		}
		e.arpQ.pop()
		if !ok {
			continue
		}
		delete(e.arpReq, k)
		if !info.answered && e.capturedAfter(info.point, info.time) {
			e.unansweredARP(k, info)
		}
	}
}

// unansweredARP reports a request no reply answered. Gratuitous ARP (sender
// asking for itself) expects no answer.
func (e *Engine) unansweredARP(k arpKey, info arpInfo) {
	if k.sender == k.target {
		return
	}
	e.anomaly("unanswered-arp", e.cfg.Points[info.point].Name, "warning", info.n, func() string { return fmt.Sprintf("ARP request from %s for %s never answered", k.sender, k.target) })
}

// replyGrace is how long after a request its point must have gone on
// capturing before a missing reply counts: replies on a node take µs to ms.
const replyGrace int64 = 100e6

func (e *Engine) capturedAfter(p int, ts int64) bool {
	end := e.cov[p].last
	if s := &e.cfg.Points[p]; s.CoverTo != 0 {
		end = s.CoverTo
	}
	return end > ts+min(replyGrace, e.window)
}

func typeName(k Key) string {
	switch k.Proto {
	case ProtoICMP:
		switch k.Kind {
		case 8:
			return "echo-request"
		case 0:
			return "echo-reply"
		}
	case ProtoICMPv6:
		switch k.Kind {
		case 128:
			return "echo-request"
		case 129:
			return "echo-reply"
		}
	case ProtoARP:
		switch k.Kind {
		case 1:
			return "arp-request"
		case 2:
			return "arp-reply"
		}
		return "arp-op-" + strconv.Itoa(int(k.Kind))
	case ProtoND:
		switch k.Kind {
		case 133:
			return "router-solicitation"
		case 134:
			return "router-advertisement"
		case 135:
			return "neighbor-solicitation"
		case 136:
			return "neighbor-advertisement"
		case 137:
			return "redirect"
		}
	case ProtoTCP:
		return tcpFlags(k.Kind)
	case ProtoUDP:
		return "datagram"
	case ProtoIP:
		return "proto-" + strconv.Itoa(int(k.Kind))
	}
	return "type-" + strconv.Itoa(int(k.Kind))
}

func tcpFlags(f uint8) string {
	names := [...]string{"fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr"}
	order := [...]int{1, 2, 0, 3, 4, 5, 6, 7} // syn, rst, fin, psh, ack...
	s := ""
	for _, b := range order {
		if f&(1<<uint(b)) != 0 {
			if s != "" {
				s += "-"
			}
			s += names[b]
		}
	}
	if s == "" {
		return "none"
	}
	return s
}

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func cmp64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
