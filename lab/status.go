package lab

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/pathtrace/pathtrace/netns"
	"github.com/vishvananda/netlink"
)

// Status reports the lab recorded for cfg.Prefix as it exists in the
// kernel, or an error naming what is missing.
func Status(cfg Config) (*Lab, error) {
	st, err := readState(cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("lab %q: %w", cfg.Prefix, err)
	}
	return status(st)
}

func status(st *state) (*Lab, error) {
	if st.Kind == kindNodes {
		return statusNodes(st)
	}
	l := &Lab{Prefix: st.Config.Prefix, Bridges: slices.Clone(st.Bridges)}
	var node *netns.Handle
	var err error
	if st.NodeInCurrent {
		node, err = netns.Current()
		if err == nil && node.Inode != st.NodeInode {
			node.Close()
			return nil, fmt.Errorf("lab %q was built in network namespace inode %d, this is %d", st.Config.Prefix, st.NodeInode, node.Inode)
		}
	} else {
		l.Node = st.Config.nodeName()
		node, err = netns.Open(filepath.Join(RunDir, l.Node))
	}
	if err != nil {
		return nil, err
	}
	defer node.Close()
	l.NodePath, l.NodeInode = node.Path, node.Inode
	if st.NodeInCurrent {
		// The thread path of Current dies with the thread; the process path does not.
		l.NodePath = fmt.Sprintf("/proc/%d/ns/net", os.Getpid())
	}
	nh, err := handleAt(node)
	if err != nil {
		return nil, err
	}
	defer nh.Close()

	for _, b := range st.Bridges {
		if _, err := nh.LinkByName(b); err != nil {
			return nil, fmt.Errorf("lab %q: bridge %s: %w", st.Config.Prefix, b, err)
		}
	}
	if want := st.Config.numPods(); len(st.Pods) != want {
		return nil, fmt.Errorf("lab %q: %d of %d pods were made", st.Config.Prefix, len(st.Pods), want)
	}
	for _, p := range st.Pods {
		got, err := podStatus(nh, p)
		if err != nil {
			return nil, fmt.Errorf("lab %q: %w", st.Config.Prefix, err)
		}
		l.Pods = append(l.Pods, got)
	}
	return l, nil
}

func podStatus(nh *netlink.Handle, p Pod) (Pod, error) {
	host, err := nh.LinkByName(p.HostVeth)
	if err != nil {
		return p, fmt.Errorf("pod %s: host veth %s: %w", p.Name, p.HostVeth, err)
	}
	if host.Attrs().MasterIndex == 0 && p.Bridge != "" {
		return p, fmt.Errorf("pod %s: %s is not a bridge port", p.Name, p.HostVeth)
	}
	if br, err := nh.LinkByIndex(host.Attrs().MasterIndex); err == nil {
		p.Bridge = br.Attrs().Name
	}
	pns, err := netns.Open(p.Netns)
	if err != nil {
		return p, fmt.Errorf("pod %s: %w", p.Name, err)
	}
	defer pns.Close()
	ph, err := handleAt(pns)
	if err != nil {
		return p, err
	}
	defer ph.Close()
	eth0, err := ph.LinkByName("eth0")
	if err != nil {
		return p, fmt.Errorf("pod %s: eth0: %w", p.Name, err)
	}
	p.MAC = eth0.Attrs().HardwareAddr.String()
	addrs, err := ph.AddrList(eth0, netlink.FAMILY_V4)
	if err != nil {
		return p, fmt.Errorf("pod %s: addresses of eth0: %w", p.Name, err)
	}
	if len(addrs) == 0 {
		return p, fmt.Errorf("pod %s: eth0 has no IPv4 address", p.Name)
	}
	p.IP, _ = netip.AddrFromSlice(addrs[0].IP.To4())
	return p, nil
}
