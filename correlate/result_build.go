package correlate

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// result assembles everything but the traces, which went to the sink.
func (e *Engine) result() *Result {
	r := &Result{
		Version:    SchemaVersion,
		Traces:     []Trace{},
		HopLatency: []HopStat{},
		Anomalies:  []Anomaly{},
		Warnings:   append([]string{}, e.warnings...),
	}
	var end int64
	for p := range e.cov {
		end = max(end, e.cov[p].last)
	}
	for p, spec := range e.cfg.Points {
		c := &e.cov[p]
		if c.frames > 0 && !c.early && spec.CoverTo == 0 && end-c.last > e.window {
			r.Warnings = append(r.Warnings, fmt.Sprintf(
				"%s: last frame %s, %.1f s before the other captures ended; it counts as capturing until the end (a pcap records no stop time): if it stopped early, loss reported after it is not real",
				spec.Name, Timestamp(c.last), float64(end-c.last)/1e9))
		}
		pr := PointRep{Name: spec.Name, Source: spec.Source, MACs: []MACSeen{}}
		if spec.Interface != "" {
			pr.Interface = someS(spec.Interface)
		}
		if spec.IfIndex >= 0 {
			pr.IfIndex = someI(int64(spec.IfIndex))
		}
		if spec.MTU > 0 {
			pr.MTU = someI(int64(spec.MTU))
		}
		pr.Coverage = Coverage{Frames: c.frames, Decoded: c.decoded, Truncated: c.truncated}
		if c.frames > 0 {
			pr.Coverage.First, pr.Coverage.Last = someT(c.first), someT(c.last)
		}
		if spec.CoverTo != 0 {
			pr.Coverage.First, pr.Coverage.Last = someT(spec.CoverFrom), someT(spec.CoverTo)
		}
		if spec.HasDrops {
			pr.Coverage.KernelDrops = someU(spec.Drops)
		}
		if spec.Snaplen > 0 {
			pr.Coverage.Snaplen = someI(int64(spec.Snaplen))
		}
		for _, m := range c.macs {
			pr.MACs = append(pr.MACs, MACSeen{MAC: m.mac, Owner: e.ownerLabel(m.mac), Frames: m.n})
		}
		slices.SortFunc(pr.MACs, func(a, b MACSeen) int {
			if a.Frames != b.Frames {
				return b.Frames - a.Frames
			}
			return bytes.Compare(a.MAC[:], b.MAC[:])
		})
		r.Points = append(r.Points, pr)
		if c.frames == 0 {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s: no frames", spec.Name))
		}
		if spec.HasDrops && spec.Drops > 0 {
			e.anomaly(KindKernelDrops, spec.Name, 0, func() string {
				return fmt.Sprintf("the kernel dropped %d frames at %s: losses there may be the capture's own", spec.Drops, spec.Name)
			})
		}
		if w := encryptedWarning(spec.Name, c); w != "" {
			r.Warnings = append(r.Warnings, w)
		}
		if c.truncated > 0 {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s: %d frames cut by the snaplen", spec.Name, c.truncated))
		}
	}
	keys := make([][2]int, 0, len(e.stats))
	for k := range e.stats {
		keys = append(keys, k)
	}
	// Forward pairs first in path order, then reverse ones.
	slices.SortFunc(keys, func(a, b [2]int) int {
		fa, fb := a[0] < a[1], b[0] < b[1]
		if fa != fb {
			if fa {
				return -1
			}
			return 1
		}
		if a[0] != b[0] {
			if fa {
				return a[0] - b[0]
			}
			return b[0] - a[0]
		}
		return a[1] - b[1]
	})
	for _, k := range keys {
		l := e.stats[k]
		r.HopLatency = append(r.HopLatency, HopStat{
			From: e.cfg.Points[k[0]].Name, To: e.cfg.Points[k[1]].Name,
			Count: l.count, MinNs: l.min, P50Ns: l.quantile(0.50), P99Ns: l.quantile(0.99), MaxNs: l.max,
			Exact: l.hist == nil,
		})
	}
	for _, k := range e.anomOrder {
		a := *e.anomalies[k]
		if a.Kind == KindKernelDrops {
			a.Traces = []int{}
		}
		r.Anomalies = append(r.Anomalies, a)
	}
	r.Summary = e.sum
	r.Summary.Verdict, r.Summary.Clean = e.verdict(r)
	return r
}

// encryptedWarning says once per point that its encrypted tunnel frames
// are matched as the outer packets they are, never with the pods' frames.
func encryptedWarning(point string, c *coverage) string {
	var what string
	switch {
	case c.esp > 0 && c.wg > 0:
		what = "IPsec ESP or WireGuard"
	case c.esp > 0:
		what = "IPsec ESP"
	case c.wg > 0:
		what = "WireGuard"
	default:
		return ""
	}
	return fmt.Sprintf("%s: %d frames are %s: encrypted, their inner packets cannot be matched across the tunnel", point, c.esp+c.wg, what)
}

func (e *Engine) ownerLabel(mac MAC) string {
	if o, ok := e.cfg.MACOwners[mac]; ok {
		return o.Label
	}
	if p := e.learnedMAC(mac); p >= 0 {
		return "from " + e.cfg.Points[p].Name
	}
	return ""
}

// verdict is the one line a reader's eye lands on.
func (e *Engine) verdict(r *Result) (string, bool) {
	s := &r.Summary
	warn := 0
	for _, a := range r.Anomalies {
		if a.Severity == Warning {
			warn++
		}
	}
	if s.Traces == 0 {
		return fmt.Sprintf("nothing to correlate: %d frames read, none of them ICMP, ARP, ND, TCP, UDP or IP", s.Frames), s.Frames > 0 && warn == 0
	}
	var parts []string
	if s.Lost > 0 {
		where := map[string]int{}
		for _, a := range r.Anomalies {
			if a.Kind == KindLoss {
				where[a.Point] += a.Count
			}
		}
		parts = append(parts, fmt.Sprintf("%d of %d traces lost (%s)", s.Lost, s.Traces, countList("after ", where)))
	}
	if s.WithGaps > 0 {
		where := map[string]int{}
		for _, a := range r.Anomalies {
			if a.Kind == KindGap {
				where[a.Point] += a.Count
			}
		}
		parts = append(parts, fmt.Sprintf("%d traces not seen at a point they crossed (%s)", s.WithGaps, countList("", where)))
	}
	for _, a := range r.Anomalies {
		if a.Severity == Warning && a.Kind != KindLoss && a.Kind != KindGap {
			where := a.Kind.String()
			if a.Point != "" {
				where += " at " + a.Point
			}
			parts = append(parts, fmt.Sprintf("%s ×%d", where, a.Count))
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("OK: all %d traces crossed every capturing point on their way (%d points, %d frames)",
			s.Traces, len(e.cfg.Points), s.Decoded), true
	}
	var dropped uint64
	for _, p := range e.cfg.Points {
		dropped += p.Drops
	}
	if dropped > 0 {
		// Say first that the capture itself lost frames: what looks like
		// loss on the path may be the capture's own.
		return fmt.Sprintf("CAPTURE INCOMPLETE: the kernel dropped %d frames before pathtrace saw them, so losses below may be the capture's own; %s",
			dropped, strings.Join(parts, "; ")), false
	}
	return "PROBLEM: " + strings.Join(parts, "; "), false
}

func countList(prefix string, m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b []string
	for _, k := range keys {
		b = append(b, fmt.Sprintf("%s%s ×%d", prefix, k, m[k]))
	}
	return strings.Join(b, ", ")
}

// Clone returns a deep copy of t, for sinks that keep traces.
func (t *Trace) Clone() Trace {
	c := *t
	c.Hops = slices.Clone(t.Hops)
	c.Missing = append([]string{}, t.Missing...)
	c.Rewrites = append([]Rewrite{}, t.Rewrites...)
	c.Flags = append([]Flag{}, t.Flags...)
	if t.RTT != nil {
		r := *t.RTT
		c.RTT = &r
	}
	return c
}

// Analyze correlates frames held in memory: the reference the streaming
// path is checked against, and a convenience for tests.
func Analyze(cfg Config, frames []Frame) (*Result, error) {
	var traces []Trace
	e, err := New(cfg, func(t *Trace) { traces = append(traces, t.Clone()) })
	if err != nil {
		return nil, err
	}
	for i := range frames {
		e.Add(&frames[i])
	}
	r := e.Finish()
	r.Traces = append(r.Traces, traces...)
	return r, nil
}
