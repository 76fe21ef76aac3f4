package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func wantPoints(t *testing.T, res *jResult, want ...string) {
	t.Helper()
	if got := res.pointNames(); !slices.Equal(got, want) {
		t.Fatalf("points %v, want %v", got, want)
	}
}

func reversed(s []string) []string {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

func mainHops(tr *jTrace) []string {
	var s []string
	for _, h := range tr.Hops {
		if !h.Reflection {
			s = append(s, h.Point)
		}
	}
	return s
}

func reflHops(tr *jTrace) []string {
	var s []string
	for _, h := range tr.Hops {
		if h.Reflection {
			s = append(s, h.Point)
		}
	}
	return s
}

// wantEchoes checks the echo traces: n requests along fwd and n replies back,
// each with the given missing points and no loss.
func wantEchoes(t *testing.T, res *jResult, n int, fwd, missing []string) {
	t.Helper()
	reqs, reps := res.tracesOfType("echo-request"), res.tracesOfType("echo-reply")
	if len(reqs) != n || len(reps) != n {
		t.Errorf("%d echo requests and %d replies, want %d each", len(reqs), len(reps), n)
	}
	for _, set := range []struct {
		trs  []*jTrace
		path []string
		dir  string
	}{{reqs, fwd, "forward"}, {reps, reversed(fwd), "reverse"}} {
		for _, tr := range set.trs {
			if got := tr.hopPoints(); !slices.Equal(got, set.path) {
				t.Errorf("trace #%d (%s seq %s): hops %v, want %v", tr.N, tr.Type, uintStr(tr.Seq), got, set.path)
			}
			if tr.Direction != set.dir {
				t.Errorf("trace #%d (%s): direction %q, want %q", tr.N, tr.Type, tr.Direction, set.dir)
			}
			if !slices.Equal(tr.Missing, missing) || tr.LostAfter != "" {
				t.Errorf("trace #%d (%s seq %s): missing %v lost_after %q, want missing %v and no loss",
					tr.N, tr.Type, uintStr(tr.Seq), tr.Missing, tr.LostAfter, missing)
			}
		}
	}
	for _, tr := range reps {
		if tr.ReplyTo == nil || tr.RTT == nil {
			t.Errorf("echo reply #%d: reply_to %v rtt %v, want both", tr.N, deref(tr.ReplyTo), tr.RTT)
		}
	}
}

func findAnomaly(res *jResult, kind, point string) *jAnomaly {
	for i := range res.Anomalies {
		if a := &res.Anomalies[i]; a.Kind == kind && a.Point == point {
			return a
		}
	}
	return nil
}

// wantHairpin: every broadcast request from pod1 came back to pod1-veth and
// pod1, reported as info reflections.
func wantHairpin(t *testing.T, res *jResult, typ string, n int, fwd []string, p1veth, p1 string) {
	t.Helper()
	trs := res.tracesOfType(typ)
	if len(trs) != n {
		t.Fatalf("%d %s traces, want %d", len(trs), typ, n)
	}
	for _, tr := range trs {
		if got := mainHops(tr); !slices.Equal(got, fwd) {
			t.Errorf("trace #%d (%s): hops %v, want %v then the reflections", tr.N, typ, got, fwd)
		}
		if got := reflHops(tr); !slices.Equal(got, []string{p1veth, p1}) {
			t.Errorf("trace #%d (%s): reflection hops %v, want [%s %s]", tr.N, typ, got, p1veth, p1)
		}
		if !slices.Contains(tr.Flags, "reflection") {
			t.Errorf("trace #%d (%s): flags %v, want reflection", tr.N, typ, tr.Flags)
		}
	}
	for _, p := range []string{p1veth, p1} {
		a := findAnomaly(res, "reflection", p)
		if a == nil || a.Severity != "info" || a.Count != n {
			t.Errorf("reflection anomaly at %s: %+v, want info with count %d", p, a, n)
		}
	}
}

func storySeed(t *testing.T, g *golden) {
	res := g.res
	wantPoints(t, res, path5...)
	// tcpdump -p on cni0: the bridge forwards unicast without passing it up.
	wantEchoes(t, res, 3, []string{"pod1", "pod1-veth", "pod2-veth", "pod2"}, []string{"cni0"})
	arp := res.tracesOfType("arp-request")
	if len(arp) == 0 || !slices.Contains(mainHops(arp[0]), "cni0") {
		t.Errorf("ARP request broadcast not seen at cni0: %+v", arp)
	}
	gaps := 0
	for _, tr := range res.Traces {
		if slices.Contains(tr.Missing, "cni0") {
			gaps++
		}
	}
	a := findAnomaly(res, "gap", "cni0")
	if a == nil || a.Severity != "warning" || a.Count != gaps || gaps < 6 {
		t.Errorf("gap anomaly at cni0: %+v, want a warning counting the %d traces missing cni0 (≥ 6)", a, gaps)
	}
	if res.Summary.WithGaps != gaps {
		t.Errorf("summary.with_gaps %d, want %d", res.Summary.WithGaps, gaps)
	}
}

func storyPromisc(t *testing.T, g *golden) {
	res := g.res
	wantPoints(t, res, path5...)
	wantEchoes(t, res, 3, path5, []string{})
	wantHairpin(t, res, "arp-request", 1, path5, "pod1-veth", "pod1")
	if s := res.Summary; s.Complete != s.Traces || s.Lost != 0 || s.WithGaps != 0 {
		t.Errorf("summary %+v: want every trace complete", s)
	}
}

func storyHairpin(t *testing.T, g *golden) {
	res := g.res
	wantPoints(t, res, path5...)
	// arping's request, then the kernel's after the neighbour flush.
	wantHairpin(t, res, "arp-request", 2, path5, "pod1-veth", "pod1")
	if reps := res.tracesOfType("arp-reply"); len(reps) != 2 {
		t.Errorf("%d ARP replies, want 2", len(reps))
	}
	wantEchoes(t, res, 1, path5, []string{})
}

// storyHairpinAny: node-any.cap records the direction, so the reflected
// copy at pod1-veth's ifindex is outgoing where the original came in.
func storyHairpinAny(t *testing.T, g *golden) {
	res := g.res
	veth := fmt.Sprintf("node-any:if%d", facts(t, g.dir)["pod1-veth"].IfIndex)
	if i, _ := res.point(veth); i < 0 {
		t.Fatalf("no point %s in %v", veth, res.pointNames())
	}
	reqs := res.tracesOfType("arp-request")
	if len(reqs) != 2 {
		t.Fatalf("%d ARP requests, want 2", len(reqs))
	}
	for _, tr := range reqs {
		var dirs []string
		for _, h := range tr.Hops {
			if h.Point == veth {
				dirs = append(dirs, fmt.Sprintf("%s/refl=%v", h.Dir, h.Reflection))
			}
		}
		if want := []string{"in/refl=false", "out/refl=true"}; !slices.Equal(dirs, want) {
			t.Errorf("trace #%d (arp-request) at %s: %v, want %v", tr.N, veth, dirs, want)
		}
	}
}

func storyNftDrop(t *testing.T, g *golden) {
	res := g.res
	wantPoints(t, res, path5...)
	reqs := res.tracesOfType("echo-request")
	if len(reqs) != 3 || len(res.tracesOfType("echo-reply")) != 0 {
		t.Fatalf("%d echo requests and %d replies, want 3 and 0", len(reqs), len(res.tracesOfType("echo-reply")))
	}
	// pod2-veth and pod2 ended cleanly: a pcap records no stop time, so they
	// count as capturing to the end and the requests were lost after cni0.
	var lost []int
	for _, tr := range reqs {
		if got := tr.hopPoints(); !slices.Equal(got, path5[:3]) {
			t.Errorf("trace #%d (request seq %s): hops %v, want %v", tr.N, uintStr(tr.Seq), got, path5[:3])
		}
		if tr.LostAfter != "cni0" || len(tr.Missing) != 0 || !slices.Contains(tr.Flags, "lost") {
			t.Errorf("trace #%d (request seq %s): lost_after %q missing %v flags %v, want lost after cni0",
				tr.N, uintStr(tr.Seq), tr.LostAfter, tr.Missing, tr.Flags)
		}
		lost = append(lost, tr.N)
	}
	a := findAnomaly(res, "loss", "cni0")
	if a == nil || a.Severity != "warning" || !slices.Equal(a.Traces, lost) || a.Count != len(lost) {
		t.Errorf("loss anomaly at cni0: %+v, want a warning for traces %v", a, lost)
	}
	if res.Summary.Lost != len(lost) {
		t.Errorf("summary.lost %d, want %d", res.Summary.Lost, len(lost))
	}
	// The ARP exchange is not affected.
	for _, typ := range []string{"arp-request", "arp-reply"} {
		for _, tr := range res.tracesOfType(typ) {
			if tr.LostAfter != "" || len(tr.Missing) != 0 {
				t.Errorf("trace #%d (%s): lost_after %q missing %v, want complete", tr.N, typ, tr.LostAfter, tr.Missing)
			}
		}
	}
}

func storyRouted(t *testing.T, g *golden) {
	res := g.res
	path := []string{"pod1", "pod1-veth", "cni0", "cni1", "pod3-veth", "pod3"}
	wantPoints(t, res, path...)
	wantEchoes(t, res, 3, path, []string{})
	// The node routes between cni0 and cni1: both MACs change and the TTL
	// drops by one where the frame is first seen past the router.
	check := func(tr *jTrace, before, after string) {
		var hb, ha *jHop
		for i := range tr.Hops {
			switch tr.Hops[i].Point {
			case before:
				hb = &tr.Hops[i]
			case after:
				ha = &tr.Hops[i]
			}
		}
		if hb == nil || ha == nil {
			t.Errorf("trace #%d: no hop at %s or %s", tr.N, before, after)
			return
		}
		rb, ra := g.row(tr, hb), g.row(tr, ha)
		want := []jRewrite{
			{after, "src_mac", rb.srcMAC(), ra.srcMAC()},
			{after, "dst_mac", rb.EthDst, ra.EthDst},
			{after, "ttl", "64", "63"},
		}
		if rb.TTL != "64" || ra.TTL != "63" {
			t.Errorf("trace #%d: tshark TTL %s at %s, %s at %s: want 64 → 63", tr.N, rb.TTL, before, ra.TTL, after)
		}
		if !slices.Equal(tr.Rewrites, want) {
			t.Errorf("trace #%d (%s): rewrites %+v, want %+v", tr.N, tr.Type, tr.Rewrites, want)
		}
	}
	for _, tr := range res.tracesOfType("echo-request") {
		check(tr, "cni0", "cni1")
	}
	for _, tr := range res.tracesOfType("echo-reply") {
		check(tr, "cni1", "cni0")
	}
}

func storyAny(t *testing.T, g *golden) {
	res := g.res
	// One point per ifindex, in path order (which ifindex order need not be).
	fx := facts(t, g.dir)
	idx := []int{fx["pod1-veth"].IfIndex, fx["cni0"].IfIndex, fx["pod2-veth"].IfIndex}
	name := func(i int) string { return fmt.Sprintf("node-any:if%d", idx[i]) }
	wantPoints(t, res, "pod1", name(0), name(1), name(2), "pod2")
	for i, want := range idx {
		p := &res.Points[i+1]
		if p.Interface != nil || deref(p.IfIndex) != want || filepath.Base(p.Source) != "node-any.cap" {
			t.Errorf("point %s: interface %v ifindex %v source %s, want null, %d, node-any.cap",
				p.Name, deref(p.Interface), deref(p.IfIndex), p.Source, want)
		}
	}
	wantInferred(t, res, "node-any.cap")
	// -i any is not promiscuous: unicast crosses cni0 unseen.
	wantEchoes(t, res, 3, []string{"pod1", name(0), name(2), "pod2"}, []string{name(1)})
	for _, tr := range res.Traces {
		for _, h := range tr.Hops {
			if strings.HasPrefix(h.Point, "node-any:") && (h.DstMAC != nil || h.Dir == "") {
				t.Errorf("trace #%d hop %s: dst_mac %v dir %q, want null and a direction (SLL2)", tr.N, h.Point, deref(h.DstMAC), h.Dir)
			}
		}
	}
}

func wantInferred(t *testing.T, res *jResult, file string) {
	t.Helper()
	if !slices.ContainsFunc(res.Warnings, func(w string) bool {
		return strings.Contains(w, "inferred") && strings.Contains(w, file)
	}) {
		t.Errorf("warnings %q: want one saying the order of %s was inferred", res.Warnings, file)
	}
}

func storyDumpcapMulti(t *testing.T, g *golden) {
	res := g.res
	// node.pcapng lists cni0, pod2-veth, pod1-veth; the points are named
	// after its if_name.
	fx := facts(t, g.dir)
	path := []string{"pod1", fx["pod1-veth"].Name, fx["cni0"].Name, fx["pod2-veth"].Name, "pod2"}
	wantPoints(t, res, path...)
	for _, p := range res.Points[1:4] {
		if deref(p.Interface) != p.Name {
			t.Errorf("point %s: interface %v, want the pcapng if_name", p.Name, deref(p.Interface))
		}
	}
	wantInferred(t, res, "node.pcapng")
	wantEchoes(t, res, 3, path, []string{})
}

func storyIPv6(t *testing.T, g *golden) {
	res := g.res
	wantPoints(t, res, path5...)
	wantEchoes(t, res, 2, path5, []string{})
	for _, tr := range res.Traces {
		if strings.HasPrefix(tr.Type, "echo-") {
			if tr.Protocol != "icmpv6" {
				t.Errorf("trace #%d: protocol %s, want icmpv6", tr.N, tr.Protocol)
			}
			for _, h := range tr.Hops {
				if uintStr(h.TTL) != "64" {
					t.Errorf("trace #%d hop %s: hop limit %s, want 64", tr.N, h.Point, uintStr(h.TTL))
				}
			}
		}
	}
	wantHairpin(t, res, "neighbor-solicitation", 1, path5, "pod1-veth", "pod1")
}

// storyFloodWrap: a flood long enough for the echo seq to wrap; every
// request is its own trace (the generic checks already forbid two hops at
// one point and two traces sharing a frame).
func storyFloodWrap(t *testing.T, g *golden) {
	res := g.res
	first := &res.Points[0]
	n := 0
	for _, r := range g.rows[g.file(first)] {
		if r.traceType() == "echo-request" && g.belongs(r, first) {
			n++
		}
	}
	if got := len(res.tracesOfType("echo-request")); got != n {
		t.Errorf("%d echo-request traces, tshark sees %d echo requests at %s", got, n, first.Name)
	}
	// Every echo crossed every hop once: each hop's count is the number of
	// requests (forward hops) or replies (reverse hops).
	for _, s := range res.HopLatency {
		if s.Count != n {
			t.Errorf("hop_latency %s → %s: count %d, want %d (one per echo)", s.From, s.To, s.Count, n)
		}
	}
	wantEchoes(t, res, n, res.pointNames(), []string{})
}
