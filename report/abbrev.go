package report

// Point names in column headers: a name longer than its column is
// abbreviated, and a legend spells it out. Abbreviations keep the start of
// a name and as much of its end as it takes for no two columns to read
// alike ("node-a…2" and "node-a…3", "cni-3…c" and "cni-3…h"); where no cut
// tells them apart, columns are numbered by their place in the path ("p5").

import (
	"fmt"
	"unicode/utf8"
)

// abbreviate returns names as columns of widths show them. A cut name
// keeps its start; names that a cut makes alike keep ever more of their
// end, group by group, and those that still read alike are numbered.
func abbreviate(names []string, widths []int) []string {
	out := make([]string, len(names))
	tail := make([]int, len(names))
	cut := map[int]bool{}
	for c, n := range names {
		out[c] = n
		if utf8.RuneCountInString(n) > widths[c] {
			cut[c] = true
			out[c] = cutAround(n, widths[c], 0)
		}
	}
	for {
		groups := map[string][]int{}
		for c, s := range out {
			groups[s] = append(groups[s], c)
		}
		changed := false
		for _, g := range groups {
			if len(g) < 2 {
				continue
			}
			for _, c := range g {
				if cut[c] && tail[c] < widths[c]-1 {
					tail[c]++
					out[c] = cutAround(names[c], widths[c], tail[c])
					changed = true
				}
			}
		}
		if !changed {
			break
		}
	}
	count := map[string]int{}
	for _, s := range out {
		count[s]++
	}
	for c := range out {
		if count[out[c]] > 1 && cut[c] {
			out[c] = truncRunes(fmt.Sprintf("p%d", c+1), widths[c])
		}
	}
	return out
}

// cutAround cuts s to w runes: its start, "…", and tail runes of its end.
func cutAround(s string, w, tail int) string {
	r := []rune(s)
	if w <= 1 {
		return "…"
	}
	tail = min(tail, w-1)
	head := w - 1 - tail
	return string(r[:head]) + "…" + string(r[len(r)-tail:])
}

// legend spells out the abbreviated columns: "pod1-v… = pod1-veth-vethb07edeba".
func legend(names, shown []string) []string {
	var out []string
	for c, n := range names {
		if shown[c] != n {
			out = append(out, shown[c]+" = "+n)
		}
	}
	return out
}
