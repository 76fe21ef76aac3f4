package correlate

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

// lossAndGaps fills out.Missing and judges what became of the frame after
// its last point: lost after a position (lostAt >= 0), gone off the path
// the points cover (offPath), or neither.
//
// A gap is a point between two hops that was capturing but did not see the
// frame, which provably crossed it. Loss is a later point on the frame's way
// that was capturing and never saw it. The way ends at the destination, at
// a routing boundary for frames a router does not forward (ARP, ND), and
// otherwise at the path's end for a discovered path (OnePath); for points
// that are just files, at the farthest point the frame's flow was seen at,
// and only between points that have seen a frame in common at all. A frame
// whose way beyond its last point is unknown did not take the rest of the
// path: off-path, not lost. The caller counts the crossings with what it
// returns (countCrossings).
func (e *Engine) lossAndGaps(t *trace, out *Trace, forward bool) (lostAt int, offPath bool) {
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
	e.missed = 0
	for p := lo + 1; p < hi; p++ {
		if t.seen&(1<<uint(p)) == 0 && e.covers(p, loT) && e.expects(t, p) {
			out.Missing = append(out.Missing, e.cfg.Points[p].Name)
			e.missed |= 1 << uint(p)
		}
	}
	dest := e.destination(t)
	l2only := t.key.neighbour()
	last, lastT, step := hi, hiT, 1
	if !forward {
		last, lastT, step = lo, loT, -1
	}
	end := e.wayEnd(t, last, dest, step)
	for p := last + step; p >= 0 && p < n; p += step {
		if l2only && e.routedBefore(max(p, p-step)) {
			break
		}
		if !e.covers(p, lastT) {
			continue
		}
		// A later point was capturing and did not see the frame: lost if
		// its way goes there; else its way ended before it (at its
		// destination, or nothing says it goes on), so it did not take
		// the rest of the points — off-path, where the points are just
		// files (on a discovered path, its destination is where it goes).
		if end >= 0 && (p-end)*step <= 0 {
			return last, false
		}
		return -1, !e.cfg.OnePath
	}
	return -1, false
}

// wayEnd is the farthest position, from last in direction step, the frame
// is known to be going to; -1 when nothing says it goes on (see
// lossAndGaps).
func (e *Engine) wayEnd(t *trace, last, dest, step int) int {
	n := len(e.cfg.Points)
	if dest >= 0 && (dest-last)*step >= 0 {
		return dest
	}
	if e.cfg.OnePath {
		if step > 0 {
			return n - 1
		}
		return 0
	}
	if t.flow == nil {
		return -1
	}
	end := -1
	for p := last + step; p >= 0 && p < n; p += step {
		if t.flow.seen&(1<<uint(p)) != 0 {
			end = p
		}
	}
	if end >= 0 && !e.linkedBeyond(last, last+step, end) {
		return -1 // no frame in common: the captures do not overlap or share no path
	}
	return end
}

// routedBefore reports a routing hop between positions p-1 and p, learned
// from TTL decrements seen between them.
func (e *Engine) routedBefore(p int) bool {
	return p > 0 && p < MaxPoints && e.routed&(1<<uint(p)) != 0
}

// expects: point p sees frame t when it crosses it — unless p captures
// its own frames only (OwnFramesOnly) and t is a unicast frame bridged
// past it, neither to nor from the bridge itself.
func (e *Engine) expects(t *trace, p int) bool {
	if !e.cfg.Points[p].OwnFramesOnly || isFlood(t) {
		return true
	}
	for i := range t.hops {
		h := &t.hops[i]
		for _, m := range []struct {
			mac MAC
			ok  bool
		}{{h.src, h.hasSrc}, {h.dst, h.hasDst}} {
			if o, known := e.cfg.MACOwners[m.mac]; m.ok && known && o.Point == p {
				return true
			}
		}
	}
	return false
}
