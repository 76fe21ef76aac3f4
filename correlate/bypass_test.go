package correlate

import (
	"slices"
	"strings"
	"testing"
)

// Echo replies redirected from pod2's veth straight into pod1 (as Cilium's
// bpf_redirect_peer does) skip cni0 and pod1-veth, which see every request:
// one bypass finding per point, not gaps, and the traces count as complete.
func TestBypassedPoints(t *testing.T) {
	us := int64(1000)
	var fs []Frame
	for seq := uint32(1); seq <= 3; seq++ {
		t0 := int64(1e18) + int64(seq)*1e8
		for p, d := range []int64{0, 10, 10, 20, 30} {
			fs = append(fs, echo(p, t0+d*us, 8, seq, pod1MAC, pod2MAC, pod1IP, pod2IP, 64))
		}
		for _, p := range []int{4, 3, 0} {
			fs = append(fs, echo(p, t0+(60+int64(4-p)*5)*us, 0, seq, pod2MAC, pod1MAC, pod2IP, pod1IP, 64))
		}
	}
	slices.SortStableFunc(fs, func(a, b Frame) int { return cmp64(a.Time, b.Time) })
	r := analyze(t, cfgFor(seedPath...), fs)
	var got []string
	for _, a := range r.Anomalies {
		got = append(got, a.Kind.String()+"@"+a.Point)
		if a.Kind == KindBypass && (a.Severity != Info || a.Count != 3 || !strings.Contains(a.Message, "going reverse")) {
			t.Errorf("bypass %+v", a)
		}
	}
	if !slices.Equal(got, []string{"bypass@pod1-veth", "bypass@cni0"}) && !slices.Equal(got, []string{"bypass@cni0", "bypass@pod1-veth"}) {
		t.Errorf("anomalies %v, want a bypass at cni0 and pod1-veth", got)
	}
	if s := r.Summary; s.Complete != 6 || s.WithGaps != 0 || !s.Clean || !strings.Contains(s.Verdict, "bypassed by 3 traces") {
		t.Errorf("summary %+v", s)
	}
	for _, tr := range r.Traces {
		if tr.Type == "echo-reply" && !slices.Equal(tr.Missing, []string{"pod1-veth", "cni0"}) {
			t.Errorf("reply %d missing %v", tr.N, tr.Missing)
		}
	}

	// A point that sees the replies but one: that one is a gap.
	fs = fs[:0]
	for seq := uint32(1); seq <= 3; seq++ {
		t0 := int64(1e18) + int64(seq)*1e8
		for p, d := range []int64{0, 10, 10, 20, 30} {
			fs = append(fs, echo(p, t0+d*us, 8, seq, pod1MAC, pod2MAC, pod1IP, pod2IP, 64))
		}
		for _, p := range []int{4, 3, 2, 1, 0} {
			if p != 2 || seq != 2 {
				fs = append(fs, echo(p, t0+(60+int64(4-p)*5)*us, 0, seq, pod2MAC, pod1MAC, pod2IP, pod1IP, 64))
			}
		}
	}
	slices.SortStableFunc(fs, func(a, b Frame) int { return cmp64(a.Time, b.Time) })
	r = analyze(t, cfgFor(seedPath...), fs)
	if len(r.Anomalies) != 1 || r.Anomalies[0].Kind != KindGap || r.Summary.WithGaps != 1 || r.Summary.Clean {
		t.Errorf("one reply unseen at cni0: anomalies %+v summary %+v", r.Anomalies, r.Summary)
	}
}
