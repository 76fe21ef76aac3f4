package correlate

import (
	"math"
	"math/bits"
	"slices"
)

// exactCap is how many samples a hop pair keeps exactly. Beyond it the pair
// switches to a log-linear histogram, so memory stays bounded on inputs of
// any size while small captures get exact quantiles that tshark can confirm.
const exactCap = 1 << 16

// histogram buckets: per power of two, 128 linear sub-buckets, so a bucket's
// width is at most 1/128 of its value (quantile error < 0.8%).
const subBits = 7

type latency struct {
	count    int
	min, max int64
	exact    []int64
	// hist counts samples per bucket (index), nil until the exact buffer
	// overflows; a slice, not a map: a flood adds a sample per hop.
	hist     []int
	neg      int     // negative samples (one bucket of their own)
	negative []int64 // negatives stay exact: they are rare (clock inversions)
}

func (l *latency) add(v int64) {
	if l.count == 0 || v < l.min {
		l.min = v
	}
	if l.count == 0 || v > l.max {
		l.max = v
	}
	l.count++
	if l.hist == nil {
		if len(l.exact) < exactCap {
			if len(l.exact) == cap(l.exact) {
				l.grow()
			}
			l.exact = append(l.exact, v)
			return
		}
		l.hist = make([]int, 0, 1<<(subBits+5))
		for _, s := range l.exact {
			l.histAdd(s)
		}
		l.exact = nil
	}
	l.histAdd(v)
}

// grow makes room for more exact samples, four times as many: append's
// growth (1.25× for large slices) copied a flood's 65,536 samples of a hop
// pair into fresh memory ~10 times, 2 MiB a pair, on the correlator's core.
func (l *latency) grow() {
	exact := make([]int64, len(l.exact), min(exactCap, max(256, 4*cap(l.exact))))
	copy(exact, l.exact)
	l.exact = exact
}

func (l *latency) histAdd(v int64) {
	if v < 0 {
		if len(l.negative) < exactCap {
			l.negative = append(l.negative, v)
		}
		l.neg++
		return
	}
	b := bucketOf(uint64(v))
	if b >= len(l.hist) {
		l.hist = append(l.hist, make([]int, b+1-len(l.hist))...)
	}
	l.hist[b]++
}

func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	e := bits.Len64(v) - 1 - subBits
	return (e+1)<<subBits | int(v>>uint(e)&(1<<subBits-1))
}

// bucketMid is the representative value of a bucket (its midpoint).
func bucketMid(b int) int64 {
	if b < 1<<subBits {
		return int64(b)
	}
	e := b>>subBits - 1
	lo := uint64(1<<subBits|b&(1<<subBits-1)) << uint(e)
	return int64(lo + (uint64(1)<<uint(e))/2)
}

// quantile uses the nearest-rank definition: the smallest sample with at
// least q of the samples at or below it.
// It reorders the samples (their order means nothing): a selection in
// place is linear, where sorting a copy per quantile showed at the end of
// every analysis.
func (l *latency) quantile(q float64) int64 {
	if l.count == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(l.count)))
	rank = max(rank, 1)
	if l.hist == nil {
		return nth(l.exact, rank-1)
	}
	seen := 0
	if n := l.neg; n > 0 {
		if rank <= n {
			return nth(l.negative, min(rank, len(l.negative))-1)
		}
		seen = n
	}
	for k, n := range l.hist {
		if n == 0 {
			continue
		}
		seen += n
		if seen >= rank {
			return min(max(bucketMid(k), l.min), l.max)
		}
	}
	return l.max
}

// nth is the k-th smallest of s (0-based), moving s's elements: a
// quickselect, with a median-of-three pivot; a sort should the partitions
// shrink too slowly (an adversarial order).
func nth(s []int64, k int) int64 {
	lo, hi := 0, len(s)-1
	for budget := 2 * bits.Len(uint(len(s))); hi > lo; budget-- {
		if budget == 0 {
			slices.Sort(s[lo : hi+1])
			break
		}
		m := lo + (hi-lo)/2
		if s[m] < s[lo] {
			s[m], s[lo] = s[lo], s[m]
		}
		if s[hi] < s[lo] {
			s[hi], s[lo] = s[lo], s[hi]
		}
		if s[hi] < s[m] {
			s[hi], s[m] = s[m], s[hi]
		}
		pivot := s[m]
		i, j := lo, hi
		for i <= j {
			for s[i] < pivot {
				i++
			}
			for s[j] > pivot {
				j--
			}
			if i <= j {
				s[i], s[j] = s[j], s[i]
				i++
				j--
			}
		}
		// s[lo..j] <= pivot <= s[i..hi]; between them, pivots.
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return s[k]
		}
	}
	return s[k]
}
