package report

// The JSON encoder writes about a dozen integers per trace (number, ids,
// length, each hop's delta and frame number). strconv.AppendInt formats
// into a buffer of its own and copies it over; writing the digits in
// place, two at a time, takes about a third of its instructions
// (cachegrind, a flood's 400,000 traces).

// appendUint appends v in decimal. Below 10^8 (a frame number, a delta in
// ns) the digit count is found by halves and the digits are written two at
// a time in one append: a third fewer instructions than a loop over pairs.
func appendUint(b []byte, v uint64) []byte {
	if v < 10000 {
		if v < 100 {
			if v < 10 {
				return append(b, byte('0'+v))
			}
			p := &pairs[v]
			return append(b, p[0], p[1])
		}
		lo := &pairs[v%100]
		if v < 1000 {
			return append(b, byte('0'+v/100), lo[0], lo[1])
		}
		hi := &pairs[v/100]
		return append(b, hi[0], hi[1], lo[0], lo[1])
	}
	if v >= 100000000 {
		return appendUintLong(b, v)
	}
	x := v / 100
	lo, mid := &pairs[v%100], &pairs[x%100]
	y := x / 100
	if v < 1000000 {
		if v < 100000 {
			return append(b, byte('0'+y), mid[0], mid[1], lo[0], lo[1])
		}
		hi := &pairs[y%100]
		return append(b, hi[0], hi[1], mid[0], mid[1], lo[0], lo[1])
	}
	hi := &pairs[y%100]
	if v < 10000000 {
		return append(b, byte('0'+y/100), hi[0], hi[1], mid[0], mid[1], lo[0], lo[1])
	}
	top := &pairs[y/100]
	return append(b, top[0], top[1], hi[0], hi[1], mid[0], mid[1], lo[0], lo[1])
}

// pairs[i] is i as two digits.
var pairs = func() (p [100][2]byte) {
	for i := range p {
		p[i] = [2]byte{byte('0' + i/10), byte('0' + i%10)}
	}
	return p
}()

// appendUintLong appends v >= 10^8: the digits above its last eight,
// then those eight.
func appendUintLong(b []byte, v uint64) []byte {
	b = appendUint(b, v/1e8)
	lo := v % 1e8
	x, y := lo/100, lo/10000
	w, h, m, l := &pairs[y/100], &pairs[y%100], &pairs[x%100], &pairs[lo%100]
	return append(b, w[0], w[1], h[0], h[1], m[0], m[1], l[0], l[1])
}

// appendInt appends v in decimal.
func appendInt(b []byte, v int64) []byte {
	if v < 0 {
		return appendUint(append(b, '-'), uint64(-v)) // -MinInt64 wraps to its own magnitude
	}
	return appendUint(b, uint64(v))
}
