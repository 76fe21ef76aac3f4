package pipeline

import (
	"net"
	"net/netip"
	"time"

	"github.com/pathtrace/pathtrace/capture/afpacket"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/discover"
)

// liveConfig is the correlator's view of the discovered path: the points,
// and who owns which MAC and IP, so the report names owners and directions
// come from the topology.
func liveConfig(path *discover.Path, window time.Duration) correlate.Config {
	cfg := correlate.Config{Window: int64(window), OnePath: true, Async: true,
		MACOwners: map[correlate.MAC]correlate.Owner{}, IPOwners: map[netip.Addr]correlate.Owner{}}
	for i, p := range path.Points {
		node := ""
		if len(path.Nodes) > 1 { // points on one node need no node to tell them apart
			node = p.Node
		}
		cfg.Points = append(cfg.Points, correlate.PointSpec{
			Name: p.Name, Interface: p.Interface, IfIndex: p.IfIndex, MTU: p.MTU,
			Source: "netns " + p.Netns, Node: node, Snaplen: afpacket.FilterSnaplen,
			OwnFramesOnly: p.Role == discover.RoleBridge && !p.Promisc,
		})
		if mac, ok := correlate.MACOf(net.HardwareAddr(p.MAC)); ok {
			label := path.Owners[p.MAC.String()]
			if label == "" {
				label = p.Name
			}
			cfg.MACOwners[mac] = correlate.Owner{Point: i, Label: label}
		}
		for _, a := range p.Addrs {
			cfg.IPOwners[a.Addr()] = correlate.Owner{Point: i, Label: p.Name}
		}
	}
	if n := len(path.Points); n > 0 {
		if path.Src.IP.IsValid() {
			cfg.IPOwners[path.Src.IP] = correlate.Owner{Point: 0, Label: path.Src.Label}
		}
		if path.Dst.IP.IsValid() && path.Points[n-1].Role == discover.RoleEndpoint {
			cfg.IPOwners[path.Dst.IP] = correlate.Owner{Point: n - 1, Label: path.Dst.Label}
		}
	}
	return cfg
}
