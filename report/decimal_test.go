package report

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestAppendDecimal: the encoder's integers read as strconv writes them,
// at every power of ten and its neighbours, the extremes, and at random.
func TestAppendDecimal(t *testing.T) {
	us := []uint64{0, 1, 9, math.MaxUint64, math.MaxInt64, math.MaxInt64 + 1}
	for p := uint64(1); p <= math.MaxUint64/10; p *= 10 {
		us = append(us, p-1, p, p+1, p*10-1)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		us = append(us, r.Uint64()>>r.UintN(64))
	}
	prefix := []byte("x")
	for _, v := range us {
		if got, want := string(appendUint(prefix, v)), "x"+strconv.FormatUint(v, 10); got != want {
			t.Fatalf("appendUint(%d) = %q, want %q", v, got, want)
		}
		for _, i := range []int64{int64(v), -int64(v)} {
			if got, want := string(appendInt(prefix, i)), "x"+strconv.FormatInt(i, 10); got != want {
				t.Fatalf("appendInt(%d) = %q, want %q", i, got, want)
			}
		}
	}
	if got := string(appendInt(nil, math.MinInt64)); got != strconv.FormatInt(math.MinInt64, 10) {
		t.Fatalf("appendInt(MinInt64) = %q", got)
	}
}
