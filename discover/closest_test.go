package discover

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// An endpoint that matches nothing gets one short line: how many
// namespaces there are and the few closest to what was typed, never a
// list of every process's namespace.
func TestClosestCandidates(t *testing.T) {
	cands := []candidate{{label: "root"}}
	for pid := 2; pid < 300; pid++ {
		cands = append(cands, candidate{label: fmt.Sprintf("pid %d", pid), path: fmt.Sprintf("/proc/%d/ns/net", pid)})
	}
	for _, n := range []string{"t1-node1", "t1-pod1", "t1-pod2", "cni-3f2c5e1a-7b9c-4d1e-9a2b-123456789abc", "blue", "pod1"} {
		cands = append(cands, candidate{label: n})
	}
	got := closestNames("t1-pod3", cands, 3)
	if want := "305 namespaces on this node, the closest named: t1-pod1, t1-pod2, t1-node1 (ip netns list)"; got != want {
		t.Errorf("closestNames = %q\nwant %q", got, want)
	}
	if got := closestNames("x", cands[:10], 3); got != "10 namespaces on this node, none of them named" {
		t.Errorf("no named namespaces: %q", got)
	}
	hs := []held{{"root", netip.MustParseAddr("127.0.0.1")}, {"root", netip.MustParseAddr("192.168.1.10")},
		{"t1-node1", netip.MustParseAddr("10.244.1.1")}, {"t1-pod1", netip.MustParseAddr("10.244.1.2")},
		{"t1-pod2", netip.MustParseAddr("10.244.1.3")}, {"t2-pod1", netip.MustParseAddr("10.245.1.2")}}
	if got, want := closestAddrs(netip.MustParseAddr("10.244.1.7"), hs, 3), "; nearest: t1-node1 10.244.1.1, t1-pod1 10.244.1.2, t1-pod2 10.244.1.3"; got != want {
		t.Errorf("closestAddrs = %q, want %q", got, want)
	}
	if got := closestAddrs(netip.MustParseAddr("fd00::1"), hs, 2); got != "" {
		t.Errorf("no address of the family: %q", got)
	}
	for _, c := range []struct {
		a, b string
		d    int
	}{{"pod1", "pod1", 0}, {"pod1", "pod2", 1}, {"", "abc", 3}, {"kitten", "sitting", 3}} {
		if got := editDistance(c.a, c.b); got != c.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
	// The whole message, as the resolver words it, stays one short line.
	r := &resolver{runDir: t.TempDir(), procDir: t.TempDir()}
	err := r.noMatch("nosuch", "no /run/netns/nosuch")
	if msg := err.Error(); strings.Contains(msg, "\n") || len(msg) > 200 {
		t.Errorf("message of %d bytes: %q", len(msg), msg)
	}
}
