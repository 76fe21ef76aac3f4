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
		Version:      SchemaVersion,
		ClockOffsets: append([]ClockOffset{}, e.cfg.ClockOffsets...),
		Traces:       []Trace{},
		HopLatency:   []HopStat{},
		Anomalies:    []Anomaly{},
		Warnings:     append([]string{}, e.warnings...),
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
				spec.Name, Timestamp(c.stamps[1]), float64(end-c.last)/1e9))
		}
		pr := PointRep{Name: spec.Name, Source: spec.Source, Node: spec.Node, MACs: []MACSeen{}}
		if spec.Interface != "" {
			pr.Interface = someS(spec.Interface)
		}
		if spec.IfIndex >= 0 {
			pr.IfIndex = someI(int64(spec.IfIndex))
		}
		if spec.MTU > 0 {
			pr.MTU = someI(int64(spec.MTU))
		}
		pr.Coverage = Coverage{Frames: c.frames, Decoded: c.decoded, Truncated: c.truncated, Cut: c.cut}
		if c.frames > 0 {
			pr.Coverage.First, pr.Coverage.Last = someT(c.stamps[0]), someT(c.stamps[1])
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
	e.unshared()
	for _, p := range e.cfg.ClockProblems {
		if comp := e.components(); comp != nil && e.clockComponent(comp, p.A) != e.clockComponent(comp, p.B) {
			continue // captures that share no frame: the no-shared-frames warning says it
		}
		e.anomaly(KindClock, e.groupName(p.A)+","+e.groupName(p.B), 0, func() string { return p.Message })
	}
	for _, k := range e.anomOrder {
		a := *e.anomalies[k]
		switch {
		case a.Kind == KindKernelDrops || a.Kind == KindNoSharedFrames || (a.Kind == KindClock && a.Count == 0):
			a.Traces = []int{}
		case a.Kind == KindOverMTU:
			a.Message = e.overMTUMessage(a.Point)
		}
		r.Anomalies = append(r.Anomalies, a)
	}
	r.Summary = e.sum
	e.bypassed(r)
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

// overMTUMessage says which packets did not fit the point's MTU: "IP
// packets of 1500 bytes do not fit pod1-veth's MTU 1450".
func (e *Engine) overMTUMessage(point string) string {
	for p := range e.cfg.Points {
		if e.cfg.Points[p].Name != point {
			continue
		}
		r := e.overMTU[p]
		size := fmt.Sprint(r[1])
		if r[0] != r[1] {
			size = fmt.Sprintf("%d to %d", r[0], r[1])
		}
		return fmt.Sprintf("IP packets of %s bytes do not fit %s's MTU %d", size, point, e.cfg.Points[p].MTU)
	}
	return "IP packets larger than the link's MTU"
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
	// A packet too big for a hop explains the loss after it: say it first.
	for _, a := range r.Anomalies {
		if a.Kind == KindOverMTU {
			parts = append(parts, fmt.Sprintf("%s (%s)", a.Message, plural(a.Count, "trace")))
		}
	}
	if s.Lost > 0 {
		where := map[string]int{}
		for _, a := range r.Anomalies {
			if a.Kind == KindLoss {
				// A probe no point saw was lost before the first one.
				at := "after " + a.Point
				if a.Point == "" {
					at = "before " + e.cfg.Points[0].Name
				}
				where[at] += a.Count
			}
		}
		parts = append(parts, fmt.Sprintf("%d of %d traces lost (%s)", s.Lost, s.Traces, countList("", where)))
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
		if a.Kind == KindNoSharedFrames {
			parts = append(parts, a.Message)
			continue
		}
		if a.Severity == Warning && a.Kind != KindLoss && a.Kind != KindGap && a.Kind != KindOverMTU {
			where := a.Kind.String()
			if a.Point != "" {
				where += " at " + a.Point
			}
			parts = append(parts, fmt.Sprintf("%s ×%d", where, a.Count))
		}
	}
	cuts := e.cutCaptures()
	if len(parts) == 0 && len(cuts) == 0 {
		ok := fmt.Sprintf("OK: all %d traces crossed every capturing point on their way (%d points, %d frames)",
			s.Traces-s.OffPath, len(e.cfg.Points), s.Decoded)
		if s.OffPath > 0 {
			ok += "; " + e.offPathLine(s)
		}
		if b := bypassLine(r); b != "" {
			ok += "; " + b
		}
		return ok, true
	}
	if s.OffPath > 0 && len(parts) > 0 {
		parts = append(parts, e.offPathLine(s))
	}
	var dropped uint64
	for _, p := range e.cfg.Points {
		dropped += p.Drops
	}
	if dropped > 0 {
		// Say first that the capture itself lost frames: what looks like
		// loss on the path may be the capture's own.
		cuts = append(cuts, fmt.Sprintf("the kernel dropped %d frames before pathtrace saw them, so losses below may be the capture's own", dropped))
	}
	if len(parts) > 0 {
		// A frame cut short by a snaplen keys on less of its payload than
		// its copies at other points: it may not match them.
		cuts = append(cuts, e.snaplenCuts()...)
	}
	if len(cuts) == 0 {
		return "PROBLEM: " + strings.Join(parts, "; "), false
	}
	if len(parts) == 0 {
		// Nothing wrong up to where a capture was cut; after it, unknown.
		parts = []string{fmt.Sprintf("up to there all %d traces crossed every capturing point on their way", s.Traces-s.OffPath)}
		if s.OffPath > 0 {
			parts = append(parts, e.offPathLine(s))
		}
	}
	return "CAPTURE INCOMPLETE: " + strings.Join(cuts, "; ") + "; " + strings.Join(parts, "; "), false
}

// cutCaptures says, for each point whose capture was cut short, where:
// "pod2's capture was cut after 2026-…Z (pod2.cap: file ends inside frame 7 …)".
func (e *Engine) cutCaptures() []string {
	var out []string
	for p := range e.cov {
		c := &e.cov[p]
		if c.cut == "" {
			continue
		}
		after := "before its first frame"
		if c.frames > 0 {
			after = "after its frame at " + Timestamp(c.stamps[1]).String()
		}
		out = append(out, fmt.Sprintf("%s's capture was cut %s (%s)", e.cfg.Points[p].Name, after, c.cut))
	}
	return out
}

// snaplenCuts names the points whose capture cut frames to a snaplen:
// "pod2's capture cut 6 frames to 60 bytes or less (its snaplen), so they
// may not match their copies at other points".
func (e *Engine) snaplenCuts() []string {
	var out []string
	for p := range e.cov {
		n := e.cov[p].truncated
		if n == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("%s's capture cut %s to %d bytes or less (its snaplen), so they may not match their copies at other points",
			e.cfg.Points[p].Name, plural(n, "frame"), e.cov[p].cutTo))
	}
	return out
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// groupName names a clock group by its first point.
func (e *Engine) groupName(g int) string {
	for _, p := range e.cfg.Points {
		if p.Clock == g {
			return p.Name
		}
	}
	return fmt.Sprint(g)
}

// offPathLine counts the traffic that did not take the path between the
// points, so a verdict about the path is not read as one about everything
// captured.
func (e *Engine) offPathLine(s *Summary) string {
	flows := ""
	if s.OffPathFlows > 0 {
		flows = fmt.Sprintf(" of %d flows", s.OffPathFlows)
	}
	where := "seen at some points only"
	if e.offPathOnePoint == s.OffPath {
		where = "seen at one point only"
	}
	return fmt.Sprintf("%d traces%s %s, not on the path between the points (off-path, not lost)", s.OffPath, flows, where)
}

// unshared reports points whose captures share no frame with the others':
// taken at different times (another run), or not on one path. No loss is
// reported between them (see wayEnd).
func (e *Engine) unshared() {
	comp := e.components()
	if comp == nil {
		return
	}
	var groups [][]int
	for p, g := range comp {
		if g < 0 {
			continue
		}
		for len(groups) <= g {
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], p)
	}
	var names []string
	for _, g := range groups {
		var ns []string
		for _, p := range g {
			ns = append(ns, e.cfg.Points[p].Name)
		}
		names = append(names, strings.Join(ns, ","))
	}
	who := strings.Join(names, " and ")
	e.anomaly(KindNoSharedFrames, who, 0, func() string {
		return who + " share no frame: not captured at the same time, or not on one path"
	})
}

// components numbers the groups of points linked by shared frames (-1: a
// point that decoded nothing); nil when there are fewer than two.
func (e *Engine) components() []int {
	n := len(e.cfg.Points)
	comp := make([]int, n)
	for p := range comp {
		comp[p] = -1
	}
	groups := 0
	for p := range n {
		if comp[p] >= 0 || e.cov[p].decoded == 0 {
			continue
		}
		g := groups
		groups++
		stack := []int{p}
		comp[p] = g
		for len(stack) > 0 {
			q := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for r := range n {
				if comp[r] < 0 && e.cov[r].decoded > 0 && e.linked(q, r) {
					comp[r] = g
					stack = append(stack, r)
				}
			}
		}
	}
	if groups < 2 {
		return nil
	}
	return comp
}

// clockComponent is the shared-frames group of clock group g's first
// point.
func (e *Engine) clockComponent(comp []int, g int) int {
	for p, spec := range e.cfg.Points {
		if spec.Clock == g {
			return comp[p]
		}
	}
	return -1
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
	if t.Drop != nil {
		d := *t.Drop
		c.Drop = &d
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
