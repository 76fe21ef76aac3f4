package lab

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/netns"
)

// CNI is what wires a two-node lab's pods to their node.
type CNI uint8

const (
	CNIFlannel CNI = iota // the CNI bridge plugin with Flannel's configuration: cni0, a veth per pod
	CNICalico             // Calico's dataplane: no bridge, a cali* veth and a /32 route per pod, proxy ARP for 169.254.1.1
)

var cniNames = []string{"flannel", "calico"}

func (c CNI) String() string {
	if int(c) < len(cniNames) {
		return cniNames[c]
	}
	return fmt.Sprintf("cni(%d)", uint8(c))
}

func (c CNI) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

func (c *CNI) UnmarshalText(t []byte) error {
	i := slices.Index(cniNames, string(t))
	if i < 0 {
		return fmt.Errorf("unknown CNI %q (want flannel or calico)", t)
	}
	*c = CNI(i)
	return nil
}

// Calico's fixed values: the gateway every pod routes through (no one
// holds it; the host veth answers ARP for it by proxy ARP) and the MAC
// its CNI plugin gives every host veth.
var (
	calicoGateway = netip.MustParseAddr("169.254.1.1")
	calicoHostMAC = net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}
)

// Calico's VXLAN device as felix makes it.
const (
	calicoVXLAN     = "vxlan.calico"
	calicoVXLANVNI  = 4096
	calicoVXLANPort = 4789
)

// calicoVethName is the host veth name Calico's CNI plugin gives a
// Kubernetes pod: "cali" and the first 11 hex digits of the SHA-1 of
// "namespace.pod".
func calicoVethName(namespace, pod string) string {
	h := sha1.Sum([]byte(namespace + "." + pod))
	return "cali" + hex.EncodeToString(h[:])[:11]
}

// calicoPodOnNode wires node i's pod as Calico's CNI plugin does
// (cni-plugin/pkg/dataplane/linux): a veth whose host end is cali* with
// MAC ee:ee:ee:ee:ee:ee, proxy ARP (no delay), forwarding and
// route_localnet on it, and a /32 route to the pod through it; in the
// pod, the address as a /32, a link route to 169.254.1.1 and the default
// route via it. The node's own block is blackholed, as Calico's BIRD does,
// and the node gets a default route (via the outside host).
func calicoPodOnNode(cfg NodesConfig, n *labNode, i int) (Pod, error) {
	sn := nodeSubnet(i)
	name := cfg.podName(i)
	p := Pod{Name: name, Netns: filepath.Join(RunDir, name), IP: hostAddr(sn, 2), HostVeth: calicoVethName("default", name)}
	pns, err := netns.Open(p.Netns)
	if err != nil {
		return p, err
	}
	defer pns.Close()
	ph, err := handleAt(pns)
	if err != nil {
		return p, err
	}
	defer ph.Close()
	mtu := cfg.Backend.MTU()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: p.HostVeth, MTU: mtu, HardwareAddr: calicoHostMAC},
		PeerName: "eth0", PeerMTU: uint32(mtu), PeerNamespace: netlink.NsFd(pns.Fd())}
	if err := n.h.LinkAdd(veth); err != nil {
		return p, fmt.Errorf("add veth %s for %s: %w", p.HostVeth, name, err)
	}
	host, err := n.h.LinkByName(p.HostVeth)
	if err != nil {
		return p, fmt.Errorf("find %s: %w", p.HostVeth, err)
	}
	if err := netns.Do(n.ns, func() error {
		for _, s := range []string{"ipv4/conf/%s/route_localnet", "ipv4/neigh/%s/proxy_delay", "ipv4/conf/%s/proxy_arp", "ipv4/conf/%s/forwarding"} {
			v := "1"
			if s == "ipv4/neigh/%s/proxy_delay" {
				v = "0"
			}
			if err := os.WriteFile(filepath.Join("/proc/sys/net", fmt.Sprintf(s, p.HostVeth)), []byte(v), 0o644); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return p, fmt.Errorf("sysctls of %s: %w", p.HostVeth, err)
	}
	if err := n.h.LinkSetUp(host); err != nil {
		return p, fmt.Errorf("set %s up: %w", p.HostVeth, err)
	}
	if err := n.h.RouteAdd(&netlink.Route{LinkIndex: host.Attrs().Index, Scope: netlink.SCOPE_LINK, Dst: ipNet(netip.PrefixFrom(p.IP, 32))}); err != nil {
		return p, fmt.Errorf("route %s dev %s: %w", p.IP, p.HostVeth, err)
	}
	if err := n.h.RouteAdd(&netlink.Route{Dst: ipNet(sn), Type: unix.RTN_BLACKHOLE}); err != nil {
		return p, fmt.Errorf("blackhole %s: %w", sn, err)
	}
	// Proxy ARP answers only for an address the node routes out of
	// another interface: a node's default route takes 169.254.1.1 there
	// (here the outside host is the default gateway).
	eth0, err := n.h.LinkByName("eth0")
	if err != nil {
		return p, fmt.Errorf("eth0: %w", err)
	}
	if err := n.h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: ipNet(netip.MustParsePrefix("0.0.0.0/0")),
		Gw: ip(hostAddr(wireNet, 3))}); err != nil {
		return p, fmt.Errorf("default route via %s: %w", hostAddr(wireNet, 3), err)
	}

	eth0, err = ph.LinkByName("eth0")
	if err != nil {
		return p, fmt.Errorf("find eth0 in %s: %w", name, err)
	}
	p.MAC = eth0.Attrs().HardwareAddr.String()
	if err := ph.AddrAdd(eth0, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(p.IP, 32))}); err != nil {
		return p, fmt.Errorf("add %s to eth0 in %s: %w", p.IP, name, err)
	}
	if err := ph.LinkSetUp(eth0); err != nil {
		return p, fmt.Errorf("set eth0 up in %s: %w", name, err)
	}
	for _, r := range []*netlink.Route{
		{LinkIndex: eth0.Attrs().Index, Scope: netlink.SCOPE_LINK, Dst: ipNet(netip.PrefixFrom(calicoGateway, 32))},
		{LinkIndex: eth0.Attrs().Index, Dst: ipNet(netip.MustParsePrefix("0.0.0.0/0")), Gw: ip(calicoGateway)},
	} {
		if err := ph.RouteAdd(r); err != nil {
			return p, fmt.Errorf("add route %s in %s: %w", r.Dst, name, err)
		}
	}
	return p, nil
}
