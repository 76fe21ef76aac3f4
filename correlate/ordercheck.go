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
// its first traces and, at the end, warns when another order fits them
// clearly better. It never reorders: the command line stays the authority.

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
	slices.SortStableFunc(c.seq, func(a, b sighting) int { return cmp64(a.time, b.time) })
	c.key = patternKey(c.key[:0], c.seq)
	if j, ok := c.index[string(c.key)]; ok {
		c.sigs[j].count++
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
	c.sigs = append(c.sigs, signature{seq: slices.Clone(c.seq), count: 1})
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

// verdict is the warning for points in the order given (index order),
// or "" when the traffic agrees with it, or tells too little.
func (c *orderCheck) verdict(points []PointSpec) string {
	if c.traces == 0 || len(points) < 3 {
		return "" // two points: either order is the same path
	}
	given := make([]int, len(points))
	for i := range given {
		given[i] = i
	}
	var best []int
	if len(given) <= orderPermute {
		best = bestPermutation(given, 0, len(given), c.sigs)
	} else {
		// From the order given and from the points' mean rank (which
		// mixes the two directions, but starts elsewhere).
		best = improveOrder(given, c.sigs)
		if alt := improveOrder(meanRank(slices.Clone(given), c.sigs), c.sigs); score(c.sigs, positions(alt)) > score(c.sigs, positions(best)) {
			best = alt
		}
	}
	fitGiven, fitBest := agreement(c.sigs, given), agreement(c.sigs, best)
	if fitBest < orderFits || fitBest-fitGiven < orderMargin {
		return ""
	}
	names := func(order []int) []string {
		var s []string
		for _, p := range order {
			s = append(s, points[p].Name)
		}
		return s
	}
	g, b := names(given), names(best)
	return fmt.Sprintf("the points' order as given (%s) disagrees with the traffic: the stamps of the first %d traces seen at several points follow it in %.0f%% of hop pairs, and follow %s in %.0f%%; unless the captures' clocks differ, list the files in path order or give --order %s",
		strings.Join(g, ", "), c.traces, 100*fitGiven, strings.Join(b, ", "), 100*fitBest, strings.Join(b, ","))
}

// improveOrder moves one point at a time to wherever it raises the score
// most, until no move does: a local optimum, for orders too many to try.
func improveOrder(order []int, sigs []signature) []int {
	best := slices.Clone(order)
	bestScore := score(sigs, positions(best))
	cand := make([]int, len(order))
	for improved := true; improved; {
		improved = false
		for i := range best {
			for j := range best {
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
