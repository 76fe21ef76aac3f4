// Package lab builds a Flannel-style Kubernetes node out of network
// namespaces: a node namespace with a cni0 bridge and one veth pair per pod
// namespace, configured like the CNI bridge plugin configures them. It uses
// netlink only (no `ip` commands) and records what it makes in a state file
// so Down can clean up even after a crash.
package lab

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/pathtrace/pathtrace/netns"
)

// MTU is Flannel's VXLAN MTU, used on the bridges and both ends of every veth.
const MTU = 1450

// Config says which lab to build. The zero value builds "node1" with pods
// "pod1" and "pod2" on 10.244.1.0/24.
type Config struct {
	Prefix        string       `json:"prefix"`          // prepended to every namespace name
	Subnet        netip.Prefix `json:"subnet"`          // the node's pod subnet (bridge .1, pods .2, .3, ...)
	Pods          int          `json:"pods"`            // pods on cni0
	NodeInCurrent bool         `json:"node_in_current"` // build the node in the calling namespace
	Routed        bool         `json:"routed"`          // add cni1 on the next subnet with one more pod, ip_forward on
}

// Lab is what exists. A multi-node lab (UpNodes) lists its nodes in Nodes
// and leaves Node, NodePath and NodeInode empty; its pods say their node.
type Lab struct {
	Prefix    string   `json:"prefix"`
	Node      string   `json:"node"`       // node namespace name; "" with NodeInCurrent
	NodePath  string   `json:"node_path"`  // path to open the node namespace
	NodeInode uint64   `json:"node_inode"` // identity of the node namespace
	Bridges   []string `json:"bridges"`
	Pods      []Pod    `json:"pods"`

	Backend Backend `json:"backend,omitzero"` // multi-node: how pods on two nodes talk
	CNI     CNI     `json:"cni"`              // multi-node: what wires the pods (Flannel's bridge, Calico's routed veths)
	Nodes   []Node  `json:"nodes,omitempty"`  // multi-node: the nodes, in order (A, B)
	Wire    string  `json:"wire,omitempty"`   // multi-node: the switch namespace joining the nodes' eth0
	Ext     string  `json:"ext,omitempty"`    // multi-node: a host on the wire outside the cluster (192.168.56.3)
}

// Pod is one pod namespace and its veth pair.
type Pod struct {
	Name     string     `json:"name"`  // namespace name
	Netns    string     `json:"netns"` // /run/netns/NAME
	IP       netip.Addr `json:"ip"`
	MAC      string     `json:"mac"`       // of eth0
	HostVeth string     `json:"host_veth"` // vethXXXXXXXX in the node
	Bridge   string     `json:"bridge"`
	Node     string     `json:"node,omitempty"` // its node's namespace, in a multi-node lab
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_.-]*$`)

func (c Config) withDefaults() (Config, error) {
	if !prefixRE.MatchString(c.Prefix) || len(c.Prefix) > 200 {
		return c, fmt.Errorf("lab prefix %q: only letters, digits, '_', '.', '-' allowed", c.Prefix)
	}
	if !c.Subnet.IsValid() {
		c.Subnet = netip.MustParsePrefix("10.244.1.0/24")
	}
	c.Subnet = c.Subnet.Masked()
	if !c.Subnet.Addr().Is4() || c.Subnet.Bits() > 28 || c.Subnet.Bits() < 16 {
		return c, fmt.Errorf("lab subnet %s: need an IPv4 prefix between /16 and /28", c.Subnet)
	}
	if c.Pods == 0 {
		c.Pods = 2
	}
	if c.Pods < 0 || c.Pods > 200 {
		return c, fmt.Errorf("lab pods %d: need 1..200", c.Pods)
	}
	return c, nil
}

// nextSubnet is the prefix of the same size right after p (cni1's subnet).
func nextSubnet(p netip.Prefix) netip.Prefix {
	a := p.Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) + 1<<(32-p.Bits())
	binary.BigEndian.PutUint32(a[:], v)
	return netip.PrefixFrom(netip.AddrFrom4(a), p.Bits())
}

// hostAddr is the n-th address of p (1 = gateway).
func hostAddr(p netip.Prefix, n int) netip.Addr {
	a := p.Addr().As4()
	binary.BigEndian.PutUint32(a[:], binary.BigEndian.Uint32(a[:])+uint32(n))
	return netip.AddrFrom4(a)
}

// clusterCIDR is the /16 around the node subnet, like Flannel's 10.244.0.0/16.
func clusterCIDR(p netip.Prefix) netip.Prefix {
	return netip.PrefixFrom(p.Addr(), 16).Masked()
}

func (c Config) nodeName() string     { return c.Prefix + "node1" }
func (c Config) podName(i int) string { return fmt.Sprintf("%spod%d", c.Prefix, i) }

// plan lists every named namespace and bridge the config makes.
func (c Config) plan() *state {
	st := &state{Kind: "lab", Config: c, NodeInCurrent: c.NodeInCurrent, Bridges: []string{"cni0"}}
	if !c.NodeInCurrent {
		st.Namespaces = append(st.Namespaces, c.nodeName())
	}
	if c.Routed {
		st.Bridges = append(st.Bridges, "cni1")
	}
	for i := 1; i <= c.numPods(); i++ {
		st.Namespaces = append(st.Namespaces, c.podName(i))
	}
	return st
}

// ErrTaken is wrapped by UpNew and Taken when a lab with the prefix, or a
// namespace of the name one of its namespaces would have, already exists.
var ErrTaken = errors.New("lab name taken")

// Up builds the lab, or returns it unchanged if it already exists with the
// same config. A half-built lab left by a crash is torn down and rebuilt.
func Up(ctx context.Context, cfg Config) (*Lab, error) { return upLab(ctx, cfg, false) }

// UpNew builds the lab only if nothing of that name exists (no lab with the
// prefix, no namespace of one of its names): a caller that removes the lab
// afterwards (the demo) then only ever removes what it made.
func UpNew(ctx context.Context, cfg Config) (*Lab, error) { return upLab(ctx, cfg, true) }

// Taken reports, wrapping ErrTaken, what of a lab with cfg's names exists.
func Taken(cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	return takenNames(cfg.Prefix, cfg.plan().Namespaces)
}

// takenNames reports, wrapping ErrTaken, a lab with the prefix or a
// namespace with one of the names.
func takenNames(prefix string, names []string) error {
	if _, err := os.Stat(statePath(prefix)); !errors.Is(err, os.ErrNotExist) {
		if err != nil {
			return fmt.Errorf("lab %q: %w", prefix, err)
		}
		return fmt.Errorf("%w: a lab with prefix %q exists (%s)", ErrTaken, prefix, statePath(prefix))
	}
	for _, n := range names {
		if _, err := os.Lstat(filepath.Join(RunDir, n)); err == nil {
			return fmt.Errorf("%w: network namespace %s exists", ErrTaken, n)
		}
	}
	return nil
}

func upLab(ctx context.Context, cfg Config, fresh bool) (*Lab, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	same := func(old *state) bool { return old.Kind == "lab" && old.Config == cfg }
	plan := func() (*state, error) {
		st := cfg.plan()
		if cfg.NodeInCurrent {
			cur, err := netns.Current()
			if err != nil {
				return nil, err
			}
			st.NodeInode = cur.Inode
			cur.Close()
		}
		return st, nil
	}
	var taken func() error
	if fresh {
		taken = func() error { return Taken(cfg) }
	}
	return upLocked(cfg.Prefix, taken, same, plan, func(st *state) error { return build(ctx, cfg, st) })
}

// upLocked is what Up, UpNew and UpNodes share: under the lab's lock, a
// refusal if taken says the names are in use, the existing lab if it is
// the same and whole (a broken one is removed first), else the plan
// written to the state file, built, and removed again if building fails.
func upLocked(prefix string, taken func() error, same func(*state) bool, plan func() (*state, error), build func(*state) error) (*Lab, error) {
	unlock, err := lock(prefix)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if taken != nil {
		if err := taken(); err != nil {
			return nil, err
		}
	}

	if old, err := readState(prefix); err == nil {
		if !same(old) {
			return nil, fmt.Errorf("lab %q already exists with another config; run Down first", prefix)
		}
		if l, err := status(old); err == nil {
			return l, nil
		}
		if err := down(prefix, old); err != nil {
			return nil, fmt.Errorf("remove incomplete lab %q: %w", prefix, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}

	st, err := plan()
	if err != nil {
		return nil, err
	}
	if err := writeState(prefix, st); err != nil {
		return nil, err
	}
	if err := build(st); err != nil {
		if derr := down(prefix, st); derr != nil {
			err = errors.Join(err, fmt.Errorf("clean up: %w", derr))
		} else {
			// nothing of the lab is left: neither is its lock file
			os.Remove(filepath.Join(StateDir, "lab-"+prefix+".lock"))
		}
		return nil, fmt.Errorf("build lab %q: %w", prefix, err)
	}
	return status(st)
}

func build(ctx context.Context, cfg Config, st *state) error {
	node, err := openNode(st)
	if err != nil {
		return err
	}
	defer node.Close()
	nh, err := handleAt(node)
	if err != nil {
		return err
	}
	defer nh.Close()

	subnets := []netip.Prefix{cfg.Subnet}
	if cfg.Routed {
		subnets = append(subnets, nextSubnet(cfg.Subnet))
	}
	bridges := make([]netlink.Link, len(subnets))
	for i, sn := range subnets {
		if bridges[i], err = addBridge(nh, st.Bridges[i], netip.PrefixFrom(hostAddr(sn, 1), sn.Bits()), MTU); err != nil {
			return err
		}
	}
	if cfg.Routed {
		// The node routes between cni0 and cni1 like a real node routes pod traffic.
		if err := netns.Do(node, func() error {
			return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
		}); err != nil {
			return fmt.Errorf("enable ip_forward in node: %w", err)
		}
	}

	for i := 1; i <= cfg.numPods(); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, sn, ip := 0, cfg.Subnet, hostAddr(cfg.Subnet, i+1)
		if i > cfg.Pods {
			b, sn, ip = 1, subnets[1], hostAddr(subnets[1], i-cfg.Pods+1)
		}
		p, err := addPod(nh, cfg.Prefix, cfg.podName(i), bridges[b], netip.PrefixFrom(ip, sn.Bits()), hostAddr(sn, 1), clusterCIDR(cfg.Subnet), MTU)
		if err != nil {
			return err
		}
		st.Pods = append(st.Pods, p)
		if err := writeState(cfg.Prefix, st); err != nil {
			return err
		}
	}
	return nil
}

// numPods counts the pods on all bridges.
func (c Config) numPods() int {
	if c.Routed {
		return c.Pods + 1
	}
	return c.Pods
}

// openNode opens the node namespace, creating it first if it is a named one
// that does not exist yet.
func openNode(st *state) (*netns.Handle, error) {
	if st.NodeInCurrent {
		cur, err := netns.Current()
		if err != nil {
			return nil, err
		}
		if cur.Inode != st.NodeInode {
			cur.Close()
			return nil, fmt.Errorf("lab %q was built in network namespace inode %d, this is %d", st.Config.Prefix, st.NodeInode, cur.Inode)
		}
		return cur, nil
	}
	path := filepath.Join(RunDir, st.Config.nodeName())
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := createNamed(st.Config.nodeName(), mark(st.Config.Prefix)); err != nil {
			return nil, err
		}
	}
	return netns.Open(path)
}

func addBridge(h *netlink.Handle, name string, addr netip.Prefix, mtu int) (netlink.Link, error) {
	// A MAC of its own, as cni0 has on Flannel nodes; without one the bridge
	// takes its lowest port's MAC, which changes as pods come and go.
	mac := make(net.HardwareAddr, 6)
	if _, err := rand.Read(mac); err != nil {
		return nil, fmt.Errorf("random MAC for %s: %w", name, err)
	}
	mac[0] = mac[0]&^1 | 2 // unicast, locally administered
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu, HardwareAddr: mac}}
	if err := h.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("add bridge %s: %w", name, err)
	}
	link, err := h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("find bridge %s: %w", name, err)
	}
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: ipNet(addr)}); err != nil {
		return nil, fmt.Errorf("add %s to %s: %w", addr, name, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("set %s up: %w", name, err)
	}
	return link, nil
}

// addPod creates the pod namespace and wires it to bridge the way the CNI
// bridge plugin does.
func addPod(nh *netlink.Handle, prefix, name string, bridge netlink.Link, addr netip.Prefix, gw netip.Addr, cluster netip.Prefix, mtu int) (Pod, error) {
	if err := createNamed(name, mark(prefix)); err != nil {
		return Pod{}, err
	}
	pns, err := netns.Open(filepath.Join(RunDir, name))
	if err != nil {
		return Pod{}, err
	}
	defer pns.Close()
	return addPodIn(nh, pns, name, bridge, addr, gw, cluster, mtu)
}

// addPodIn wires the existing pod namespace pns to bridge.
func addPodIn(nh *netlink.Handle, pns *netns.Handle, name string, bridge netlink.Link, addr netip.Prefix, gw netip.Addr, cluster netip.Prefix, mtu int) (Pod, error) {
	p := Pod{Name: name, Netns: filepath.Join(RunDir, name), IP: addr.Addr(), Bridge: bridge.Attrs().Name}
	ph, err := handleAt(pns)
	if err != nil {
		return p, err
	}
	defer ph.Close()

	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return p, fmt.Errorf("random veth name: %w", err)
	}
	p.HostVeth = fmt.Sprintf("veth%08x", binary.BigEndian.Uint32(rnd[:]))
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: p.HostVeth, MTU: mtu},
		PeerName:      "eth0",
		PeerMTU:       uint32(mtu),
		PeerNamespace: netlink.NsFd(pns.Fd()),
	}
	if err := nh.LinkAdd(veth); err != nil {
		return p, fmt.Errorf("add veth %s for %s: %w", p.HostVeth, name, err)
	}
	host, err := nh.LinkByName(p.HostVeth)
	if err != nil {
		return p, fmt.Errorf("find %s: %w", p.HostVeth, err)
	}
	if err := nh.LinkSetMaster(host, bridge); err != nil {
		return p, fmt.Errorf("attach %s to %s: %w", p.HostVeth, p.Bridge, err)
	}
	// hairpinMode=true in Flannel's CNI config.
	if err := nh.LinkSetHairpin(host, true); err != nil {
		return p, fmt.Errorf("hairpin on %s: %w", p.HostVeth, err)
	}
	if err := nh.LinkSetUp(host); err != nil {
		return p, fmt.Errorf("set %s up: %w", p.HostVeth, err)
	}

	eth0, err := ph.LinkByName("eth0")
	if err != nil {
		return p, fmt.Errorf("find eth0 in %s: %w", name, err)
	}
	p.MAC = eth0.Attrs().HardwareAddr.String()
	if err := ph.AddrAdd(eth0, &netlink.Addr{IPNet: ipNet(addr)}); err != nil {
		return p, fmt.Errorf("add %s to eth0 in %s: %w", addr, name, err)
	}
	if err := ph.LinkSetUp(eth0); err != nil {
		return p, fmt.Errorf("set eth0 up in %s: %w", name, err)
	}
	routes := []*netlink.Route{
		{LinkIndex: eth0.Attrs().Index, Dst: ipNet(netip.MustParsePrefix("0.0.0.0/0")), Gw: net.IP(gw.AsSlice())},
		{LinkIndex: eth0.Attrs().Index, Dst: ipNet(cluster), Gw: net.IP(gw.AsSlice())},
	}
	for _, r := range routes {
		if err := ph.RouteAdd(r); err != nil {
			return p, fmt.Errorf("add route %s via %s in %s: %w", r.Dst, gw, name, err)
		}
	}
	return p, nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func nsHandle(h *netns.Handle) vnetns.NsHandle { return vnetns.NsHandle(h.Fd()) }

// String is a summary for logs: one line, or one per node of a
// multi-node lab.
func (l *Lab) String() string {
	var b strings.Builder
	if len(l.Nodes) == 0 {
		fmt.Fprintf(&b, "node %s (%s) bridges %v", l.Node, l.NodePath, l.Bridges)
		for _, p := range l.Pods {
			fmt.Fprintf(&b, "; %s %s %s via %s@%s", p.Name, p.IP, p.MAC, p.HostVeth, p.Bridge)
		}
		return b.String()
	}
	fmt.Fprintf(&b, "%d nodes, ", len(l.Nodes))
	if l.CNI != CNIFlannel {
		fmt.Fprintf(&b, "%s, ", l.CNI)
	}
	fmt.Fprintf(&b, "backend %s, wire %s, outside host %s", l.Backend, l.Wire, l.Ext)
	for _, n := range l.Nodes {
		on := "on " + n.Bridge
		if n.Bridge == "" {
			on = "routed (a /32 per pod, proxy ARP for 169.254.1.1)"
		}
		fmt.Fprintf(&b, "\nnode %s (%s): eth0 %s %s, pods %s %s", n.Name, n.Path, n.IP, n.MAC, n.Subnet, on)
		if n.Tunnel != "" {
			fmt.Fprintf(&b, ", tunnel %s", n.Tunnel)
			if n.TunnelMAC != "" {
				fmt.Fprintf(&b, " %s", n.TunnelMAC)
			}
			if n.TunnelPID != 0 {
				fmt.Fprintf(&b, " (process %d)", n.TunnelPID)
			}
		}
		for _, p := range l.Pods {
			if p.Node == n.Name {
				fmt.Fprintf(&b, "; %s %s %s via %s", p.Name, p.IP, p.MAC, p.HostVeth)
				if p.Bridge != "" {
					fmt.Fprintf(&b, "@%s", p.Bridge)
				}
			}
		}
	}
	return b.String()
}
