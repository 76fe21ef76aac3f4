package kdrop

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/capture/internal/nstest"
	"github.com/pathtrace/pathtrace/capture/probe"
	"github.com/pathtrace/pathtrace/netns"
)

// Probes dropped while tunnelled (the underlay packet is what the node's
// firewall drops) are matched through the tunnel: Packet starts at the
// outer header, InnerOffset at the probe's own.
func TestTunnelledDrops(t *testing.T) {
	nstest.RequireRoot(t)
	a, b := nstest.Pair(t, "ptdkt", "10.254.0")
	r := newRun(t)
	// This kernel has VXLAN but no GENEVE or IP-in-IP devices: those are
	// covered by crafted packets (TestCraftedTunnelDrops).
	tunnels := []struct {
		kind  string
		args  func(local, remote string) []string
		inner int // outer IPv4 + UDP + VXLAN + inner Ethernet
	}{
		{"vxlan 4789", func(l, rm string) []string {
			return []string{"type", "vxlan", "id", "42", "local", l, "remote", rm, "dstport", "4789"}
		}, 20 + 8 + 8 + 14},
		{"vxlan 8472 (flannel)", func(l, rm string) []string {
			return []string{"type", "vxlan", "id", "43", "local", l, "remote", rm, "dstport", "8472"}
		}, 20 + 8 + 8 + 14},
	}
	for i, tn := range tunnels {
		t.Run(tn.kind, func(t *testing.T) {
			for j, n := range []string{a, b} {
				local, remote := fmt.Sprintf("10.254.0.%d", j+1), fmt.Sprintf("10.254.0.%d", 2-j)
				nstest.Sh(t, n, append([]string{"ip", "link", "add", "ptdtun"}, tn.args(local, remote)...)...)
				t.Cleanup(func() { nstest.ShErr(n, "ip", "link", "del", "ptdtun") })
				nstest.Sh(t, n, "ip", "addr", "add", fmt.Sprintf("10.254.%d.%d/24", i+1, j+1), "dev", "ptdtun")
				nstest.Sh(t, n, "ip", "link", "set", "ptdtun", "up")
			}
			// Static overlay neighbours: the firewall below would also
			// drop the tunnelled ARP, and the probes would die unsent.
			for j, n := range []string{a, b} {
				other := []string{b, a}[j]
				mac := strings.TrimSpace(nstest.Sh(t, other, "cat", "/sys/class/net/ptdtun/address"))
				nstest.Sh(t, n, "ip", "neigh", "replace", fmt.Sprintf("10.254.%d.%d", i+1, 2-j), "lladdr", mac, "dev", "ptdtun", "nud", "permanent")
			}
			// b's firewall drops the tunnel's underlay packets.
			nstest.KeepRulesets(t, b)
			nstest.Nft(t, b, "table ip ptdtun {\n chain input {\n  type filter hook input priority 0;\n  udp dport { 4789, 8472 } drop\n }\n}\n")
			first := uint16(100 * (i + 1))
			r.send(t, "/run/netns/"+a, netip.MustParseAddr(fmt.Sprintf("10.254.%d.2", i+1)), r.tag, first, 2)
			evs := r.collect(t, first, 2, 3*time.Second)
			for _, ev := range evs {
				if ev.ReasonName != "NETFILTER_DROP" || ev.InnerOffset != tn.inner || ev.L3Proto != 0x0800 {
					t.Errorf("%s at %s, inner at %d (want %d), l3 %#x", ev.ReasonName, ev.Symbol, ev.InnerOffset, tn.inner, ev.L3Proto)
				}
				if len(ev.Packet) < 20 || netip.AddrFrom4([4]byte(ev.Packet[16:20])) != netip.MustParseAddr("10.254.0.2") {
					t.Errorf("outer header % x, want the underlay's to 10.254.0.2", ev.Packet[:min(20, len(ev.Packet))])
				}
			}
			r.quiet(t, 300*time.Millisecond)
		})
	}
}

// GENEVE and IP-in-IP: this kernel has no such devices, so the
// encapsulated probes are built here and sent as ordinary UDP (to 6081)
// and raw IP protocol 4 packets, which b's firewall drops.
func TestCraftedTunnelDrops(t *testing.T) {
	nstest.RequireRoot(t)
	a, b := nstest.Pair(t, "ptdkc", "10.254.50")
	nstest.KeepRulesets(t, b)
	nstest.Nft(t, b, "table ip ptdtun {\n chain input {\n  type filter hook input priority 0;\n  udp dport 6081 drop\n  ip protocol 4 drop\n }\n}\n")
	r := newRun(t)
	ha, err := netns.Open("/run/netns/" + a)
	if err != nil {
		t.Fatal(err)
	}
	defer ha.Close()
	dst := [4]byte{10, 254, 50, 2}
	inner := func(seq uint16) []byte {
		icmp := append([]byte{8, 0, 0, 0, byte(r.id >> 8), byte(r.id), byte(seq >> 8), byte(seq)}, probe.Payload(r.tag, seq, time.Now().UnixNano())...)
		n := 20 + len(icmp)
		ip := []byte{0x45, 0, byte(n >> 8), byte(n), 0, 1, 0x40, 0, 64, 1, 0, 0, 10, 254, 51, 1, 10, 254, 51, 2}
		return append(ip, icmp...)
	}
	cases := []struct {
		name  string
		sock  [2]int // type, protocol
		port  int
		frame func(seq uint16) []byte
		inner int
	}{
		{"geneve", [2]int{unix.SOCK_DGRAM, 0}, 6081, func(seq uint16) []byte {
			gen := []byte{0, 0, 0x65, 0x58, 0, 0, 42, 0}
			eth := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00}
			return append(append(gen, eth...), inner(seq)...)
		}, 20 + 8 + 8 + 14},
		{"ipip", [2]int{unix.SOCK_RAW, unix.IPPROTO_IPIP}, 0, inner, 20},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var fd int
			if err := netns.Do(ha, func() (err error) {
				fd, err = unix.Socket(unix.AF_INET, c.sock[0]|unix.SOCK_CLOEXEC, c.sock[1])
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			first := uint16(100 * (i + 1))
			for s := first; s < first+2; s++ {
				if err := unix.Sendto(fd, c.frame(s), 0, &unix.SockaddrInet4{Port: c.port, Addr: dst}); err != nil {
					t.Fatal(err)
				}
			}
			for _, ev := range r.collect(t, first, 2, 3*time.Second) {
				if ev.ReasonName != "NETFILTER_DROP" || ev.InnerOffset != c.inner {
					t.Errorf("%s at %s, inner at %d, want NETFILTER_DROP, %d", ev.ReasonName, ev.Symbol, ev.InnerOffset, c.inner)
				}
			}
		})
	}
}
