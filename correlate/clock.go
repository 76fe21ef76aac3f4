package correlate

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Clocks. Captures from several hosts carry several clocks: between two
// points on different clocks only the sum of the two one-way delays is
// measurable. A frame cannot arrive before it left, so the frames seen on
// both sides bound the offset from both directions (the NTP view of
// request/response pairs, RFC 5905; Paxson, SIGMETRICS '98): a frame going
// A → B bounds θ = θB − θA from above by its delta, one going B → A from
// below by minus its delta. Over a long capture the offset drifts: the
// tightest bounds then lie on two lines, the lower convex hull of the upper
// bounds and the upper hull of the lower bounds (Moon, Skelly and Towsley,
// INFOCOM '99; Zhang, Liu and Xia, INFOCOM '02), and the estimate is the
// line midway between them.

// ClockMinOffset is how far the bounds must exclude 0 before an offset is
// applied: captures on one host invert stamps by a few µs (a bridge and its
// ingress port, sockets woken in another order), which is not a clock.
const ClockMinOffset int64 = 50e3

// ClockLine is a clock's offset over time: Offset at Ref plus Drift per ns
// elapsed since Ref. It is what is subtracted from a point's stamps to read
// them on the reference clock.
type ClockLine struct {
	Ref    int64   // ns since the Unix epoch
	Offset float64 // ns at Ref
	Drift  float64 // ns per ns (50 ppm = 50e-6)
}

// At is the offset at t.
func (l ClockLine) At(t int64) int64 { return int64(math.Round(l.Offset + l.Drift*float64(t-l.Ref))) }

// Zero reports a line that changes nothing.
func (l ClockLine) Zero() bool { return l.Offset == 0 && l.Drift == 0 }

// ClockSource says where an offset came from.
type ClockSource uint8

const (
	ClockEstimated ClockSource = iota
	ClockDeclared              // --clock-offset
)

var clockSourceNames = names{"estimated", "declared"}

func (s ClockSource) String() string               { return clockSourceNames.text(uint8(s), "source") }
func (s ClockSource) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
func (s *ClockSource) UnmarshalText(b []byte) error {
	return parseInto(s, clockSourceNames, b, "clock source")
}

// ClockOffset is one point's clock as the report gives it: OffsetNs is
// what is subtracted from Point's stamps to read them on Reference's clock
// (at the middle of the frames it was estimated from; DriftPPM per second
// after that).
type ClockOffset struct {
	Point         string      `json:"point"`
	Reference     string      `json:"reference"`
	OffsetNs      int64       `json:"offset_ns"`
	UncertaintyNs int64       `json:"uncertainty_ns"`
	DriftPPM      float64     `json:"drift_ppm,omitzero"`
	Samples       int         `json:"samples"`
	Source        ClockSource `json:"source"`
}

// clockSample is one frame crossing between the two clock groups of its
// pair (ClockSampler.pairs' key): at the stamp t of the group it left it
// took d ns as the two clocks tell it. 24 bytes: a flood's pre-pass keeps
// 80,000.
type clockSample struct {
	t, d int64
	key  int32 // index of the frame's key in ClockSampler.keys
	// up: it crossed from the pair's lower group to its higher one.
	up bool
	// certain: the trace's direction did not come from stamps
	certain bool
}

// ends are the groups s left and reached, of pair k.
func (s *clockSample) ends(k [2]int) (from, to int) {
	if s.up {
		return k[0], k[1]
	}
	return k[1], k[0]
}

// ClockEstimate is the offset of one clock group to the reference group.
type ClockEstimate struct {
	Group       int
	Line        ClockLine
	Uncertainty int64 // ns, accumulated along the groups it was estimated through
	Samples     int
	Via         int // the group it was estimated against (-1: the reference)
}

// ClockProblem is a pair of clock groups whose offset could not be bounded.
type ClockProblem struct {
	A, B    int    // groups
	Message string // says which points and why
}

// ClockSampler collects, from the traces of a first pass (hops in
// crossing order, stamps on their own clocks), every frame that crossed
// from one clock group to another; Estimate then bounds the offsets. Add
// serves as the correlator's sink: nothing per trace is kept but its
// crossings.
type ClockSampler struct {
	points []PointSpec
	idx    map[string]int
	groups int
	pairs  map[[2]int][]clockSample // by unordered pair of groups (Estimate's)
	// Crossings as Add takes them, per pair of groups (a*groups+b, a < b),
	// in chunks that never move: appending to growing slices copied each
	// several times into fresh memory, most of a pre-pass's cost.
	// Estimate joins each pair's into pairs.
	taken [][][]clockSample
	// Traces per key: frames whose bytes repeat (arping's identical
	// requests, retransmissions) cannot be paired across an unknown
	// offset — the first pass may join a copy to the wrong sighting — so
	// their crossings are left out. Keyed by a 64-bit hash of the key and
	// echo id, not by the 96 bytes themselves: growing a map of those was
	// a fifth of the pre-pass. Two keys of a sample sharing a hash (odds
	// of 1 in 10^10 for 20,000 keys) would only leave their crossings out.
	keys   map[uint64]int32
	traces []int32
}

// sampleHash is a frame's identity for the sampler: its key and echo id
// (parallel pings share seq and payload).
func sampleHash(k *Key, echoID OptUint) uint64 {
	id := echoID.V << 1
	if echoID.Valid {
		id |= 1
	}
	return mixHash(keyHash(k), id)
}

// NewClockSampler samples for points (their Clock fields are the groups).
func NewClockSampler(points []PointSpec) *ClockSampler {
	c := &ClockSampler{points: points, idx: map[string]int{}, pairs: map[[2]int][]clockSample{}, keys: map[uint64]int32{}}
	for i, p := range points {
		c.idx[p.Name] = i
		c.groups = max(c.groups, p.Clock+1)
	}
	return c
}

// Add takes the crossings of one trace.
func (c *ClockSampler) Add(t *Trace) {
	ki := c.keyIndex(&t.key, t.ID)
	prev := -1
	for j := range t.Hops {
		if t.Hops[j].Reflection {
			continue
		}
		if prev >= 0 {
			p, h := &t.Hops[prev], &t.Hops[j]
			c.cross(c.points[c.idx[p.Point]].Clock, c.points[c.idx[h.Point]].Clock, int64(p.Time), int64(h.Time), ki, t.dirCertain)
		}
		prev = j
	}
}

// addTrace is Add for a trace of the engine c samples for
// (Config.Sampler): its hops in crossing order, as Add would have them
// from the trace's report.
func (c *ClockSampler) addTrace(t *trace, order []int, certain bool) {
	var id OptUint
	if h0 := &t.hops[0]; h0.hasEcho { // describe's
		id = someU(uint64(h0.echoID))
	}
	ki := c.keyIndex(&t.key, id)
	prev := -1
	for _, i := range order {
		if t.hops[i].refl {
			continue
		}
		if prev >= 0 {
			p, h := &t.hops[prev], &t.hops[i]
			c.cross(c.points[p.point].Clock, c.points[h.point].Clock, p.stamp, h.stamp, ki, certain)
		}
		prev = i
	}
}

// keyIndex counts a trace of key k and echo id: the index of its count in
// traces, -1 for no key (a trace not from the correlator).
func (c *ClockSampler) keyIndex(k *Key, id OptUint) int32 {
	if *k == (Key{}) {
		return -1
	}
	h := sampleHash(k, id)
	ki, ok := c.keys[h]
	if !ok {
		ki = int32(len(c.traces))
		c.keys[h] = ki
		c.traces = append(c.traces, 0)
	}
	c.traces[ki]++
	return ki
}

// cross takes a frame's step from group a at stamp ta to group b at tb.
func (c *ClockSampler) cross(a, b int, ta, tb int64, ki int32, certain bool) {
	if a != b {
		c.take(a, b, clockSample{t: ta, d: tb - ta, key: ki, up: a < b, certain: certain})
	}
}

// takenChunk is how many crossings a chunk of taken holds (96 KiB).
const takenChunk = 4096

// take keeps s, a crossing from group a to group b.
func (c *ClockSampler) take(a, b int, s clockSample) {
	if c.taken == nil {
		c.taken = make([][][]clockSample, c.groups*c.groups)
	}
	chunks := &c.taken[min(a, b)*c.groups+max(a, b)]
	if n := len(*chunks); n == 0 || len((*chunks)[n-1]) == cap((*chunks)[n-1]) {
		*chunks = append(*chunks, make([]clockSample, 0, takenChunk))
	}
	last := &(*chunks)[len(*chunks)-1]
	*last = append(*last, s)
}

// settle joins each pair's crossings taken into pairs, in the order taken.
func (c *ClockSampler) settle() {
	for i, chunks := range c.taken {
		if len(chunks) == 0 {
			continue
		}
		k := [2]int{i / c.groups, i % c.groups}
		ss := c.pairs[k]
		if ss == nil && len(chunks) == 1 {
			c.pairs[k] = chunks[0]
			continue
		}
		n := len(ss)
		for _, ch := range chunks {
			n += len(ch)
		}
		ss = slices.Grow(ss, n-len(ss))
		for _, ch := range chunks {
			ss = append(ss, ch...)
		}
		c.pairs[k] = ss
	}
	c.taken = nil
}

// EstimateClocks bounds the offset of every clock group to the group of
// the first point from the traces of a first pass.
func EstimateClocks(points []PointSpec, traces []Trace) ([]ClockEstimate, []ClockProblem) {
	c := NewClockSampler(points)
	for i := range traces {
		c.Add(&traces[i])
	}
	return c.Estimate()
}

// Estimate bounds every group's offset to the first point's group. The
// constant bounds come from every chain of frames at once: "θj − θi ≤ d"
// for each crossing is a system of difference constraints, whose tightest
// bounds are shortest paths (so a clock seen one way only, as a bridge
// capture without promiscuous mode sees only broadcasts, is still bounded
// through the points around it). Groups whose bounds include 0 within
// ClockMinOffset keep a zero line; the others get the midpoint, or, where
// a neighbour saw frames both ways, the line fitted to that pair, drift
// included.
func (c *ClockSampler) Estimate() ([]ClockEstimate, []ClockProblem) {
	n := c.groups
	if n < 2 {
		return nil, nil
	}
	c.settle()
	for k, ss := range c.pairs {
		ss = slices.DeleteFunc(ss, func(s clockSample) bool { return s.key >= 0 && c.traces[s.key] > 1 })
		// A frame's direction learned from stamps is what a clock that
		// disagrees turns around: where a pair has crossings whose
		// direction is certain (TTL, configured owners), only those count.
		if slices.ContainsFunc(ss, func(s clockSample) bool { return s.certain }) {
			ss = slices.DeleteFunc(ss, func(s clockSample) bool { return !s.certain })
		}
		c.pairs[k] = ss
	}
	ref := c.points[0].Clock
	lo, hi := c.bounds(ref)
	parent := c.tree(ref)
	est := make([]*ClockEstimate, n)
	est[ref] = &ClockEstimate{Group: ref, Via: -1}
	var resolve func(g int) *ClockEstimate
	resolve = func(g int) *ClockEstimate {
		if est[g] != nil {
			return est[g]
		}
		e := &ClockEstimate{Group: g, Via: ref}
		est[g] = e
		if math.IsInf(hi[g], 1) || math.IsInf(lo[g], -1) {
			return e // unbounded: reported by the caller, not corrected
		}
		if lo[g] <= float64(ClockMinOffset) && hi[g] >= -float64(ClockMinOffset) {
			return e // the same clock, as far as frames can tell
		}
		e.Line = ClockLine{Ref: c.midTime(), Offset: (hi[g] + lo[g]) / 2}
		e.Uncertainty = int64(math.Ceil(math.Abs(hi[g]-lo[g]) / 2))
		if p := parent[g]; p >= 0 {
			// Through the neighbour it saw frames both ways with: its
			// line (drift included), or the neighbour's own clock where
			// the two agree (points of one host captured apart).
			k := [2]int{min(p, g), max(p, g)}
			if line, w, ok := fitPair(c.pairs[k], p, g); ok {
				pe := resolve(p)
				e.Via = p
				if pairSignificant(c.pairs[k], p, g) {
					e.Line, e.Uncertainty = addLines(pe.Line, line), pe.Uncertainty+w
				} else {
					e.Line, e.Uncertainty = pe.Line, pe.Uncertainty
				}
			}
		}
		return e
	}
	var out []ClockEstimate
	var problems []ClockProblem
	for g := range n {
		if g == ref || !c.used(g) {
			continue
		}
		e := resolve(g)
		if math.IsInf(hi[g], 1) || math.IsInf(lo[g], -1) {
			problems = append(problems, c.unbounded(g, ref, hi[g]))
			continue
		}
		for k, ss := range c.pairs {
			if k[0] == g || k[1] == g {
				e.Samples += len(ss)
			}
		}
		out = append(out, *e)
	}
	return out, problems
}

// bounds is every group's constant offset interval to ref: shortest paths
// over "θj − θi ≤ min delta i → j" (Floyd–Warshall: groups are few).
func (c *ClockSampler) bounds(ref int) (lo, hi []float64) {
	n := c.groups
	inf := math.Inf(1)
	d := make([][]float64, n)
	for i := range d {
		d[i] = make([]float64, n)
		for j := range d[i] {
			if i != j {
				d[i][j] = inf
			}
		}
	}
	for k, ss := range c.pairs {
		for _, s := range ss {
			a, b := s.ends(k)
			d[a][b] = math.Min(d[a][b], float64(s.d))
		}
	}
	for k := range n {
		for i := range n {
			for j := range n {
				if d[i][k]+d[k][j] < d[i][j] {
					d[i][j] = d[i][k] + d[k][j]
				}
			}
		}
	}
	lo, hi = make([]float64, n), make([]float64, n)
	for g := range n {
		hi[g], lo[g] = d[ref][g], -d[g][ref]
	}
	return lo, hi
}

// tree links each group to a neighbour nearer the reference that saw
// frames both ways with it (-1: none), the best-sampled pairs first.
func (c *ClockSampler) tree(ref int) []int {
	parent := make([]int, c.groups)
	for i := range parent {
		parent[i] = -1
	}
	seen := make([]bool, c.groups)
	seen[ref] = true
	keys := make([][2]int, 0, len(c.pairs))
	for k, ss := range c.pairs {
		fwd, rev := false, false
		for _, s := range ss {
			fwd, rev = fwd || s.up, rev || !s.up
		}
		if fwd && rev {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if len(c.pairs[keys[i]]) != len(c.pairs[keys[j]]) {
			return len(c.pairs[keys[i]]) > len(c.pairs[keys[j]])
		}
		return keys[i][0] < keys[j][0] || (keys[i][0] == keys[j][0] && keys[i][1] < keys[j][1])
	})
	for grew := true; grew; {
		grew = false
		for _, k := range keys {
			a, b := k[0], k[1]
			if seen[a] == seen[b] {
				continue
			}
			if seen[b] {
				a, b = b, a
			}
			parent[b], seen[b], grew = a, true, true
		}
	}
	return parent
}

// used reports a group some frame crossed into or out of.
func (c *ClockSampler) used(g int) bool {
	for k := range c.pairs {
		if k[0] == g || k[1] == g {
			return true
		}
	}
	return false
}

// midTime is the middle of the sampled crossings.
func (c *ClockSampler) midTime() int64 {
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, ss := range c.pairs {
		for _, s := range ss {
			lo, hi = min(lo, s.t), max(hi, s.t)
		}
	}
	return lo + (hi-lo)/2
}

// unbounded says which way frames crossed between g and the points it
// shares frames with.
func (c *ClockSampler) unbounded(g, ref int, hi float64) ClockProblem {
	name := func(g int) string {
		for _, p := range c.points {
			if p.Clock == g {
				return p.Name
			}
		}
		return fmt.Sprint(g)
	}
	var peers []string
	for k := range c.pairs {
		if k[0] == g || k[1] == g {
			peers = append(peers, name(k[0]+k[1]-g))
		}
	}
	slices.Sort(peers)
	others := strings.Join(peers, ", ")
	dir := name(g) + " → " + others
	if !math.IsInf(hi, 1) {
		dir = others + " → " + name(g)
	}
	return ClockProblem{A: ref, B: g, Message: fmt.Sprintf(
		"the clocks of %s and %s cannot be compared: frames crossed only %s, so hop latencies there include any difference of the clocks (--clock-group or --clock-offset says how they relate)",
		name(g), others, dir)}
}

// pairSignificant: the constant bounds of one pair exclude 0 by more than
// ClockMinOffset.
func pairSignificant(ss []clockSample, from, to int) bool {
	up, lo := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		if s.up == (from < to) { // from → to
			up = math.Min(up, float64(s.d))
		} else {
			lo = math.Max(lo, float64(-s.d))
		}
	}
	return lo > float64(ClockMinOffset) || up < -float64(ClockMinOffset)
}

// addLines composes offsets along a chain of groups.
func addLines(a, b ClockLine) ClockLine {
	if a.Zero() {
		return b
	}
	if b.Zero() {
		return a
	}
	// a's offset read at b's reference time, then both drifts.
	return ClockLine{Ref: b.Ref, Offset: a.Offset + a.Drift*float64(b.Ref-a.Ref) + b.Offset, Drift: a.Drift + b.Drift}
}
