package afpacket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"golang.org/x/net/bpf"

	"github.com/pathtrace/pathtrace/capture"
)

// FilterSnaplen is what an accepting filter returns: the whole frame for any
// MTU a pod interface uses (and 64 KiB GSO super-frames seen on veths).
const FilterSnaplen = 262144

// Filter returns a classic BPF program for an Ethernet AF_PACKET socket that
// keeps only what pathtrace correlates between endpoints a and b, so heavy
// pod traffic never reaches the ring. It accepts, with or without one
// inline 802.1Q/802.1ad tag (a tag the kernel moved into metadata is already
// gone from the frame the filter sees):
//
//   - ARP (IPv4) whose sender or target IP is a or b;
//   - IPv4 with protocol ICMP whose source or destination is a or b (so echo
//     both ways, and ICMP errors about them, incl. non-first fragments);
//   - IPv6 whose next header is ICMPv6 (no extension headers) and whose
//     source or destination is a or b, or the solicited-node group of a or
//     b, or - for neighbour solicitations/advertisements - whose target
//     address is a or b (link-local ND about them).
//
// Everything else is rejected. a and b may be of different families; a
// family with no address accepts nothing. BuildFilter makes the filters of
// tunnel and underlay devices.
func Filter(a, b netip.Addr) ([]bpf.RawInstruction, error) {
	return BuildFilter(FilterSpec{A: a, B: b})
}

// FilterFor is Filter for two or more addresses (a TCP probe through a
// Service adds its ClusterIP), and with tcp the TCP probes' filter (see
// FilterSpec.TCP).
func FilterFor(addrs []netip.Addr, tcp bool) ([]bpf.RawInstruction, error) {
	if len(addrs) < 2 {
		return nil, fmt.Errorf("bpf filter: %d addresses, want the two endpoints' at least", len(addrs))
	}
	return BuildFilter(FilterSpec{A: addrs[0], B: addrs[1], Extra: addrs[2:], TCP: tcp})
}

// BuildFilter returns the classic BPF program for one point (see Filter
// and FilterSpec).
func BuildFilter(s FilterSpec) ([]bpf.RawInstruction, error) {
	var v4, v6 []netip.Addr
	for _, ad := range append([]netip.Addr{s.A, s.B}, s.Extra...) {
		if !ad.IsValid() {
			return nil, fmt.Errorf("bpf filter: invalid address %v", ad)
		}
		ad = ad.Unmap()
		set := &v6
		if ad.Is4() {
			set = &v4
		}
		if !slices.Contains(*set, ad) {
			*set = append(*set, ad)
		}
	}
	var neigh []netip.Addr
	for _, ad := range s.Neighbours {
		if !ad.Unmap().Is4() {
			return nil, fmt.Errorf("bpf filter: neighbour %v: ARP is IPv4 only", ad)
		}
		neigh = append(neigh, ad.Unmap())
	}
	if err := s.Tunnel.check(); err != nil {
		return nil, err
	}
	var p asm
	outer := &body{p: &p, pre: "outer", v4: v4, v6: v6, neigh: neigh, tunnel: s.Tunnel, tcp: s.TCP}
	switch s.Link {
	case capture.LinkTypeEthernet, 0:
		// X = offset added by an inline VLAN tag; A = the inner EtherType.
		p.ins(bpf.LoadAbsolute{Off: 12, Size: 2})
		p.jeq(0x8100, "tag", "")
		p.jeq(0x88a8, "tag", "notag")
		p.label("tag")
		p.ins(bpf.LoadConstant{Dst: bpf.RegX, Val: 4})
		p.ins(bpf.LoadAbsolute{Off: 16, Size: 2})
		p.ja("type")
		p.label("notag")
		p.ins(bpf.LoadConstant{Dst: bpf.RegX, Val: 0})
		p.label("type")
		outer.ether(14)
	case capture.LinkTypeRaw:
		if s.Tunnel != nil {
			return nil, errors.New("bpf filter: a tunnel's outer packets on a device without link header")
		}
		p.ins(bpf.LoadConstant{Dst: bpf.RegX, Val: 0})
		outer.raw(0)
	default:
		return nil, fmt.Errorf("bpf filter: link type %v", s.Link)
	}
	return p.assemble()
}

// body emits the match of the endpoints' frames whose layer-3 header
// starts at X+l3: ARP, ICMP, ICMPv6. Its labels carry pre, so the same
// match can be emitted again for a tunnel's inner frame; each part ends in
// returns of its own, so no jump has to cross the whole program.
type body struct {
	p      *asm
	pre    string
	v4, v6 []netip.Addr
	neigh  []netip.Addr // IPv4 addresses whose ARP between each other is kept
	tunnel *TunnelSpec  // outer packets only: the tunnel entered from IPv4
	tcp    bool         // TCP and ICMP, no ARP or ND (FilterSpec.TCP)
}

func (b *body) l(name string) string { return b.pre + "." + name }

// ether dispatches on the EtherType in A; the layer-3 header follows at l3.
func (b *body) ether(l3 uint32) {
	p := b.p
	if b.tcp {
		p.jeq(0x0806, b.l("reject"), "")
	} else {
		p.jeq(0x0806, b.l("arp"), "")
	}
	p.jeq(0x0800, b.l("ip4"), "")
	p.jeq(0x86dd, b.l("ip6"), b.l("reject"))
	b.arpPart(l3)
	b.ip4Part(l3)
	b.ip6Part(l3)
	b.returns()
}

// raw dispatches on the IP version of a packet without link header at l3.
func (b *body) raw(l3 uint32) {
	p := b.p
	p.ins(bpf.LoadIndirect{Off: l3, Size: 1})
	p.ins(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
	p.jeq(4, b.l("ip4"), "")
	p.jeq(6, b.l("ip6"), b.l("reject"))
	b.ip4Part(l3)
	b.ip6Part(l3)
	b.returns()
}

func (b *body) returns() {
	b.p.label(b.l("accept"))
	b.p.ins(bpf.RetConstant{Val: FilterSnaplen})
	b.p.label(b.l("reject"))
	b.p.ins(bpf.RetConstant{Val: 0})
}

// arpPart: IPv4 over Ethernet ARP, sender IP at l3+14, target at l3+24:
// about an endpoint, or between two of the neighbours.
func (b *body) arpPart(l3 uint32) {
	p := b.p
	p.label(b.l("arp"))
	p.ins(bpf.LoadIndirect{Off: l3 + 2, Size: 2}) // ptype
	p.jeq(0x0800, "", b.l("reject"))
	for _, ad := range b.v4 {
		p.match4(l3+14, ad, b.l("accept"))
		p.match4(l3+24, ad, b.l("accept"))
	}
	if len(b.neigh) > 0 {
		p.ins(bpf.LoadIndirect{Off: l3 + 14, Size: 4})
		for _, ad := range b.neigh {
			p.jeq(be32(ad), b.l("arpNeigh"), "")
		}
		p.ja(b.l("reject"))
		p.label(b.l("arpNeigh"))
		p.ins(bpf.LoadIndirect{Off: l3 + 24, Size: 4})
		for _, ad := range b.neigh {
			p.jeq(be32(ad), b.l("accept"), "")
		}
	}
	p.ja(b.l("reject"))
}

// ip4Part: protocol at l3+9, source at l3+12, destination at l3+16. On an
// underlay, the tunnel's packets branch off first.
func (b *body) ip4Part(l3 uint32) {
	p := b.p
	p.label(b.l("ip4"))
	p.ins(bpf.LoadIndirect{Off: l3 + 9, Size: 1})
	if b.tunnel != nil {
		for _, proto := range b.tunnel.protos() {
			p.jeq(proto, b.l("tunnel"), "")
		}
	}
	if b.tcp {
		p.jeq(6, b.l("ip4addr"), "")
	}
	p.jeq(1, "", b.l("reject"))
	p.label(b.l("ip4addr"))
	for _, ad := range b.v4 {
		p.match4(l3+12, ad, b.l("accept"))
		p.match4(l3+16, ad, b.l("accept"))
	}
	p.ja(b.l("reject"))
	if b.tunnel != nil {
		b.tunnelPart(l3)
	}
}

// ip6Part: next header at l3+6, source at l3+8, destination at l3+24,
// ICMPv6 type at l3+40, ND target at l3+48.
func (b *body) ip6Part(l3 uint32) {
	p := b.p
	p.label(b.l("ip6"))
	p.ins(bpf.LoadIndirect{Off: l3 + 6, Size: 1})
	if b.tcp {
		// TCP or ICMPv6 to or from the addresses; no neighbour discovery.
		p.jeq(6, b.l("ip6addr"), "")
		p.jeq(58, b.l("ip6addr"), b.l("reject"))
		p.label(b.l("ip6addr"))
		for _, ad := range b.v6 {
			p.match16(l3+8, ad, b.l("accept"))
			p.match16(l3+24, ad, b.l("accept"))
		}
		p.ja(b.l("reject"))
		return
	}
	p.jeq(58, "", b.l("reject"))
	for _, ad := range b.v6 {
		p.match16(l3+8, ad, b.l("accept"))
		p.match16(l3+24, ad, b.l("accept"))
		p.match16(l3+24, solicitedNode(ad), b.l("accept"))
	}
	p.ins(bpf.LoadIndirect{Off: l3 + 40, Size: 1})
	p.jeq(135, b.l("nd"), "")
	p.jeq(136, b.l("nd"), b.l("reject"))
	p.label(b.l("nd"))
	for _, ad := range b.v6 {
		p.match16(l3+48, ad, b.l("accept"))
	}
	p.ja(b.l("reject"))
}

// solicitedNode is ff02::1:ffXX:XXXX for the low 24 bits of a.
func solicitedNode(a netip.Addr) netip.Addr {
	s := a.As16()
	g := [16]byte{0xff, 0x02, 11: 0x01, 12: 0xff, 13: s[13], 14: s[14], 15: s[15]}
	return netip.AddrFrom16(g)
}

// asm is a tiny classic-BPF assembler with forward labels, because raw skip
// counts are unmaintainable once the address lists vary in length.
type asm struct {
	prog   []asmIns
	labels map[string]int
}

type asmIns struct {
	ins         bpf.Instruction
	jt, jf, jmp string // label targets; "" = next instruction
}

func (p *asm) ins(i bpf.Instruction) { p.prog = append(p.prog, asmIns{ins: i}) }

func (p *asm) label(name string) {
	if p.labels == nil {
		p.labels = map[string]int{}
	}
	p.labels[name] = len(p.prog)
}

func (p *asm) jeq(v uint32, jt, jf string) { p.jif(bpf.JumpEqual, v, jt, jf) }

func (p *asm) jif(c bpf.JumpTest, v uint32, jt, jf string) {
	p.prog = append(p.prog, asmIns{ins: bpf.JumpIf{Cond: c, Val: v}, jt: jt, jf: jf})
}

func (p *asm) ja(target string) {
	p.prog = append(p.prog, asmIns{ins: bpf.Jump{}, jmp: target})
}

// match4 jumps to target when the 4 bytes at X+off equal ad.
func (p *asm) match4(off uint32, ad netip.Addr, target string) {
	b := ad.As4()
	p.ins(bpf.LoadIndirect{Off: off, Size: 4})
	p.jeq(binary.BigEndian.Uint32(b[:]), target, "")
}

// match16 jumps to target when the 16 bytes at X+off equal ad; otherwise
// falls through.
func (p *asm) match16(off uint32, ad netip.Addr, target string) {
	b := ad.As16()
	skip := fmt.Sprintf("m16.%d", len(p.prog))
	for i := 0; i < 4; i++ {
		p.ins(bpf.LoadIndirect{Off: off + uint32(4*i), Size: 4})
		jt := ""
		if i == 3 {
			jt = target
		}
		p.jeq(binary.BigEndian.Uint32(b[4*i:]), jt, skip)
	}
	p.label(skip)
}

func (p *asm) assemble() ([]bpf.RawInstruction, error) {
	out := make([]bpf.Instruction, len(p.prog))
	rel := func(pc int, name string) (int, error) {
		if name == "" {
			return 0, nil
		}
		t, ok := p.labels[name]
		if !ok || t <= pc {
			return 0, fmt.Errorf("bpf filter: bad label %q at %d", name, pc)
		}
		return t - pc - 1, nil
	}
	for pc, in := range p.prog {
		switch i := in.ins.(type) {
		case bpf.JumpIf:
			jt, err := rel(pc, in.jt)
			if err != nil {
				return nil, err
			}
			jf, err := rel(pc, in.jf)
			if err != nil {
				return nil, err
			}
			if jt > 255 || jf > 255 {
				return nil, fmt.Errorf("bpf filter: jump too far at %d", pc)
			}
			i.SkipTrue, i.SkipFalse = uint8(jt), uint8(jf)
			out[pc] = i
		case bpf.Jump:
			k, err := rel(pc, in.jmp)
			if err != nil {
				return nil, err
			}
			i.Skip = uint32(k)
			out[pc] = i
		default:
			out[pc] = in.ins
		}
	}
	raw, err := bpf.Assemble(out)
	if err != nil {
		return nil, fmt.Errorf("bpf filter: assemble: %w", err)
	}
	return raw, nil
}
