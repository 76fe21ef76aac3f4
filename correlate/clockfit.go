package correlate

import (
	"cmp"
	"math"
	"slices"
)

// fitPair estimates θ(to) − θ(from) from the samples of one pair: the line
// that leaves the widest band between the upper bounds (frames from → to)
// above it and the lower bounds (to → from) below it, and half that band
// (the uncertainty). The band's height as a function of the slope is
// concave, so its maximum lies at a slope of one of the two hulls' edges;
// over spans too short for drift to show, the slope is 0. ok is false when
// frames crossed one way only: then nothing bounds the other side.
func fitPair(ss []clockSample, from, to int) (ClockLine, int64, bool) {
	// Upper and lower bounds on θ, sized at once: grown by append, their
	// copies into fresh memory cost more than the fit.
	nUp := 0
	for _, s := range ss {
		if s.up == (from < to) { // from → to
			nUp++
		}
	}
	up, lo := make([]pt, 0, nUp), make([]pt, 0, len(ss)-nUp)
	for _, s := range ss {
		if s.up == (from < to) { // from → to
			up = append(up, pt{s.t, float64(s.d)})
		} else {
			// to → from: d = δ − θ, so θ ≥ −d. Time on from's clock: the
			// arrival, s.t + s.d (≈ s.t; the offset is small against it).
			lo = append(lo, pt{s.t + s.d, float64(-s.d)})
		}
	}
	if len(up) == 0 || len(lo) == 0 {
		return ClockLine{}, 0, false
	}
	first, last := minT(up, lo), maxT(up, lo)
	mid := first + (last-first)/2
	band := func(slope float64) (u, l, spread float64) {
		u, l = math.Inf(1), math.Inf(-1)
		for _, p := range up {
			u = math.Min(u, p.v-slope*float64(p.t-mid))
		}
		for _, p := range lo {
			l = math.Max(l, p.v-slope*float64(p.t-mid))
		}
		// How far the bounds lie from the band's edges on average: the
		// line nearest the data (Moon et al.'s objective) among equally
		// wide bands; few samples leave a range of slopes as wide.
		var su, sl float64
		for _, p := range up {
			su += p.v - slope*float64(p.t-mid) - u
		}
		for _, p := range lo {
			sl += l - (p.v - slope*float64(p.t-mid))
		}
		return u, l, su/float64(len(up)) + sl/float64(len(lo))
	}
	best, spread := 0.0, 0.0
	bu, bl, bs := band(0)
	if last-first >= minDriftSpan {
		// The slope: fitted to the offsets request/reply pairs give (the
		// midpoint of an upper and a lower bound close in time, NTP's
		// view), least squares over all of them; without such pairs, the
		// widest band's (its slope hangs on the two hulls' extreme points,
		// which the delays' jitter moves).
		slope, slopeUnc, ok := pairedSlope(up, lo, mid) // no pairs: 0, 0
		if !ok {
			widest := bu - bl
			for _, sl := range append(hullSlopes(up, true), hullSlopes(lo, false)...) {
				if math.Abs(sl) > maxDrift {
					continue
				}
				if u, l, sp := band(sl); u-l > widest || u-l == widest && sp < bs {
					widest, slope, bs = u-l, sl, sp
				}
			}
		}
		// A drift must widen the band by more than the delays' own jitter
		// could, or the constant stays.
		if u, l, _ := band(slope); math.Abs(slope) <= maxDrift && u-l > bu-bl+float64(minDriftGain) {
			best, bu, bl = slope, u, l
			// The slope's own uncertainty moves the line most at the
			// span's ends: half the span from its reference.
			spread = slopeUnc * float64(last-first) / 2
		}
	}
	line := ClockLine{Ref: mid, Offset: (bu + bl) / 2, Drift: best}
	return line, int64(math.Ceil(math.Abs(bu-bl)/2 + spread)), true
}

// maxDrift bounds a believable drift (clocks run within ±100 ppm); a
// steeper slope is noise. minDriftGain is how much wider a drift must make
// the band to be taken.
const (
	maxDrift     = 500e-6
	minDriftGain = 10e3
)

// hullSlopes are the slopes of the edges of the lower convex hull of ps
// (under: the tightest line below upper bounds bends there) or its upper
// hull.
func hullSlopes(ps []pt, under bool) []float64 {
	s := slices.Clone(ps)
	slices.SortFunc(s, func(a, b pt) int {
		if a.t != b.t {
			return cmp.Compare(a.t, b.t)
		}
		if under {
			return cmp.Compare(a.v, b.v)
		}
		return cmp.Compare(b.v, a.v)
	})
	u := s[:0]
	for _, p := range s {
		if len(u) > 0 && u[len(u)-1].t == p.t {
			continue // one point per time: the tightest
		}
		u = append(u, p)
	}
	var h []pt // monotone chain over time
	for _, p := range u {
		for len(h) >= 2 && !convex(h[len(h)-2], h[len(h)-1], p, under) {
			h = h[:len(h)-1]
		}
		h = append(h, p)
	}
	var slopes []float64
	for i := 1; i < len(h); i++ {
		slopes = append(slopes, (h[i].v-h[i-1].v)/float64(h[i].t-h[i-1].t))
	}
	return slopes
}

// pairWindow: an upper and a lower bound this close in time make a pair
// (a request and its reply).
const pairWindow = 100e6

// pairedSlope is the least-squares slope of the offsets that pairs of an
// upper and a lower bound give, each the midpoint of its two bounds at the
// mean of their times, and how far off it may be; ok needs pairs spread
// over time.
func pairedSlope(up, lo []pt, mid int64) (slope, unc float64, ok bool) {
	xs, ys := make([]float64, 0, len(up)), make([]float64, 0, len(up))
	near := newNearest(lo)
	for _, u := range up {
		if best := near.find(u.t, pairWindow); best >= 0 {
			l := lo[best]
			xs = append(xs, float64((u.t+l.t)/2-mid))
			ys = append(ys, (u.v+l.v)/2)
		}
	}
	if len(xs) < 3 {
		return 0, 0, false
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= float64(len(xs))
	my /= float64(len(xs))
	var sxy, sxx float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	if sxx < float64(minDriftSpan)*float64(minDriftSpan)/16 {
		return 0, 0, false // the pairs bunch together: no slope to read
	}
	slope = sxy / sxx
	// How far off the slope may be: driftT standard errors. Few pairs
	// whose delays jitter read a slope into the noise (five pings that
	// jittered by tens of µs gave 60–200 ppm), and the offset's band alone
	// then did not cover the hops far from its reference
	// (TestFewSamplesDriftCovered).
	var rss float64
	for i := range xs {
		r := ys[i] - my - slope*(xs[i]-mx)
		rss += r * r
	}
	return slope, driftT(len(xs)-2) * math.Sqrt(rss/float64(len(xs)-2)/sxx), true
}

// driftT is Student's t that noise exceeds 0.5% of the time (two-sided)
// with dof degrees of freedom: few pairs leave a slope far less sure.
func driftT(dof int) float64 {
	t := [...]float64{1: 127.3, 2: 14.09, 3: 7.453, 4: 5.598, 5: 4.773, 6: 4.317, 7: 4.029, 8: 3.833, 9: 3.690, 10: 3.581}
	if dof < len(t) {
		return t[dof]
	}
	return 3.5
}

// nearest finds, for a time, the lower bound closest to it in a sorted
// index, as a scan of every bound would (pairedSlope was quadratic: a
// tenth of a flood's analysis): of bounds equally close, the one that
// comes last in the caller's order.
type nearest struct {
	ts  []int64 // sorted
	idx []int   // the bound at ts[i]: by time, then by the caller's order
}

func newNearest(ps []pt) nearest {
	n := nearest{idx: make([]int, len(ps)), ts: make([]int64, len(ps))}
	for i := range n.idx {
		n.idx[i] = i
	}
	slices.SortFunc(n.idx, func(a, b int) int { return cmp.Or(cmp.Compare(ps[a].t, ps[b].t), cmp.Compare(a, b)) })
	for i, j := range n.idx {
		n.ts[i] = ps[j].t
	}
	return n
}

// find returns the index of the bound nearest t, within window, or -1.
func (n nearest) find(t, window int64) int {
	i, _ := slices.BinarySearch(n.ts, t) // first at or after t
	best, gap := -1, window
	if i > 0 { // the last before t: the latest in order of those at its time
		if g := t - n.ts[i-1]; g <= gap {
			best, gap = n.idx[i-1], g
		}
	}
	if i < len(n.ts) { // the first time at or after t, the last of its run
		e, _ := slices.BinarySearch(n.ts[i:], n.ts[i]+1)
		if g := n.ts[i] - t; g < gap || g == gap && n.idx[i+e-1] > best {
			best = n.idx[i+e-1]
		}
	}
	return best
}

// minDriftSpan: shorter captures give no drift worth estimating (50 ppm
// over 200 ms is 10 µs, the order of the delays' own spread).
const minDriftSpan = 200e6

type pt struct {
	t int64
	v float64
}

func minT(a, b []pt) int64 {
	m := a[0].t
	for _, s := range [][]pt{a, b} {
		for _, p := range s {
			m = min(m, p.t)
		}
	}
	return m
}

func maxT(a, b []pt) int64 {
	m := a[0].t
	for _, s := range [][]pt{a, b} {
		for _, p := range s {
			m = max(m, p.t)
		}
	}
	return m
}

// convex: a, b, c turn the way the lower hull (under) or the upper hull
// does.
func convex(a, b, c pt, under bool) bool {
	cross := float64(b.t-a.t)*(c.v-a.v) - (b.v-a.v)*float64(c.t-a.t)
	if under {
		return cross > 0
	}
	return cross < 0
}
