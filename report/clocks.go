package report

// What the reports say about captures whose clocks were corrected.

import (
	"fmt"
	"strings"

	"github.com/pathtrace/pathtrace/correlate"
)

// refTime is a hop's time on the reference clock: the capture's stamp less
// the clock offset corrected for it, as the deltas are measured.
func refTime(h *correlate.Hop) int64 { return int64(h.Time) - h.ClockOffsetNs }

// clockLines say, above the traces, which captures' clocks were corrected:
// "pod2-veth, pod2: clock 16.003 ms ± 3.1 µs ahead of pod1's (estimated
// from 24 frames); deltas corrected". Points corrected alike share a line.
func clockLines(r *correlate.Result) []string {
	type key struct {
		ref      string
		off, unc int64
		ppm      float64
		src      correlate.ClockSource
	}
	var order []key
	points := map[key][]string{}
	samples := map[key]int{}
	for _, c := range r.ClockOffsets {
		k := key{c.Reference, c.OffsetNs, c.UncertaintyNs, c.DriftPPM, c.Source}
		if _, ok := points[k]; !ok {
			order = append(order, k)
		}
		points[k] = append(points[k], c.Point)
		samples[k] = max(samples[k], c.Samples)
	}
	var out []string
	for _, k := range order {
		way := "ahead of"
		if k.off < 0 {
			way = "behind"
		}
		s := fmt.Sprintf("%s: clock %s", strings.Join(points[k], ", "), duration(abs64(k.off)))
		if k.unc > 0 {
			s += " ± " + duration(k.unc)
		}
		s += " " + way + " " + k.ref + "'s"
		if k.ppm != 0 {
			s += fmt.Sprintf(", drifting %+.1f ppm", k.ppm)
		}
		if k.src == correlate.ClockDeclared {
			s += " (declared)"
		} else {
			s += fmt.Sprintf(" (estimated from %d frames)", samples[k])
		}
		out = append(out, s+"; deltas corrected")
	}
	return out
}

// duration is ns with a unit a reader takes in at a glance.
func duration(ns int64) string {
	switch a := abs64(ns); {
	case a >= 1e9:
		return fmt.Sprintf("%.3f s", float64(ns)/1e9)
	case a >= 1e6:
		return fmt.Sprintf("%.3f ms", float64(ns)/1e6)
	case a >= 1e3:
		return fmt.Sprintf("%.1f µs", float64(ns)/1e3)
	}
	return fmt.Sprintf("%d ns", ns)
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
