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
	l2only := t.key.neighbour()
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
