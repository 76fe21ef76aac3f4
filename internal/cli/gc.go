package cli

import (
	"os"
	"runtime/debug"
)

// analyzeGCPercent is the heap's growth between collections for analyze
// (GOGC), unless GOGC is set. An analysis holds ~15 MiB live: at Go's 100
// the heap grows to ~30 MiB between collections, and each fresh page costs
// a page fault (~13 µs on the 2-core test VMs). At 75, set1x's peak RSS
// was 58.9 MiB instead of 63.5 (medians of 15 interleaved runs) in the
// same time (0.84 s against 0.86); at 60 it took longer.
const analyzeGCPercent = 75

// tuneGC sets the GC's percent unless the user's GOGC does.
func tuneGC(percent int) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(percent)
	}
}
