package correlate

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestInferOrderBridgeBetweenPorts(t *testing.T) {
	// Points: 0 pod1, 1 cni0, 2 pod2-veth, 3 pod1-veth, 4 pod2 — the
	// multi-interface file lists cni0, pod2-veth, pod1-veth (not path order).
	// The bridge ties with its ingress port, so only both directions place it.
	var fs []Frame
	for seq := uint32(1); seq <= 3; seq++ {
		t0 := int64(seq) * 1e9
		at := map[int]int64{0: 0, 3: 10, 1: 10, 2: 20, 4: 30} // request
		for p, d := range at {
			fs = append(fs, echo(p, t0+d*1000, 8, seq, pod1MAC, pod2MAC, pod1IP, pod2IP, 64))
		}
		at = map[int]int64{4: 60, 2: 70, 1: 70, 3: 80, 0: 90} // reply
		for p, d := range at {
			fs = append(fs, echo(p, t0+d*1000, 0, seq, pod2MAC, pod1MAC, pod2IP, pod1IP, 64))
		}
	}
	got := InferOrder(fs, [][]int{{0}, {1, 2, 3}, {4}}, 0)
	if want := []int{0, 3, 1, 2, 4}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	// One file holding every point: oriented so the first frame goes forward.
	got = InferOrder(fs, [][]int{{4, 2, 1, 3, 0}}, 0)
	if want := []int{0, 3, 1, 2, 4}; !slices.Equal(got, want) {
		t.Fatalf("single group order %v, want %v", got, want)
	}
}

// twoNodeChain is pings over ten points, 10 µs a hop, each with its reply;
// the first frame seen at several points is a reply (a capture started
// mid-ping), so only the requests tell the path's way.
func twoNodeChain() []Frame {
	var fs []Frame
	const n = 10
	for seq := uint32(1); seq <= 4; seq++ {
		t0 := int64(seq) * 1e9
		if seq > 1 {
			for p := range n {
				fs = append(fs, echo(p, t0+int64(p)*10e3, 8, seq, pod1MAC, pod2MAC, pod1IP, pod2IP, 64))
			}
		}
		for p := range n {
			fs = append(fs, echo(p, t0+500e3+int64(n-1-p)*10e3, 0, seq, pod2MAC, pod1MAC, pod2IP, pod1IP, 64))
		}
		// The nodes' own ARP, seen at their two NICs only (points 4
		// and 5), first at one, then at the other: frames like these
		// rank the NICs first and drag their mean rank to the front.
		for i := range int64(3) {
			from, to := 4+int(seq%2), 5-int(seq%2)
			asked := netip.AddrFrom4([4]byte{10, 244, 9, byte(int64(seq)*3 + i)})
			fs = append(fs, arp(from, t0+300e6+i*1e6, 1, cni0MAC, bcast, gwIP, asked),
				arp(to, t0+300e6+i*1e6+40e3, 1, cni0MAC, bcast, gwIP, asked))
		}
	}
	return fs
}

// TestInferOrderManyPoints: a directory of ten points (more than are
// permuted one by one) listed in another order is placed along the
// traffic; by their mean rank alone (what placed more than eight), which
// the frames seen at two points only skew, it was not. The pings'
// requests, not the first frame (a reply), set its way.
func TestInferOrderManyPoints(t *testing.T) {
	fs := twoNodeChain()
	listed := []int{2, 4, 3, 7, 9, 8, 1, 0, 6, 5} // as a directory lists them
	got := InferOrder(fs, [][]int{listed}, 0)
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

// TestOrderAdvice: points listed against the traffic get the traffic's
// order as advice, and a warning naming it (the engine's check, for what
// the pre-pass did not already place); in path order or reversed, none.
func TestOrderAdvice(t *testing.T) {
	fs := twoNodeChain()
	names := []string{"pod1", "pod1-veth", "nodeA-cni0", "nodeA-flannel.1", "nodeA-eth0", "nodeB-eth0", "nodeB-flannel.1", "nodeB-cni0", "pod2-veth", "pod2"}
	run := func(listed []int) (*Result, OrderAdvice, bool) {
		c := Config{CheckOrder: true}
		at := make([]int, len(listed))
		for i, p := range listed {
			c.Points = append(c.Points, PointSpec{Name: names[p], IfIndex: -1})
			at[p] = i
		}
		e, err := New(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		sorted := slices.Clone(fs)
		slices.SortStableFunc(sorted, func(a, b Frame) int { return cmp64(a.Time, b.Time) })
		for i := range sorted {
			f := sorted[i]
			f.Point = at[f.Point]
			e.Add(&f)
		}
		r := e.Finish()
		a, ok := e.OrderAdvice()
		return r, a, ok
	}
	alpha := []int{2, 3, 4, 7, 5, 6, 8, 1, 0, 9} // nodeA-cni0 … as a shell's glob sorts them
	r, a, ok := run(alpha)
	if !ok {
		t.Fatal("alphabetical order: no advice")
	}
	placed := make([]string, len(a.Order))
	for i, p := range a.Order {
		placed[i] = names[alpha[p]]
	}
	if !slices.Equal(placed, names) || a.Best != 1 || a.Given >= 0.9 || a.Traces != 19 {
		t.Errorf("advice %v (%+v), want the path order, fitting all", placed, a)
	}
	if len(r.Warnings) != 1 || !slices.ContainsFunc(r.Warnings, func(w string) bool {
		return strings.Contains(w, "order as given") && strings.Contains(w, "--order "+strings.Join(names, ","))
	}) {
		t.Errorf("warnings %q", r.Warnings)
	}
	for _, listed := range [][]int{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0}} {
		if r, a, ok := run(listed); ok || len(r.Warnings) > 0 {
			t.Errorf("listed %v: advice %+v, warnings %q", listed, a, r.Warnings)
		}
	}
}

// TestOrderSure: an order is read from the stamps alone only where they can
// tell it whatever the clocks: pings both ways on one clock can; the same
// with the second node's stamps 25 µs late (more than a hop, so its
// requests and replies read the same way across the nodes) cannot, nor
// requests alone (one way), nor two nodes whose frames never meet.
func TestOrderSure(t *testing.T) {
	path := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	sure := func(fs []Frame) bool { return orderSure(signatures(fs, DefaultWindow), path) }
	if !sure(twoNodeChain()) {
		t.Error("pings both ways, one clock: not sure")
	}
	var late, oneWay, apart []Frame
	for _, f := range twoNodeChain() {
		g := f
		if f.Point >= 5 {
			g.Time += 25e3
		}
		late = append(late, g)
		if f.Key.isEchoRequest() || f.Key.Proto == ProtoARP {
			oneWay = append(oneWay, f)
		}
		if f.Point >= 5 {
			f.Time += 3e9 // beyond the match window
		}
		apart = append(apart, f)
	}
	for name, fs := range map[string][]Frame{"25 µs late": late, "one way": oneWay, "apart": apart} {
		if sure(fs) {
			t.Errorf("%s: sure", name)
		}
	}
	// Interleaved, the two nodes' own frames cross every cut both ways.
	if orderSure(signatures(apart, DefaultWindow), []int{0, 5, 1, 6, 2, 7, 3, 8, 4, 9}) {
		t.Error("apart, interleaved: sure")
	}
}
