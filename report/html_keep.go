package report

import (
	"slices"

	"github.com/pathtrace/pathtrace/correlate"
)

// What the HTML report holds on to. The table and Markdown keep the first
// --limit traces; the HTML page draws problems individually wherever they
// come in a run, so it keeps the head of the run (enough for the aggregate
// of clean traces) and every problem trace after it, both bounded so a flood
// does not grow memory or the page without end.
const (
	keepHead     = 1000 // traces kept whatever they are
	keepProblems = 1000 // problem traces kept after the head
)

// Keeper collects, from a stream of traces, the ones an HTML report needs:
// the first keepHead, then problem traces (lost, unseen somewhere, flagged)
// up to keepProblems more. The rest are only counted; report.json has them.
// Not safe for concurrent use: the correlator calls its sink serialized.
type Keeper struct {
	traces   []correlate.Trace
	problems int
	dropped  int
}

// Add keeps a clone of t if the report needs it; t may be reused afterwards.
func (k *Keeper) Add(t *correlate.Trace) {
	switch {
	case len(k.traces) < keepHead:
	case k.problems < keepProblems && problem(t):
		k.problems++
	default:
		k.dropped++
		return
	}
	k.traces = append(k.traces, t.Clone())
}

// Traces is what was kept, in the order it came (the order of first sighting).
func (k *Keeper) Traces() []correlate.Trace { return k.traces }

// problem reports a trace worth drawing on its own: lost, unseen at a point
// it crossed, reflected, or carrying any flag (duplicate, negative delta,
// fragment, over-MTU).
func problem(t *correlate.Trace) bool {
	if t.LostAfter != "" || len(t.Missing) > 0 || len(t.Flags) > 0 {
		return true
	}
	return slices.ContainsFunc(t.Hops, func(h correlate.Hop) bool { return h.Reflection })
}
