package decode

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/internal/testenv"
)

// readCapture reads a pcap or pcapng file with gopacket's pcapgo. The
// project's own reader is tested on its own; this keeps the decoder's tests
// independent of it.
func readCapture(t testing.TB, path string) []capture.RawFrame {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var next func() ([]byte, gopacket.CaptureInfo, error)
	var link func(ci gopacket.CaptureInfo) int
	if bytes.HasPrefix(b, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		next = r.ReadPacketData
		link = func(ci gopacket.CaptureInfo) int {
			i, err := r.Interface(ci.InterfaceIndex)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			return int(i.LinkType)
		}
	} else {
		r, err := pcapgo.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		next = r.ReadPacketData
		link = func(gopacket.CaptureInfo) int { return int(r.LinkType()) }
	}
	var frames []capture.RawFrame
	for {
		data, ci, err := next()
		if errors.Is(err, io.EOF) {
			return frames
		}
		if err != nil {
			t.Fatalf("%s frame %d: %v", path, len(frames)+1, err)
		}
		frames = append(frames, capture.RawFrame{Data: data, Time: ci.Timestamp.UnixNano(), WireLen: ci.Length,
			LinkType: capture.LinkType(link(ci)), Num: len(frames) + 1})
	}
}

// TestDecodeCapturesMatchTshark decodes real captures of every link type
// and encapsulation the decoder handles and checks each field against
// tshark's dissection of the same frame.
func TestDecodeCapturesMatchTshark(t *testing.T) {
	dir := testenv.Corpus(t)
	files := []string{
		"zeek/icmp__5-pings.pcap",                                  // Ethernet, ICMP echo
		"zeek/icmp_dot1q.pcap",                                     // 802.1Q, ICMP, ARP
		"zeek/linux_dlt_sll2.pcap",                                 // SLL2: ICMP, ICMPv6 echo, ARP
		"zeek/linuxsll-arp.pcap",                                   // SLL ARP
		"tcpdump/mptcp-v1.pcap",                                    // SLL TCP with options
		"gopacket/layers_testdata_linux_sll_oversized_addr.pcapng", // SLL, address length > 8
		"filesamples/simple_http.pcap",                             // Ethernet TCP
		"filesamples/simple_http_sll2.pcap",                        // SLL2 TCP
		"tcpdump/vxlan.pcap",                                       // VXLAN 4789
		"tcpdump/vxlan_port_8472.pcap",                             // VXLAN 8472 (Flannel)
		"zeek/tunnels__vxlan-encapsulated-http.pcap",               // VXLAN TCP
		"gopacket/pcap_test_loopback.pcap",                         // NULL
		"gopacket/pcap_test_dns.pcap",                              // UDP
		"zeek/raw_packets.pcap",                                    // mixed
		"zeek/trunc__icmp-payload-trunc.pcap",                      // ICMP cut by the snaplen
		"zeek/tcp__truncated-header.pcap",                          // TCP cut by the snaplen
		"zeek/tunnels__4in4.pcap",                                  // IP-in-IP
		"tcpdump/geneve.pcap",                                      // GENEVE, inner Ethernet, options
		"tcpdump/geneve-gcp.pcap",                                  // GENEVE, inner IPv4
		"zeek/tunnels__geneve.pcap",                                // GENEVE ICMP
		"zeek/tunnels__geneve-truncated.pcapng",                    // GENEVE, inner frame cut
		"zeek/tunnels__geneve-vxlan-dns-truncated.pcap",            // VXLAN in GENEVE: one level
		"tcpdump/various_gre.pcap",                                 // GRE carrying Cisco metadata (not entered), over 802.1Q
		"tcpdump/esp_truncated.pcap",                               // ESP in UDP 4500
	}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // tshark's start-up dominates
			d := New()
			path := filepath.Join(dir, name)
			frames := readCapture(t, path)
			rows := tshark(t, path)
			if len(rows) != len(frames) {
				t.Fatalf("tshark has %d frames, pcapgo %d", len(rows), len(frames))
			}
			keyed := 0
			for i := range frames {
				var f correlate.Frame
				if d.Decode(&frames[i], &f) {
					keyed++
				}
				compareTshark(t, &frames[i], &f, rows[i].inner)
				compareOuter(t, &frames[i], &f, rows[i])
			}
			// The one frame of geneve-truncated ends in its GENEVE options.
			if none := name == "zeek/tunnels__geneve-truncated.pcapng"; (keyed == 0) != none {
				t.Errorf("%d frames keyed", keyed)
			}
			t.Logf("%d frames, %d keyed", len(frames), keyed)
		})
	}
}

func compareTshark(t *testing.T, rf *capture.RawFrame, f *correlate.Frame, row map[string]string) {
	t.Helper()
	errorf := func(field string, got any) {
		t.Helper()
		t.Errorf("frame %d: %s: tshark %q, decoded %v", rf.Num, field, row[field], got)
	}
	num := func(field string) (uint64, bool) {
		v, ok := row[field]
		if !ok {
			return 0, false
		}
		n, err := strconv.ParseUint(v, 0, 64)
		if err != nil {
			t.Fatalf("frame %d: %s=%q: %v", rf.Num, field, v, err)
		}
		return n, true
	}
	eqNum := func(field string, got uint64, has bool) {
		t.Helper()
		if want, ok := num(field); ok && (!has || got != want) {
			errorf(field, got)
		}
	}
	eqAddr := func(field string, got netip.Addr) {
		t.Helper()
		if v, ok := row[field]; ok && got.String() != v {
			errorf(field, got)
		}
	}
	eqMAC := func(field string, got correlate.MAC, has bool) {
		t.Helper()
		if v, ok := row[field]; ok && (!has || got.String() != v) {
			errorf(field, got)
		}
	}
	hashOf := func(field string) (uint64, uint32, bool) {
		v, ok := row[field]
		if !ok {
			return sum(nil), 0, rf.WireLen == len(rf.Data)
		}
		b, err := hex.DecodeString(strings.ReplaceAll(v, ":", ""))
		if err != nil {
			t.Fatalf("frame %d: %s: %v", rf.Num, field, err)
		}
		return sum(b), uint32(len(b)), rf.WireLen == len(rf.Data)
	}

	if n, _ := num("frame.number"); int(n) != f.Num {
		errorf("frame.number", f.Num)
	}
	eqMAC("eth.src", f.SrcMAC, f.HasSrcMAC)
	eqMAC("eth.dst", f.DstMAC, f.HasDstMAC)
	if rf.LinkType == capture.LinkTypeLinuxSLL || rf.LinkType == capture.LinkTypeSLL2 {
		eqMAC("sll.src.eth", f.SrcMAC, f.HasSrcMAC)
		if _, ok := row["sll.src.eth"]; !ok && f.HasSrcMAC && f.Encap.Type == correlate.EncapNone {
			t.Errorf("frame %d: SLL without a link address decoded with source MAC %v", rf.Num, f.SrcMAC)
		}
		if f.HasDstMAC && f.Encap.Type == correlate.EncapNone {
			t.Errorf("frame %d: SLL frame with a destination MAC", rf.Num)
		}
	}
	eqAddr("ip.src", f.SrcIP)
	eqAddr("ip.dst", f.DstIP)
	eqNum("ip.ttl", uint64(f.TTL), f.HasTTL)
	eqNum("ip.id", uint64(f.IPID), f.HasIPID)
	eqNum("ip.len", uint64(f.IPLen), f.IPLen > 0)
	eqAddr("ipv6.src", f.SrcIP)
	eqAddr("ipv6.dst", f.DstIP)
	eqNum("ipv6.hlim", uint64(f.TTL), f.HasTTL)

	k := f.Key
	if typ, ok := num("icmp.type"); ok && (typ == 0 || typ == 8) {
		if k.Proto != correlate.ProtoICMP || uint64(k.Kind) != typ {
			errorf("icmp.type", k)
		}
		eqNum("icmp.seq", uint64(k.Seq), true)
		eqNum("icmp.ident", uint64(f.EchoID), f.HasEchoID)
		// tshark splits a ping's timestamp off its data: compare lengths only.
		ipLen, _ := num("ip.len")
		hdrLen, _ := num("ip.hdr_len")
		if uint64(k.Len) != min(ipLen, uint64(rf.WireLen-linkHeaderLen(rf.LinkType)))-hdrLen-8 {
			errorf("ip.len", k.Len)
		}
	}
	if typ, ok := num("icmpv6.type"); ok && (typ == 128 || typ == 129) {
		if k.Proto != correlate.ProtoICMPv6 || uint64(k.Kind) != typ {
			errorf("icmpv6.type", k)
		}
		eqNum("icmpv6.echo.sequence_number", uint64(k.Seq), true)
		eqNum("icmpv6.echo.identifier", uint64(f.EchoID), f.HasEchoID)
		eqNum("ipv6.plen", uint64(k.Len+8), true)
	}
	if hl, _ := num("tcp.hdr_len"); hl < 20 {
		if _, ok := row["tcp.seq_raw"]; ok && k.Proto == correlate.ProtoTCP {
			t.Errorf("frame %d: TCP header length %d keyed %+v", rf.Num, hl, k)
		}
	} else if _, ok := row["tcp.seq_raw"]; ok {
		if k.Proto != correlate.ProtoTCP {
			errorf("tcp.seq_raw", k)
		}
		eqNum("tcp.seq_raw", uint64(k.Seq), true)
		eqNum("tcp.ack_raw", uint64(k.Ack), true)
		if flags, _ := num("tcp.flags"); uint8(flags) != k.Kind {
			errorf("tcp.flags", k.Kind)
		}
		eqNum("tcp.srcport", uint64(f.SrcPort), f.HasPorts)
		eqNum("tcp.dstport", uint64(f.DstPort), f.HasPorts)
		eqNum("tcp.len", uint64(k.Len), true)
		if h, n, whole := hashOf("tcp.payload"); whole && (k.Hash != h || k.Len != n) && (n > 0 || k.Len == 0) {
			errorf("tcp.payload", k)
		}
	}
	if _, ok := row["udp.srcport"]; ok && !f.Fragment && row["icmp.type"] == "" {
		if k.Proto != correlate.ProtoUDP {
			errorf("udp.srcport", k)
		}
		eqNum("udp.srcport", uint64(f.SrcPort), f.HasPorts)
		eqNum("udp.dstport", uint64(f.DstPort), f.HasPorts)
	}
	// RARP (opcodes 3, 4) has no part in a pod's path and is not keyed.
	if op, ok := num("arp.opcode"); ok && op <= 2 {
		if k.Proto != correlate.ProtoARP {
			errorf("arp.opcode", k)
		}
		eqNum("arp.opcode", uint64(k.Kind), true)
		eqMAC("arp.src.hw_mac", k.MAC, true)
		eqAddr("arp.src.proto_ipv4", k.Addr1)
		eqAddr("arp.dst.proto_ipv4", k.Addr2)
	}
}

// TestDecodeKeyStableAcrossPoints takes real Ethernet frames and shows them
// as other capture points would record them: as SLL2 (`tcpdump -i any`)
// and SLL without Ethernet padding, as raw IP, and cut by a snaplen just
// past the first hashBytes payload bytes. The correlator matches frames
// across points by key, so every variant must keep the key of the original.
func TestDecodeKeyStableAcrossPoints(t *testing.T) {
	dir := testenv.Corpus(t)
	d := New()
	for _, name := range []string{"zeek/raw_packets.pcap", "zeek/icmp__5-pings.pcap", "filesamples/simple_http.pcap",
		"gopacket/pcap_test_dns.pcap", "zeek/ipv4__fragmented-1.pcap"} {
		keyed := 0
		for _, rf := range readCapture(t, filepath.Join(dir, name)) {
			var orig correlate.Frame
			if rf.LinkType != capture.LinkTypeEthernet || !d.Decode(&rf, &orig) || orig.Encap.Type != correlate.EncapNone {
				continue
			}
			keyed++
			etype := layers.EthernetType(binary.BigEndian.Uint16(rf.Data[12:14]))
			l3 := rf.Data[14:]
			if orig.IPLen > 0 && orig.IPLen < len(l3) {
				l3 = l3[:orig.IPLen] // what a point before the Ethernet padding sees
			}
			variants := map[string]*capture.RawFrame{
				"sll2": {Data: cat(sll2(4, rf.Data[6:12], etype), l3), LinkType: capture.LinkTypeSLL2},
				"sll":  {Data: cat(sll(0, rf.Data[6:12], etype), l3), LinkType: capture.LinkTypeLinuxSLL},
			}
			if orig.IPLen > 0 {
				variants["raw"] = &capture.RawFrame{Data: l3, LinkType: capture.LinkTypeRaw}
				// 14 + IP header + L4 header (at most 60 + 60) + hashBytes.
				if snap := 14 + 120 + hashBytes; snap < len(rf.Data) {
					variants["snaplen"] = &capture.RawFrame{Data: rf.Data[:snap], WireLen: rf.WireLen, LinkType: capture.LinkTypeEthernet}
				}
			}
			for v, vf := range variants {
				if vf.WireLen == 0 {
					vf.WireLen = len(vf.Data)
				}
				var got correlate.Frame
				if !d.Decode(vf, &got) || got.Key != orig.Key || got.SrcIP != orig.SrcIP || got.TTL != orig.TTL {
					t.Errorf("%s frame %d as %s: key %+v, want %+v", name, rf.Num, v, got.Key, orig.Key)
				}
			}
		}
		if keyed == 0 {
			t.Errorf("%s: no Ethernet frame keyed", name)
		}
	}
}

// compareOuter checks the tunnel Decode found, and the outer headers it
// kept, against tshark's dissection: the same tunnel type, and each outer
// field tshark shows equal to Encap's.
func compareOuter(t *testing.T, rf *capture.RawFrame, f *correlate.Frame, row tsRow) {
	t.Helper()
	e := &f.Encap
	if e.Type != row.encap {
		t.Errorf("frame %d: encap %v, tshark %v (%s)", rf.Num, e.Type, row.encap, row.inner["frame.protocols"])
		return
	}
	if e.Type == correlate.EncapNone {
		return
	}
	o := row.outer
	eq := func(field, got string, has bool) {
		t.Helper()
		v, ok := o[field]
		if ok != has || ok && v != got {
			t.Errorf("frame %d: outer %s: tshark %q, decoded %q (has %v)", rf.Num, field, v, got, has)
		}
	}
	eqNum := func(field string, got uint64) {
		t.Helper()
		v, ok := o[field]
		if !ok {
			v, ok = row.inner[field] // tunnel header fields
		}
		n, err := strconv.ParseUint(v, 0, 64)
		if !ok || err != nil || n != got {
			t.Errorf("frame %d: %s: tshark %q, decoded %d", rf.Num, field, v, got)
		}
	}
	if rf.LinkType == capture.LinkTypeEthernet {
		eq("eth.src", e.SrcMAC.String(), e.HasSrcMAC)
		eq("eth.dst", e.DstMAC.String(), e.HasDstMAC)
	}
	if e.SrcIP.Is4() {
		eq("ip.src", e.SrcIP.String(), true)
		eq("ip.dst", e.DstIP.String(), true)
		eqNum("ip.ttl", uint64(e.TTL))
	} else {
		eq("ipv6.src", e.SrcIP.String(), true)
		eq("ipv6.dst", e.DstIP.String(), true)
		eqNum("ipv6.hlim", uint64(e.TTL))
	}
	if _, udp := o["udp.srcport"]; udp {
		eqNum("udp.srcport", uint64(e.SrcPort))
		eqNum("udp.dstport", uint64(e.DstPort))
	} else if e.SrcPort != 0 || e.DstPort != 0 {
		t.Errorf("frame %d: outer ports %d > %d without UDP", rf.Num, e.SrcPort, e.DstPort)
	}
	vni := map[correlate.EncapType]string{correlate.EncapVXLAN: "vxlan.vni", correlate.EncapGENEVE: "geneve.vni", correlate.EncapGRE: "gre.key"}[e.Type]
	_, tsHas := row.inner[vni]
	if vni != "" && tsHas != e.HasVNI || vni == "" && e.HasVNI {
		t.Errorf("frame %d: VNI %d (has %v), tshark %s=%q", rf.Num, e.VNI, e.HasVNI, vni, row.inner[vni])
	} else if e.HasVNI {
		eqNum(vni, uint64(e.VNI))
	}
}

// TestDecodeTwoNodeCaptures checks the decoder on the golden two-node
// captures (testdata/gen/make-2node.sh) against tshark, file by file, and
// that the tunnel of each scenario is found on the wire and only there:
// every echo at both nodes' eth0 in the scenario's encapsulation (ESP:
// marked, keyed as the outer packet), none anywhere else.
func TestDecodeTwoNodeCaptures(t *testing.T) {
	for sc, want := range map[string]correlate.EncapType{
		"2node-vxlan": correlate.EncapVXLAN, "2node-ipip": correlate.EncapIPIP, "2node-udp": correlate.EncapUDP,
		"2node-geneve": correlate.EncapGENEVE, "2node-hostgw": correlate.EncapNone, "2node-esp": correlate.EncapESP,
	} {
		dir := testenv.Captures(t, sc)
		files, err := filepath.Glob(filepath.Join(dir, "*.cap"))
		if err != nil || len(files) < 8 {
			t.Fatalf("%s: %d files: %v", sc, len(files), err)
		}
		for _, path := range files {
			point := strings.TrimSuffix(filepath.Base(path), ".cap")
			t.Run(sc+"/"+point, func(t *testing.T) {
				t.Parallel()
				d := New()
				frames := readCapture(t, path)
				rows := tshark(t, path)
				if len(rows) != len(frames) {
					t.Fatalf("tshark has %d frames, pcapgo %d", len(rows), len(frames))
				}
				wire := point == "nodeA-eth0" || point == "nodeB-eth0"
				echoes, tunnelled := 0, 0
				for i := range frames {
					var f correlate.Frame
					d.Decode(&frames[i], &f)
					compareTshark(t, &frames[i], &f, rows[i].inner)
					compareOuter(t, &frames[i], &f, rows[i])
					if f.Encap.Type != correlate.EncapNone {
						tunnelled++
					}
					isEcho := f.Key.Proto == correlate.ProtoICMP && (f.Key.Kind == 0 || f.Key.Kind == 8) &&
						(f.SrcIP.String() == "10.244.1.2" || f.DstIP.String() == "10.244.1.2")
					if want == correlate.EncapESP && wire && f.Encap.Type == want && f.Key.Proto == correlate.ProtoIP && f.Key.Kind == 50 {
						isEcho = true // 5 requests and 5 replies, encrypted
					}
					if isEcho {
						echoes++
						if wire && f.Encap.Type != want || !wire && f.Encap.Type != correlate.EncapNone {
							t.Errorf("frame %d: echo in %v", f.Num, f.Encap.Type)
						}
					}
				}
				if echoes != 10 {
					t.Errorf("%d pod1 ↔ pod2 echoes, want 5 requests and 5 replies", echoes)
				}
				if !wire && tunnelled > 0 {
					t.Errorf("%d tunnelled frames off the wire", tunnelled)
				}
			})
		}
	}
}

// linkHeaderLen is the link header before the IP header (Ethernet without
// VLAN tags).
func linkHeaderLen(lt capture.LinkType) int {
	switch lt {
	case capture.LinkTypeEthernet:
		return 14
	case capture.LinkTypeLinuxSLL:
		return 16
	case capture.LinkTypeSLL2:
		return 20
	case capture.LinkTypeNull, capture.LinkTypeLoop:
		return 4
	}
	return 0
}
