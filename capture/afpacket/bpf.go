package afpacket

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"golang.org/x/net/bpf"
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
// family with no address accepts nothing.
func Filter(a, b netip.Addr) ([]bpf.RawInstruction, error) {
	return FilterFor([]netip.Addr{a, b}, false)
}

// FilterFor is Filter for any number of addresses (a TCP probe through a
// Service adds its ClusterIP). With tcp set it keeps TCP and ICMP/ICMPv6 to
// or from them (IPv6 without extension headers) and no ARP or neighbour
// discovery: a TCP probe's trace is its segments, and on a Service's path
// the bridge that resolves neighbours is not captured, so its ARP would only
// show half a conversation.
func FilterFor(addrs []netip.Addr, tcp bool) ([]bpf.RawInstruction, error) {
	var v4, v6 []netip.Addr
	for _, ad := range addrs {
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

	var p asm
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
	if tcp {
		p.jeq(0x0806, "reject", "")
	} else {
		p.jeq(0x0806, "arp", "")
	}
	p.jeq(0x0800, "ip4", "")
	p.jeq(0x86dd, "ip6", "reject")

	// ARP: 14 Ethernet + 8 fixed header; sender IP at 28, target IP at 38.
	p.label("arp")
	p.ins(bpf.LoadIndirect{Off: 16, Size: 2}) // ptype
	p.jeq(0x0800, "", "reject")
	for _, ad := range v4 {
		p.match4(28, ad, "accept")
		p.match4(38, ad, "accept")
	}
	p.ja("reject")

	// IPv4: protocol at 23, source at 26, destination at 30.
	p.label("ip4")
	p.ins(bpf.LoadIndirect{Off: 23, Size: 1})
	if tcp {
		p.jeq(6, "ip4addr", "")
	}
	p.jeq(1, "", "reject")
	p.label("ip4addr")
	for _, ad := range v4 {
		p.match4(26, ad, "accept")
		p.match4(30, ad, "accept")
	}
	p.ja("reject")

	// IPv6: next header at 20, source at 22, destination at 38, ICMPv6 type
	// at 54, ND target at 62.
	p.label("ip6")
	p.ins(bpf.LoadIndirect{Off: 20, Size: 1})
	if tcp {
		p.jeq(6, "", "icmp6")
		for _, ad := range v6 {
			p.match16(22, ad, "accept")
			p.match16(38, ad, "accept")
		}
		p.ja("reject")
		p.label("icmp6")
	}
	p.jeq(58, "", "reject")
	for _, ad := range v6 {
		p.match16(22, ad, "accept")
		p.match16(38, ad, "accept")
		if !tcp {
			p.match16(38, solicitedNode(ad), "accept")
		}
	}
	if tcp {
		p.ja("reject")
	}
	p.ins(bpf.LoadIndirect{Off: 54, Size: 1})
	p.jeq(135, "nd", "")
	p.jeq(136, "nd", "reject")
	p.label("nd")
	for _, ad := range v6 {
		p.match16(62, ad, "accept")
	}
	p.ja("reject")

	p.label("accept")
	p.ins(bpf.RetConstant{Val: FilterSnaplen})
	p.label("reject")
	p.ins(bpf.RetConstant{Val: 0})
	return p.assemble()
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

func (p *asm) jeq(v uint32, jt, jf string) {
	p.prog = append(p.prog, asmIns{ins: bpf.JumpIf{Cond: bpf.JumpEqual, Val: v}, jt: jt, jf: jf})
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
