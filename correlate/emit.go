package correlate

import (
	"fmt"
	"slices"
)

// maxExamples bounds the trace numbers an anomaly lists.
const maxExamples = 10

// emit finishes a trace: crossing order, deltas, rewrites, loss and gaps,
// pairing, statistics, anomalies. Then hands it to the sink. Without a
// sink, what only the trace's report needs (its hops, rewrites,
// addresses) is not built: the statistics, anomalies and summary are the
// same. With Config.Async that report is built, and handed to the sink,
// by the builder (its goroutine, or with Helped any goroutine calling
// Help), from a copy of t (async.go).
func (e *Engine) emit(t *trace) {
	e.ownersOf = nil
	if s := e.cfg.Sampler; s != nil {
		// The clock pre-pass also checks the points' order: the analysis
		// proper can then start in the traffic's (pipeline/clocks.go).
		if e.order != nil {
			e.order.add(t)
		}
		order, _, _ := e.crossing(t)
		s.addTrace(t, order, e.dirCertain)
		return
	}
	out := &e.out
	out.reset()
	build := e.sink != nil && e.async == nil
	if build {
		e.describe(t, out)
	} else {
		out.N, out.Protocol = t.n, t.key.Proto
	}
	if e.order != nil {
		e.order.add(t)
	}
	order, prev, forward := e.crossing(t)
	out.dirCertain = e.dirCertain
	out.Direction = Forward
	if !forward {
		out.Direction = Reverse
	}
	e.sum.Traces++
	e.byProto[out.Protocol]++ // into sum.ByProto at the end: no string hashing per trace
	negative := e.deltas(t, order, prev)
	lostAt := e.lossFindings(t, out, forward)
	e.hopFindings(t, out, order, negative)
	e.mtuFindings(t, out, order, lostAt, forward)
	e.pair(t, out, order)
	switch {
	case build:
		e.buildHops(t, out, order, prev)
		e.sink(out)
	case e.sink != nil:
		e.async.hand(t, out, order, prev)
	}
}

// describe fills what the trace is: protocol, type and the first hop's
// addresses, ports and ids.
func (e *Engine) describe(t *trace, out *Trace) {
	h0 := &t.hops[0]
	out.N = t.n
	out.key = t.key
	out.Protocol = t.key.Proto
	out.Type = typeName(t.key)
	if h0.hasEcho {
		out.ID = someU(uint64(h0.echoID))
	}
	switch t.key.Proto {
	case ProtoICMP, ProtoICMPv6, ProtoTCP:
		out.Seq = someU(uint64(t.key.Seq))
	}
	if t.hasIPID {
		out.IPID = someU(uint64(t.ipid))
	}
	ips := &t.ips[h0.ips]
	out.SrcIP, out.DstIP = addr(ips.src), addr(ips.dst)
	if t.key.Proto == ProtoARP {
		out.SrcIP, out.DstIP = addr(t.key.Addr1), addr(t.key.Addr2)
	}
	if h0.hasPorts {
		out.SrcPort, out.DstPort = someU(uint64(h0.sport)), someU(uint64(h0.dport))
	}
	out.Length = int(t.wireLen)
}

// delta is hop hi's delta from hop pi (its previous in crossing order)
// and the uncertainty of the clocks between them.
func (e *Engine) delta(t *trace, hi, pi int) (d, unc int64) {
	h, p := &t.hops[hi], &t.hops[pi]
	d = h.time - p.time
	if a, b := &e.cfg.Points[p.point], &e.cfg.Points[h.point]; a.Clock != b.Clock {
		unc = a.ClockUncertainty + b.ClockUncertainty
	}
	return d, unc
}

// deltas records the latency samples of the hops in crossing order and
// flags clocks that disagree; true when a delta is negative.
func (e *Engine) deltas(t *trace, order, prev []int) (negative bool) {
	for i, hi := range order {
		if prev[i] < 0 {
			continue
		}
		h, p := &t.hops[hi], &t.hops[prev[i]]
		d, unc := e.delta(t, hi, prev[i])
		a, b := &e.cfg.Points[p.point], &e.cfg.Points[h.point]
		switch {
		case d < 0 && a.Clock != b.Clock && -d > max(ClockMinOffset, unc) && !h.refl:
			e.clockSkew(t.n, a.Name, b.Name, d)
		case d < 0:
			negative = true
		}
		if !h.refl {
			e.latency(p.point, h.point).add(d)
		}
	}
	return negative
}

// buildHops appends the hops in crossing order, with their deltas, and
// the rewrites between them. It reads only t and the points' names and
// clocks: the builder runs it too, perhaps on another goroutine (async.go).
func (e *Engine) buildHops(t *trace, out *Trace, order, prev []int) {
	for i, hi := range order {
		h := &t.hops[hi]
		var d, unc int64
		if prev[i] >= 0 {
			d, unc = e.delta(t, hi, prev[i])
			e.rewrites(out, t, &t.hops[prev[i]], h)
		}
		// Built in place: a Hop is large, and a copy per hop shows.
		out.Hops = append(out.Hops, Hop{})
		hop := &out.Hops[len(out.Hops)-1]
		hop.Point = e.cfg.Points[h.point].Name
		hop.Time = Timestamp(h.stamp)
		hop.DeltaNs = d
		hop.UncertaintyNs = unc
		hop.ClockOffsetNs = h.stamp - h.time
		hop.Dir = h.dir
		hop.Frame = int(h.num)
		hop.Reflection = h.refl
		// Field by field: an OptMAC built whole goes through the stack in
		// 4-, 2- and 1-byte stores read back as 4-byte loads, which the
		// CPU cannot forward (~60% of this function's time, perf annotate).
		if h.hasSrc {
			hop.SrcMAC.V, hop.SrcMAC.Valid = h.src, true
		}
		if h.hasDst {
			hop.DstMAC.V, hop.DstMAC.Valid = h.dst, true
		}
		if h.hasTTL {
			hop.TTL = someU(uint64(h.ttl))
		}
		if h.encap > 0 {
			hop.Encap = encapRep(&t.encaps[h.encap-1])
		}
	}
}

// lossFindings judges loss and gaps against each point's coverage; it
// returns the position the frame was lost after, or -1.
func (e *Engine) lossFindings(t *trace, out *Trace, forward bool) int {
	lostAt, offPath := e.lossAndGaps(t, out, forward)
	e.countCrossings(t, forward, lostAt < 0 && !offPath)
	if offPath {
		e.sum.OffPath++
		if t.flow != nil && !t.flow.offPath {
			t.flow.offPath = true
			e.sum.OffPathFlows++
		}
		if t.seen&(t.seen-1) == 0 {
			e.offPathOnePoint++
		}
	}
	if lostAt >= 0 {
		out.LostAfter = e.cfg.Points[lostAt].Name
		e.sum.Lost++
		e.flag(out, FlagLost)
		e.anomaly(KindLoss, out.LostAfter, t.n, func() string {
			return fmt.Sprintf("frames last seen at %s, never at the capturing points after it", out.LostAfter)
		})
	}
	if len(out.Missing) > 0 {
		e.sum.WithGaps++
		e.flag(out, FlagGap)
		for _, m := range out.Missing {
			e.anomaly(KindGap, m, t.n, func() string {
				return fmt.Sprintf("%s did not see frames that crossed it (bridge not in promiscuous mode, or dropped at an input hook?)", m)
			})
		}
	}
	if lostAt < 0 && !offPath && len(out.Missing) == 0 {
		e.sum.Complete++
	}
	return lostAt
}

// hopFindings flags reflections, duplicates, flooding, negative deltas,
// fragments and frames over a link's MTU.
func (e *Engine) hopFindings(t *trace, out *Trace, order []int, negative bool) {
	flood := isFlood(t)
	for _, hi := range order {
		h := &t.hops[hi]
		if !h.refl {
			continue
		}
		name := e.cfg.Points[h.point].Name
		if flood {
			e.anomaly(KindReflection, name, t.n, func() string { return "broadcast came back to the point it left (bridge hairpin mode)" })
		} else {
			e.anomaly(KindFlooding, name, t.n, func() string {
				return "unicast frame came back to its sender's side: the bridge flooded it (destination MAC unknown to the bridge)"
			})
		}
		e.flag(out, FlagReflection)
	}
	if t.dup {
		e.flag(out, FlagDuplicate)
		e.anomaly(KindDuplicate, e.cfg.Points[t.hops[0].point].Name, t.n, func() string { return "the same frame seen twice at one point within 1 ms" })
	}
	if negative {
		e.flag(out, FlagNegativeDelta)
		e.anomaly(KindNegativeDelta, "", t.n, func() string {
			return "a later point stamped the frame before an earlier one (clock or stamping order; reported as captured)"
		})
	}
	for _, hi := range order {
		h := &t.hops[hi]
		if h.frag {
			e.flag(out, FlagFragment)
			e.anomaly(KindFragmentation, e.cfg.Points[h.point].Name, t.n, func() string { return "IP fragments" })
			break
		}
	}
}

// mtuFindings names the hop whose MTU is smaller than the packets it was
// asked to carry: a point that saw a packet larger than its MTU, or else
// the point right after where the frame was lost, if the packet there was
// larger than that point's MTU (a veth drops a frame its peer's MTU does
// not fit, before any capture on it sees the frame).
func (e *Engine) mtuFindings(t *trace, out *Trace, order []int, lostAt int, forward bool) {
	for _, hi := range order {
		h := &t.hops[hi]
		if !h.refl && e.overMTUAt(t, out, h.point, h.ipLen) {
			return
		}
	}
	if lostAt < 0 {
		return
	}
	next := lostAt + 1
	if !forward {
		next = lostAt - 1
	}
	if next < 0 || next >= len(e.cfg.Points) {
		return
	}
	for _, hi := range order {
		if h := &t.hops[hi]; h.point == lostAt && !h.refl {
			e.overMTUAt(t, out, next, h.ipLen)
			return
		}
	}
}

// overMTUAt flags the trace when an IP packet of ipLen bytes does not fit
// point p's MTU; the anomaly's message is written once every size is known
// (result).
func (e *Engine) overMTUAt(t *trace, out *Trace, p int, ipLen int32) bool {
	mtu := e.cfg.Points[p].MTU
	if mtu <= 0 || int(ipLen) <= mtu {
		return false
	}
	e.flag(out, FlagOverMTU)
	e.anomaly(KindOverMTU, e.cfg.Points[p].Name, t.n, func() string { return "" })
	r, ok := e.overMTU[p]
	if !ok {
		r = [2]int32{ipLen, ipLen}
	}
	e.overMTU[p] = [2]int32{min(r[0], ipLen), max(r[1], ipLen)}
	return true
}

// clockSkew: a frame reached b before it left a by more than the clocks'
// known difference: their offset is off, or was never estimated.
func (e *Engine) clockSkew(n int, a, b string, d int64) {
	at := a + "→" + b
	e.anomaly(KindClock, at, n, func() string {
		return fmt.Sprintf("%s stamped frames %.1f µs before %s sent them: the two captures' clocks differ by more than was corrected (see clock_offsets; --clock-offset declares one)",
			b, float64(-d)/1e3, a)
	})
}

func (e *Engine) flag(out *Trace, f Flag) {
	if !slices.Contains(out.Flags, f) {
		out.Flags = append(out.Flags, f)
	}
}

// latency is the statistics of the hop pair from → to. The map keeps them
// for the result; a flat index finds them per hop without hashing.
func (e *Engine) latency(from, to int) *latency {
	i := from*len(e.cfg.Points) + to
	if l := e.lat[i]; l != nil {
		return l
	}
	l := &latency{}
	e.stats[[2]int{from, to}] = l
	e.lat[i] = l
	return l
}

// anomaly counts a finding. msg builds the message only the first time a
// kind/point pair is seen, so a flood of losses formats nothing per frame.
func (e *Engine) anomaly(kind AnomalyKind, point string, n int, msg func() string) {
	k := anomalyKey{kind, point}
	a := e.anomalies[k]
	if a == nil {
		a = &Anomaly{Kind: kind, Severity: kind.Severity(), Point: point, Message: msg(), Traces: []int{}}
		e.anomalies[k] = a
		e.anomOrder = append(e.anomOrder, k)
	}
	a.Count++
	if len(a.Traces) < maxExamples && !slices.Contains(a.Traces, n) {
		a.Traces = append(a.Traces, n)
	}
}
