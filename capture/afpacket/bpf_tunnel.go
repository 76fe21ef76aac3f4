package afpacket

import (
	"fmt"
	"net/netip"

	"golang.org/x/net/bpf"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
)

// FilterSpec says what one point's filter keeps: the endpoints' ARP, ICMP
// and ICMPv6 (see Filter), on a device of link type Link, and on an
// underlay device those frames inside Tunnel as well. A node's NIC carries
// everything the node sends: the filter is what keeps pathtrace from
// copying all of it.
type FilterSpec struct {
	A, B netip.Addr
	// Extra are more addresses to keep (a Service's ClusterIP).
	Extra []netip.Addr
	// TCP keeps TCP and ICMP/ICMPv6 to or from the addresses (IPv6
	// without extension headers) and no ARP or neighbour discovery: a TCP
	// probe's trace is its segments, and on a Service's path the bridge
	// that resolves neighbours is not captured, so its ARP would only show
	// half a conversation.
	TCP bool
	// Link is what the device's frames start with: Ethernet (also the zero
	// value), or LinkTypeRaw for devices without a link header (TUN
	// devices such as Flannel's flannel0, IP-in-IP's tunl0).
	Link capture.LinkType
	// Neighbours are IPv4 addresses whose ARP between each other is kept
	// too: an underlay's two ends, whose resolution the first probe may
	// wait for.
	Neighbours []netip.Addr
	// Tunnel, on an underlay device, keeps the endpoints' frames inside
	// this tunnel between its two ends.
	Tunnel *TunnelSpec
}

// TunnelSpec is an encapsulation as the underlay carries it.
type TunnelSpec struct {
	Type correlate.EncapType // EncapVXLAN, EncapGENEVE, EncapUDP (Flannel's udp backend) or EncapIPIP
	// Local and Remote are the outer IPv4 addresses of the two ends. A
	// flow-based tunnel (VXLAN "external", Cilium's) has no remote end to
	// read before the run: Remote is then invalid and any peer of Local
	// passes.
	Local, Remote netip.Addr
	Port          uint16 // UDP destination port: VXLAN 8472 or 4789, GENEVE 6081, Flannel UDP 8285
	VNI           uint32 // VXLAN, GENEVE: checked when HasVNI
	HasVNI        bool
}

func (t *TunnelSpec) check() error {
	if t == nil {
		return nil
	}
	switch t.Type {
	case correlate.EncapVXLAN, correlate.EncapGENEVE, correlate.EncapUDP:
		if t.Port == 0 {
			return fmt.Errorf("bpf filter: %v tunnel without a UDP port", t.Type)
		}
	case correlate.EncapIPIP:
	default:
		return fmt.Errorf("bpf filter: %v tunnels cannot be filtered on their inner packets", t.Type)
	}
	if !t.Local.Unmap().Is4() || t.Remote.IsValid() && !t.Remote.Unmap().Is4() {
		return fmt.Errorf("bpf filter: tunnel %v → %v: IPv4 underlays only", t.Local, t.Remote)
	}
	return nil
}

// protos are the outer IPv4 protocols that carry the tunnel.
func (t *TunnelSpec) protos() []uint32 {
	if t.Type == correlate.EncapIPIP {
		return []uint32{4, 41} // IPv4 and IPv6 in IPv4
	}
	return []uint32{17}
}

// tunnelPart matches an outer IPv4 packet at X+l3 (X: the VLAN tag's
// length) of the tunnel, then the endpoints' frames inside it with the
// same match as outside, at the encapsulation's offset.
func (b *body) tunnelPart(l3 uint32) {
	p, t := b.p, b.tunnel
	local, remote := be32(t.Local), be32(t.Remote)
	p.label(b.l("tunnel"))
	// One end each way (any peer of Local for a flow-based tunnel).
	p.ins(bpf.LoadIndirect{Off: l3 + 12, Size: 4})
	if t.Remote.IsValid() {
		p.jeq(local, b.l("fromLocal"), "")
		p.jeq(remote, b.l("fromRemote"), b.l("reject"))
		p.label(b.l("fromLocal"))
		p.ins(bpf.LoadIndirect{Off: l3 + 16, Size: 4})
		p.jeq(remote, b.l("ends"), b.l("reject"))
		p.label(b.l("fromRemote"))
		p.ins(bpf.LoadIndirect{Off: l3 + 16, Size: 4})
		p.jeq(local, b.l("ends"), b.l("reject"))
	} else {
		p.jeq(local, b.l("ends"), "")
		p.ins(bpf.LoadIndirect{Off: l3 + 16, Size: 4})
		p.jeq(local, b.l("ends"), b.l("reject"))
	}
	p.label(b.l("ends"))
	// A non-first fragment carries no tunnel header.
	p.ins(bpf.LoadIndirect{Off: l3 + 6, Size: 2})
	p.jif(bpf.JumpBitsSet, 0x1fff, b.l("reject"), "")
	// X += the outer header's length: the payload is at X+l3 from here.
	p.ins(bpf.LoadIndirect{Off: l3, Size: 1})
	p.ins(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x0f})
	p.ins(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2})
	p.ins(bpf.ALUOpX{Op: bpf.ALUOpAdd})
	p.ins(bpf.TAX{})
	inner := func(pre string) *body { return &body{p: p, pre: b.pre + "." + pre, v4: b.v4, v6: b.v6} }
	if t.Type == correlate.EncapIPIP {
		inner("ipip").raw(l3)
		return
	}
	p.ins(bpf.LoadIndirect{Off: l3 + 2, Size: 2}) // UDP destination port
	p.jeq(uint32(t.Port), "", b.l("reject"))
	switch t.Type {
	case correlate.EncapUDP: // a bare IP packet
		inner("udp").raw(l3 + 8)
	case correlate.EncapVXLAN: // 8-byte header with the I flag, then Ethernet
		p.ins(bpf.LoadIndirect{Off: l3 + 8, Size: 1})
		p.jif(bpf.JumpBitsSet, 0x08, "", b.l("reject"))
		b.vni(l3 + 12)
		p.ins(bpf.LoadIndirect{Off: l3 + 16 + 12, Size: 2})
		inner("vxlan").ether(l3 + 16 + 14)
	case correlate.EncapGENEVE: // version 0, options, then what the protocol type says
		p.ins(bpf.LoadIndirect{Off: l3 + 8, Size: 1})
		p.jif(bpf.JumpBitsSet, 0xc0, b.l("reject"), "")
		b.vni(l3 + 12)
		p.ins(bpf.LoadIndirect{Off: l3 + 10, Size: 2})
		p.ins(bpf.StoreScratch{Src: bpf.RegA, N: 0})
		p.ins(bpf.LoadIndirect{Off: l3 + 8, Size: 1})
		p.ins(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x3f})
		p.ins(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2})
		p.ins(bpf.ALUOpX{Op: bpf.ALUOpAdd})
		p.ins(bpf.TAX{}) // X += the options' length
		p.ins(bpf.LoadScratch{Dst: bpf.RegA, N: 0})
		p.jeq(0x6558, b.l("geneveEther"), "")
		p.jeq(0x0800, b.l("geneveIP"), "")
		p.jeq(0x86dd, b.l("geneveIP"), b.l("reject"))
		p.label(b.l("geneveEther"))
		p.ins(bpf.LoadIndirect{Off: l3 + 16 + 12, Size: 2})
		inner("geneve.ether").ether(l3 + 16 + 14)
		p.label(b.l("geneveIP"))
		inner("geneve.ip").raw(l3 + 16)
	}
}

// vni rejects a header whose 24-bit VNI at X+off differs from the tunnel's.
func (b *body) vni(off uint32) {
	if !b.tunnel.HasVNI {
		return
	}
	p := b.p
	p.ins(bpf.LoadIndirect{Off: off, Size: 4})
	p.ins(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 8})
	p.jeq(b.tunnel.VNI&0xffffff, "", b.l("reject"))
}

func be32(a netip.Addr) uint32 {
	if !a.IsValid() {
		return 0
	}
	b := a.Unmap().As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
