package pipeline

import (
	"path/filepath"
	"strings"
)

// captureExts are stripped by PointBaseName, innermost last.
var captureExts = []string{".gz", ".pcapng", ".pcap", ".cap", ".ntar", ".dmp", ".dump"}

// PointBaseName is a file's base name without capture extensions:
// pod1-veth.cap → pod1-veth, x.pcapng.gz → x.
func PointBaseName(path string) string {
	base := filepath.Base(path)
	name := base
	for changed := true; changed; {
		changed = false
		for _, ext := range captureExts {
			if len(name) > len(ext) && strings.EqualFold(name[len(name)-len(ext):], ext) {
				name = name[:len(name)-len(ext)]
				changed = true
			}
		}
	}
	return name
}

// shortEnough is a name length that needs no shortening.
const shortEnough = 16

// nameSeps separate the parts of a file-derived point name; shortening
// drops whole parts only.
var nameSeps = []string{"__", "_", "-", ".", ":", "@", "+", " "}

// nameParts splits s into words and the separators between them:
// "a__b-c" → [a __ b - c].
func nameParts(s string) []string {
	var parts []string
	word := 0
	for i := 0; i < len(s); {
		sep := ""
		for _, p := range nameSeps {
			if strings.HasPrefix(s[i:], p) {
				sep = p
				break
			}
		}
		if sep == "" {
			i++
			continue
		}
		parts = append(parts, s[word:i], sep)
		i += len(sep)
		word = i
	}
	return append(parts, s[word:])
}

// shortNames drops from every name what all of them share at the start or
// the end, in whole parts between separators, keeping a word of each:
// netenv__calico__node1__vmk1-tcpdump and netenv__calico__node2__vmk2-tcpdump
// become node1__vmk1 and node2__vmk2; pod1 and pod1-veth stay as they are.
// Distinct names stay distinct. Names that are short already (as the
// seed's are) are left alone: shortening is for the long names files get
// when whole paths are flattened into them.
func shortNames(names []string) []string {
	long := 0
	for _, n := range names {
		long = max(long, len(n))
	}
	if len(names) < 2 || long <= shortEnough {
		return names
	}
	parts := make([][]string, len(names))
	for i, n := range names {
		parts[i] = nameParts(n)
	}
	// Whole words with their separators: an even count of parts from the
	// start (word, sep, word, sep...) or from the end (sep, word, ...).
	shortest := len(parts[0])
	for _, p := range parts {
		shortest = min(shortest, len(p))
	}
	pre := 0
	for pre+2 <= shortest-1 && allEqual(parts, func(p []string) []string { return p[:pre+2] }) {
		pre += 2
	}
	suf := 0
	for pre+suf+2 <= shortest-1 && allEqual(parts, func(p []string) []string { return p[len(p)-suf-2:] }) {
		suf += 2
	}
	if pre == 0 && suf == 0 {
		return names
	}
	out := make([]string, len(names))
	for i, p := range parts {
		out[i] = strings.Join(p[pre:len(p)-suf], "")
	}
	return out
}

func allEqual(parts [][]string, cut func([]string) []string) bool {
	first := cut(parts[0])
	for _, p := range parts[1:] {
		c := cut(p)
		for k := range first {
			if c[k] != first[k] {
				return false
			}
		}
	}
	return true
}
