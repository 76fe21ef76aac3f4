package pipeline

import "github.com/pathtrace/pathtrace/correlate"

// keeper is the correlator's sink for both runs: every trace to the
// caller's sink as it is emitted (a streamed JSON report, evidence), the
// first limit (0: all, < 0: none) kept for the reports rendered at the end.
type keeper struct {
	sinks []func(*correlate.Trace)
	limit int
	kept  []correlate.Trace
	// enough, if set, is called once no trace to come is wanted (no sinks,
	// limit reached): the correlator then stops building them.
	enough func()
}

func (k *keeper) add(t *correlate.Trace) {
	for _, s := range k.sinks {
		s(t)
	}
	if k.limit == 0 || len(k.kept) < k.limit && k.limit > 0 {
		k.kept = append(k.kept, t.Clone())
	}
	if k.enough != nil && len(k.sinks) == 0 && (k.limit < 0 || k.limit > 0 && len(k.kept) >= k.limit) {
		k.enough()
		k.enough = nil
	}
}
