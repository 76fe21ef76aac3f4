package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/pathtrace/pathtrace/internal/safefile"
	"github.com/pathtrace/pathtrace/netns"
)

// A two-node lab: nodes "nodeA" and "nodeB", each with eth0 on a wire (a
// switch namespace "wire", which also holds "ext", a host outside the
// cluster for traffic that only one node's NIC sees), the bridge cni0 with
// its pods (made by the CNI bridge plugin with Flannel's configuration when
// it is installed), and an overlay between them the way its CNI sets it up.

// Backend is how pod traffic crosses from one node to the other.
type Backend uint8

const (
	BackendNone   Backend = iota // a single-node lab; NodesConfig's default means vxlan
	BackendVXLAN                 // flannel.1: the kernel's VXLAN, VNI 1, UDP 8472 (Flannel's default)
	BackendHostGW                // a route to the peer's pods via the peer node (Flannel's host-gw)
	BackendIPIP                  // tunl0: IPv4 in IPv4 as Calico's IP-in-IP (userspace here)
	BackendUDP                   // flannel0: Flannel's udp backend, a TUN device and UDP 8285 (userspace, as flanneld is)
	BackendGENEVE                // genev_sys_6081: GENEVE on UDP 6081 as OVN-Kubernetes sends it (userspace here)
	BackendIPsec                 // ipsec0: IPsec ESP in tunnel mode between the nodes (userspace here, esp.go)
)

var backendNames = []string{"none", "vxlan", "host-gw", "ipip", "udp", "geneve", "ipsec"}

func (b Backend) String() string {
	if int(b) < len(backendNames) {
		return backendNames[b]
	}
	return fmt.Sprintf("backend(%d)", uint8(b))
}

func (b Backend) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

func (b *Backend) UnmarshalText(t []byte) error {
	i := slices.Index(backendNames, string(t))
	if i <= 0 {
		return fmt.Errorf("unknown backend %q (want vxlan, host-gw, ipip, udp, geneve or ipsec)", t)
	}
	*b = Backend(i)
	return nil
}

// Device is the tunnel device on each node, named as the real systems name
// it ("" for host-gw).
func (b Backend) Device() string {
	return [...]string{"", "flannel.1", "", "tunl0", "flannel0", "genev_sys_6081", "ipsec0"}[b]
}

// MTU of the pods, cni0 and the tunnel device: the node's 1500 less the
// encapsulation (Flannel's subnet.env values for vxlan, udp and host-gw;
// IP-in-IP's 20 bytes; OVN-Kubernetes' default for GENEVE; ESP's up to 73
// bytes rounded down).
func (b Backend) MTU() int { return [...]int{MTU, 1450, 1500, 1480, 1472, 1400, 1400}[b] }

// RawSockets reports a backend whose tunnel process needs raw IP sockets
// (CAP_NET_RAW): ipip and ipsec.
func (b Backend) RawSockets() bool { return b == BackendIPIP || b == BackendIPsec }

// Userspace reports a backend whose tunnel is a process of the lab's own.
func (b Backend) Userspace() bool {
	return b == BackendIPIP || b == BackendUDP || b == BackendGENEVE || b == BackendIPsec
}

// NodesConfig says which two-node lab to build.
type NodesConfig struct {
	Prefix    string  `json:"prefix"`
	Backend   Backend `json:"backend"`      // default vxlan
	PluginDir string  `json:"plugin_dir"`   // CNI plugins; default /usr/lib/cni; netlink where its bridge plugin is missing
	NoCNI     bool    `json:"no_cni"`       // wire the pods with netlink even where the plugin is installed
	CNI       CNI     `json:"cni,omitzero"` // Flannel's bridge (default) or Calico's routed veths (calico.go)
}

// Addresses of the two-node lab.
var (
	wireNet     = netip.MustParsePrefix("192.168.56.0/24") // node A .1, node B .2, ext .3
	clusterNet  = netip.MustParsePrefix("10.244.0.0/16")   // node n's pods: 10.244.n.0/24
	nodeLetters = []string{"A", "B"}
)

// Node is one node of a multi-node lab.
type Node struct {
	Name      string       `json:"name"` // namespace name, prefix + "nodeA"
	Path      string       `json:"path"`
	Inode     uint64       `json:"inode"`
	IP        netip.Addr   `json:"ip"`  // eth0, on the wire
	MAC       string       `json:"mac"` // eth0
	Subnet    netip.Prefix `json:"subnet"`
	Bridge    string       `json:"bridge"`
	Tunnel    string       `json:"tunnel,omitempty"`     // the tunnel device
	TunnelMAC string       `json:"tunnel_mac,omitempty"` // VXLAN and GENEVE devices
	TunnelPID int          `json:"tunnel_pid,omitempty"` // the userspace tunnel process
}

// nodeState is what the state file keeps of a node.
type nodeState struct {
	Name      string       `json:"name"`
	IP        netip.Addr   `json:"ip"`
	Subnet    netip.Prefix `json:"subnet"`
	Tunnel    string       `json:"tunnel,omitempty"`
	TunnelMAC string       `json:"tunnel_mac,omitempty"`
	Proc      tunnelProc   `json:"proc,omitzero"`
}

func (c NodesConfig) withDefaults() (NodesConfig, error) {
	if !prefixRE.MatchString(c.Prefix) || len(c.Prefix) > 200 {
		return c, fmt.Errorf("lab prefix %q: only letters, digits, '_', '.', '-' allowed", c.Prefix)
	}
	if c.Backend == BackendNone {
		c.Backend = BackendVXLAN
		if c.CNI == CNICalico {
			c.Backend = BackendIPIP // Calico's default IP-in-IP mode
		}
	}
	if int(c.Backend) >= len(backendNames) {
		return c, fmt.Errorf("lab backend %v: unknown", c.Backend)
	}
	if c.CNI == CNICalico && c.Backend != BackendIPIP && c.Backend != BackendVXLAN && c.Backend != BackendHostGW {
		return c, fmt.Errorf("lab backend %v: Calico's are ipip, vxlan and host-gw (BGP routes without encapsulation)", c.Backend)
	}
	if int(c.CNI) >= len(cniNames) {
		return c, fmt.Errorf("lab CNI %v: unknown", c.CNI)
	}
	if c.PluginDir == "" {
		c.PluginDir = "/usr/lib/cni"
	}
	return c, nil
}

// device is the tunnel device's name as the CNI names it.
func (c NodesConfig) device() string {
	if c.CNI == CNICalico && c.Backend == BackendVXLAN {
		return calicoVXLAN
	}
	return c.Backend.Device()
}

// bridge is the pods' bridge ("" for Calico's routed pods).
func (c NodesConfig) bridge() string {
	if c.CNI == CNICalico {
		return ""
	}
	return "cni0"
}

func (c NodesConfig) nodeName(i int) string { return c.Prefix + "node" + nodeLetters[i] }
func (c NodesConfig) podName(i int) string  { return fmt.Sprintf("%spod%d", c.Prefix, i+1) } // pod i+1 is on node i
func (c NodesConfig) wireName() string      { return c.Prefix + "wire" }
func (c NodesConfig) extName() string       { return c.Prefix + "ext" }
func nodeIP(i int) netip.Addr               { return hostAddr(wireNet, i+1) }
func nodeSubnet(i int) netip.Prefix         { return netip.PrefixFrom(hostAddr(clusterNet, (i+1)<<8), 24) }

// ipamDir keeps the host-local leases of a two-node lab's CNI plugin runs.
func ipamDir(prefix string) string { return filepath.Join(StateDir, "lab-"+prefix+"-ipam") }

func (c NodesConfig) plan() *state {
	cc := c
	st := &state{Kind: kindNodes, NodesConfig: &cc, Namespaces: []string{c.wireName(), c.extName()}}
	if c.bridge() != "" {
		st.Bridges = []string{c.bridge()}
	}
	for i := range nodeLetters {
		st.Namespaces = append(st.Namespaces, c.nodeName(i), c.podName(i))
		st.Nodes = append(st.Nodes, nodeState{Name: c.nodeName(i), IP: nodeIP(i), Subnet: nodeSubnet(i), Tunnel: c.device()})
	}
	return st
}

// UpNodes builds the two-node lab, or returns it unchanged if it already
// exists with the same config. A half-built one left by a crash is torn
// down and rebuilt. Remove it with Down(Config{Prefix: cfg.Prefix}).
func UpNodes(ctx context.Context, cfg NodesConfig) (*Lab, error) { return upNodesLab(ctx, cfg, false) }

// UpNodesNew builds the two-node lab only if nothing of its names exists
// (see UpNew): the demo's.
func UpNodesNew(ctx context.Context, cfg NodesConfig) (*Lab, error) {
	return upNodesLab(ctx, cfg, true)
}

// TakenNodes reports, wrapping ErrTaken, what of a two-node lab with cfg's
// names exists.
func TakenNodes(cfg NodesConfig) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	return takenNames(cfg.Prefix, cfg.plan().Namespaces)
}

func upNodesLab(ctx context.Context, cfg NodesConfig, fresh bool) (*Lab, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	same := func(old *state) bool {
		return old.Kind == kindNodes && old.NodesConfig != nil && *old.NodesConfig == cfg
	}
	plan := func() (*state, error) { return cfg.plan(), nil }
	var taken func() error
	if fresh {
		taken = func() error { return takenNames(cfg.Prefix, cfg.plan().Namespaces) }
	}
	return upLocked(cfg.Prefix, taken, same, plan, func(st *state) error { return buildNodes(ctx, cfg, st) })
}

// labNode is a node being built: its namespace and a netlink handle there.
type labNode struct {
	ns *netns.Handle
	h  *netlink.Handle
}

func (n *labNode) close() {
	if n.h != nil {
		n.h.Close()
	}
	if n.ns != nil {
		n.ns.Close()
	}
}

func buildNodes(ctx context.Context, cfg NodesConfig, st *state) error {
	// IPv6 off everywhere (an IPv4 cluster): no router solicitations or
	// MLD reports on the wire, only the traffic that is run there.
	for _, name := range []string{cfg.wireName(), cfg.extName(), cfg.nodeName(0), cfg.nodeName(1), cfg.podName(0), cfg.podName(1)} {
		if err := createNamed(name, mark(cfg.Prefix)); err != nil {
			return err
		}
		if err := ipv6Off(name); err != nil {
			return err
		}
	}
	wire, err := openLabNode(cfg.wireName())
	if err != nil {
		return err
	}
	defer wire.close()
	sw := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "wire0"}}
	if err := wire.h.LinkAdd(sw); err != nil {
		return fmt.Errorf("add switch wire0: %w", err)
	}
	if err := wire.h.LinkSetUp(sw); err != nil {
		return fmt.Errorf("set wire0 up: %w", err)
	}

	nodes := make([]*labNode, len(nodeLetters))
	defer func() {
		for _, n := range nodes {
			if n != nil {
				n.close()
			}
		}
	}()
	ext, err := openLabNode(cfg.extName())
	if err != nil {
		return err
	}
	defer ext.close()
	if err := plugIn(wire, sw, ext, "ext", netip.PrefixFrom(hostAddr(wireNet, 3), wireNet.Bits())); err != nil {
		return err
	}
	useCNI := !cfg.NoCNI
	if _, err := os.Stat(filepath.Join(cfg.PluginDir, "bridge")); err != nil {
		useCNI = false
	}
	for i := range nodes {
		if nodes[i], err = openLabNode(cfg.nodeName(i)); err != nil {
			return err
		}
		n := nodes[i]
		if err := plugIn(wire, sw, n, "node"+nodeLetters[i], netip.PrefixFrom(nodeIP(i), wireNet.Bits())); err != nil {
			return err
		}
		if err := netns.Do(n.ns, func() error {
			return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
		}); err != nil {
			return fmt.Errorf("enable ip_forward in %s: %w", cfg.nodeName(i), err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var p Pod
		switch {
		case cfg.CNI == CNICalico:
			p, err = calicoPodOnNode(cfg, n, i)
		case useCNI:
			p, err = cniPodOnNode(ctx, cfg, n, i)
		default:
			p, err = netlinkPodOnNode(cfg, n, i)
		}
		if err != nil {
			return err
		}
		p.Node = cfg.nodeName(i)
		st.Pods = append(st.Pods, p)
		if err := writeState(cfg.Prefix, st); err != nil {
			return err
		}
	}
	return overlay(cfg, st, nodes)
}

func openLabNode(name string) (*labNode, error) {
	ns, err := netns.Open(filepath.Join(RunDir, name))
	if err != nil {
		return nil, err
	}
	h, err := handleAt(ns)
	if err != nil {
		ns.Close()
		return nil, err
	}
	return &labNode{ns: ns, h: h}, nil
}

// plugIn connects host's eth0 to the switch with a veth pair (the switch
// end named port) and gives it addr.
func plugIn(wire *labNode, sw netlink.Link, host *labNode, port string, addr netip.Prefix) error {
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: port, MasterIndex: sw.Attrs().Index},
		PeerName: "eth0", PeerNamespace: netlink.NsFd(host.ns.Fd())}
	if err := wire.h.LinkAdd(veth); err != nil {
		return fmt.Errorf("add wire port %s: %w", port, err)
	}
	if err := wire.h.LinkSetUp(veth); err != nil {
		return fmt.Errorf("set wire port %s up: %w", port, err)
	}
	eth0, err := host.h.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("find eth0 of %s: %w", port, err)
	}
	if err := host.h.AddrAdd(eth0, &netlink.Addr{IPNet: ipNet(addr)}); err != nil {
		return fmt.Errorf("add %s to eth0 of %s: %w", addr, port, err)
	}
	if err := host.h.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("set eth0 of %s up: %w", port, err)
	}
	return nil
}

// cniPodOnNode makes node i's pod with the CNI bridge plugin and Flannel's
// configuration (its own host-local lease folder per node).
func cniPodOnNode(ctx context.Context, cfg NodesConfig, n *labNode, i int) (Pod, error) {
	dir := filepath.Join(ipamDir(cfg.Prefix), "node"+nodeLetters[i])
	d, err := safefile.MkdirAll(dir, safefile.SystemPolicy())
	if err != nil {
		return Pod{}, fmt.Errorf("CNI lease folder: %w", err)
	}
	d.Close()
	netconf, err := flannelNetconf(nodeSubnet(i), cfg.Backend.MTU(), dir)
	if err != nil {
		return Pod{}, err
	}
	return cniAdd(ctx, n.ns, cfg.PluginDir, netconf, cfg.podName(i))
}

// netlinkPodOnNode makes node i's cni0 and pod as the plugin would.
func netlinkPodOnNode(cfg NodesConfig, n *labNode, i int) (Pod, error) {
	sn := nodeSubnet(i)
	br, err := addBridge(n.h, "cni0", netip.PrefixFrom(hostAddr(sn, 1), sn.Bits()), cfg.Backend.MTU())
	if err != nil {
		return Pod{}, err
	}
	pns, err := netns.Open(filepath.Join(RunDir, cfg.podName(i)))
	if err != nil {
		return Pod{}, err
	}
	defer pns.Close()
	return addPodIn(n.h, pns, cfg.podName(i), br, netip.PrefixFrom(hostAddr(sn, 2), sn.Bits()),
		hostAddr(sn, 1), clusterNet, cfg.Backend.MTU())
}

// ipv6Off disables IPv6 in the namespace name for the interfaces made after.
func ipv6Off(name string) error {
	ns, err := netns.Open(filepath.Join(RunDir, name))
	if err != nil {
		return err
	}
	defer ns.Close()
	return netns.Do(ns, func() error {
		for _, c := range []string{"all", "default"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+c+"/disable_ipv6", []byte("1"), 0o644); err != nil {
				return fmt.Errorf("disable IPv6 in %s: %w", name, err)
			}
		}
		return nil
	})
}

// macOf is a link's MAC as text.
func macOf(h *netlink.Handle, name string) (net.HardwareAddr, error) {
	l, err := h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", name, err)
	}
	return l.Attrs().HardwareAddr, nil
}
