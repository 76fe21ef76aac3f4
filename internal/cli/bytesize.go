package cli

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// byteSize is a flag value in bytes that takes sizes as people type them:
// "256MiB", "256M", "1G", "1.5GiB", "4 MiB", "1048576". Units are powers of
// 1024 with or without the "i" (a ring or a spool is memory, sized in
// binary units whatever the spelling), case does not matter, and a bare
// number is bytes.
type byteSize int

// sizeUnits are the multipliers by a unit's first letter.
var sizeUnits = map[byte]float64{'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30, 't': 1 << 40}

func (b *byteSize) Set(s string) error {
	v, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(v)
	return nil
}

func (b *byteSize) String() string { return formatByteSize(int64(*b)) }

func (b *byteSize) Type() string { return "size" }

func parseByteSize(s string) (int64, error) {
	bad := fmt.Errorf("%q: want bytes, optionally with a unit: 256MiB, 1G, 4M, 512KiB, 1048576", s)
	t := strings.ToLower(strings.TrimSpace(s))
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	if num == "" {
		return 0, bad
	}
	mult := 1.0
	switch rest := unit; {
	case rest == "" || rest == "b":
	case strings.ContainsRune("kmgt", rune(rest[0])) && slices.Contains([]string{"", "b", "i", "ib"}, rest[1:]):
		mult = sizeUnits[rest[0]]
	default:
		return 0, bad
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, bad
	}
	v := f * mult
	if v > 1<<50 || v != math.Trunc(v) {
		return 0, fmt.Errorf("%q: want a whole number of bytes, at most 1 PiB", s)
	}
	return int64(v), nil
}

// formatByteSize writes n in the largest binary unit that divides it:
// "256MiB", "1GiB", "1000".
func formatByteSize(n int64) string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}
