package lab

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/netns"
)

// overlay joins the nodes' pod subnets the way the backend's CNI does,
// recording tunnel MACs and processes in st as they appear.
func overlay(cfg NodesConfig, st *state, nodes []*labNode) error {
	b, dev := cfg.Backend, cfg.device()
	if b == BackendHostGW {
		// flanneld's host-gw: a plain route to each peer's pods via the peer.
		for i, n := range nodes {
			peer := 1 - i
			eth0, err := n.h.LinkByName("eth0")
			if err != nil {
				return fmt.Errorf("%s eth0: %w", cfg.nodeName(i), err)
			}
			r := &netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: ipNet(nodeSubnet(peer)), Gw: ip(nodeIP(peer))}
			if err := n.h.RouteAdd(r); err != nil {
				return fmt.Errorf("%s: route %s via %s: %w", cfg.nodeName(i), nodeSubnet(peer), nodeIP(peer), err)
			}
		}
		return nil
	}
	// First every node's tunnel device, then each node's routes to the
	// other: the VXLAN and GENEVE entries need the peer device's MAC.
	for i, n := range nodes {
		var err error
		switch {
		case b == BackendVXLAN && cfg.CNI == CNICalico:
			err = addVXLAN(n, i, dev, calicoVXLANVNI, calicoVXLANPort)
		case b == BackendVXLAN:
			err = addVXLAN(n, i, dev, 1, 8472)
		case b.Userspace():
			err = addTunDevice(n, b, i)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", cfg.nodeName(i), err)
		}
		mac, err := macOf(n.h, dev)
		if err != nil {
			return fmt.Errorf("%s: %w", cfg.nodeName(i), err)
		}
		if len(mac) == 6 {
			st.Nodes[i].TunnelMAC = mac.String()
		}
		if b.Userspace() {
			peer := 1 - i
			p, err := startTunnel(n.ns, TunnelSpec{Backend: b, Dev: dev, Local: nodeIP(i), Peer: nodeIP(peer),
				PeerSubnet: nodeSubnet(peer), VNI: 1, SPI: espSPIBase + uint32(i) + 1, PeerSPI: espSPIBase + uint32(peer) + 1})
			if err != nil {
				return fmt.Errorf("%s: %w", cfg.nodeName(i), err)
			}
			st.Nodes[i].Proc = p
		}
		if err := writeState(cfg.Prefix, st); err != nil {
			return err
		}
	}
	for i, n := range nodes {
		if err := tunnelRoutes(n, b, dev, i, st.Nodes[1-i].TunnelMAC); err != nil {
			return fmt.Errorf("%s: %w", cfg.nodeName(i), err)
		}
	}
	return nil
}

// addVXLAN makes the VXLAN device as flanneld makes flannel.1 (VNI 1, UDP
// 8472) and felix vxlan.calico (VNI 4096, UDP 4789): the node's address as
// the local end on eth0, no learning (the daemon writes the FDB), address
// 10.244.n.0/32.
func addVXLAN(n *labNode, i int, name string, vni, port int) error {
	eth0, err := n.h.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("eth0: %w", err)
	}
	vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: BackendVXLAN.MTU()},
		VxlanId: vni, VtepDevIndex: eth0.Attrs().Index, SrcAddr: ip(nodeIP(i)), Port: port, Learning: false}
	if err := n.h.LinkAdd(vx); err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	return addrUp(n.h, name, netip.PrefixFrom(nodeSubnet(i).Addr(), 32))
}

// addTunDevice makes the userspace tunnel's device: a persistent TUN
// (tunl0, flannel0) or TAP (genev_sys_6081) the tunnel process attaches
// to, IPv6 off (the tunnels carry IPv4 only), address 10.244.n.0/32.
func addTunDevice(n *labNode, b Backend, i int) error {
	name := b.Device()
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if b == BackendGENEVE {
		flags = unix.IFF_TAP | unix.IFF_NO_PI
	}
	if err := netns.Do(n.ns, func() error {
		f, err := openTun(name, flags)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := unix.IoctlSetInt(int(f.Fd()), unix.TUNSETPERSIST, 1); err != nil {
			return fmt.Errorf("make %s persistent: %w", name, err)
		}
		return os.WriteFile(filepath.Join("/proc/sys/net/ipv6/conf", name, "disable_ipv6"), []byte("1"), 0o644)
	}); err != nil {
		return err
	}
	l, err := n.h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := n.h.LinkSetMTU(l, b.MTU()); err != nil {
		return fmt.Errorf("mtu of %s: %w", name, err)
	}
	if b == BackendGENEVE {
		mac := make(net.HardwareAddr, 6)
		if _, err := rand.Read(mac); err != nil {
			return err
		}
		mac[0] = mac[0]&^1 | 2
		if err := n.h.LinkSetHardwareAddr(l, mac); err != nil {
			return fmt.Errorf("MAC of %s: %w", name, err)
		}
	}
	return addrUp(n.h, name, netip.PrefixFrom(nodeSubnet(i).Addr(), 32))
}

// tunnelRoutes sends node i's traffic for the other node's pods into the
// tunnel device, with the entries each system writes:
//   - vxlan (flanneld): 10.244.p.0/24 via 10.244.p.0 dev flannel.1 onlink, a
//     permanent neighbour 10.244.p.0 → the peer's flannel.1 MAC, an FDB
//     entry that MAC → dst the peer node;
//   - geneve: the same route and neighbour on the TAP device (the tunnel
//     process sends every frame to the peer node);
//   - ipip (Calico): 10.244.p.0/24 via the peer node dev tunl0 onlink;
//   - udp (flanneld): 10.244.0.0/16 dev flannel0 (flanneld's proxy picks
//     the peer by destination);
//   - ipsec: 10.244.p.0/24 dev ipsec0 (the process's one SA pair).
func tunnelRoutes(n *labNode, b Backend, name string, i int, peerMAC string) error {
	peer := 1 - i
	dev, err := n.h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	idx := dev.Attrs().Index
	gw := nodeSubnet(peer).Addr()
	r := &netlink.Route{LinkIndex: idx, Dst: ipNet(nodeSubnet(peer)), Gw: ip(gw), Flags: int(netlink.FLAG_ONLINK)}
	switch b {
	case BackendIPIP:
		r.Gw = ip(nodeIP(peer))
	case BackendUDP:
		r = &netlink.Route{LinkIndex: idx, Dst: ipNet(clusterNet), Scope: netlink.SCOPE_UNIVERSE}
	case BackendIPsec:
		r = &netlink.Route{LinkIndex: idx, Dst: ipNet(nodeSubnet(peer)), Scope: netlink.SCOPE_LINK}
	}
	if err := n.h.RouteAdd(r); err != nil {
		return fmt.Errorf("route %s via %s dev %s: %w", r.Dst, r.Gw, name, err)
	}
	if b != BackendVXLAN && b != BackendGENEVE {
		return nil
	}
	mac, err := net.ParseMAC(peerMAC)
	if err != nil {
		return fmt.Errorf("peer %s MAC %q: %w", name, peerMAC, err)
	}
	neigh := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, Type: unix.RTN_UNICAST,
		IP: ip(gw), HardwareAddr: mac}
	if err := n.h.NeighSet(neigh); err != nil {
		return fmt.Errorf("neighbour %s lladdr %s dev %s: %w", gw, mac, name, err)
	}
	if b == BackendVXLAN {
		fdb := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT, Flags: netlink.NTF_SELF,
			IP: ip(nodeIP(peer)), HardwareAddr: mac}
		if err := n.h.NeighSet(fdb); err != nil {
			return fmt.Errorf("fdb %s dst %s dev %s: %w", mac, nodeIP(peer), name, err)
		}
	}
	return nil
}

func addrUp(h *netlink.Handle, name string, addr netip.Prefix) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(addr)}); err != nil {
		return fmt.Errorf("add %s to %s: %w", addr, name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

func ip(a netip.Addr) net.IP { return net.IP(a.AsSlice()) }
