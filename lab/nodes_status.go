package lab

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/pathtrace/pathtrace/netns"
)

// statusNodes reports a two-node lab as it exists in the kernel: every
// namespace, eth0 with its address, cni0, the tunnel device (and process),
// and each pod on its node's bridge; or an error naming what is missing.
func statusNodes(st *state) (*Lab, error) {
	cfg := st.NodesConfig
	if cfg == nil || len(st.Nodes) != len(nodeLetters) {
		return nil, fmt.Errorf("two-node lab state without its nodes")
	}
	l := &Lab{Prefix: cfg.Prefix, Backend: cfg.Backend, CNI: cfg.CNI, Bridges: slices.Clone(st.Bridges), Wire: cfg.wireName(), Ext: cfg.extName()}
	for _, name := range []string{l.Wire, l.Ext} {
		ns, err := netns.Open(filepath.Join(RunDir, name))
		if err != nil {
			return nil, fmt.Errorf("lab %q: %w", cfg.Prefix, err)
		}
		ns.Close()
	}
	if len(st.Pods) != len(st.Nodes) {
		return nil, fmt.Errorf("lab %q: %d of %d pods were made", cfg.Prefix, len(st.Pods), len(st.Nodes))
	}
	for i, ns := range st.Nodes {
		n, err := nodeStatus(ns, cfg.Backend, cfg.bridge())
		if err != nil {
			return nil, fmt.Errorf("lab %q: node %s: %w", cfg.Prefix, ns.Name, err)
		}
		l.Nodes = append(l.Nodes, n)
		nn, err := openLabNode(ns.Name)
		if err != nil {
			return nil, err
		}
		p, err := podStatus(nn.h, st.Pods[i])
		nn.close()
		if err != nil {
			return nil, fmt.Errorf("lab %q: %w", cfg.Prefix, err)
		}
		l.Pods = append(l.Pods, p)
	}
	return l, nil
}

func nodeStatus(ns nodeState, b Backend, bridge string) (Node, error) {
	n := Node{Name: ns.Name, Subnet: ns.Subnet, Bridge: bridge, Tunnel: ns.Tunnel}
	ln, err := openLabNode(ns.Name)
	if err != nil {
		return n, err
	}
	defer ln.close()
	n.Path, n.Inode = ln.ns.Path, ln.ns.Inode
	eth0, err := ln.h.LinkByName("eth0")
	if err != nil {
		return n, fmt.Errorf("eth0: %w", err)
	}
	n.MAC = eth0.Attrs().HardwareAddr.String()
	addrs, err := ln.h.AddrList(eth0, netlink.FAMILY_V4)
	if err != nil || len(addrs) == 0 {
		return n, fmt.Errorf("eth0 has no IPv4 address: %v", err)
	}
	n.IP, _ = netip.AddrFromSlice(addrs[0].IP.To4())
	if n.Bridge != "" {
		if _, err := ln.h.LinkByName(n.Bridge); err != nil {
			return n, fmt.Errorf("bridge %s: %w", n.Bridge, err)
		}
	}
	if n.Tunnel != "" {
		dev, err := ln.h.LinkByName(n.Tunnel)
		if err != nil {
			return n, fmt.Errorf("tunnel device %s: %w", n.Tunnel, err)
		}
		if mac := dev.Attrs().HardwareAddr; len(mac) == 6 {
			n.TunnelMAC = mac.String()
		}
	}
	if b.Userspace() {
		if !ns.Proc.alive() {
			return n, fmt.Errorf("tunnel process %d for %s is not running", ns.Proc.PID, n.Tunnel)
		}
		n.TunnelPID = ns.Proc.PID
	}
	return n, nil
}
