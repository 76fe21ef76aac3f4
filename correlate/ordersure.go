package correlate

// Whether an order read from stamps can be trusted where the points' clocks
// may differ (files from anywhere, listed one by one). Stamps order points
// only on one clock. Two clocks that differ by more than the latency
// between two points turn the stamps of the frames crossing between them
// one way around: frames going both ways then read the same way, so the
// pair is ordered one way by half of them and the other way by the rest;
// with many points the rest still fit (one pair of 45 in a ten-point
// trace), and an order with the two swapped fits as well. Frames going one
// way only cannot tell an offset from the order at all, and points no frame
// joins have no order between them.

// orderDisagree: a pair of points whose sightings contradict the order
// (given each trace's way along it) in more than this share is in doubt.
const orderDisagree = 0.2

// orderSure reports whether sigs tell order on their own: every point is
// joined to the others by the traces; every cut of the order (the points
// before a position, the points from it on) is crossed by traces going
// each way, each way at least a tenth of those crossing it; and every pair
// of points seen by the same traces is ordered by them alike, each trace
// read along its own way (orderDisagree).
func orderSure(sigs []signature, order []int) bool {
	if !joined(sigs, order) {
		return false
	}
	pos := positions(order)
	n := len(order)
	fwd, bwd := make([]int, n), make([]int, n) // by cut: traces crossing it each way
	agree := make([][2]int, n*n)               // by pair of positions: [agree, disagree]
	for _, s := range sigs {
		way := sign(orient(s.seq, pos))
		if way == 0 {
			continue // no way to read it along
		}
		lo, hi := n, -1
		for _, x := range s.seq {
			lo, hi = min(lo, pos[x.point]), max(hi, pos[x.point])
		}
		for cut := lo + 1; cut <= hi; cut++ {
			if way > 0 {
				fwd[cut] += s.count
			} else {
				bwd[cut] += s.count
			}
		}
		for a := range s.seq {
			for b := a + 1; b < len(s.seq); b++ {
				x, y := s.seq[a], s.seq[b] // x stamped first
				if x.time == y.time {
					continue // a tie (a bridge and its ingress port) orders nothing
				}
				i, j := pos[x.point], pos[y.point]
				k := 0
				if sign(j-i) != way {
					k = 1
				}
				agree[min(i, j)*n+max(i, j)][k] += s.count
			}
		}
	}
	for cut := 1; cut < n; cut++ {
		if fwd[cut] == 0 || bwd[cut] == 0 || 10*min(fwd[cut], bwd[cut]) < fwd[cut]+bwd[cut] {
			return false
		}
	}
	for _, c := range agree {
		if float64(c[1]) > orderDisagree*float64(c[0]+c[1]) {
			return false
		}
	}
	return true
}

// joined reports whether the traces of sigs join the points of order into
// one: each trace joins the points it was seen at.
func joined(sigs []signature, order []int) bool {
	root := make([]int, MaxPoints)
	for i := range root {
		root[i] = i
	}
	find := func(p int) int {
		for root[p] != p {
			root[p] = root[root[p]]
			p = root[p]
		}
		return p
	}
	for _, s := range sigs {
		for _, x := range s.seq[1:] {
			root[find(x.point)] = find(s.seq[0].point)
		}
	}
	for _, p := range order[1:] {
		if find(p) != find(order[0]) {
			return false
		}
	}
	return true
}
