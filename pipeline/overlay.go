package pipeline

import (
	"fmt"
	"net/netip"

	"github.com/pathtrace/pathtrace/capture/afpacket"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/discover"
)

// pointFilter is what one point's capture keeps: the endpoints' ARP, ICMP
// and ND everywhere (with TCP probes: their TCP and ICMP, the Service's
// address too); on an underlay device also their frames inside the
// tunnel between the two nodes' ends, and ARP between those ends (a node's
// NIC carries everything the node sends: nothing else is copied).
func pointFilter(path *discover.Path, p discover.Point, tcp netip.AddrPort) *afpacket.FilterSpec {
	spec := &afpacket.FilterSpec{A: path.Src.IP, B: path.Dst.IP}
	if tcp.IsValid() {
		spec.Extra, spec.TCP = []netip.Addr{tcp.Addr()}, true
	}
	t := p.Tunnel
	if t == nil || (p.Role != discover.RoleUnderlay && p.Role != discover.RoleEgress) {
		return spec
	}
	for _, a := range []netip.Addr{t.Local, t.Remote, t.NextHop} {
		if a.Is4() && !containsAddr(spec.Neighbours, a) {
			spec.Neighbours = append(spec.Neighbours, a)
		}
	}
	if t.Encap != correlate.EncapNone && t.Local.Is4() {
		spec.Tunnel = &afpacket.TunnelSpec{Type: t.Encap, Local: t.Local, Remote: t.Remote, Port: t.Port, VNI: t.VNI, HasVNI: t.HasVNI}
	}
	return spec
}

func containsAddr(s []netip.Addr, a netip.Addr) bool {
	for _, b := range s {
		if a == b {
			return true
		}
	}
	return false
}

// learnRemotes fills in the far end of a tunnel that discovery could not
// read (flow-based, or a userspace tunnel whose other node is not visible)
// from the outer headers of the frames captured on its underlay device.
func learnRemotes(path *discover.Path, r *correlate.Result) {
	for i := range path.Points {
		p := &path.Points[i]
		t := p.Tunnel
		if t == nil || p.Role != discover.RoleUnderlay || t.Remote.IsValid() || t.Encap == correlate.EncapNone {
			continue
		}
		for j := range r.Traces {
			for _, h := range r.Traces[j].Hops {
				if h.Point != p.Name || h.Encap.Type != t.Encap {
					continue
				}
				far := h.Encap.OuterDstIP.V
				if far == t.Local {
					far = h.Encap.OuterSrcIP.V
				}
				if far.IsValid() && far != t.Local {
					t.Remote, t.RemoteFrom = far, discover.FromProbes
					path.Notes = append(path.Notes, fmt.Sprintf("%s's far end %s: read from the probes' outer headers on %s", t.Device, far, p.Name))
				}
				break
			}
			if t.Remote.IsValid() {
				break
			}
		}
	}
}
