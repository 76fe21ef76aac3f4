package correlate

import "math/bits"

// isFlood: a frame a bridge floods to every port.
func isFlood(t *trace) bool {
	for i := range t.hops {
		if t.hops[i].hasDst {
			return t.hops[i].dst.IsMulticast()
		}
	}
	// No destination MAC recorded (SLL): requests of ARP and ND are broadcast
	// or multicast by nature.
	return floodKey(&t.key)
}

// floodKey: frames of this key are broadcast or multicast by nature (ARP
// and ND requests).
func floodKey(k *Key) bool {
	return (k.Proto == ProtoARP && k.Kind == ARPRequest) || (k.Proto == ProtoND && k.Kind != NDNeighborAdvert)
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
	forward, e.dirCertain = e.direction(t, main)
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
		// A flood's origin is its earliest sighting: across clocks that
		// can be anywhere, so its crossings are no clock evidence.
		e.dirCertain = e.dirCertain && !e.crossesClocks(t, main)
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
		insertionSort(main, func(a, b int) int {
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
		insertionSort(main, func(a, b int) int { return pos(a) - pos(b) })
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
	insertionSort(order[refl:], func(a, b int) int { return cmp64(t.hops[a].time, t.hops[b].time) })
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

// direction: forward when the frame goes up the path order. Its TTL
// decides where it changed on the way (a frame's TTL only falls); then the
// owners of its addresses where known; otherwise the stamps (mostly
// increasing along the path order: forward); without stamps to tell (one
// hop, all ties), the position: at the path's start forward, at its end
// reverse, in the middle the side the destination is on. certain: decided
// by the TTL or by owners discovery named, not by anything learned from
// stamps — which clocks that disagree turn around.
func (e *Engine) direction(t *trace, main []int) (forward, certain bool) {
	if fwd, ok := ttlDirection(t, main); ok {
		return fwd, true
	}
	// Across clocks, where the frame was first seen says nothing (a clock
	// behind makes it look first): owners discovery named, else the order
	// of its sightings on one clock, before owners learned from stamps.
	if e.crossesClocks(t, main) {
		if src, dst := e.configuredSource(t), e.configuredDestination(t); src >= 0 && dst >= 0 && src != dst {
			return dst > src, true
		}
		if s := e.stampVote(t, main, true); s != 0 {
			return s > 0, true
		}
	}
	// Where the frame's addresses live on the path decides, when known:
	// topology, not stamps, which can tie or invert between two points.
	if src, dst := e.source(t), e.destination(t); src >= 0 && dst >= 0 && src != dst {
		return dst > src, e.configuredOwners(t)
	}
	if s := e.stampVote(t, main, false); s != 0 {
		return s > 0, false
	}
	n := len(e.cfg.Points)
	p := t.hops[main[0]].point
	if d := e.destination(t); d >= 0 && d != p {
		return d > p, false
	}
	return !(p == n-1 && n > 1), false
}

// crossesClocks: the trace's hops are on more than one clock.
func (e *Engine) crossesClocks(t *trace, main []int) bool {
	p := t.hops[main[0]].point
	for _, i := range main[1:] {
		if q := t.hops[i].point; q != p && e.sameClock[p]&(1<<uint(q)) == 0 {
			return true
		}
	}
	return false
}

// sharesClock: two of the points in seen are on one clock.
func (e *Engine) sharesClock(seen uint64) bool {
	for s := seen; s != 0; s &= s - 1 {
		if e.sameClock[bits.TrailingZeros64(s)]&seen != 0 {
			return true
		}
	}
	return false
}

// stampVote: > 0 when the stamps mostly rise along the path order (the
// frame went forward), < 0 when they fall; sameClock counts only pairs of
// hops on one clock.
func (e *Engine) stampVote(t *trace, main []int, sameClock bool) int {
	if sameClock && !e.sharesClock(t.seen) {
		return 0 // every hop on a clock of its own (a file each)
	}
	s := 0
	for a := 0; a < len(main); a++ {
		for b := a + 1; b < len(main); b++ {
			ha, hb := &t.hops[main[a]], &t.hops[main[b]]
			if sameClock && ha.point != hb.point && e.sameClock[ha.point]&(1<<uint(hb.point)) == 0 {
				continue
			}
			dp := sign(hb.point - ha.point)
			switch {
			case ha.time < hb.time:
				s += dp
			case ha.time > hb.time:
				s -= dp
			}
		}
	}
	return s
}

// ttlDirection: hops where the IP TTL differs say which came first.
func ttlDirection(t *trace, main []int) (forward, ok bool) {
	if !t.ttlMixed {
		return false, false // every hop with a TTL has the same one
	}
	s := 0
	for a := 0; a < len(main); a++ {
		ha := &t.hops[main[a]]
		if !ha.hasTTL {
			continue
		}
		for b := a + 1; b < len(main); b++ {
			hb := &t.hops[main[b]]
			if !hb.hasTTL || ha.ttl == hb.ttl {
				continue
			}
			dp := sign(hb.point - ha.point)
			if ha.ttl > hb.ttl { // a, then b
				s += dp
			} else {
				s -= dp
			}
		}
	}
	return s > 0, s != 0
}

// insertionSort sorts s stably: a trace's few hops mostly arrive in
// crossing order already, so this is a pass over them. (The main hops are
// at distinct points, so their order is the same as any sort's.)
func insertionSort(s []int, cmp func(a, b int) int) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && cmp(s[j-1], s[j]) > 0; j-- {
			s[j-1], s[j] = s[j], s[j-1]
		}
	}
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
