package correlate

import (
	"slices"
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
