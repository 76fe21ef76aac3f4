package discover

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/correlate"
)

// leg is how a node sends the path's traffic for another node: the tunnel
// device (if any) and the underlay device, outward, with how they join.
type leg struct {
	points []Point // tunnel device (none for a route as is), underlay device
	tunnel Tunnel
	// unknown says why the kernel's tables do not name the far end ("" when
	// they do).
	unknown string
	node    string
	// hopMAC is the underlay's neighbour entry for the next hop, when the
	// node has one: it tells the other node apart from namespaces that
	// hold the same address elsewhere on this machine.
	hopMAC net.HardwareAddr
}

// notes say how a far end the kernel's tables do not name was found, or
// that it will be read from the probes.
func (l *leg) notes() []string {
	t := &l.tunnel
	switch {
	case l.unknown == "":
		return nil
	case t.RemoteFrom == FromPeerNode:
		return []string{fmt.Sprintf("%s %s's far end %s is the other node's end: discovery cannot read it from the device (%s)",
			l.node, t.Device, t.Remote, l.unknown)}
	}
	return []string{fmt.Sprintf("%s %s's far end cannot be read from the device (%s): it is read from the probes' outer headers on %s",
		l.node, t.Device, l.unknown, t.Underlay)}
}

// unfollowedError is a tunnel leave cannot follow to the underlay: the
// path stops at its device.
type unfollowedError struct{ why string }

func (e *unfollowedError) Error() string { return e.why }

// Default UDP ports of the kernel's and the CNIs' tunnels.
const (
	portVXLANLinux = 8472 // the kernel's default (no dstport given), Flannel's
	portGENEVE     = 6081
	portFlannelUDP = 8285
)

// leave follows node s.node's route to peer (an address on the other
// node): the device it leaves by, and if that is a tunnel, the tunnel's far
// end as the node's own entries say (onlink route → permanent neighbour →
// FDB dst, as flanneld and felix write them; the device's remote; the
// route's gateway) and the underlay device that reaches it.
func leave(s *side, peer netip.Addr) (*leg, error) {
	node := s.node
	rs, err := routeGet(node, peer)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 || rs[0].LinkIndex == 0 {
		return nil, fmt.Errorf("node %s has no route to %s", node.label, peer)
	}
	h, _, err := openHandle(node.path)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	dev, err := h.LinkByIndex(rs[0].LinkIndex)
	if err != nil {
		return nil, fmt.Errorf("ifindex %d in %s: %w", rs[0].LinkIndex, node.label, err)
	}
	l := &leg{node: node.label}
	t := &l.tunnel
	gw := addrOf(rs[0].Gw)
	underIdx := 0 // the underlay device when no route to Remote says it
	switch d := dev.(type) {
	case *netlink.Vxlan:
		t.Encap, t.Port, t.VNI, t.HasVNI, t.External = correlate.EncapVXLAN, uint16(d.Port), uint32(d.VxlanId), !d.FlowBased, d.FlowBased
		if t.Port == 0 {
			t.Port = portVXLANLinux
		}
		t.Local, underIdx = addrOf(d.SrcAddr), d.VtepDevIndex
		if !d.FlowBased {
			t.Remote, err = vxlanRemote(h, dev, gw)
			if err != nil {
				return nil, err
			}
			t.RemoteFrom = FromFDB
		}
	case *netlink.Geneve:
		t.Encap, t.Port, t.VNI, t.HasVNI, t.External = correlate.EncapGENEVE, d.Dport, d.ID, !d.FlowBased, d.FlowBased
		if t.Port == 0 {
			t.Port = portGENEVE
		}
		if t.Remote = addrOf(d.Remote); t.Remote.IsValid() {
			t.RemoteFrom = FromDevice
		}
	case *netlink.Iptun:
		t.Encap, t.Local, t.External = correlate.EncapIPIP, addrOf(d.Local), d.FlowBased
		t.Remote, t.RemoteFrom = addrOf(d.Remote), FromDevice
		if !t.Remote.IsValid() && gw.IsValid() {
			t.Remote, t.RemoteFrom = gw, FromRoute // Calico: via the peer node onlink
		}
		underIdx = int(d.Link)
	case *netlink.Tuntap:
		if err := userspaceTunnel(dev.Attrs().Name, d, t, gw); err != nil {
			return nil, &unfollowedError{fmt.Sprintf("%s is %s", dev.Attrs().Name, err)}
		}
	case *netlink.Gretun, *netlink.Gretap, *netlink.Ip6tnl, *netlink.Sittun, *netlink.Vti, *netlink.Wireguard:
		return nil, &unfollowedError{fmt.Sprintf("%s is a %s device: pathtrace does not yet follow that tunnel to the underlay",
			dev.Attrs().Name, dev.Type())}
	default:
		// Routed as it is (host-gw, Calico without encapsulation): the
		// device is the underlay, the gateway the other node.
		t.Remote, t.NextHop, t.Underlay = gw, gw, dev.Attrs().Name
		if !gw.IsValid() {
			t.Remote, t.NextHop = peer, peer
		}
		t.RemoteFrom = FromRoute
		t.Local = addrOf(rs[0].Src)
		l.points = []Point{point(h, node, dev, dev.Attrs().Name, RoleUnderlay)}
		l.hopMAC = neighMAC(h, dev.Attrs().Index, t.NextHop)
		return l, nil
	}
	t.Device = dev.Attrs().Name
	tp := point(h, node, dev, t.Device, RoleTunnel)
	l.points = append(l.points, tp)
	under, err := underlay(h, node, t, underIdx)
	if err != nil {
		return nil, err
	}
	l.points = append(l.points, under)
	l.hopMAC = neighMAC(h, under.IfIndex, t.NextHop)
	if !t.Remote.IsValid() {
		why := fmt.Sprintf("no neighbour and FDB entry for the route's gateway %s", gw)
		switch {
		case t.External:
			why = "it is flow-based (external): its far end is set per packet, by a route's encap or an eBPF program"
		case t.Userspace:
			why = fmt.Sprintf("%s is a %s device: the process behind it picks the far end", t.Device, tunMode(dev))
		case !gw.IsValid():
			why = "no gateway on the route and no default FDB entry"
		}
		l.unknown = why
	}
	return l, nil
}

// vxlanRemote is the far end flanneld and felix set up: the route's
// onlink gateway has a permanent neighbour entry (its MAC), and that MAC
// an FDB entry whose dst is the other node. Without a gateway, the
// all-zeros FDB entry (every unknown MAC) names it.
func vxlanRemote(h *netlink.Handle, dev netlink.Link, gw netip.Addr) (netip.Addr, error) {
	name := dev.Attrs().Name
	var mac net.HardwareAddr
	if gw.IsValid() {
		var neighs []netlink.Neigh
		if err := retryDump(func() (err error) { neighs, err = h.NeighList(dev.Attrs().Index, unix.AF_INET); return err }); err != nil {
			return netip.Addr{}, fmt.Errorf("neighbours of %s: %w", name, err)
		}
		for _, n := range neighs {
			if addrOf(n.IP) == gw && len(n.HardwareAddr) == 6 {
				mac = n.HardwareAddr
			}
		}
		if mac == nil {
			return netip.Addr{}, nil
		}
	} else {
		mac = make(net.HardwareAddr, 6)
	}
	var fdb []netlink.Neigh
	if err := retryDump(func() (err error) { fdb, err = h.NeighList(dev.Attrs().Index, unix.AF_BRIDGE); return err }); err != nil {
		return netip.Addr{}, fmt.Errorf("forwarding entries of %s: %w", name, err)
	}
	for _, n := range fdb {
		if bytes.Equal(n.HardwareAddr, mac) && n.IP != nil {
			return addrOf(n.IP), nil
		}
	}
	return netip.Addr{}, nil
}

// userspaceTunnel reads a TUN/TAP device by the name the real systems give
// it: the kernel cannot say what the process behind it sends. flannel0 is
// Flannel's udp backend (UDP 8285), tunl0 IP-in-IP (Calico's device name),
// genev_sys_PORT GENEVE (Open vSwitch's name for its GENEVE port).
func userspaceTunnel(name string, d *netlink.Tuntap, t *Tunnel, gw netip.Addr) error {
	t.Userspace = true
	switch {
	case name == "flannel0":
		t.Encap, t.Port = correlate.EncapUDP, portFlannelUDP
	case name == "tunl0":
		t.Encap = correlate.EncapIPIP
		if gw.IsValid() {
			t.Remote, t.RemoteFrom = gw, FromRoute
		}
	case strings.HasPrefix(name, "genev_sys_"):
		port, err := strconv.ParseUint(strings.TrimPrefix(name, "genev_sys_"), 10, 16)
		if err != nil {
			port = portGENEVE
		}
		t.Encap, t.Port = correlate.EncapGENEVE, uint16(port)
	default:
		return fmt.Errorf("a %s device whose encapsulation pathtrace cannot tell (it knows flannel0, tunl0 and genev_sys_PORT)", tunMode(d))
	}
	return nil
}

func tunMode(l netlink.Link) string {
	if d, ok := l.(*netlink.Tuntap); ok && d.Mode == netlink.TUNTAP_MODE_TAP {
		return "TAP"
	}
	return "TUN"
}

// underlay is the device that carries the tunnel: the one the route to
// its far end leaves by, else the device the tunnel is bound to, else the
// node's default route's. Local, where the device did not set it, is the
// address the node sends from.
func underlay(h *netlink.Handle, node candidate, t *Tunnel, idx int) (Point, error) {
	if t.Remote.IsValid() {
		rs, err := h.RouteGet(net.IP(t.Remote.AsSlice()))
		if err != nil {
			return Point{}, fmt.Errorf("route lookup of %s's far end %s in %s: %w", t.Device, t.Remote, node.label, err)
		}
		if len(rs) > 0 && rs[0].LinkIndex > 0 {
			idx = rs[0].LinkIndex
			t.NextHop = t.Remote
			if gw := addrOf(rs[0].Gw); gw.IsValid() {
				t.NextHop = gw
			}
			if !t.Local.IsValid() {
				t.Local = addrOf(rs[0].Src)
			}
		}
	}
	var dev netlink.Link
	var err error
	if idx > 0 {
		dev, err = h.LinkByIndex(idx)
	} else {
		dev, err = uplink(h)
	}
	if err != nil {
		return Point{}, fmt.Errorf("underlay of %s in %s: %w", t.Device, node.label, err)
	}
	if !t.Local.IsValid() {
		if addrs, err := h.AddrList(dev, netlink.FAMILY_V4); err == nil && len(addrs) > 0 {
			t.Local = addrOf(addrs[0].IP)
		}
	}
	t.Underlay = dev.Attrs().Name
	return point(h, node, dev, t.Underlay, RoleUnderlay), nil
}

// uplink is the node's way out when nothing routes to a known far end:
// the default route's device, else the one interface with an IPv4 address
// that is no bridge, bridge port, tunnel or TUN/TAP device.
func uplink(h *netlink.Handle) (netlink.Link, error) {
	if l, err := mainLink(h); err == nil {
		return l, nil
	}
	l, names, err := onlyLink(h, func(l netlink.Link) bool {
		switch l.(type) {
		case *netlink.Bridge, *netlink.Tuntap, *netlink.Vxlan, *netlink.Geneve, *netlink.Iptun:
			return false
		}
		if a := l.Attrs(); a.Flags&net.FlagLoopback != 0 || a.MasterIndex > 0 {
			return false
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_V4)
		return err == nil && len(addrs) > 0
	})
	if err != nil {
		return nil, err
	}
	if l == nil {
		return nil, fmt.Errorf("no default route, and %d interfaces could be the uplink %v", len(names), names)
	}
	return l, nil
}

// nextHop sets the next hop towards a far end learned after leave (from
// the other node): where the node's route to it goes.
func (l *leg) nextHop(node candidate) {
	t := &l.tunnel
	if t.NextHop.IsValid() || !t.Remote.IsValid() {
		return
	}
	if rs, err := routeGet(node, t.Remote); err == nil && len(rs) > 0 {
		t.NextHop = t.Remote
		if gw := addrOf(rs[0].Gw); gw.IsValid() {
			t.NextHop = gw
		}
	}
}

// neighMAC is the link's neighbour entry for ip, if it has a usable one.
func neighMAC(h *netlink.Handle, link int, ip netip.Addr) net.HardwareAddr {
	if !ip.IsValid() {
		return nil
	}
	var neighs []netlink.Neigh
	if err := retryDump(func() (err error) { neighs, err = h.NeighList(link, netlink.FAMILY_ALL); return err }); err != nil {
		return nil
	}
	for _, n := range neighs {
		if addrOf(n.IP) == ip && len(n.HardwareAddr) > 0 && n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED|netlink.NUD_NOARP) == 0 {
			return n.HardwareAddr
		}
	}
	return nil
}

func addrOf(ip net.IP) netip.Addr {
	if a, ok := netip.AddrFromSlice(ip); ok {
		return a.Unmap()
	}
	return netip.Addr{}
}
