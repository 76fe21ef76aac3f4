package pipeline

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pathtrace/pathtrace/correlate"
)

// Clocks of an offline analysis. Each file is a clock of its own (files
// that sit side by side came from anywhere), but the points of one file
// (pcapng interfaces, `tcpdump -i any` ifindexes, an evidence pcapng
// pathtrace wrote on one host) share their file's; ClockGroups joins more.
// Offsets between clocks are estimated from a first pass over the start of
// every file, before the frames are merged in time order, and subtracted
// from each frame's stamp as it is read: Frame.Time is on the reference
// clock (the first point's), Frame.Stamp stays the capture's own.

// ClockOptions configure clock handling.
type ClockOptions struct {
	Off      bool                     // no estimation, no correction
	Groups   [][]string               // point names known to share a clock
	Declared map[string]time.Duration // offsets declared per point: subtracted from its stamps
}

// clockSampleFrames bounds the first pass: enough shared frames to bound
// the offsets, a small share of a large input.
const clockSampleFrames = 20_000

// clockPlan is what the first pass decided.
type clockPlan struct {
	lines    []correlate.ClockLine // per point; zero: not corrected
	offsets  []correlate.ClockOffset
	problems []correlate.ClockProblem
}

// planClocks groups the points' clocks (specs[i].Clock), estimates or takes
// the declared offsets, and sets each point's uncertainty. specsOf makes
// the points' specs in the bundle's order: files listed in an order their
// traffic clearly contradicts are first put in the traffic's (placeListed),
// and planClocks returns the specs of the order it settled on.
func planClocks(b *Bundle, specsOf func() []correlate.PointSpec, o ClockOptions, window int64) (*clockPlan, []correlate.PointSpec, error) {
	specs := specsOf()
	if err := joinClocks(specs, o.Groups); err != nil {
		return nil, nil, err
	}
	groups := map[int]bool{}
	for _, s := range specs {
		groups[s.Clock] = true
	}
	estimate := !o.Off && len(groups) > 1
	// Declared offsets say the stamps are not on one clock, and the
	// placement reads the stamps as they are: the listed order stands.
	place := b.OrderListed && len(specs) >= 3 && len(o.Declared) == 0
	var ests []correlate.ClockEstimate
	var problems []correlate.ClockProblem
	if estimate || place {
		sample, err := b.clockSample(clockSampleFrames)
		if err != nil {
			return nil, nil, err
		}
		var advice *correlate.OrderAdvice
		ests, problems, advice, err = prePass(sample, specs, window, place)
		if err != nil {
			return nil, nil, err
		}
		if advice != nil && advice.Sure {
			placeListed(b, *advice)
			specs = specsOf()
			if err := joinClocks(specs, o.Groups); err != nil {
				return nil, nil, err
			}
			if estimate {
				if ests, problems, _, err = prePass(sample, specs, window, false); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	plan := &clockPlan{lines: make([]correlate.ClockLine, len(specs))}
	if o.Off {
		return plan, specs, nil
	}
	estimated := map[int]correlate.ClockEstimate{}
	if estimate {
		for _, e := range ests {
			estimated[e.Group] = e
		}
		plan.problems = problems
	}
	ref := specs[0].Name
	declared := map[int]time.Duration{} // per clock group
	for i := range specs {
		if d, ok := o.Declared[specs[i].Name]; ok {
			declared[specs[i].Clock] = d
		}
	}
	for name := range o.Declared {
		if !slices.ContainsFunc(specs, func(s correlate.PointSpec) bool { return s.Name == name }) {
			return nil, nil, fmt.Errorf("--clock-offset names %q, which is not a capture point (points: %s)", name, pointNames(specs))
		}
	}
	for i := range specs {
		s := &specs[i]
		if d, ok := declared[s.Clock]; ok {
			plan.lines[i] = correlate.ClockLine{Offset: float64(d)}
			plan.offsets = append(plan.offsets, correlate.ClockOffset{Point: s.Name, Reference: ref,
				OffsetNs: int64(d), Source: correlate.ClockDeclared})
			continue
		}
		e, ok := estimated[s.Clock]
		if !ok || e.Line.Zero() {
			continue
		}
		plan.lines[i] = e.Line
		s.ClockUncertainty = e.Uncertainty
		plan.offsets = append(plan.offsets, correlate.ClockOffset{Point: s.Name, Reference: ref,
			OffsetNs: e.Line.At(e.Line.Ref), UncertaintyNs: e.Uncertainty, DriftPPM: roundPPM(e.Line.Drift),
			Samples: e.Samples, Source: correlate.ClockEstimated})
	}
	// A declared offset settles its point's clock: no problem to report.
	plan.problems = slices.DeleteFunc(plan.problems, func(p correlate.ClockProblem) bool {
		_, a := declared[p.A]
		_, b := declared[p.B]
		return a || b
	})
	return plan, specs, nil
}

// prePass runs the sample through a correlator that only samples the
// clocks' crossings and, with checkOrder, checks the points' order: the
// estimates, the clocks it could not compare, and the order the traffic
// clearly follows if it is not the points'.
func prePass(sample *clockSample, specs []correlate.PointSpec, window int64, checkOrder bool) ([]correlate.ClockEstimate, []correlate.ClockProblem, *correlate.OrderAdvice, error) {
	sampler := correlate.NewClockSampler(specs)
	eng, err := correlate.New(correlate.Config{Points: specs, Window: window, Sampler: sampler, CheckOrder: checkOrder}, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := feedAside(sample.each, eng.Add); err != nil {
		return nil, nil, nil, err
	}
	eng.Finish()
	ests, problems := sampler.Estimate()
	if a, ok := eng.OrderAdvice(); ok {
		return ests, problems, &a, nil
	}
	return ests, problems, nil, nil
}

func roundPPM(drift float64) float64 { return float64(int64(drift*1e9+0.5)) / 1e3 }

// joinClocks merges the clock groups of points named together.
func joinClocks(specs []correlate.PointSpec, groups [][]string) error {
	idx := map[string]int{}
	for i, s := range specs {
		idx[s.Name] = i
	}
	for _, g := range groups {
		if len(g) == 0 {
			continue
		}
		first, ok := idx[g[0]]
		if !ok {
			return fmt.Errorf("--clock-group names %q, which is not a capture point (points: %s)", g[0], pointNames(specs))
		}
		for _, name := range g[1:] {
			i, ok := idx[name]
			if !ok {
				return fmt.Errorf("--clock-group names %q, which is not a capture point (points: %s)", name, pointNames(specs))
			}
			from, to := specs[i].Clock, specs[first].Clock
			for j := range specs {
				if specs[j].Clock == from {
					specs[j].Clock = to
				}
			}
		}
	}
	return nil
}

func pointNames(specs []correlate.PointSpec) string {
	var s []string
	for _, p := range specs {
		s = append(s, p.Name)
	}
	return strings.Join(s, ", ")
}
