package correlate

import (
	"math/rand/v2"
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
