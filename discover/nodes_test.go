package discover

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/internal/testenv"
	"github.com/pathtrace/pathtrace/lab"
)

// Discovery across the two-node lab's overlays: every backend's ten (or
// eight) points, their nodes, and each node's tunnel as its own tables
// say, checked against what the lab built.

func nodesUp(t *testing.T, cfg lab.NodesConfig) *lab.Lab { return lab.UpNodesT(t, "ovd", cfg) }

func names(p *Path) []string {
	var s []string
	for _, pt := range p.Points {
		s = append(s, pt.Name)
	}
	return s
}

func dump(p *Path) string {
	js, _ := json.MarshalIndent(p, "", " ")
	return string(js)
}

func TestAcrossNodes(t *testing.T) {
	testenv.RequireRoot(t)
	for _, c := range []struct {
		backend lab.Backend
		encap   correlate.EncapType
		port    uint16
		from    Source
	}{
		{lab.BackendVXLAN, correlate.EncapVXLAN, 8472, FromFDB},
		{lab.BackendHostGW, correlate.EncapNone, 0, FromRoute},
		{lab.BackendIPIP, correlate.EncapIPIP, 0, FromRoute},
		{lab.BackendUDP, correlate.EncapUDP, 8285, FromPeerNode},
		{lab.BackendGENEVE, correlate.EncapGENEVE, 6081, FromPeerNode},
	} {
		t.Run(c.backend.String(), func(t *testing.T) {
			l := nodesUp(t, lab.NodesConfig{Backend: c.backend})
			a, b := l.Nodes[0], l.Nodes[1]
			p1, p2 := l.Pods[0], l.Pods[1]
			p, err := Discover(context.Background(), resolve(t, p1.Name), resolve(t, p2.Name))
			if err != nil {
				t.Fatal(err)
			}
			dev := c.backend.Device()
			want := []string{p1.Name, p1.Name + "-veth", a.Name + "-cni0"}
			roles := []Role{RoleEndpoint, RoleVeth, RoleBridge}
			if dev != "" {
				want, roles = append(want, a.Name+"-"+dev), append(roles, RoleTunnel)
			}
			want, roles = append(want, a.Name+"-eth0", b.Name+"-eth0"), append(roles, RoleUnderlay, RoleUnderlay)
			if dev != "" {
				want, roles = append(want, b.Name+"-"+dev), append(roles, RoleTunnel)
			}
			want = append(want, b.Name+"-cni0", p2.Name+"-veth", p2.Name)
			roles = append(roles, RoleBridge, RoleVeth, RoleEndpoint)
			if got := names(p); !slices.Equal(got, want) {
				t.Fatalf("points %v, want %v\n%s", got, want, dump(p))
			}
			if !slices.Equal(p.Nodes, []string{a.Name, b.Name}) {
				t.Errorf("nodes %v, want %s, %s", p.Nodes, a.Name, b.Name)
			}
			half := len(want) / 2
			for i, pt := range p.Points {
				node := a
				if i >= half {
					node = b
				}
				if pt.Role != roles[i] || pt.Node != node.Name {
					t.Errorf("point %s: role %s node %s, want %s on %s", pt.Name, pt.Role, pt.Node, roles[i], node.Name)
				}
				if pt.Role != RoleTunnel && pt.Role != RoleUnderlay {
					if pt.Tunnel != nil {
						t.Errorf("point %s has a tunnel %+v", pt.Name, pt.Tunnel)
					}
					continue
				}
				tn := pt.Tunnel
				peer := b
				if node.Name == b.Name {
					peer = a
				}
				if tn == nil || tn.Encap != c.encap || tn.Device != dev || tn.Local != node.IP || tn.Remote != peer.IP ||
					tn.RemoteFrom != c.from || tn.Port != c.port || tn.Underlay != "eth0" || tn.NextHop != peer.IP {
					t.Errorf("point %s: tunnel %+v, want %v on %q from %s to %s (%s), port %d", pt.Name, tn, c.encap, dev, node.IP, peer.IP, c.from, c.port)
					continue
				}
				if c.encap == correlate.EncapVXLAN && (!tn.HasVNI || tn.VNI != 1) {
					t.Errorf("point %s: VNI %d (%v), want 1", pt.Name, tn.VNI, tn.HasVNI)
				}
				if pt.Role == RoleTunnel && node.TunnelMAC != "" && p.Owners[node.TunnelMAC] != pt.Name {
					t.Errorf("owner of %s's MAC %s: %q, want %q", pt.Name, node.TunnelMAC, p.Owners[node.TunnelMAC], pt.Name)
				}
			}
			for _, n := range p.Notes {
				if strings.Contains(n, "may not be taken") || strings.Contains(n, "differ") {
					t.Errorf("note %q", n)
				}
			}
			t.Logf("%s: %v; notes %q", c.backend, names(p), p.Notes)
		})
	}
}

// NodeSide is one node's own part, as an agent on that node captures it.
func TestNodeSide(t *testing.T) {
	testenv.RequireRoot(t)
	l := nodesUp(t, lab.NodesConfig{Backend: lab.BackendVXLAN})
	a, b := l.Nodes[0], l.Nodes[1]
	for _, c := range []struct {
		pod       lab.Pod
		peer      netip.Addr
		node, far lab.Node
	}{{l.Pods[0], l.Pods[1].IP, a, b}, {l.Pods[1], l.Pods[0].IP, b, a}} {
		p, err := NodeSide(context.Background(), resolve(t, c.pod.Name), c.peer)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{c.pod.Name, c.pod.Name + "-veth", "cni0", "flannel.1", "eth0"}
		if got := names(p); !slices.Equal(got, want) {
			t.Fatalf("points %v, want %v", got, want)
		}
		last := p.Points[4]
		if last.Role != RoleUnderlay || last.Tunnel == nil || last.Tunnel.Remote != c.far.IP || last.Tunnel.Local != c.node.IP ||
			p.Dst.IP != c.peer || len(p.Notes) != 0 || !slices.Equal(p.Nodes, []string{c.node.Name}) {
			t.Errorf("node side of %s: %s", c.pod.Name, dump(p))
		}
	}
}

// The other node not visible here (its namespace out of /run/netns, as a
// node pathtrace does not run on): the path ends at the underlay, with a
// note naming the far end and how to complete it.
func TestAcrossNodesNotVisible(t *testing.T) {
	testenv.RequireRoot(t)
	l := nodesUp(t, lab.NodesConfig{Backend: lab.BackendVXLAN})
	a, b := l.Nodes[0], l.Nodes[1]
	// Node A knows node B's MAC, as after any traffic: other labs'
	// namespaces holding 192.168.56.2 on this machine are not node B.
	if out, err := exec.Command("ip", "netns", "exec", a.Name, "ping", "-c", "1", "-W", "1", b.IP.String()).CombinedOutput(); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	lab.HideT(t, b.Name, l.Pods[1].Name)
	p, err := Discover(context.Background(), resolve(t, l.Pods[0].Name), Remote(l.Pods[1].IP))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{l.Pods[0].Name, l.Pods[0].Name + "-veth", "cni0", "flannel.1", "eth0"}
	if got := names(p); !slices.Equal(got, want) {
		t.Fatalf("points %v, want %v\n%s", got, want, dump(p))
	}
	last := p.Points[4]
	if last.Role != RoleUnderlay || last.Tunnel == nil || last.Tunnel.Remote != b.IP {
		t.Errorf("last point %+v", last)
	}
	if len(p.Notes) != 1 || !strings.Contains(p.Notes[0], fmt.Sprintf("leaves node %s via flannel.1 (vxlan VNI 1, UDP 8472 to %s over eth0)", a.Name, b.IP)) ||
		!strings.Contains(p.Notes[0], "points stop at eth0") || !strings.Contains(p.Notes[0], "pathtrace capture") {
		t.Errorf("notes %q", p.Notes)
	}
}

// A tunnel discovery cannot follow to the underlay (the lab's ipsec0, a
// userspace ESP tunnel on a TUN device): the path stops at its device,
// captured as it is, with a note saying why.
func TestAcrossNodesUnfollowed(t *testing.T) {
	testenv.RequireRoot(t)
	l := nodesUp(t, lab.NodesConfig{Backend: lab.BackendIPsec})
	p, err := Discover(context.Background(), resolve(t, l.Pods[0].Name), resolve(t, l.Pods[1].Name))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{l.Pods[0].Name, l.Pods[0].Name + "-veth", "cni0", "ipsec0"}
	if got := names(p); !slices.Equal(got, want) {
		t.Fatalf("points %v, want %v\n%s", got, want, dump(p))
	}
	if last := p.Points[3]; last.Role != RoleEgress || !last.RawIP {
		t.Errorf("ipsec0: %+v, want the egress, raw IP", last)
	}
	if len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "via ipsec0: points stop there (ipsec0 is a TUN device") {
		t.Errorf("notes %q", p.Notes)
	}
}
