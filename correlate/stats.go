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
func (l *latency) quantile(q float64) int64 {
	if l.count == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(l.count)))
	rank = max(rank, 1)
	if l.hist == nil {
		s := slices.Clone(l.exact)
		slices.Sort(s)
		return s[rank-1]
	}
	seen := 0
	if n := l.neg; n > 0 {
		if rank <= n {
			s := slices.Clone(l.negative)
			slices.Sort(s)
			return s[min(rank, len(s))-1]
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
