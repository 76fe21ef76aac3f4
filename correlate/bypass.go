package correlate

import (
	"fmt"
	"math/bits"
	"strings"
)

// A point that saw none of the frames that crossed it one way, while the
// points before and after it saw them, was bypassed: something moved the
// frames past its capture (an eBPF redirect, such as Cilium's
// bpf_redirect_peer from one veth into another pod, skips the host veths
// and the bridge by design). That is a path, not a gap: the gaps at such a
// point become one bypass finding, and the traces whose only gaps they were
// count as complete. A point is only judged bypassed when its capture
// provably sees unicast (it saw unicast frames going the other way; or, on
// a discovered path, where every bridge is captured promiscuously, it saw
// nothing at all): a bridge captured without promiscuous mode, which passes
// up only broadcasts, has gaps.

// bypassCounts are, per direction and point, the traces that crossed the
// point seen there and unseen, and the traces with gaps.
type bypassCounts struct {
	seen, missed [2][MaxPoints]int32
	unicast      [2][MaxPoints]int32 // seen, of frames not flooded
	gapped       []gapRec
}

type gapRec struct {
	missed   uint64
	dir      uint8
	complete bool // neither lost nor off-path
}

func dirIndex(forward bool) uint8 {
	if forward {
		return 0
	}
	return 1
}

// countCrossings records how trace t crossed the points between its first
// and last hop (e.missed: the ones that did not see it).
func (e *Engine) countCrossings(t *trace, forward, complete bool) {
	d := dirIndex(forward)
	b := &e.bypass
	uni := !isFlood(t)
	for s := t.seen; s != 0; s &= s - 1 {
		p := bits.TrailingZeros64(s)
		b.seen[d][p]++
		if uni {
			b.unicast[d][p]++
		}
	}
	if e.missed == 0 {
		return
	}
	for s := e.missed; s != 0; s &= s - 1 {
		b.missed[d][bits.TrailingZeros64(s)]++
	}
	b.gapped = append(b.gapped, gapRec{missed: e.missed, dir: d, complete: complete})
}

// bypassed turns the gaps at bypassed points into bypass findings and
// recounts the traces whose only gaps they were.
func (e *Engine) bypassed(r *Result) {
	b := &e.bypass
	var mask [2]uint64
	for d := range mask {
		for p := range e.cfg.Points {
			sees := b.unicast[1-d][p] > 0 || e.cfg.OnePath && e.cov[p].frames == 0
			if b.missed[d][p] > 0 && b.seen[d][p] == 0 && sees {
				mask[d] |= 1 << uint(p)
			}
		}
	}
	if mask[0]|mask[1] == 0 {
		return
	}
	for i := range r.Anomalies {
		a := &r.Anomalies[i]
		p := e.pointIndex(a.Point)
		if a.Kind != KindGap || p < 0 || (mask[0]|mask[1])&(1<<uint(p)) == 0 {
			continue
		}
		way := "forward"
		if mask[0]&(1<<uint(p)) == 0 {
			way = "reverse"
		}
		a.Kind, a.Severity = KindBypass, KindBypass.Severity()
		a.Message = fmt.Sprintf("%s saw none of the %d frames that crossed it going %s while the points on both sides saw them: "+
			"something bypassed it (an eBPF redirect, such as Cilium's bpf_redirect_peer, skips it by design)", a.Point, a.Count, way)
	}
	for _, g := range b.gapped {
		if g.missed&^mask[g.dir] == 0 {
			r.Summary.WithGaps--
			if g.complete {
				r.Summary.Complete++
			}
		}
	}
}

// bypassLine is the verdict's word on bypassed points.
func bypassLine(r *Result) string {
	var pts []string
	n := 0
	for _, a := range r.Anomalies {
		if a.Kind == KindBypass {
			pts = append(pts, a.Point)
			n = max(n, a.Count)
		}
	}
	if len(pts) == 0 {
		return ""
	}
	return fmt.Sprintf("%s bypassed by %d traces (a redirect past the capture, by design in eBPF dataplanes such as Cilium)", strings.Join(pts, ", "), n)
}

func (e *Engine) pointIndex(name string) int {
	for i := range e.cfg.Points {
		if e.cfg.Points[i].Name == name {
			return i
		}
	}
	return -1
}
