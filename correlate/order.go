package correlate

import "slices"

// maxPermute bounds the points of one group ordered by trying every
// permutation (8! = 40320); larger groups are ordered by mean rank.
const maxPermute = 8

// InferOrder places points whose order the input does not give (the
// interfaces of one multi-interface file) by the traffic. groups lists point
// indices in command-line order; a group of one is fixed, a larger group may
// be permuted within its slot. The returned order maximises, over frames
// seen at several points, agreement between stamps and position, in either
// direction per frame — so echo requests and replies both count, and a tie
// (a bridge stamping with its ingress port's stamp) neither helps nor hurts.
// frames need not be sorted; only the first sighting of a key per point counts.
func InferOrder(frames []Frame, groups [][]int, window int64) []int {
	if window <= 0 {
		window = DefaultWindow
	}
	var order []int
	for _, g := range groups {
		order = append(order, g...)
	}
	sigs := signatures(frames, window)
	if len(sigs) == 0 {
		return order
	}
	// Several free groups are ordered one at a time, the others as given.
	for gi, g := range groups {
		if len(g) < 2 {
			continue
		}
		start := 0
		for _, h := range groups[:gi] {
			start += len(h)
		}
		best := bestPermutation(order, start, len(g), sigs)
		copy(order[start:], best)
	}
	// A file that holds every point has no fixed neighbour to orient it:
	// orient it so the first multi-point frame moves forward.
	if len(groups) == 1 && len(sigs) > 0 {
		pos := positions(order)
		if orient(sigs[0].seq, pos) < 0 {
			slices.Reverse(order)
		}
	}
	return order
}

type sighting struct {
	point int
	time  int64
}

type signature struct {
	seq   []sighting
	count int
}

// signatures groups frames by key within the window and keeps, per group,
// the first sighting at each point; identical point/time-rank patterns are
// merged with a count, so the permutation search scales with distinct
// patterns, not frames.
func signatures(frames []Frame, window int64) []signature {
	idx := make([]int, 0, len(frames))
	for i := range frames {
		if frames[i].Key.Proto != ProtoNone {
			idx = append(idx, i)
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp64(frames[a].Time, frames[b].Time) })
	type group struct {
		seq  []sighting
		last int64
	}
	open := map[Key]*group{}
	var groups []*group
	for _, i := range idx {
		f := &frames[i]
		g := open[f.Key]
		if g == nil || f.Time-g.last > window {
			g = &group{}
			open[f.Key] = g
			groups = append(groups, g)
		}
		g.last = f.Time
		if !slices.ContainsFunc(g.seq, func(s sighting) bool { return s.point == f.Point }) {
			g.seq = append(g.seq, sighting{f.Point, f.Time})
		}
	}
	byPattern := map[string]int{}
	var out []signature
	for _, g := range groups {
		if len(g.seq) < 2 {
			continue
		}
		b := patternKey(nil, g.seq)
		if j, ok := byPattern[string(b)]; ok {
			out[j].count++
			continue
		}
		byPattern[string(b)] = len(out)
		out = append(out, signature{seq: g.seq, count: 1})
	}
	return out
}

// patternKey appends to dst a time-ordered sequence's pattern: its points
// with their time rank (ties share a rank).
func patternKey(dst []byte, seq []sighting) []byte {
	rank := 0
	for k, s := range seq {
		if k > 0 && s.time != seq[k-1].time {
			rank++
		}
		dst = append(dst, byte(s.point), byte(rank))
	}
	return dst
}

func positions(order []int) []int {
	pos := make([]int, MaxPoints)
	for i := range pos {
		pos[i] = -1
	}
	for i, p := range order {
		if p >= 0 && p < MaxPoints {
			pos[p] = i
		}
	}
	return pos
}

// orient is the sum over sighting pairs of +1 when stamps agree with the
// positions, -1 when they disagree, 0 on ties.
func orient(seq []sighting, pos []int) int {
	s := 0
	for a := 0; a < len(seq); a++ {
		for b := a + 1; b < len(seq); b++ {
			pa, pb := pos[seq[a].point], pos[seq[b].point]
			if pa < 0 || pb < 0 || seq[a].time == seq[b].time {
				continue
			}
			s += sign(pb-pa) * sign(int(cmp64(seq[b].time, seq[a].time)))
		}
	}
	return s
}

func score(sigs []signature, pos []int) int {
	total := 0
	for _, s := range sigs {
		total += abs(orient(s.seq, pos)) * s.count
	}
	return total
}

func bestPermutation(order []int, start, n int, sigs []signature) []int {
	cur := slices.Clone(order)
	seg := cur[start : start+n]
	if n > maxPermute {
		return meanRank(seg, sigs) // a good enough order for big groups
	}
	best := slices.Clone(seg)
	bestScore := -1
	permute(seg, 0, func() {
		if s := score(sigs, positions(cur)); s > bestScore {
			bestScore = s
			copy(best, seg)
		}
	})
	return best
}

// meanRank sorts points (in place, and returns a copy) by their mean time
// rank within frames.
func meanRank(points []int, sigs []signature) []int {
	rank := map[int]float64{}
	cnt := map[int]int{}
	for _, s := range sigs {
		for k, x := range s.seq {
			rank[x.point] += float64(k * s.count)
			cnt[x.point] += s.count
		}
	}
	slices.SortStableFunc(points, func(a, b int) int {
		ra, rb := rank[a]/float64(max(cnt[a], 1)), rank[b]/float64(max(cnt[b], 1))
		switch {
		case ra < rb:
			return -1
		case ra > rb:
			return 1
		}
		return 0
	})
	return slices.Clone(points)
}

// permute calls fn for every permutation of s (Heap's algorithm would do;
// plain recursion keeps the original order first, so ties keep file order).
func permute(s []int, k int, fn func()) {
	if k == len(s) {
		fn()
		return
	}
	for i := k; i < len(s); i++ {
		s[k], s[i] = s[i], s[k]
		permute(s, k+1, fn)
		s[k], s[i] = s[i], s[k]
	}
}
