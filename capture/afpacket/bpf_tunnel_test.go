package afpacket

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/net/bpf"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/internal/testenv"
)

// The tunnel filters against tcpdump's filter semantics: every frame of
// the two-node lab's real captures (echoes in the tunnel, TCP and UDP
// between a node and an outside host, ARP), and frames made here that only
// differ from the run's in one field (another VNI, port, peer, inner
// protocol or pod; an IP option; a VLAN tag; a fragment), run through the
// program and through tcpdump with the same meaning written as a tcpdump
// expression: both must keep exactly the same frames.

var (
	tunPod1, tunPod2   = netip.MustParseAddr("10.244.1.2"), netip.MustParseAddr("10.244.2.2")
	tunNodeA, tunNodeB = netip.MustParseAddr("192.168.56.1"), netip.MustParseAddr("192.168.56.2")
	tunExt             = netip.MustParseAddr("192.168.56.3")
)

type tunCase struct {
	name     string
	file     string // golden capture (testdata/captures/...)
	spec     FilterSpec
	tcpdump  string
	extra    []tunFrame // made-up frames appended to the file's
	minKept  int        // frames the file's own echoes make sure pass
	maxShare float64    // at most this share of the file may pass (the rest is unrelated)
}

type tunFrame struct {
	what string
	data []byte
	want bool
}

func hexIP(a netip.Addr) string { return fmt.Sprintf("0x%08x", be32(a)) }

// endpointsExpr is Filter's meaning (IPv4 endpoints) as tcpdump writes it,
// with the ARP of extra addresses.
// with the ARP between neighbours.
func endpointsExpr(neigh ...netip.Addr) string {
	var arp, sender, target []string
	for _, a := range []netip.Addr{tunPod1, tunPod2} {
		arp = append(arp, "arp[14:4] = "+hexIP(a), "arp[24:4] = "+hexIP(a))
	}
	for _, a := range neigh {
		sender, target = append(sender, "arp[14:4] = "+hexIP(a)), append(target, "arp[24:4] = "+hexIP(a))
	}
	if len(neigh) > 0 {
		arp = append(arp, fmt.Sprintf("((%s) and (%s))", strings.Join(sender, " or "), strings.Join(target, " or ")))
	}
	return fmt.Sprintf("(arp and arp[2:2] = 0x0800 and (%s)) or (ip proto 1 and (host %s or host %s))",
		strings.Join(arp, " or "), tunPod1, tunPod2)
}

// innerIP4 is "ICMP between the pods" for an IPv4 header at proto[off].
func innerIP4(proto, off string) string {
	var m []string
	for _, a := range []netip.Addr{tunPod1, tunPod2} {
		m = append(m, fmt.Sprintf("%s[%s+12:4] = %s", proto, off, hexIP(a)), fmt.Sprintf("%s[%s+16:4] = %s", proto, off, hexIP(a)))
	}
	return fmt.Sprintf("(%s[%s] >> 4 = 4 and %s[%s+9] = 1 and (%s))", proto, off, proto, off, strings.Join(m, " or "))
}

func innerARP(proto, off string) string {
	var m []string
	for _, a := range []netip.Addr{tunPod1, tunPod2} {
		m = append(m, fmt.Sprintf("%s[%s+14:4] = %s", proto, off, hexIP(a)), fmt.Sprintf("%s[%s+24:4] = %s", proto, off, hexIP(a)))
	}
	return fmt.Sprintf("(%s[%s+2:2] = 0x0800 and (%s))", proto, off, strings.Join(m, " or "))
}

const ends = "((src host 192.168.56.1 and dst host 192.168.56.2) or (src host 192.168.56.2 and dst host 192.168.56.1))"

func withVLAN(e string) string { return fmt.Sprintf("(%s) or (vlan and (%s))", e, e) }

func TestTunnelFiltersAgainstTcpdump(t *testing.T) {
	testenv.RequireTools(t, "tcpdump")
	neigh := []netip.Addr{tunNodeA, tunNodeB}
	tun := func(typ correlate.EncapType, port uint16) *TunnelSpec {
		return &TunnelSpec{Type: typ, Local: tunNodeA, Remote: tunNodeB, Port: port, VNI: 1, HasVNI: typ == correlate.EncapVXLAN || typ == correlate.EncapGENEVE}
	}
	underlay := func(typ correlate.EncapType, port uint16) FilterSpec {
		return FilterSpec{A: tunPod1, B: tunPod2, Neighbours: neigh, Tunnel: tun(typ, port)}
	}
	vxlanExpr := withVLAN(endpointsExpr(neigh...) + " or (ip proto 17 and " + ends + " and udp dst port 8472 and udp[8] & 0x08 != 0 and udp[12:4] >> 8 = 1" +
		" and ((udp[28:2] = 0x0806 and " + innerARP("udp", "30") + ") or (udp[28:2] = 0x0800 and " + innerIP4("udp", "30") + ")))")
	ihl := "(ip[0] & 0x0f) * 4"
	ipipExpr := withVLAN(endpointsExpr(neigh...) + " or (ip proto 4 and " + ends + " and ip[6:2] & 0x1fff = 0 and " + innerIP4("ip", ihl) + ")")
	udpExpr := withVLAN(endpointsExpr(neigh...) + " or (ip proto 17 and " + ends + " and udp dst port 8285 and " + innerIP4("udp", "8") + ")")
	geneveExpr := withVLAN(endpointsExpr(neigh...) + " or (ip proto 17 and " + ends + " and geneve 1 and (" + endpointsExpr() + "))")
	hostgwExpr := withVLAN(endpointsExpr(neigh...))

	cases := []tunCase{
		{name: "vxlan eth0", file: "2node-vxlan/nodeA-eth0.cap", spec: underlay(correlate.EncapVXLAN, 8472), tcpdump: vxlanExpr,
			extra: vxlanExtras(t), minKept: 10, maxShare: 0.5},
		{name: "vxlan eth0 B", file: "2node-vxlan/nodeB-eth0.cap", spec: underlay(correlate.EncapVXLAN, 8472), tcpdump: vxlanExpr, minKept: 10, maxShare: 0.8},
		{name: "ipip eth0", file: "2node-ipip/nodeA-eth0.cap", spec: underlay(correlate.EncapIPIP, 0), tcpdump: ipipExpr,
			extra: ipipExtras(t), minKept: 10, maxShare: 0.5},
		{name: "udp eth0", file: "2node-udp/nodeA-eth0.cap", spec: underlay(correlate.EncapUDP, 8285), tcpdump: udpExpr,
			extra: udpExtras(t), minKept: 10, maxShare: 0.5},
		{name: "geneve eth0", file: "2node-geneve/nodeA-eth0.cap", spec: underlay(correlate.EncapGENEVE, 6081), tcpdump: geneveExpr,
			extra: geneveExtras(t), minKept: 10, maxShare: 0.5},
		{name: "host-gw eth0", file: "2node-hostgw/nodeA-eth0.cap", spec: FilterSpec{A: tunPod1, B: tunPod2, Neighbours: neigh},
			tcpdump: hostgwExpr, minKept: 10, maxShare: 0.5},
		{name: "flannel.1", file: "2node-vxlan/nodeA-flannel.1.cap", spec: FilterSpec{A: tunPod1, B: tunPod2},
			tcpdump: endpointsExpr(), minKept: 10, maxShare: 1},
		{name: "tunl0 raw", file: "2node-ipip/nodeA-tunl0.cap", spec: FilterSpec{A: tunPod1, B: tunPod2, Link: capture.LinkTypeRaw},
			tcpdump: "ip proto 1 and (host 10.244.1.2 or host 10.244.2.2)", minKept: 10, maxShare: 1},
		{name: "flannel0 raw", file: "2node-udp/nodeA-flannel0.cap", spec: FilterSpec{A: tunPod1, B: tunPod2, Link: capture.LinkTypeRaw},
			tcpdump: "ip proto 1 and (host 10.244.1.2 or host 10.244.2.2)", minKept: 10, maxShare: 1},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			frames, link := readGolden(t, testenv.Captures(t, filepath.Dir(c.file)), filepath.Base(c.file))
			for _, x := range c.extra {
				frames = append(frames, x.data)
			}
			prog, err := BuildFilter(c.spec)
			if err != nil {
				t.Fatal(err)
			}
			vm, err := bpf.NewVM(disasm(t, prog))
			if err != nil {
				t.Fatalf("vm: %v", err)
			}
			file := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".pcap")
			base := writeUnique(t, file, link, frames)
			ref := tcpdumpKeeps(t, file, c.tcpdump, base)
			kept := 0
			for i, f := range frames {
				n, err := vm.Run(f)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				what := fmt.Sprintf("file frame %d", i+1)
				if j := i - (len(frames) - len(c.extra)); j >= 0 {
					what = c.extra[j].what
					if (n > 0) != c.extra[j].want {
						t.Errorf("%s: kept=%v, want %v", what, n > 0, c.extra[j].want)
					}
				}
				if (n > 0) != ref[i] {
					t.Errorf("%s: the filter keeps it: %v, tcpdump: %v", what, n > 0, ref[i])
				}
				if n > 0 {
					kept++
				}
			}
			fileFrames := len(frames) - len(c.extra)
			if kept < c.minKept || float64(kept) > c.maxShare*float64(len(frames)) {
				t.Errorf("kept %d of %d frames (%d from the file), want at least %d and at most %.0f%%", kept, len(frames), fileFrames, c.minKept, 100*c.maxShare)
			}
			t.Logf("%d of %d frames kept, as tcpdump keeps them (%d instructions)", kept, len(frames), len(prog))
		})
	}
}

// readGolden reads a capture's frames and link type.
func readGolden(t *testing.T, dir, name string) ([][]byte, capture.LinkType) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		out = append(out, append([]byte(nil), data...))
	}
	return out, capture.LinkType(r.LinkType())
}

// writeUnique writes the frames with one distinct microsecond stamp each,
// so tcpdump's printout names every frame it keeps.
func writeUnique(t *testing.T, file string, link capture.LinkType, frames [][]byte) time.Time {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(262144, layers.LinkType(link)); err != nil {
		t.Fatal(err)
	}
	base := time.Unix(1_800_000_000, 0)
	for i, d := range frames {
		ci := gopacket.CaptureInfo{Timestamp: base.Add(time.Duration(i+1) * time.Microsecond), CaptureLength: len(d), Length: len(d)}
		if err := w.WritePacket(ci, d); err != nil {
			t.Fatal(err)
		}
	}
	return base
}

// tcpdumpKeeps says which frames of file tcpdump's expr keeps.
func tcpdumpKeeps(t *testing.T, file, expr string, base time.Time) map[int]bool {
	t.Helper()
	out, err := exec.Command("tcpdump", "-n", "-tt", "-r", file, expr).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("tcpdump %q: %v: %s", expr, err, stderr)
	}
	kept := map[int]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		stamp, _, _ := strings.Cut(sc.Text(), " ")
		if stamp == "" || stamp[0] < '0' || stamp[0] > '9' {
			continue // a tunnel's inner packet, printed on a line of its own
		}
		var sec, usec int64
		if _, err := fmt.Sscanf(stamp, "%d.%d", &sec, &usec); err != nil {
			t.Fatalf("tcpdump line %q: %v", sc.Text(), err)
		}
		i := int((time.Unix(sec, usec*1000).Sub(base))/time.Microsecond) - 1
		kept[i] = true
	}
	return kept
}

// Frames made here, each one field away from a frame of the run.

func ser(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	for _, l := range ls {
		if u, ok := l.(interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		}); ok {
			for _, nl := range ls {
				if ip, ok := nl.(*layers.IPv4); ok {
					u.SetNetworkLayerForChecksum(ip)
					break
				}
			}
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return buf.Bytes()
}

var (
	macA = net.HardwareAddr{0x2a, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{0x2a, 0, 0, 0, 0, 2}
)

func eth(typ layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: typ}
}

func outer4(src, dst netip.Addr, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

// innerEcho is an echo request src → dst behind an Ethernet header (or
// none), as a tunnel carries it.
func innerEcho(ether bool, src, dst netip.Addr, proto layers.IPProtocol) []gopacket.SerializableLayer {
	var ls []gopacket.SerializableLayer
	if ether {
		ls = append(ls, eth(layers.EthernetTypeIPv4))
	}
	ls = append(ls, outer4(src, dst, proto))
	switch proto {
	case layers.IPProtocolICMPv4:
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 7, Seq: 1})
	case layers.IPProtocolTCP:
		ls = append(ls, &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true, Window: 1000})
	}
	return append(ls, gopacket.Payload("pathtrace"))
}

func vxlanFrame(t *testing.T, src, dst netip.Addr, port layers.UDPPort, vni uint32, in []gopacket.SerializableLayer, opts ...func(*layers.IPv4)) []byte {
	ip := outer4(src, dst, layers.IPProtocolUDP)
	for _, o := range opts {
		o(ip)
	}
	hdr := []byte{0x08, 0, 0, 0, byte(vni >> 16), byte(vni >> 8), byte(vni), 0}
	inner := ser(t, in...)
	return ser(t, append([]gopacket.SerializableLayer{eth(layers.EthernetTypeIPv4), ip, &layers.UDP{SrcPort: 51234, DstPort: port}},
		gopacket.Payload(append(hdr, inner...)))...)
}

func withOption(ip *layers.IPv4) {
	ip.IHL = 6
	ip.Options = []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}} // router alert
}

func vxlanExtras(t *testing.T) []tunFrame {
	echo := innerEcho(true, tunPod1, tunPod2, layers.IPProtocolICMPv4)
	tagged := vxlanFrame(t, tunNodeA, tunNodeB, 8472, 1, echo)
	tagged = append(append(append([]byte{}, tagged[:12]...), 0x81, 0x00, 0x00, 0x2a), tagged[12:]...)
	frag := vxlanFrame(t, tunNodeA, tunNodeB, 8472, 1, echo, func(ip *layers.IPv4) { ip.FragOffset = 100 })
	arpIn := ser(t, eth(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: 1, SourceHwAddress: macA, SourceProtAddress: tunPod1.AsSlice(),
		DstHwAddress: make([]byte, 6), DstProtAddress: netip.MustParseAddr("10.244.1.1").AsSlice()})
	return []tunFrame{
		{"vxlan echo", vxlanFrame(t, tunNodeA, tunNodeB, 8472, 1, echo), true},
		{"vxlan echo B→A", vxlanFrame(t, tunNodeB, tunNodeA, 8472, 1, innerEcho(true, tunPod2, tunPod1, layers.IPProtocolICMPv4)), true},
		{"vxlan echo, outer IP option", vxlanFrame(t, tunNodeA, tunNodeB, 8472, 1, echo, withOption), true},
		{"vxlan echo, VLAN tag", tagged, true},
		{"vxlan inner ARP", vxlanFrame(t, tunNodeA, tunNodeB, 8472, 1, []gopacket.SerializableLayer{gopacket.Payload(arpIn)}), true},
		{"vxlan VNI 2", vxlanFrame(t, tunNodeA, tunNodeB, 8472, 2, echo), false},
		{"vxlan port 4789", vxlanFrame(t, tunNodeA, tunNodeB, 4789, 1, echo), false},
		{"vxlan to ext", vxlanFrame(t, tunNodeA, tunExt, 8472, 1, echo), false},
		{"vxlan A→A", vxlanFrame(t, tunNodeA, tunNodeA, 8472, 1, echo), false},
		{"vxlan inner TCP between the pods", vxlanFrame(t, tunNodeA, tunNodeB, 8472, 1, innerEcho(true, tunPod1, tunPod2, layers.IPProtocolTCP)), false},
		{"vxlan other pods", vxlanFrame(t, tunNodeA, tunNodeB, 8472, 1, innerEcho(true, netip.MustParseAddr("10.244.1.9"), netip.MustParseAddr("10.244.2.9"), layers.IPProtocolICMPv4)), false},
		{"vxlan outer non-first fragment", frag, false},
		{"TCP node to ext", ser(t, append([]gopacket.SerializableLayer{eth(layers.EthernetTypeIPv4)}, innerEcho(false, tunNodeA, tunExt, layers.IPProtocolTCP)...)...), false},
		{"ARP for node B", ser(t, eth(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: 1, SourceHwAddress: macA, SourceProtAddress: tunNodeA.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: tunNodeB.AsSlice()}), true},
		{"ARP ext for node B", ser(t, eth(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: 1, SourceHwAddress: macA, SourceProtAddress: tunExt.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: tunNodeB.AsSlice()}), false},
		{"ARP ext for ext", ser(t, eth(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: 1, SourceHwAddress: macA, SourceProtAddress: tunExt.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: netip.MustParseAddr("192.168.56.9").AsSlice()}), false},
	}
}

func ipipFrame(t *testing.T, src, dst netip.Addr, in []gopacket.SerializableLayer, opts ...func(*layers.IPv4)) []byte {
	ip := outer4(src, dst, layers.IPProtocolIPv4)
	for _, o := range opts {
		o(ip)
	}
	return ser(t, eth(layers.EthernetTypeIPv4), ip, gopacket.Payload(ser(t, in...)))
}

func ipipExtras(t *testing.T) []tunFrame {
	echo := innerEcho(false, tunPod1, tunPod2, layers.IPProtocolICMPv4)
	return []tunFrame{
		{"ipip echo", ipipFrame(t, tunNodeA, tunNodeB, echo), true},
		{"ipip echo, outer IP option", ipipFrame(t, tunNodeA, tunNodeB, echo, withOption), true},
		{"ipip inner TCP", ipipFrame(t, tunNodeA, tunNodeB, innerEcho(false, tunPod1, tunPod2, layers.IPProtocolTCP)), false},
		{"ipip to ext", ipipFrame(t, tunNodeA, tunExt, echo), false},
		{"ipip other pods", ipipFrame(t, tunNodeB, tunNodeA, innerEcho(false, netip.MustParseAddr("10.244.2.7"), netip.MustParseAddr("10.244.1.7"), layers.IPProtocolICMPv4)), false},
		{"ipip non-first fragment", ipipFrame(t, tunNodeA, tunNodeB, echo, func(ip *layers.IPv4) { ip.FragOffset = 3 }), false},
	}
}

func udpTunFrame(t *testing.T, src, dst netip.Addr, port layers.UDPPort, payload []byte) []byte {
	return ser(t, eth(layers.EthernetTypeIPv4), outer4(src, dst, layers.IPProtocolUDP), &layers.UDP{SrcPort: port, DstPort: port}, gopacket.Payload(payload))
}

func udpExtras(t *testing.T) []tunFrame {
	echo := ser(t, innerEcho(false, tunPod1, tunPod2, layers.IPProtocolICMPv4)...)
	return []tunFrame{
		{"flannel udp echo", udpTunFrame(t, tunNodeA, tunNodeB, 8285, echo), true},
		{"flannel udp inner TCP", udpTunFrame(t, tunNodeA, tunNodeB, 8285, ser(t, innerEcho(false, tunPod1, tunPod2, layers.IPProtocolTCP)...)), false},
		{"flannel udp port 8286", udpTunFrame(t, tunNodeA, tunNodeB, 8286, echo), false},
		{"flannel udp from ext", udpTunFrame(t, tunExt, tunNodeA, 8285, echo), false},
	}
}

// geneveFrame: version 0, options of optWords 4-byte words, protocol
// proto, VNI vni.
func geneveFrame(t *testing.T, src, dst netip.Addr, vni uint32, proto uint16, optWords int, inner []byte) []byte {
	hdr := []byte{byte(optWords), 0, byte(proto >> 8), byte(proto), byte(vni >> 16), byte(vni >> 8), byte(vni), 0}
	for i := 0; i < optWords; i++ {
		if i == 0 {
			hdr = append(hdr, 0x01, 0x02, 0x80, byte(optWords-1))
		} else {
			hdr = append(hdr, 0, 0, 0, byte(i))
		}
	}
	return udpTunFrame(t, src, dst, 6081, append(hdr, inner...))
}

func geneveExtras(t *testing.T) []tunFrame {
	ethEcho := ser(t, innerEcho(true, tunPod1, tunPod2, layers.IPProtocolICMPv4)...)
	ipEcho := ser(t, innerEcho(false, tunPod2, tunPod1, layers.IPProtocolICMPv4)...)
	return []tunFrame{
		{"geneve Ethernet echo, 2 option words", geneveFrame(t, tunNodeA, tunNodeB, 1, 0x6558, 2, ethEcho), true},
		{"geneve Ethernet echo, no options", geneveFrame(t, tunNodeA, tunNodeB, 1, 0x6558, 0, ethEcho), true},
		{"geneve IPv4 echo, 5 option words", geneveFrame(t, tunNodeB, tunNodeA, 1, 0x0800, 5, ipEcho), true},
		{"geneve VNI 9", geneveFrame(t, tunNodeA, tunNodeB, 9, 0x6558, 2, ethEcho), false},
		{"geneve inner TCP", geneveFrame(t, tunNodeA, tunNodeB, 1, 0x6558, 2, ser(t, innerEcho(true, tunPod1, tunPod2, layers.IPProtocolTCP)...)), false},
		{"geneve to ext", geneveFrame(t, tunNodeA, tunExt, 1, 0x6558, 2, ethEcho), false},
	}
}

func TestTunnelFilterSpecErrors(t *testing.T) {
	for _, s := range []FilterSpec{
		{A: tunPod1, B: tunPod2, Tunnel: &TunnelSpec{Type: correlate.EncapVXLAN, Local: tunNodeA, Remote: tunNodeB}},
		{A: tunPod1, B: tunPod2, Tunnel: &TunnelSpec{Type: correlate.EncapESP, Local: tunNodeA, Remote: tunNodeB}},
		{A: tunPod1, B: tunPod2, Tunnel: &TunnelSpec{Type: correlate.EncapIPIP, Local: netip.MustParseAddr("fd00::1")}},
		{A: tunPod1, B: tunPod2, Link: capture.LinkTypeRaw, Tunnel: &TunnelSpec{Type: correlate.EncapIPIP, Local: tunNodeA}},
		{A: tunPod1, B: tunPod2, Neighbours: []netip.Addr{netip.MustParseAddr("fd00::1")}},
		{A: tunPod1, B: tunPod2, Link: capture.LinkTypeSLL2},
	} {
		if _, err := BuildFilter(s); err == nil {
			t.Errorf("BuildFilter(%+v) = nil error", s)
		}
	}
}

// A flow-based tunnel's filter: any peer of the local end, still only
// the pods' frames.
func TestTunnelFilterFlowBased(t *testing.T) {
	prog, err := BuildFilter(FilterSpec{A: tunPod1, B: tunPod2, Tunnel: &TunnelSpec{Type: correlate.EncapVXLAN, Local: tunNodeA, Port: 4789}})
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(disasm(t, prog))
	if err != nil {
		t.Fatal(err)
	}
	echo := innerEcho(true, tunPod1, tunPod2, layers.IPProtocolICMPv4)
	for _, c := range []tunFrame{
		{"to B", vxlanFrame(t, tunNodeA, tunNodeB, 4789, 7, echo), true},
		{"from ext", vxlanFrame(t, tunExt, tunNodeA, 4789, 3, echo), true},
		{"ext to B", vxlanFrame(t, tunExt, tunNodeB, 4789, 3, echo), false},
		{"port 8472", vxlanFrame(t, tunNodeA, tunNodeB, 8472, 7, echo), false},
	} {
		if n, err := vm.Run(c.data); err != nil || (n > 0) != c.want {
			t.Errorf("%s: kept %v (%v), want %v", c.what, n > 0, err, c.want)
		}
	}
}
