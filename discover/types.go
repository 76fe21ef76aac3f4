// Package discover resolves endpoints (namespace names, paths, PIDs, IPs) to
// network namespaces and finds, with netlink only, every capture point on
// the path between two of them on this node.
package discover

import (
	"net"
	"net/netip"

	"github.com/pathtrace/pathtrace/correlate"
)

// Endpoint is one end of the path.
type Endpoint struct {
	Arg       string     `json:"arg"`        // as the user gave it
	Label     string     `json:"label"`      // namespace name, else Arg; names the points
	NetnsPath string     `json:"netns_path"` // /run/netns/NAME or /proc/PID/ns/net
	Inode     uint64     `json:"netns_inode"`
	Interface string     `json:"interface"` // e.g. eth0
	IfIndex   int        `json:"ifindex"`
	MAC       MAC        `json:"mac"`
	IP        netip.Addr `json:"ip"`
	// Pod and Service are set by a resolver that found the endpoint through
	// the Kubernetes API; reports name the pod, JSON writes them under
	// discovery.src/dst.
	Pod     *Pod     `json:"pod,omitempty"`
	Service *Service `json:"service,omitempty"`
	// Notes are the resolver's remarks for the report (which pod of a
	// workload, a host-network pod); the caller adds them to Path.Notes.
	Notes []string `json:"-"`
	// Host marks the node's own namespace as the endpoint (host, node/NAME,
	// a host-network pod): Discover does not follow its interface, which
	// on nodes in containers (kind) is itself a veth.
	Host bool `json:"host,omitempty"`
}

// Pod is the Kubernetes pod an endpoint is.
type Pod struct {
	Namespace    string       `json:"namespace"`
	Name         string       `json:"name"`
	UID          string       `json:"uid"`
	Node         string       `json:"node"`
	IP           netip.Addr   `json:"ip"`
	IPs          []netip.Addr `json:"ips,omitempty"` // every pod IP when there are several (dual-stack)
	ContainerIDs []string     `json:"container_ids"`
	HostNetwork  bool         `json:"host_network"`
}

// Service is the Kubernetes Service an endpoint was reached through: the
// pod is one of its ready endpoints, and probes go to ClusterIP:Port.
type Service struct {
	Namespace  string     `json:"namespace"`
	Name       string     `json:"name"`
	ClusterIP  netip.Addr `json:"cluster_ip"`
	Port       uint16     `json:"port"`
	TargetPort uint16     `json:"target_port"`
	Protocol   string     `json:"protocol"`
}

// MAC is a hardware address as netlink reports it: a net.HardwareAddr that
// reports write as text ("3a:e8:10:7b:83:91"), not as base64 bytes.
type MAC net.HardwareAddr

func (m MAC) String() string                { return net.HardwareAddr(m).String() }
func (m MAC) MarshalText() ([]byte, error)  { return []byte(m.String()), nil }
func (m *MAC) UnmarshalText(b []byte) error { return m.parse(string(b)) }

func (m *MAC) parse(s string) error {
	if s == "" {
		*m = nil
		return nil
	}
	hw, err := net.ParseMAC(s)
	*m = MAC(hw)
	return err
}

// Role is what a point is on the path.
type Role string

const (
	RoleEndpoint Role = "endpoint" // a pod's (or the node's) own interface
	RoleVeth     Role = "veth"     // the host end of an endpoint's veth pair
	RoleBridge   Role = "bridge"
	RoleEgress   Role = "egress"   // where a destination off the node leaves it
	RoleTunnel   Role = "tunnel"   // the overlay's tunnel device (flannel.1, tunl0...)
	RoleUnderlay Role = "underlay" // the node's NIC that carries the path to the other node
)

// Point is one place to capture, in path order.
type Point struct {
	Name      string         `json:"name"` // pod1, pod1-veth, cni0, pod2-veth, pod2
	Role      Role           `json:"role"`
	Netns     string         `json:"netns"`      // label of the namespace ("node1", "pod1", "root")
	NetnsPath string         `json:"netns_path"` // path to open it
	Inode     uint64         `json:"netns_inode"`
	Interface string         `json:"interface"`
	IfIndex   int            `json:"ifindex"`
	MAC       MAC            `json:"mac"`
	MTU       int            `json:"mtu"`
	Master    string         `json:"master,omitempty"` // bridge the interface is a port of
	Peer      string         `json:"peer,omitempty"`   // veth peer as "eth0@pod1 (ifindex 3)"
	Hairpin   *bool          `json:"hairpin,omitempty"`
	Promisc   bool           `json:"promisc"` // pathtrace captures it in promiscuous mode (bridges: bridged unicast is invisible otherwise)
	Addrs     []netip.Prefix `json:"addrs,omitempty"`
	// RawIP: the device has no link header (TUN, IP-in-IP and other IP
	// tunnels): its frames are IP packets.
	RawIP bool `json:"raw_ip,omitempty"`
	// Node is the namespace label of the node the point belongs to: the
	// node's own interfaces, and the pods hanging off it.
	Node string `json:"node,omitempty"`
	// Tunnel, on a tunnel device and on the underlay device carrying it
	// (or the underlay of a route as is), is how the node reaches the
	// other node.
	Tunnel *Tunnel `json:"tunnel,omitempty"`
}

// Tunnel is how a node sends the path's traffic to the other node: through
// a tunnel device (Encap set), or routed as it is (host-gw, Calico without
// encapsulation: Encap none, Device ""), over the underlay device.
type Tunnel struct {
	Encap  correlate.EncapType `json:"encap,omitempty"`
	Device string              `json:"device,omitempty"` // flannel.1, tunl0, vxlan.calico...
	// Local is this node's end (the address the tunnel sends from),
	// Remote the other node's: for a tunnel its far end, for a route as
	// is the gateway. Remote is invalid while it is not known (a
	// flow-based or userspace tunnel, until the probes' outer headers say).
	Local      netip.Addr `json:"local"`
	Remote     netip.Addr `json:"remote,omitzero"`
	RemoteFrom Source     `json:"remote_from,omitempty"`
	Port       uint16     `json:"port,omitempty"` // UDP destination port
	VNI        uint32     `json:"vni,omitempty"`
	HasVNI     bool       `json:"-"`
	External   bool       `json:"external,omitempty"`  // flow-based (collect_md): the far end is set per packet
	Userspace  bool       `json:"userspace,omitempty"` // a TUN/TAP device: a process does the encapsulation
	Underlay   string     `json:"underlay"`            // the device that reaches Remote
	// NextHop is where the underlay sends it: Remote, or a router on the way.
	NextHop netip.Addr `json:"next_hop,omitzero"`
}

// Source says where discovery read a tunnel's far end.
type Source string

const (
	FromFDB      Source = "fdb"    // the VXLAN FDB entry for the neighbour's MAC (flanneld, felix)
	FromDevice   Source = "device" // the tunnel device's own remote address
	FromRoute    Source = "route"  // the gateway of the route (IP-in-IP onlink, host-gw)
	FromPeerNode Source = "node"   // the other node, visible here: its tunnel's local end
	FromProbes   Source = "probes" // the outer headers of the run's probes
	FromNowhere  Source = ""       // not known
)

// FDBEntry is a bridge forwarding entry for one of the endpoints' MACs (what
// `brctl showmacs` shows).
type FDBEntry struct {
	Bridge string `json:"bridge"`
	MAC    MAC    `json:"mac"`
	Port   string `json:"port"`
	Local  bool   `json:"local"`
	Owner  string `json:"owner,omitempty"`
}

// Path is what discovery found.
type Path struct {
	Src    Endpoint          `json:"src"`
	Dst    Endpoint          `json:"dst"`
	Points []Point           `json:"points"`
	FDB    []FDBEntry        `json:"fdb"`
	Owners map[string]string `json:"mac_owners"`      // MAC (as net.HardwareAddr.String writes it) → "pod2 eth0", "cni0", "pod1-veth (node1 veth9903a3d4)"
	Notes  []string          `json:"notes,omitempty"` // e.g. the destination leaves the node via eth0
	// Nodes are the nodes the points belong to, in path order (one for a
	// path inside a node).
	Nodes []string `json:"nodes,omitempty"`
}
