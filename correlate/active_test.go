package correlate

import (
	"math/rand/v2"
	"testing"
)

// TestActiveTableMatchesMap: random sets, replacements and deletions,
// with keys crowded into few homes so probes wrap and deletions shift,
// leave the table holding what a Go map holds.
func TestActiveTableMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var a activeTable
	want := map[uint64]*trace{}
	traces := make([]trace, 64)
	keys := make([]uint64, 300)
	for i := range keys {
		keys[i] = rng.Uint64() & 0xff0000000000003f // few distinct homes at the table's sizes
	}
	for step := range 200_000 {
		k := keys[rng.IntN(len(keys))]
		switch rng.IntN(3) {
		case 0, 1:
			tr := &traces[rng.IntN(len(traces))]
			a.set(k, tr)
			want[k] = tr
		default:
			a.del(k)
			delete(want, k)
		}
		if step%997 == 0 || step > 199_000 {
			if a.n != len(want) {
				t.Fatalf("step %d: %d entries, want %d", step, a.n, len(want))
			}
			for _, k := range keys {
				if got := a.get(k); got != want[k] {
					t.Fatalf("step %d: get(%x) = %p, want %p", step, k, got, want[k])
				}
			}
		}
	}
}

// TestActiveTableShrinks: after a burst, the table returns to a size its
// recent peak needs, and still finds every key.
func TestActiveTableShrinks(t *testing.T) {
	var a activeTable
	tr := &trace{}
	for k := range uint64(5000) {
		a.set(k*0x9e37, tr)
	}
	big := len(a.slots)
	for k := range uint64(4990) {
		a.del(k * 0x9e37)
	}
	for i := range uint64(2 * shrinkEvery) {
		k := (1<<40 + i) * 0x9e37
		a.set(k, tr)
		a.del(k)
	}
	if len(a.slots) >= big || len(a.slots) > 64 {
		t.Fatalf("%d slots after the burst (%d at its peak), want 64", len(a.slots), big)
	}
	for k := range uint64(5000) {
		if got, want := a.get(k*0x9e37), k >= 4990; (got != nil) != want {
			t.Fatalf("get(%d) = %p after shrinking", k, got)
		}
	}
}
