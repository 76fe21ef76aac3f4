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
