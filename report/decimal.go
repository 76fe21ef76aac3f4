package report

import "math/bits"

// The JSON encoder writes about a dozen integers per trace (number, ids,
// length, each hop's delta and frame number). strconv.AppendInt formats
// into a buffer of its own and copies it over; writing the digits in
// place, two at a time, took about half the instructions (cachegrind, a
// flood's 400,000 traces).

// appendUint appends v in decimal. Below 10^8 (a frame number, a delta in
// ns) the digit count is found by halves and the digits are written two at
// a time in one append: a third fewer instructions than a loop over pairs.
func appendUint(b []byte, v uint64) []byte {
	if v < 10000 {
		if v < 100 {
			if v < 10 {
				return append(b, byte('0'+v))
			}
			p := pairs[v]
			return append(b, p[0], p[1])
		}
		lo := pairs[v%100]
		if v < 1000 {
			return append(b, byte('0'+v/100), lo[0], lo[1])
		}
		hi := pairs[v/100]
		return append(b, hi[0], hi[1], lo[0], lo[1])
	}
	if v >= 100000000 {
		return appendUintLong(b, v)
	}
	x := v / 100
	lo, mid := pairs[v%100], pairs[x%100]
	y := x / 100
	if v < 1000000 {
		if v < 100000 {
			return append(b, byte('0'+y), mid[0], mid[1], lo[0], lo[1])
		}
		hi := pairs[y%100]
		return append(b, hi[0], hi[1], mid[0], mid[1], lo[0], lo[1])
	}
	hi := pairs[y%100]
	if v < 10000000 {
		return append(b, byte('0'+y/100), hi[0], hi[1], mid[0], mid[1], lo[0], lo[1])
	}
	top := pairs[y/100]
	return append(b, top[0], top[1], hi[0], hi[1], mid[0], mid[1], lo[0], lo[1])
}

// pairs[i] is i as two digits.
var pairs = func() (p [100][2]byte) {
	for i := range p {
		p[i] = [2]byte{byte('0' + i/10), byte('0' + i%10)}
	}
	return p
}()

// appendUintLong appends v (any size) in decimal.
func appendUintLong(b []byte, v uint64) []byte {
	if v < 10 {
		return append(b, byte('0'+v))
	}
	// Digits: floor(log10 v) + 1, from the bit length (1233/4096 ≈ log10 2).
	t := uint(bits.Len64(v)) * 1233 >> 12
	n := int(t) + 1
	if v < pow10[t] {
		n--
	}
	start := len(b)
	if cap(b)-start >= n {
		b = b[:start+n]
	} else {
		b = append(b, make([]byte, n)...)
	}
	i := start + n
	for v >= 100 {
		q := v / 100
		r := (v - q*100) * 2
		i -= 2
		b[i], b[i+1] = digitPairs[r], digitPairs[r+1]
		v = q
	}
	if v >= 10 {
		b[start], b[start+1] = digitPairs[v*2], digitPairs[v*2+1]
	} else {
		b[start] = byte('0' + v)
	}
	return b
}

// appendInt appends v in decimal.
func appendInt(b []byte, v int64) []byte {
	if v < 0 {
		return appendUint(append(b, '-'), uint64(-v)) // -MinInt64 wraps to its own magnitude
	}
	return appendUint(b, uint64(v))
}

// pow10[i] is 10^i, up to the largest that fits a uint64.
var pow10 = func() (p [20]uint64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// digitPairs holds "00" to "99" back to back.
const digitPairs = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"
