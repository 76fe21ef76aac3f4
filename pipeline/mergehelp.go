package pipeline

// Helper is work the merger's goroutines do instead of waiting: the merge
// goroutine while Next's caller has not taken its frames, Next's caller
// while no frames are merged yet. correlate.Helper builds finished traces
// (an engine with Config.Helped): on two cores the report is then built by
// whichever of the two goroutines has time, not by a third taking turns
// with both. Only instead of waiting: the merge building whenever work was
// queued (or until none was left) made set1x's JSON report slower than
// with a builder goroutine — it reads the traces the correlator's core
// wrote, the correlator building them costs less.
type Helper interface {
	// Help does one piece of work if there is any; it reports whether it
	// did.
	Help() bool
	// Ready is signalled as work comes (a wake-up, not a count): a merger
	// goroutine that has to wait waits for it too.
	Ready() <-chan struct{}
}

// SetHelper makes the merger's goroutines do h's work instead of waiting.
// Call it before the first Next.
func (m *Merger) SetHelper(h Helper) {
	m.helper, m.ready = h, h.Ready()
}

// help does one piece of the helper's work, if it has one.
func (m *Merger) help() bool {
	return m.helper != nil && m.helper.Help()
}
