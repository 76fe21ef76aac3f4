package e2e

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/pathtrace/pathtrace/internal/testenv"
	"github.com/pathtrace/pathtrace/lab"
)

// A flow-based tunnel, as Cilium's and OVN's are: a VXLAN device in
// "external" mode (no far end, no VNI of its own), the route to the other
// node's pods carrying the far end in its encap. Discovery cannot read the
// far end from the device; with the other node out of sight, the underlay
// filter keeps the pods' frames in VXLAN from this node to any peer, and
// the run reads the far end from the probes' outer headers.
func TestTraceFlowBasedTunnel(t *testing.T) {
	testenv.RequireRoot(t)
	needTools(t, "ip", "ping")
	l := nodesLab(t, lab.NodesConfig{Backend: lab.BackendVXLAN})
	a, b := l.Nodes[0], l.Nodes[1]
	ctx := context.Background()
	ip := func(args ...string) string { return mustRun(t, exec.CommandContext(ctx, "ip", args...)) }
	mac := map[string]string{}
	for _, n := range []lab.Node{a, b} {
		ip("-n", n.Name, "link", "add", "ovx0", "type", "vxlan", "external", "dstport", "4789")
		ip("-n", n.Name, "link", "set", "ovx0", "mtu", "1450", "up")
		f := strings.Fields(ip("-n", n.Name, "-o", "link", "show", "ovx0"))
		mac[n.Name] = f[slices.Index(f, "link/ether")+1]
	}
	for _, c := range [][2]lab.Node{{a, b}, {b, a}} {
		from, to := c[0], c[1]
		gw := to.Subnet.Addr().String()
		ip("-n", from.Name, "neigh", "add", gw, "lladdr", mac[to.Name], "dev", "ovx0", "nud", "permanent")
		ip("-n", from.Name, "route", "replace", to.Subnet.String(), "encap", "ip", "id", "1", "dst", to.IP.String(),
			"via", gw, "dev", "ovx0", "onlink")
	}
	mustRun(t, inNetns(ctx, l.Pods[0].Name, "ping", "-c", "1", "-W", "1", l.Pods[1].IP.String()))
	lab.HideT(t, b.Name, l.Pods[1].Name)
	d := traceRemote(t, l.Pods[0].Name, l.Pods[1].IP)
	want := []string{l.Pods[0].Name, l.Pods[0].Name + "-veth", "cni0", "ovx0", "eth0"}
	if got := d.pointNames(); !slices.Equal(got, want) {
		t.Fatalf("points %v, want %v", got, want)
	}
	checkEchoes(t, d, 3, want)
	for _, tr := range d.ofType("echo-request") {
		if e := tr.hop("eth0").Encap; e == nil || e.Type != "vxlan" || e.VNI == nil || *e.VNI != 1 || e.DstPort == nil || *e.DstPort != 4789 ||
			*e.OuterDstIP != b.IP.String() {
			t.Errorf("%s on eth0: encap %+v, want VXLAN VNI 1 to %s:4789", tr, e, b.IP)
		}
	}
	last := d.Discovery.Points[4]
	if tn := last.Tunnel; tn == nil || !tn.External || tn.Remote != b.IP || tn.RemoteFrom != "probes" || tn.Local != a.IP || tn.Port != 4789 {
		t.Errorf("underlay tunnel %+v, want external, far end %s from the probes", tn, b.IP)
	}
	if !slices.ContainsFunc(d.Discovery.Notes, func(n string) bool { return containsAll(n, "ovx0's far end "+b.IP.String(), "probes' outer headers") }) {
		t.Errorf("notes %q", d.Discovery.Notes)
	}
}
