package pipeline

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/internal/testenv"
)

// On the real ESP capture of the two-node lab (testdata/captures/2node-esp),
// each node's eth0 gets the one warning that its frames are encrypted, and
// the ESP packets are matched between the two NICs as the outer packets
// they are, never with the pods' echoes.
func TestEncryptedTunnelWarningOnCapture(t *testing.T) {
	dir := testenv.Captures(t, "2node-esp")
	var in []Input
	for _, p := range []string{"pod1", "pod1-veth", "nodeA-cni0", "nodeA-ipsec0", "nodeA-eth0",
		"nodeB-eth0", "nodeB-ipsec0", "nodeB-cni0", "pod2-veth", "pod2"} {
		in = append(in, Input{Name: p, Path: filepath.Join(dir, p+".cap")})
	}
	res, err := Run(context.Background(), Options{Inputs: in})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range res.Warnings {
		if strings.Contains(w, "encrypted") {
			got = append(got, w)
		}
	}
	want := []string{
		"nodeA-eth0: 10 frames are IPsec ESP: encrypted, their inner packets cannot be matched across the tunnel",
		"nodeB-eth0: 10 frames are IPsec ESP: encrypted, their inner packets cannot be matched across the tunnel",
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings %q, want %q", got, want)
	}
	esp := 0
	for _, tr := range res.Traces {
		var points []string
		for _, h := range tr.Hops {
			points = append(points, h.Point)
		}
		if tr.Hops[0].Encap.Type != correlate.EncapESP {
			if slices.Contains(points, "nodeA-eth0") && tr.Type == "echo-request" {
				t.Errorf("trace %d: an echo request in the clear at nodeA-eth0: %v", tr.N, points)
			}
			continue
		}
		esp++
		if !slices.Equal(points, []string{"nodeA-eth0", "nodeB-eth0"}) && !slices.Equal(points, []string{"nodeB-eth0", "nodeA-eth0"}) {
			t.Errorf("ESP trace %d crosses %v, want both eth0 only", tr.N, points)
		}
	}
	if esp != 10 {
		t.Errorf("%d ESP traces, want 10", esp)
	}
}
