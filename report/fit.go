package report

// Fitting a text table to the width: cells of the columns that hold names
// or prose are wrapped onto more lines, the widest first, at spaces or
// after a separator ("-", ",", "@"...), so a table of container-style
// names ("cni-3f2c5e1a-7b9c-…") stays within the terminal. Numbers, MACs
// and times are never cut.

import (
	"strings"
	"unicode/utf8"
)

// wrapCol is a column that may be wrapped, down to min runes.
type wrapCol struct{ col, min int }

// fitColumns wraps cells of the wrap columns until the table (one leading
// blank, two between columns) fits width, or no column may shrink more.
func fitColumns(header []string, rows [][]string, width int, wrap []wrapCol) [][]string {
	n := len(header)
	colWidth := func(c int) int {
		w := 0
		for _, r := range append([][]string{header}, rows...) {
			if c < len(r) {
				for _, l := range strings.Split(r[c], "\n") {
					w = max(w, utf8.RuneCountInString(l))
				}
			}
		}
		return w
	}
	widths := make([]int, n)
	total := 1 + 2*(n-1)
	for c := range n {
		widths[c] = colWidth(c)
		total += widths[c]
	}
	if total <= width {
		return rows
	}
	// Cells are wrapped from the originals each time, so a narrower
	// column re-flows them rather than cutting lines already cut.
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = append([]string(nil), r...)
	}
	for total > width {
		// The column with the most room above its minimum gives first.
		best, slack := -1, 0
		for _, wc := range wrap {
			if wc.col < n && widths[wc.col]-wc.min > slack {
				best, slack = wc.col, widths[wc.col]-wc.min
			}
		}
		if best < 0 {
			break
		}
		// One rune at a time, so the wide columns end up alike.
		target := widths[best] - 1
		for i := range out {
			out[i][best] = strings.Join(wrapCell(rows[i][best], target), "\n")
		}
		// The header wraps too, but at words only: "MACS SEEN" may take two lines.
		got := 0
		for _, r := range out {
			for _, l := range strings.Split(r[best], "\n") {
				got = max(got, utf8.RuneCountInString(l))
			}
		}
		got = max(got, utf8.RuneCountInString(header[best]))
		if got >= widths[best] {
			break // nothing to gain: cells that cannot be cut
		}
		total -= widths[best] - got
		widths[best] = got
	}
	return out
}

// wrapCell breaks each line of s into lines of at most w runes: before a
// parenthesis, else at the last space that fits, else after the last separator that fits ("-", ",", "@",
// "/", "–", "_"; never inside a time or a MAC), else at w.
func wrapCell(s string, w int) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		r := []rune(line)
		for len(r) > w {
			cut, next := w, w
			paren := -1 // a parenthesis stays whole: "eth0@pod1" / "(ifindex 2)"
			for i := 1; i < w && i+1 < len(r); i++ {
				if r[i] == ' ' && r[i+1] == '(' {
					paren = i
				}
			}
			if paren > 0 {
				cut, next = paren, paren+1
			} else if i := lastIndex(r[:w+1], func(c rune) bool { return c == ' ' }); i > 0 {
				cut, next = i, i+1
			} else if i := lastIndex(r[:w], func(c rune) bool { return strings.ContainsRune("-,@/–_", c) }); i > 0 {
				cut, next = i+1, i+1
			}
			out = append(out, strings.TrimRight(string(r[:cut]), " "))
			r = r[next:]
		}
		out = append(out, string(r))
	}
	return out
}

func lastIndex(r []rune, f func(rune) bool) int {
	for i := len(r) - 1; i >= 0; i-- {
		if f(r[i]) {
			return i
		}
	}
	return -1
}
