package discover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Across nodes: a path whose destination is on another node leaves the
// source's node through a tunnel device (or routed as it is) and its
// underlay device. When the other node is visible here (its namespace is
// in /run/netns or held by a process, as in a lab), the path goes on
// there: its underlay device, its tunnel device, the destination's side.

// NodeSide is one node's own part of a path, as an agent on that node
// captures it: from ep (an endpoint on this node) out to the underlay
// device its traffic for peer leaves the node by, stopping there (the
// last point carries the Tunnel). A peer on the same node gives the path
// up to the bridge or route that leads to it. Dst is Remote(peer). The
// options name namespaces and the node as Discover's do.
func NodeSide(ctx context.Context, ep Endpoint, peer netip.Addr, opts ...Option) (*Path, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	_, s, err := begin(ctx, ep, "endpoint", o.names)
	if err != nil {
		return nil, err
	}
	p := &Path{Src: s.ep, Dst: Remote(peer), Owners: map[string]string{}}
	out, err := leave(s, peer)
	if err != nil {
		return nil, fmt.Errorf("endpoint %s: %w", ep.Label, err)
	}
	nameNode(&s.node, o.nodes, out.tunnel.Local)
	p.Points = appendPoints(s.points, out.points)
	p.Notes = out.notes()
	setNode(p.Points, s.node.label)
	setTunnel(p.Points[len(p.Points)-len(out.points):], &out.tunnel)
	return finish(p)
}

// crossNodes is Discover's path to a destination off the source's node: s
// the source's side, d the destination's (nil when it has no namespace
// here).
func crossNodes(cands []candidate, s, d *side, p *Path, nodes map[netip.Addr]string) error {
	out, err := leave(s, p.Dst.IP)
	var unfollowed *unfollowedError
	if errors.As(err, &unfollowed) {
		// A tunnel pathtrace cannot follow to the underlay: stop at its
		// device, and say why.
		eg, note, err := egress(s, p.Dst)
		if err != nil {
			return err
		}
		p.Points = appendPoints(s.points, eg)
		setNode(p.Points, s.node.label)
		p.Notes = append(p.Notes, note+" ("+unfollowed.Error()+")")
		return nil
	}
	if err != nil {
		return fmt.Errorf("destination %s: %w", p.Dst.Label, err)
	}
	nameNode(&s.node, nodes, out.tunnel.Local)
	p.Points = appendPoints(s.points, out.points)
	setNode(p.Points, s.node.label)
	far := out.tunnel.Remote
	var rn *side
	switch {
	case d != nil:
		rn = d
	case far.IsValid():
		c, note := nodeHolding(cands, out, s.node.inode)
		if note != "" {
			p.Notes = append(p.Notes, note)
		}
		if c != nil {
			rn = &side{node: *c}
			nameNode(&rn.node, nodes, far)
		}
	}
	if rn == nil {
		setTunnel(p.Points[len(p.Points)-len(out.points):], &out.tunnel)
		p.Notes = append(p.Notes, out.notes()...)
		p.Notes = append(p.Notes, endNote(p, s, &out.tunnel))
		if out.tunnel.Device == "" {
			p.Points[len(p.Points)-1].Role = RoleEgress // routed off the node, to one not visible here
		}
		return nil
	}
	back, err := leave(rn, p.Src.IP)
	if err != nil {
		setTunnel(p.Points[len(p.Points)-len(out.points):], &out.tunnel)
		p.Notes = append(p.Notes, out.notes()...)
		p.Notes = append(p.Notes, fmt.Sprintf("node %s holds %s but does not lead back to %s (%v): points stop at %s",
			rn.node.label, far, p.Src.Label, err, out.tunnel.Underlay))
		return nil
	}
	p.Notes = append(p.Notes, joinTunnels(s.node.label, rn.node.label, &out.tunnel, &back.tunnel)...)
	out.nextHop(s.node)
	back.nextHop(rn.node)
	p.Notes = append(append(p.Notes, out.notes()...), back.notes()...)
	n := len(p.Points)
	setTunnel(p.Points[n-len(out.points):], &out.tunnel)
	remote := appendPoints(nil, back.points)
	slices.Reverse(remote)
	setTunnel(remote, &back.tunnel)
	if d == nil {
		// A destination given by address (a pod on another node, as the
		// Kubernetes resolver gives it): the namespace on that node that
		// holds it, if one does.
		d = destinationOn(cands, rn, p)
	}
	if d != nil {
		dst := slices.Clone(d.points)
		slices.Reverse(dst)
		remote = appendPoints(remote, dst)
	} else {
		eg, note, err := egress(rn, p.Dst)
		if err != nil {
			return err
		}
		remote = appendPoints(remote, eg)
		p.Notes = append(p.Notes, fmt.Sprintf("no network namespace on node %s holds %s: %s", rn.node.label, p.Dst.IP, note))
	}
	setNode(remote, rn.node.label)
	p.Points = appendPoints(p.Points, remote)
	return nil
}

// nameNode names a node's namespace after the node that holds addr, where
// the caller knows one (Kubernetes) and the namespace has no name of its
// own ("pid 4242", or "host": on a path across nodes, which host?).
func nameNode(c *candidate, nodes map[netip.Addr]string, addr netip.Addr) {
	if name, ok := nodes[addr]; ok && (strings.HasPrefix(c.label, "pid ") || c.label == "host") {
		c.label = name
	}
}

// destinationOn finds the namespace on node rn that holds the path's
// destination address and walks it to rn's bridge; nil when none does.
func destinationOn(cands []candidate, rn *side, p *Path) *side {
	if !p.Dst.IP.IsValid() {
		return nil
	}
	for _, c := range cands {
		if c.inode == rn.node.inode {
			continue
		}
		ep, ok, _, err := findIP(c, p.Dst.IP)
		if err != nil || !ok {
			continue
		}
		// Keep the destination's name (a pod's), take its namespace.
		if p.Dst.Label != "" {
			ep.Label = p.Dst.Label
		}
		d, err := walk(cands, ep)
		if err != nil || d.node.inode != rn.node.inode {
			continue
		}
		pod := p.Dst.Pod
		p.Dst = d.ep
		p.Dst.Pod = pod
		return d
	}
	return nil
}

// joinTunnels checks that the two nodes' ends agree, and fills in a far
// end one side could not read from the other's local end.
func joinTunnels(a, b string, out, back *Tunnel) []string {
	var notes []string
	if !out.Remote.IsValid() && back.Local.IsValid() {
		out.Remote, out.RemoteFrom = back.Local, FromPeerNode
	}
	if !back.Remote.IsValid() && out.Local.IsValid() {
		back.Remote, back.RemoteFrom = out.Local, FromPeerNode
	}
	if out.Encap != back.Encap {
		notes = append(notes, fmt.Sprintf("node %s sends through %s, node %s answers through %s: the tunnels differ",
			a, tunnelWords(out), b, tunnelWords(back)))
	}
	if out.Remote != back.Local || back.Remote != out.Local {
		notes = append(notes, fmt.Sprintf("node %s sends to %s and node %s to %s, but their own ends are %s and %s: the path above may not be taken",
			a, out.Remote, b, back.Remote, out.Local, back.Local))
	}
	return notes
}

// endNote says where the path stops when the other node is not visible.
func endNote(p *Path, s *side, t *Tunnel) string {
	far := t.Remote
	if !far.IsValid() {
		return fmt.Sprintf("destination %s leaves node %s via %s: the other node is not visible here, so the points stop at %s; "+
			"`pathtrace capture` on that node (agent mode) completes the path", p.Dst.Label, s.node.label, tunnelWords(t), t.Underlay)
	}
	return fmt.Sprintf("destination %s leaves node %s via %s: the node at %s is not visible here, so the points stop at %s; "+
		"`pathtrace capture` on that node (agent mode) completes the path", p.Dst.Label, s.node.label, tunnelWords(t), far, t.Underlay)
}

// tunnelWords: "flannel.1 (vxlan VNI 1, UDP 8472, to 192.168.56.2 over
// eth0)", or "eth0 (routed to 192.168.56.2)".
func tunnelWords(t *Tunnel) string {
	if t.Device == "" {
		if t.Remote.IsValid() {
			return fmt.Sprintf("%s (routed via %s)", t.Underlay, t.Remote)
		}
		return t.Underlay
	}
	w := t.Encap.String()
	if t.HasVNI {
		w += fmt.Sprintf(" VNI %d", t.VNI)
	}
	if t.Port != 0 {
		w += fmt.Sprintf(", UDP %d", t.Port)
	}
	if t.Remote.IsValid() {
		w += " to " + t.Remote.String()
	}
	return fmt.Sprintf("%s (%s over %s)", t.Device, w, t.Underlay)
}

// nodeHolding is the other node, when it is visible here: the namespace
// (not skip) that has the leg's far end on an interface. Where the node
// knows its next hop's MAC, only a namespace whose interface has that MAC
// is it; without one, only a single namespace holding the address is (labs
// and test clusters on one machine reuse addresses).
func nodeHolding(cands []candidate, l *leg, skip uint64) (*candidate, string) {
	far := l.tunnel.Remote
	var found []candidate
	var eps []Endpoint
	for _, c := range cands {
		if c.inode == skip {
			continue
		}
		if ep, ok, _, err := findIP(c, far); err == nil && ok {
			found, eps = append(found, c), append(eps, ep)
		}
	}
	if l.hopMAC != nil && l.tunnel.NextHop == far {
		for i, ep := range eps {
			if bytes.Equal(ep.MAC, l.hopMAC) {
				return &found[i], ""
			}
		}
		return nil, ""
	}
	switch len(found) {
	case 0:
		return nil, ""
	case 1:
		return &found[0], ""
	}
	var names []string
	for _, c := range found {
		names = append(names, c.label)
	}
	return nil, fmt.Sprintf("%d namespaces hold %s (%s) and node %s has no neighbour entry to tell which is the other node",
		len(found), far, strings.Join(names, ", "), l.node)
}

// appendPoints appends b to a, a point already last in a (the same
// interface) kept once.
func appendPoints(a, b []Point) []Point {
	out := slices.Clone(a)
	for _, pt := range b {
		if n := len(out); n > 0 && out[n-1].Inode == pt.Inode && out[n-1].IfIndex == pt.IfIndex {
			continue
		}
		out = append(out, pt)
	}
	return out
}

// setNode names the node of points on it and of the pods hanging off it.
func setNode(pts []Point, node string) {
	for i := range pts {
		if pts[i].Node == "" {
			pts[i].Node = node
		}
	}
}

func setTunnel(pts []Point, t *Tunnel) {
	for i := range pts {
		if pts[i].Role == RoleTunnel || pts[i].Role == RoleUnderlay || pts[i].Role == RoleEgress {
			pts[i].Tunnel = t
		}
	}
}

// uniqueNames gives points whose names collide (cni0, flannel.1, eth0 on
// both nodes) their node's name in front; the others keep their short
// names.
func uniqueNames(p *Path) {
	count := map[string]int{}
	for _, pt := range p.Points {
		count[pt.Name]++
	}
	for i := range p.Points {
		pt := &p.Points[i]
		if count[pt.Name] > 1 && pt.Node != "" && pt.Role != RoleEndpoint && pt.Role != RoleVeth {
			pt.Name = pt.Node + "-" + pt.Name
		}
	}
	p.Nodes = p.Nodes[:0]
	for _, pt := range p.Points {
		if pt.Node != "" && !slices.Contains(p.Nodes, pt.Node) {
			p.Nodes = append(p.Nodes, pt.Node)
		}
	}
}

// finish names the points and their owners and reads the bridges' FDB.
func finish(p *Path) (*Path, error) {
	uniqueNames(p)
	bridgeModes(p)
	owners(p)
	if err := RefreshFDB(p); err != nil {
		return nil, err
	}
	return p, nil
}
