package correlate

import "slices"

// maxPermute bounds the points of one group ordered by trying every
// permutation (8! = 40320); larger groups up to maxSearch are ordered by
// a local search (improveSegment), larger ones by mean rank alone. The
// searches' time grows with the distinct patterns, which frames' jitter
// multiplies: the maxPatterns commonest are kept (256 at 16 points: ~0.2 s).
const (
	maxPermute  = 8
	maxSearch   = 16
	maxPatterns = 256
)

// InferOrder places points whose order the input does not give (the
// interfaces of one multi-interface file, the files of a directory) by the
// traffic. groups lists point indices in command-line order; a group of one
// is fixed, a larger group may be permuted within its slot. The returned
// order maximises, over frames seen at several points, agreement between
// stamps and position, in either direction per frame — so echo requests and
// replies both count, and a tie (a bridge stamping with its ingress port's
// stamp) neither helps nor hurts. frames need not be sorted; only the first
// sighting of a key per point counts.
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
		copy(order[start:], placeSegment(order, start, len(g), sigs, maxPermute))
	}
	// A file that holds every point has no fixed neighbour to orient it.
	if len(groups) == 1 {
		orientOrder(order, sigs)
	}
	return order
}

// placeSegment is the best order of order[start:start+n] against sigs,
// the rest fixed: every permutation up to permute points; beyond, up to
// maxSearch, the better of two local searches, from the order given and
// from the points' mean rank (which mixes the two directions, but starts
// elsewhere); beyond that, the mean rank.
func placeSegment(order []int, start, n int, sigs []signature, permute int) []int {
	if n <= permute {
		return bestPermutation(order, start, n, sigs)
	}
	if n > maxSearch {
		return meanRank(slices.Clone(order[start:start+n]), sigs)
	}
	best := improveSegment(order, start, n, sigs)
	alt := slices.Clone(order)
	meanRank(alt[start:start+n], sigs)
	if alt = improveSegment(alt, start, n, sigs); score(sigs, positions(alt)) > score(sigs, positions(best)) {
		best = alt
	}
	return best[start : start+n]
}

// orientOrder reverses order, in place, when the traffic reads it
// backwards. Agreement counts either direction, so an order and its
// reverse fit alike: the echo requests go forward (a ping's path runs
// from the pinger), or, without any, the first frame seen at several
// points.
func orientOrder(order []int, sigs []signature) {
	pos := positions(order)
	way := 0
	for _, s := range sigs {
		if s.requests > 0 {
			way += s.requests * sign(orient(s.seq, pos))
		}
	}
	for i := 0; way == 0 && i < len(sigs); i++ {
		way = orient(sigs[i].seq, pos)
	}
	if way < 0 {
		slices.Reverse(order)
	}
}

type sighting struct {
	point int
	time  int64
}

type signature struct {
	seq   []sighting
	count int
	// requests: how many of count are ICMP echo requests (orientOrder).
	requests int
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
		seq     []sighting
		last    int64
		request bool
	}
	open := map[Key]*group{}
	var groups []*group
	for _, i := range idx {
		f := &frames[i]
		g := open[f.Key]
		if g == nil || f.Time-g.last > window {
			g = &group{request: f.Key.isEchoRequest()}
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
		req := 0
		if g.request {
			req = 1
		}
		b := patternKey(nil, g.seq)
		if j, ok := byPattern[string(b)]; ok {
			out[j].count++
			out[j].requests += req
			continue
		}
		byPattern[string(b)] = len(out)
		out = append(out, signature{seq: g.seq, count: 1, requests: req})
	}
	if len(out) > maxPatterns {
		// The commonest, in the order first seen (orientOrder falls
		// back on the first).
		idx := make([]int, len(out))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return out[b].count - out[a].count })
		idx = idx[:maxPatterns]
		slices.Sort(idx)
		kept := make([]signature, 0, maxPatterns)
		for _, i := range idx {
			kept = append(kept, out[i])
		}
		out = kept
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
