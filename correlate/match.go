package correlate

import "net/netip"

// match puts f into the trace it belongs to: an active one with its key
// that has not crossed f's point yet, one it is a reflection of, or a new
// one.
func (e *Engine) match(f *Frame) {
	kh := keyHash(&f.Key)
	head := e.active.get(kh)
	// Join the nearest trace in time still missing this point, so a
	// retransmission 200 ms later does not join a lost original; among
	// traces within dupWindow of that nearest distance, the oldest (frames
	// on one path keep their order). Two passes keep the choice independent
	// of the chain's order. Parallel pings can carry the same seq and
	// payload under different echo ids: where a trace with f's own id is a
	// candidate, only such traces are (masquerade rewrites the id, so a
	// different one is still allowed when nothing else matches).
	//
	// The first pass keeps the traces f may join or reflect (its key and
	// addresses, within the window) with their distance, so the second
	// does not compare keys again; a chain with more than fit is walked
	// twice.
	var cands [8]candidate
	nc := 0
	nearest := int64(-1)
	ownID := false
	group := toGroup(f)
	for t := head; t != nil; t = t.nextSame {
		if !t.key.equal(&f.Key) || !addrCompatible(t, f, group) {
			continue
		}
		d, ok := e.distance(t, f.Time)
		if !ok {
			continue
		}
		if nc < len(cands) {
			cands[nc] = candidate{t, d}
		}
		nc++
		if t.seen&(1<<uint(f.Point)) != 0 {
			continue
		}
		same := sameEchoID(t, f)
		if same && !ownID {
			ownID, nearest = true, -1
		}
		if (same || !ownID) && (nearest < 0 || d < nearest) {
			nearest = d
		}
	}
	all := cands[:min(nc, len(cands))]
	if nc > len(cands) {
		e.manyCands = e.manyCands[:0]
		for t := head; t != nil; t = t.nextSame {
			if !t.key.equal(&f.Key) || !addrCompatible(t, f, group) {
				continue
			}
			if d, ok := e.distance(t, f.Time); ok {
				e.manyCands = append(e.manyCands, candidate{t, d})
			}
		}
		all = e.manyCands
	}
	var join, refl *trace
	for _, c := range all {
		t, d := c.t, c.d
		if t.seen&(1<<uint(f.Point)) == 0 {
			if d <= nearest+dupWindow && (!ownID || sameEchoID(t, f)) && (join == nil || t.n < join.n) {
				join = t
			}
			continue
		}
		if refl == nil && echoCompatible(t, f) && e.isReflection(t, f) {
			refl = t
		}
	}
	switch {
	case join != nil:
		e.addHop(join, f, false)
	case refl != nil:
		e.addHop(refl, f, true)
	default:
		t := e.newTrace(f)
		t.kh = kh
		for o := head; o != nil; o = o.nextSame {
			if o.key.equal(&f.Key) && o.seen&(1<<uint(f.Point)) != 0 && echoCompatible(o, f) && addrCompatible(o, f, group) && absDiff(o.timeAt(f.Point), f.Time) <= dupWindow {
				o.dup, t.dup = true, true
			}
		}
		t.nextSame = head
		e.active.set(kh, t)
		e.addHop(t, f, false)
	}
}

// candidate is an active trace a frame may join, and its distance.
type candidate struct {
	t *trace
	d int64
}

// sameEchoID: f and t's first hop carry the same echo id.
func sameEchoID(t *trace, f *Frame) bool {
	h := &t.hops[0]
	return f.HasEchoID && h.hasEcho && h.echoID == f.EchoID
}

// addrCompatible: a frame to a multicast or broadcast address (group:
// toGroup(f)) is one no NAT rewrites: from another source it is another
// frame, however alike (two nodes' bridges send the same IGMP report).
func addrCompatible(t *trace, f *Frame, group bool) bool {
	return !group || t.ips[t.hops[0].ips].src == f.SrcIP
}

// toGroup: f is sent to a multicast or the broadcast address. Once per
// frame, not per trace it is compared with.
func toGroup(f *Frame) bool {
	d := f.DstIP
	return d.IsValid() && (d.IsMulticast() || d == netip.AddrFrom4([4]byte{255, 255, 255, 255}))
}

// echoCompatible: f may be the very frame t is (a duplicate, a reflection):
// frames with different echo ids at one point are different frames.
func echoCompatible(t *trace, f *Frame) bool {
	h := &t.hops[0]
	return !f.HasEchoID || !h.hasEcho || h.echoID == f.EchoID
}

// timeAt is the stamp of t's (first) hop at point p.
func (t *trace) timeAt(p int) int64 {
	for i := range t.hops {
		if t.hops[i].point == p {
			return t.hops[i].time
		}
	}
	return t.last
}

// dupWindow: the same frame twice at one point this close, not reflected,
// is a duplicate rather than a new transmission.
const dupWindow int64 = 1e6

// reflectWindow bounds a reflection: a bridge hairpin returns a frame within
// microseconds (and the copy keeps the original's receive stamp), while a
// retransmission of an identical frame comes milliseconds (TCP fast
// retransmit) to seconds later.
const reflectWindow int64 = 10e6

// reflectEntry: a hairpin copy comes back to the point the frame entered
// by within this (the bridge floods it in the same softirq).
const reflectEntry int64 = 1e6

// distance from ts to the span of t's hops, and whether it is within the window.
func (e *Engine) distance(t *trace, ts int64) (int64, bool) {
	first := t.first
	var d int64
	switch {
	case ts < first:
		d = first - ts
	case ts > t.last:
		d = ts - t.last
	}
	return d, d <= e.window
}

// isReflection: f is at a point t already crossed, within reflectWindow of
// t's last hop. Where the capture records direction, a reflection comes back
// the other way; otherwise it must come after t reached a neighbouring point.
func (e *Engine) isReflection(t *trace, f *Frame) bool {
	if len(t.hops) >= maxHops || f.Time-t.last > reflectWindow {
		return false
	}
	for i := range t.hops {
		h := &t.hops[i]
		if h.point != f.Point || h.refl {
			continue
		}
		if h.dir != DirUnknown && f.Dir != DirUnknown {
			return h.dir != f.Dir
		}
	}
	// A copy returns through the points it crossed last first, within
	// microseconds: seen again first at the point it entered by, and
	// milliseconds later, it is a new transmission of the same bytes
	// (arping's identical requests), not a reflection.
	if f.Point == t.hops[0].point && f.Time-t.last > reflectEntry && !t.hops[len(t.hops)-1].refl {
		return false
	}
	for i := range t.hops {
		if d := t.hops[i].point - f.Point; (d == 1 || d == -1) && t.hops[i].time <= f.Time {
			return true
		}
	}
	// A flooded frame (broadcast, multicast) seen again where it was: the
	// bridge's hairpin sent it back; nothing else returns it unchanged so
	// soon. (Captures that share no neighbour still tell it this way.)
	return f.HasDstMAC && f.DstMAC.IsMulticast() || !f.HasDstMAC && floodKey(&f.Key)
}

func (e *Engine) newTrace(f *Frame) *trace {
	var t *trace
	if n := len(e.free); n > 0 {
		t = e.free[n-1]
		e.free = e.free[:n-1]
		// Cleared in place and its slices kept: a literal would be built
		// aside and copied over.
		hops, encaps, ips := t.hops[:0], t.encaps[:0], t.ips[:0]
		*t = trace{}
		t.hops, t.encaps, t.ips = hops, encaps, ips
	} else {
		// Room for a hop at every point, the common trace; one with
		// reflections or duplicates grows (and keeps that when recycled).
		// Two hops more each took 8 MiB of a flood's peak RSS (bench/README).
		t = &trace{hops: make([]hop, 0, len(e.cfg.Points))}
	}
	t.n = e.next
	e.next++
	t.key = f.Key
	t.flow = e.flowOf(f)
	t.last, t.first = f.Time, f.Time
	e.queue.Push(t)
	e.learnOrigin(f)
	return t
}

func (e *Engine) addHop(t *trace, f *Frame, refl bool) {
	if len(t.hops) >= maxHops {
		return
	}
	stamp := f.stamp()
	var encap uint8
	if f.Encap.Type != EncapNone && len(t.encaps) < 255 {
		t.encaps = append(t.encaps, f.Encap)
		encap = uint8(len(t.encaps))
	}
	if len(t.hops) == 0 {
		t.ipid, t.hasIPID, t.wireLen = f.IPID, f.HasIPID, int32(f.WireLen)
	}
	// At most one pair per hop, and at most maxHops hops: the index fits.
	ips := len(t.ips) - 1
	if ips < 0 || t.ips[ips].src != f.SrcIP || t.ips[ips].dst != f.DstIP {
		t.ips = append(t.ips, ipPair{f.SrcIP, f.DstIP})
		ips++
	}
	// Grown, then set in place, instead of appending a literal, which is
	// built on the stack and copied.
	n := len(t.hops)
	if n < cap(t.hops) {
		t.hops = t.hops[:n+1]
	} else {
		t.hops = append(t.hops, hop{})
	}
	h := &t.hops[n]
	*h = hop{} // a recycled trace's slot: no field left from before
	h.point, h.time, h.stamp, h.num, h.ipLen = f.Point, f.Time, stamp, int32(f.Num), int32(f.IPLen)
	h.src, h.dst, h.sport, h.dport, h.echoID = f.SrcMAC, f.DstMAC, f.SrcPort, f.DstPort, f.EchoID
	h.dir, h.ttl, h.encap, h.ips = f.Dir, f.TTL, encap, uint8(ips)
	h.hasSrc, h.hasDst, h.hasTTL, h.hasPorts, h.hasEcho = f.HasSrcMAC, f.HasDstMAC, f.HasTTL, f.HasPorts, f.HasEchoID
	h.frag, h.refl = f.Fragment, refl
	if !refl {
		e.link(f.Point, t.seen)
		t.seen |= 1 << uint(f.Point)
		if t.flow != nil {
			t.flow.seen |= 1 << uint(f.Point)
		}
		if f.HasTTL && (t.ttlMixed || t.ttl != f.TTL) {
			for i := range t.hops {
				h := &t.hops[i]
				if d := h.point - f.Point; (d == 1 || d == -1) && h.hasTTL && h.ttl != f.TTL {
					e.routed |= 1 << uint(max(h.point, f.Point))
				}
			}
		}
	}
	if f.HasTTL {
		t.ttlMixed = t.ttlMixed || t.hasTTL && t.ttl != f.TTL
		t.ttl, t.hasTTL = f.TTL, true
	}
	t.last = max(t.last, f.Time)
	t.first = min(t.first, f.Time)
}
