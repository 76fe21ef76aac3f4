package pipeline

import "github.com/pathtrace/pathtrace/correlate"

// maxHeld bounds the traces held for their drops; beyond it the oldest go
// on without (a passive run over a flood).
const maxHeld = 50000

// keeper is the correlator's sink for both runs: every trace to the
// caller's sink as it is emitted (a streamed JSON report, evidence), the
// first limit (0: all, < 0: none) kept for the reports rendered at the end.
// Holding, it keeps every trace back until release, so the kernel's drops,
// known only once the run is over, can join them first.
type keeper struct {
	sinks []func(*correlate.Trace)
	limit int
	kept  []correlate.Trace
	// enough, if set, is called once no trace to come is wanted (no sinks,
	// limit reached, nothing held or watched): the correlator then stops
	// building them.
	enough func()

	hold     bool
	held     []correlate.Trace
	released int // held traces passed on before release (maxHeld)
	seen     func(*correlate.Trace)
}

func (k *keeper) add(t *correlate.Trace) {
	if k.seen != nil {
		k.seen(t)
	}
	if !k.hold {
		k.pass(t, false)
		return
	}
	if len(k.held) >= maxHeld {
		k.pass(&k.held[0], true)
		k.held = k.held[1:]
		k.released++
	}
	k.held = append(k.held, t.Clone())
}

// pass hands t on; owned: t is a clone the keeper may keep as it is.
func (k *keeper) pass(t *correlate.Trace, owned bool) {
	for _, s := range k.sinks {
		s(t)
	}
	if k.limit == 0 || len(k.kept) < k.limit && k.limit > 0 {
		c := *t
		if !owned {
			c = t.Clone() // the correlator reuses t
		}
		k.kept = append(k.kept, c)
	}
	if k.enough != nil && !k.hold && k.seen == nil && len(k.sinks) == 0 && (k.limit < 0 || k.limit > 0 && len(k.kept) >= k.limit) {
		k.enough()
		k.enough = nil
	}
}

// release lets fn amend the held traces, then passes them on; the keeper
// stops holding.
func (k *keeper) release(fn func([]correlate.Trace)) {
	if !k.hold {
		return
	}
	fn(k.held)
	for i := range k.held {
		k.pass(&k.held[i], true)
	}
	k.held, k.hold = nil, false
}
