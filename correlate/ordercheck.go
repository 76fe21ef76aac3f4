package correlate

import (
	"fmt"
	"slices"
	"strings"
)

// Checking the path order the command line gave. Files are taken in the
// order listed; listed in another (a shell's glob puts cni0.cap before
// pod1.cap) every hop looks early or late and the clock estimates bend to
// match, so the report blames clocks. The engine keeps the stamp patterns of
// its first traces and, at the end, says (OrderAdvice) which order fits them
// clearly better. The clock pre-pass's engine asks first, and the pipeline
// then analyses in that order; the analysis's own engine only warns, for
// what its larger sample shows and the pre-pass's did not.

// orderSample is how many traces seen at two points or more the check
// looks at: a flood's first tenth of a second, any capture's first minutes.
const orderSample = 20_000

// orderPatterns bounds the distinct stamp patterns kept (each costs a
// pass of the search): beyond it, traces of a new pattern are left out.
const orderPatterns = 256

// orderPermute: up to this many points the check tries every order; more
// are searched by moving one point at a time, up to orderPoints: the
// search, which Engine.Finish waits for, then takes tens of ms at most.
const (
	orderPermute = 6
	orderPoints  = 10
)

const (
	// orderFits: the traffic's order must explain this share of the
	// sampled hop pairs (stamps in order, one way or the other)...
	orderFits = 0.95
	// ...and this much more than the order given, before a warning: a
	// few frames stamped out of turn (a stalled softirq) do not make one.
	orderMargin = 0.10
)

// orderCheck holds the first traces' sightings, one signature per pattern.
type orderCheck struct {
	seen   int // traces at two points or more looked at (orderSample bounds it)
	traces int // those sampled (their pattern found room)
	sigs   []signature
	index  map[string]int
	seq    []sighting // scratch
	key    []byte
}

// add takes t's first sighting at each point, by the captures' own stamps:
// the clock corrections were estimated assuming the order under test.
func (c *orderCheck) add(t *trace) {
	if c.seen >= orderSample {
		return
	}
	c.seq = c.seq[:0]
	var seen uint64
	for i := range t.hops {
		h := &t.hops[i]
		if h.refl || seen&(1<<uint(h.point)) != 0 {
			continue
		}
		seen |= 1 << uint(h.point)
		c.seq = append(c.seq, sighting{h.point, h.stamp})
	}
	if len(c.seq) < 2 {
		return
	}
	c.seen++
	req := 0
	if t.key.isEchoRequest() {
		req = 1
	}
	slices.SortStableFunc(c.seq, func(a, b sighting) int { return cmp64(a.time, b.time) })
	c.key = patternKey(c.key[:0], c.seq)
	if j, ok := c.index[string(c.key)]; ok {
		c.sigs[j].count++
		c.sigs[j].requests += req
		c.traces++
		return
	}
	if len(c.sigs) >= orderPatterns {
		return
	}
	if c.index == nil {
		c.index = map[string]int{}
	}
	c.index[string(c.key)] = len(c.sigs)
	c.sigs = append(c.sigs, signature{seq: slices.Clone(c.seq), count: 1, requests: req})
	c.traces++
}

// agreement is the share of the sampled pairs of sightings with distinct
// stamps whose stamps follow order, each trace read in its own direction.
func agreement(sigs []signature, order []int) float64 {
	pos := positions(order)
	agree, all := 0, 0
	for _, s := range sigs {
		pairs := 0
		for a := range s.seq {
			for b := a + 1; b < len(s.seq); b++ {
				if s.seq[a].time != s.seq[b].time {
					pairs++
				}
			}
		}
		agree += (pairs + abs(orient(s.seq, pos))) / 2 * s.count
		all += pairs * s.count
	}
	if all == 0 {
		return 1
	}
	return float64(agree) / float64(all)
}

// OrderAdvice is the order the traffic follows where the points' order
// clearly is not it: Order lists point indices, Given and Best are the
// shares of the sampled hop pairs whose stamps follow the order given and
// Order, Traces how many traces were sampled.
type OrderAdvice struct {
	Order       []int
	Given, Best float64
	Traces      int
	// Sure: the sample can tell this order on its own stamps, even if
	// the points' clocks may differ (orderSure).
	Sure bool
}

// advice is the order n points (index order as given) should be in, if
// the traffic clearly says another.
func (c *orderCheck) advice(n int) (OrderAdvice, bool) {
	if c.traces == 0 || n < 3 {
		return OrderAdvice{}, false // two points: either order is the same path
	}
	given := make([]int, n)
	for i := range given {
		given[i] = i
	}
	best := placeSegment(given, 0, n, c.sigs, orderPermute)
	fitGiven, fitBest := agreement(c.sigs, given), agreement(c.sigs, best)
	if fitBest < orderFits || fitBest-fitGiven < orderMargin {
		return OrderAdvice{}, false
	}
	orientOrder(best, c.sigs)
	return OrderAdvice{Order: best, Given: fitGiven, Best: fitBest, Traces: c.traces, Sure: orderSure(c.sigs, best)}, true
}

// OrderAdvice is what the order check (Config.CheckOrder) found once the
// engine is finished: the order the traffic clearly follows, if not the
// points'.
func (e *Engine) OrderAdvice() (OrderAdvice, bool) {
	if e.order == nil {
		return OrderAdvice{}, false
	}
	return e.order.advice(len(e.cfg.Points))
}

// verdict is the warning for points in the order given (index order),
// or "" when the traffic agrees with it, or tells too little.
func (c *orderCheck) verdict(points []PointSpec) string {
	a, ok := c.advice(len(points))
	if !ok {
		return ""
	}
	g := make([]string, len(points))
	for i, p := range points {
		g[i] = p.Name
	}
	b := make([]string, len(a.Order))
	for i, p := range a.Order {
		b[i] = points[p].Name
	}
	msg := fmt.Sprintf("the points' order as given (%s) disagrees with the traffic: the stamps of the first %d traces seen at several points follow it in %.0f%% of hop pairs, and follow %s in %.0f%%",
		strings.Join(g, ", "), a.Traces, 100*a.Given, strings.Join(b, ", "), 100*a.Best)
	if !a.Sure {
		// Not a suggestion: the stamps cannot settle it (orderSure).
		return msg + ", but the stamps alone cannot settle the order (frames one way only, points no frame joins, or two points the frames order both ways: the captures' clocks may differ); list the files in path order or give --order"
	}
	return msg + fmt.Sprintf("; unless the captures' clocks differ, list the files in path order or give --order %s", strings.Join(b, ","))
}

// improveSegment moves one point of order[start:start+n] at a time to
// wherever in that segment it raises the score most, until no move does: a
// local optimum, for orders too many to try.
func improveSegment(order []int, start, n int, sigs []signature) []int {
	best := slices.Clone(order)
	bestScore := score(sigs, positions(best))
	cand := make([]int, 0, len(order))
	for improved := true; improved; {
		improved = false
		for i := start; i < start+n; i++ {
			for j := start; j < start+n; j++ {
				if i == j {
					continue
				}
				// best with the point at i moved to j
				cand = append(cand[:0], best[:i]...)
				cand = append(cand, best[i+1:]...)
				cand = slices.Insert(cand, j, best[i])
				if s := score(sigs, positions(cand)); s > bestScore {
					best, bestScore, improved = slices.Clone(cand), s, true
				}
			}
		}
	}
	return best
}
