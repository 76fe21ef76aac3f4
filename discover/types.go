// Package discover resolves endpoints (namespace names, paths, PIDs, IPs) to
// network namespaces and finds, with netlink only, every capture point on
// the path between two of them on this node.
package discover

import "net/netip"

// Endpoint is one end of the path.
type Endpoint struct {
	Arg       string     `json:"arg"`        // as the user gave it
	Label     string     `json:"label"`      // namespace name, else Arg; names the points
	NetnsPath string     `json:"netns_path"` // /run/netns/NAME or /proc/PID/ns/net
	Inode     uint64     `json:"netns_inode"`
	Interface string     `json:"interface"` // e.g. eth0
	IfIndex   int        `json:"ifindex"`
	MAC       string     `json:"mac"`
	IP        netip.Addr `json:"ip"`
}

// Point is one place to capture, in path order.
type Point struct {
	Name      string   `json:"name"`       // pod1, pod1-veth, cni0, pod2-veth, pod2
	Role      string   `json:"role"`       // "endpoint" | "veth" | "bridge" | "egress"
	Netns     string   `json:"netns"`      // label of the namespace ("node1", "pod1", "root")
	NetnsPath string   `json:"netns_path"` // path to open it
	Inode     uint64   `json:"netns_inode"`
	Interface string   `json:"interface"`
	IfIndex   int      `json:"ifindex"`
	MAC       string   `json:"mac"`
	MTU       int      `json:"mtu"`
	Master    string   `json:"master,omitempty"` // bridge the interface is a port of
	Peer      string   `json:"peer,omitempty"`   // veth peer as "eth0@pod1 (ifindex 3)"
	Hairpin   *bool    `json:"hairpin,omitempty"`
	Promisc   bool     `json:"promisc"` // pathtrace captures it in promiscuous mode (bridges: bridged unicast is invisible otherwise)
	Addrs     []string `json:"addrs,omitempty"`
}

// FDBEntry is a bridge forwarding entry for one of the endpoints' MACs (what
// `brctl showmacs` shows).
type FDBEntry struct {
	Bridge string `json:"bridge"`
	MAC    string `json:"mac"`
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
	Owners map[string]string `json:"mac_owners"`      // MAC → "pod2 eth0", "cni0", "pod1-veth (node1 veth9903a3d4)"
	Notes  []string          `json:"notes,omitempty"` // e.g. the destination leaves the node via eth0
}
