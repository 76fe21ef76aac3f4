package discover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/netns"
)

// side is one endpoint's way into the node: its interface, the host end of
// its veth, and the bridge that veth is a port of (each may be missing).
type side struct {
	ep     Endpoint
	points []Point   // endpoint, veth, bridge: outward order
	node   candidate // namespace holding the veth's host end (the endpoint's own without a veth)
}

// Option changes how Discover names what it finds.
type Option func(*options)

type options struct {
	names map[uint64]string
	nodes map[netip.Addr]string
}

// NetnsNames names network namespaces by inode where the caller knows
// better than /run/netns and /proc do: pods after the pod, the node's own
// namespace "host" rather than "pid 2".
func NetnsNames(names map[uint64]string) Option {
	return func(o *options) { o.names = names }
}

// NodeNames names the nodes a path crosses by one of their addresses (a
// Kubernetes Node's InternalIP), where their namespaces have no better
// name.
func NodeNames(nodes map[netip.Addr]string) Option {
	return func(o *options) { o.nodes = nodes }
}

// Discover finds every capture point between src and dst. A dst on another
// node is followed through the tunnel device (or the route as is) to the
// underlay device, and on that node, when it is visible here, back in to
// dst; when it is not, the path stops at the underlay device and a note
// says so (nodes.go).
func Discover(ctx context.Context, src, dst Endpoint, opts ...Option) (*Path, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	cands, s, err := begin(ctx, src, "source", o.names)
	if err != nil {
		return nil, err
	}
	p := &Path{Src: s.ep, Dst: dst, Owners: map[string]string{}}
	var d *side
	if dst.NetnsPath != "" {
		if d, err = walk(cands, dst); err != nil {
			return nil, fmt.Errorf("destination %s: %w", dst.Label, err)
		}
		p.Dst = d.ep
	}
	if src.Host && dst.Host {
		return nil, fmt.Errorf("source %s and destination %s are both the node's own namespace: no path between pods to trace", src.Label, dst.Label)
	}
	if d != nil && d.node.inode == s.node.inode {
		p.Points = joinSides(s.points, d.points)
		if len(p.Points) == 0 {
			return nil, fmt.Errorf("no capture point between %s and %s", src.Label, dst.Label)
		}
		for _, ep := range []Endpoint{src, dst} {
			if ep.Host {
				p.Notes = append(p.Notes, fmt.Sprintf("%s is the node's own namespace (%s): its frames leave and arrive through the point next to it, not through %s",
					ep.Label, s.node.label, ep.Interface))
			}
		}
		setNode(p.Points, s.node.label)
		if err := checkRoute(s, d, p); err != nil {
			return nil, err
		}
	} else if err := crossNodes(cands, s, d, p, o.nodes); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return finish(p)
}

// begin lists the node's namespaces and walks ep (what: how errors name
// it) to its node.
func begin(ctx context.Context, ep Endpoint, what string, names map[uint64]string) ([]candidate, *side, error) {
	if ep.NetnsPath == "" {
		return nil, nil, fmt.Errorf("%s %s: not in a network namespace of this node", what, ep.Arg)
	}
	cands, err := candidates("/run/netns", "/proc")
	if err != nil {
		return nil, nil, err
	}
	for i := range cands {
		if name, ok := names[cands[i].inode]; ok {
			cands[i].label = name
		}
	}
	s, err := walk(cands, ep)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", what, ep.Label, err)
	}
	return cands, s, ctx.Err()
}

// joinSides is src's points then dst's reversed, a point common to both
// (one bridge) kept once.
func joinSides(a, b []Point) []Point {
	out := append([]Point{}, a...)
	for i := len(b) - 1; i >= 0; i-- {
		if n := len(out); n > 0 && out[n-1].Inode == b[i].Inode && out[n-1].IfIndex == b[i].IfIndex {
			continue
		}
		out = append(out, b[i])
	}
	return out
}

// walk follows ep from its namespace to its node: interface → veth peer
// (located through the peer's netns id) → master bridge.
func walk(cands []candidate, ep Endpoint) (*side, error) {
	h, inode, err := openHandle(ep.NetnsPath)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	ep.Inode = inode
	self := candidate{label: ep.Label, path: ep.NetnsPath, inode: inode}
	for _, c := range cands {
		if c.inode == inode && c.label != "" && !strings.HasPrefix(c.label, "pid ") {
			self.label = c.label
		}
	}
	var link netlink.Link
	if ep.IfIndex > 0 {
		link, err = h.LinkByIndex(ep.IfIndex)
	} else {
		link, err = mainLink(h)
	}
	if err != nil {
		return nil, fmt.Errorf("find interface: %w", err)
	}
	fillLink(h, &ep, link)
	s := &side{ep: ep, node: self}
	if ep.Host {
		// The node itself (a host-network pod): frames between it and a
		// pod cross the node's stack, not its main interface, so the
		// side has no point of its own; the other side's bridge or veth
		// is where the node sends and takes them.
		return s, nil
	}
	epPoint := point(h, self, link, ep.Label, RoleEndpoint)
	veth, ok := link.(*netlink.Veth)
	if !ok {
		// The endpoint is the node itself (its interface is no veth).
		s.points = []Point{epPoint}
		return s, nil
	}

	node := self
	if nsid := veth.Attrs().NetNsID; nsid >= 0 {
		if node, err = peerNamespace(h, cands, nsid, inode); err != nil {
			return nil, fmt.Errorf("veth peer of %s: %w", link.Attrs().Name, err)
		}
	}
	nh, _, err := openHandle(node.path)
	if err != nil {
		return nil, err
	}
	defer nh.Close()
	peer, err := nh.LinkByIndex(veth.Attrs().ParentIndex)
	if err != nil {
		return nil, fmt.Errorf("veth peer ifindex %d in %s: %w", veth.Attrs().ParentIndex, node.label, err)
	}
	s.node = node
	vethPoint := point(nh, node, peer, ep.Label+"-veth", RoleVeth)
	epPoint.Peer = fmt.Sprintf("%s@%s (ifindex %d)", peer.Attrs().Name, node.label, peer.Attrs().Index)
	vethPoint.Peer = fmt.Sprintf("%s@%s (ifindex %d)", link.Attrs().Name, self.label, link.Attrs().Index)
	s.points = []Point{epPoint, vethPoint}
	if mi := peer.Attrs().MasterIndex; mi > 0 {
		br, err := nh.LinkByIndex(mi)
		if err != nil {
			return nil, fmt.Errorf("master %d of %s: %w", mi, peer.Attrs().Name, err)
		}
		s.points[1].Master = br.Attrs().Name
		if pi, err := nh.LinkGetProtinfo(peer); err == nil {
			hp := pi.Hairpin
			s.points[1].Hairpin = &hp
		}
		bp := point(nh, node, br, br.Attrs().Name, RoleBridge)
		bp.Promisc = true
		s.points = append(s.points, bp)
	}
	return s, nil
}

// peerNamespace finds the namespace that ns (handle h) knows as nsid.
func peerNamespace(h *netlink.Handle, cands []candidate, nsid int, self uint64) (candidate, error) {
	var seen []string
	for _, c := range cands {
		if c.inode == self {
			continue
		}
		ns, err := netns.Open(c.path)
		if err != nil {
			continue // a process exited meanwhile
		}
		id, err := h.GetNetNsIdByFd(ns.Fd())
		ns.Close()
		if err == nil && id == nsid {
			return c, nil
		}
		seen = append(seen, c.label)
	}
	return candidate{}, fmt.Errorf("netns id %d matches none of %d namespaces (%s)", nsid, len(seen), strings.Join(seen, ", "))
}

func point(h *netlink.Handle, ns candidate, l netlink.Link, name string, role Role) Point {
	a := l.Attrs()
	p := Point{Name: name, Role: role, Netns: ns.label, NetnsPath: ns.path, Inode: ns.inode,
		Interface: a.Name, IfIndex: a.Index, MAC: MAC(a.HardwareAddr), MTU: a.MTU, RawIP: rawIPTypes[a.EncapType]}
	if addrs, err := h.AddrList(l, netlink.FAMILY_ALL); err == nil {
		for _, ad := range addrs {
			if ad.IP.IsLinkLocalUnicast() {
				continue // fe80:: is on every interface and says nothing about the path
			}
			if ip, ok := netip.AddrFromSlice(ad.IP); ok {
				ones, _ := ad.Mask.Size()
				p.Addrs = append(p.Addrs, netip.PrefixFrom(ip.Unmap(), ones))
			}
		}
	}
	return p
}

// rawIPTypes are the hardware types (as netlink names them) of devices
// whose frames start with the IP header.
var rawIPTypes = map[string]bool{"none": true, "ipip": true, "tunnel6": true, "sit": true, "gre": true}

// checkRoute asks the node where it sends dst when the two sides hang off
// different bridges (or none): the routed path only holds if the node's
// route leads to dst's side.
func checkRoute(s, d *side, p *Path) error {
	node := s.node
	if len(d.points) < 2 || !p.Dst.IP.IsValid() {
		return nil
	}
	srcBr, dstBr := bridgeOf(s.points), bridgeOf(d.points)
	if srcBr != "" && srcBr == dstBr {
		return nil // bridged, not routed
	}
	rs, err := routeGet(node, p.Dst.IP)
	if err != nil {
		return err
	}
	want := d.points[len(d.points)-1]
	if len(rs) == 0 || rs[0].LinkIndex != want.IfIndex {
		got := "no route"
		if len(rs) > 0 {
			got = fmt.Sprintf("ifindex %d", rs[0].LinkIndex)
		}
		p.Notes = append(p.Notes, fmt.Sprintf("node %s routes %s via %s, not via %s: the path above may not be taken", node.label, p.Dst.IP, got, want.Interface))
	}
	return nil
}

func bridgeOf(ps []Point) string {
	for _, p := range ps {
		if p.Role == RoleBridge {
			return p.Interface
		}
	}
	return ""
}

func routeGet(node candidate, ip netip.Addr) ([]netlink.Route, error) {
	h, _, err := openHandle(node.path)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	rs, err := h.RouteGet(net.IP(ip.AsSlice()))
	if err != nil {
		return nil, fmt.Errorf("route lookup of %s in %s: %w", ip, node.label, err)
	}
	return rs, nil
}

// egress is where the node sends a destination that is not on it.
func egress(s *side, dst Endpoint) ([]Point, string, error) {
	if !dst.IP.IsValid() {
		return nil, "", fmt.Errorf("destination %s: not on this node and no IP to route to", dst.Label)
	}
	rs, err := routeGet(s.node, dst.IP)
	if err != nil {
		return nil, "", err
	}
	if len(rs) == 0 || rs[0].LinkIndex == 0 {
		return nil, "", fmt.Errorf("destination %s: node %s has no route to it", dst.Label, s.node.label)
	}
	h, _, err := openHandle(s.node.path)
	if err != nil {
		return nil, "", err
	}
	defer h.Close()
	l, err := h.LinkByIndex(rs[0].LinkIndex)
	if err != nil {
		return nil, "", fmt.Errorf("egress ifindex %d in %s: %w", rs[0].LinkIndex, s.node.label, err)
	}
	note := fmt.Sprintf("destination %s leaves node %s via %s: points stop there", dst.Label, s.node.label, l.Attrs().Name)
	if len(s.points) == 0 {
		return []Point{point(h, s.node, l, l.Attrs().Name, RoleEgress)}, note, nil
	}
	if n := len(s.points); s.points[n-1].Inode == s.node.inode && s.points[n-1].IfIndex == l.Attrs().Index {
		return nil, note, nil // leaves through the bridge itself (e.g. a hairpin back out)
	}
	return []Point{point(h, s.node, l, l.Attrs().Name, RoleEgress)}, note, nil
}

// owners names every MAC on the path. A bridge without a MAC of its own
// uses its lowest port's: the bridge name wins then, since the bridge is
// what sends frames from that MAC (ARP replies of the gateway). Host veths
// that share one MAC (Calico gives every cali* ee:ee:ee:ee:ee:ee) are named
// together.
func owners(p *Path) {
	rank := map[Role]int{RoleBridge: 3, RoleEndpoint: 2, RoleEgress: 1, RoleTunnel: 1, RoleUnderlay: 1, RoleVeth: 0}
	best := map[string]int{}
	veths := map[string][]string{}
	for _, pt := range p.Points {
		if len(pt.MAC) == 0 {
			continue
		}
		mac := pt.MAC.String()
		if pt.Role == RoleVeth {
			veths[mac] = append(veths[mac], pt.Name)
		}
		if r, ok := best[mac]; ok && r >= rank[pt.Role] {
			if pt.Role == RoleVeth && r == 0 {
				p.Owners[mac] = "host veths " + strings.Join(veths[mac], ", ")
			}
			continue
		}
		best[mac] = rank[pt.Role]
		switch pt.Role {
		case RoleEndpoint:
			p.Owners[mac] = pt.Name + " " + pt.Interface
		case RoleVeth:
			p.Owners[mac] = fmt.Sprintf("%s (%s %s)", pt.Name, pt.Netns, pt.Interface)
		case RoleBridge, RoleTunnel, RoleUnderlay:
			p.Owners[mac] = pt.Name
		default:
			p.Owners[mac] = fmt.Sprintf("%s (%s)", pt.Interface, pt.Netns)
		}
	}
}

// fillFDB reads the forwarding entries of the path's bridges for the two
// endpoints' MACs.
func fillFDB(node candidate, p *Path) error {
	bridges := map[int]string{}
	for _, pt := range p.Points {
		if pt.Role == RoleBridge && pt.Inode == node.inode {
			bridges[pt.IfIndex] = pt.Interface
		}
	}
	if len(bridges) == 0 {
		return nil
	}
	want := map[string]bool{}
	for _, m := range []MAC{p.Src.MAC, p.Dst.MAC} {
		if len(m) > 0 {
			want[m.String()] = true
		}
	}
	h, _, err := openHandle(node.path)
	if err != nil {
		return err
	}
	defer h.Close()
	var neighs []netlink.Neigh
	if err := retryDump(func() (err error) { neighs, err = h.NeighList(0, unix.AF_BRIDGE); return err }); err != nil {
		return fmt.Errorf("bridge fdb of %s: %w", node.label, err)
	}
	names := map[int]string{}
	for _, n := range neighs {
		mac := n.HardwareAddr.String()
		br, ok := bridges[n.MasterIndex]
		if !ok {
			br, ok = bridges[n.LinkIndex]
		}
		if !ok || !want[mac] {
			continue
		}
		port, ok := names[n.LinkIndex]
		if !ok {
			if l, err := h.LinkByIndex(n.LinkIndex); err == nil {
				port = l.Attrs().Name
			} else if !errors.As(err, new(netlink.LinkNotFoundError)) {
				return fmt.Errorf("fdb port %d: %w", n.LinkIndex, err)
			}
			names[n.LinkIndex] = port
		}
		p.FDB = append(p.FDB, FDBEntry{Bridge: br, MAC: MAC(n.HardwareAddr), Port: port,
			Local: n.State&netlink.NUD_PERMANENT != 0, Owner: p.Owners[mac]})
	}
	return nil
}

// RefreshFDB re-reads the bridges' forwarding entries for the two endpoints'
// MACs. Before a trace a bridge may not have learned them yet; after the
// probes it has, and that is what a reader of the report wants to see.
func RefreshFDB(p *Path) error {
	p.FDB = p.FDB[:0]
	seen := map[uint64]bool{}
	for _, pt := range p.Points {
		if pt.Role != RoleBridge || seen[pt.Inode] {
			continue
		}
		seen[pt.Inode] = true
		if err := fillFDB(candidate{label: pt.Netns, path: pt.NetnsPath, inode: pt.Inode}, p); err != nil {
			return err
		}
	}
	return nil
}
