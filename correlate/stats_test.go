package correlate

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// nth must pick what sorting picks, also on ties and sorted runs.
func TestNthMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 1; n < 300; n++ {
		for rep := 0; rep < 20; rep++ {
			s := make([]int64, n)
			for i := range s {
				switch rep % 4 {
				case 0:
					s[i] = r.Int64N(10)
				case 1:
					s[i] = int64(i)
				case 2:
					s[i] = int64(n - i)
				default:
					s[i] = r.Int64()
				}
			}
			c := slices.Clone(s)
			slices.Sort(c)
			k := r.IntN(n)
			if got := nth(s, k); got != c[k] {
				t.Fatalf("n=%d k=%d got %d want %d", n, k, got, c[k])
			}
			if got := nth(s, n-1-k); got != c[n-1-k] {
				t.Fatalf("second n=%d", n)
			}
		}
	}
}

// TestLatencyExactMemory: a hop pair's exact samples, filled to exactCap as
// a flood does, allocate at most half again what they hold (append's growth
// allocated ~5 times as much, copied into fresh memory on the correlator's
// core), and the quantiles stay exact.
func TestLatencyExactMemory(t *testing.T) {
	var l latency
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range exactCap {
		l.add(int64(exactCap - i))
	}
	runtime.ReadMemStats(&after)
	held := int64(exactCap * 8)
	got := int64(after.TotalAlloc - before.TotalAlloc)
	t.Logf("%d samples: %d bytes allocated for %d held", exactCap, got, held)
	if got > held*3/2 {
		t.Errorf("%d samples allocated %d bytes, want at most %d", exactCap, got, held*3/2)
	}
	if l.hist != nil || len(l.exact) != exactCap {
		t.Fatalf("%d exact samples, histogram %v", len(l.exact), l.hist != nil)
	}
	if q := l.quantile(0.5); q != exactCap/2 {
		t.Errorf("median %d, want %d", q, exactCap/2)
	}
}
