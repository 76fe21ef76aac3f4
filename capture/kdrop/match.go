package kdrop

import (
	"errors"
	"fmt"
	"net/netip"
)

// MaxPayload is the longest payload prefix the program compares.
const MaxPayload = 16

// Match says which dropped packets belong to the run. Exactly one mode:
//   - probes: EchoID (when HasEchoID) and Payload, a prefix of the probes'
//     ICMP echo payload unique to the run; echo requests and replies match;
//   - addresses (passive): Addrs; ICMP/ICMPv6 packets whose source or
//     destination, and ARP whose sender or target, is one of them.
//
// Either mode also looks one tunnel deep (VXLAN on UDP 4789/8472, GENEVE on
// 6081, IPv4/IPv6 in IPv4/IPv6). IPv6 extension headers are not walked, so
// an ICMPv6 packet behind one does not match.
type Match struct {
	EchoID    uint16
	HasEchoID bool
	Payload   []byte
	Addrs     []netip.Addr
}

func (m Match) validate() error {
	probes := m.HasEchoID || len(m.Payload) > 0
	switch {
	case probes && len(m.Addrs) > 0:
		return errors.New("drop match: either probes (echo id, payload) or addresses, not both")
	case !probes && len(m.Addrs) == 0:
		return errors.New("drop match: nothing to match (no echo id, payload or address)")
	case len(m.Payload) > MaxPayload:
		return fmt.Errorf("drop match: payload prefix of %d bytes, at most %d", len(m.Payload), MaxPayload)
	case len(m.Addrs) > maxAddrs:
		return fmt.Errorf("drop match: %d addresses, at most %d", len(m.Addrs), maxAddrs)
	}
	for _, a := range m.Addrs {
		if !a.IsValid() {
			return errors.New("drop match: invalid address")
		}
	}
	return nil
}

// maxAddrs is the addrs map's size in kdrop.bpf.c.
const maxAddrs = 256

// addrKey is how the program keys addresses: IPv6, IPv4 as IPv4-mapped.
func addrKey(a netip.Addr) kdropAddrKey {
	return kdropAddrKey{A: a.Unmap().As16()}
}
