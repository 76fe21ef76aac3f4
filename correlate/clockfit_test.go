package correlate

import (
	"math/rand/v2"
	"testing"
)

// TestNearestMatchesScan: the sorted index picks the bound a scan of every
// bound picks (the last in order of those equally near), ties and bounds
// at the window's edge included.
func TestNearestMatchesScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 15))
	for round := range 300 {
		lo := make([]pt, r.IntN(40))
		for i := range lo {
			lo[i] = pt{t: int64(r.IntN(50)) * 10, v: float64(i)} // repeated times, equal gaps
		}
		near := newNearest(lo)
		for range 50 {
			u, window := int64(r.IntN(600))-50, int64(r.IntN(4))*10
			want, gap := -1, window
			for j, l := range lo {
				if g := max(u-l.t, l.t-u); g <= gap {
					want, gap = j, g
				}
			}
			if got := near.find(u, window); got != want {
				t.Fatalf("round %d: nearest to %d within %d among %v: got %d, a scan %d", round, u, window, lo, got, want)
			}
		}
	}
}
