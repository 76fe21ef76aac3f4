package decode

import (
	"bufio"
	"bytes"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/pathtrace/pathtrace/correlate"
)

// tshark's dissection of a capture, read the way the decoder reads frames:
// the reference of TestDecodeCapturesMatchTshark.

// tsharkFields are compared with what Decode says.
var tsharkFields = []string{
	"frame.number", "frame.protocols", "eth.src", "eth.dst", "sll.src.eth", "ip.src", "ip.dst", "ip.ttl", "ip.id", "ip.len",
	"ipv6.src", "ipv6.dst", "ipv6.hlim", "icmp.type", "icmp.seq", "icmp.ident",
	"icmpv6.type", "icmpv6.echo.sequence_number", "icmpv6.echo.identifier",
	"tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "tcp.srcport", "tcp.dstport", "tcp.len", "tcp.payload",
	"udp.srcport", "udp.dstport", "arp.opcode", "arp.src.hw_mac", "arp.src.proto_ipv4", "arp.dst.proto_ipv4",
	"vxlan.vni", "ip.hdr_len", "ipv6.plen", "tcp.hdr_len", "geneve.vni", "gre.key",
}

// tsRow is one frame as tshark dissects it: the fields of the frame the
// decoder keys (inside a tunnel: the inner one), the outer headers of a
// tunnel, and the tunnel tshark found.
type tsRow struct {
	inner, outer map[string]string
	encap        correlate.EncapType
}

// tsharkTunnel reads frame.protocols (without "ethertype" and IPv6
// extension headers) as the decoder reads frames: the tunnel right after
// the first IP header, one level deep, and where its inner frame starts
// (-1: none, or an encrypted tunnel, whose frame is the outer packet).
func tsharkTunnel(protos []string) (correlate.EncapType, int) {
	i := slices.IndexFunc(protos, func(p string) bool { return p == "ip" || p == "ipv6" })
	if i < 0 {
		return correlate.EncapNone, -1
	}
	at := func(k int) string {
		if i+k < len(protos) {
			return protos[i+k]
		}
		return ""
	}
	innerIP := func(p string) bool { return p == "ip" || p == "ipv6" }
	innerAny := func(p string) bool { return p == "eth" || innerIP(p) }
	switch {
	case innerIP(at(1)):
		return correlate.EncapIPIP, i + 1
	case at(1) == "gre" && innerAny(at(2)):
		return correlate.EncapGRE, i + 2
	case at(1) == "udp" && at(2) == "vxlan" && at(3) == "eth":
		return correlate.EncapVXLAN, i + 3
	case at(1) == "udp" && at(2) == "geneve" && innerAny(at(3)):
		return correlate.EncapGENEVE, i + 3
	case at(1) == "udp" && innerIP(at(2)): // -d udp.port==8285,ip
		return correlate.EncapUDP, i + 2
	case at(1) == "esp", at(1) == "udp" && at(2) == "udpencap" && at(3) == "esp":
		return correlate.EncapESP, -1
	case at(1) == "udp" && at(2) == "wg":
		return correlate.EncapWireGuard, -1
	}
	return correlate.EncapNone, -1
}

// viewEnd is where the headers the decoder reads of a frame starting at lo
// end: after the first IP header's next header (or the whole frame, for
// one without IP).
func viewEnd(protos []string, lo int) int {
	for j := lo; j < len(protos); j++ {
		if protos[j] == "ip" || protos[j] == "ipv6" {
			return min(j+2, len(protos))
		}
	}
	return len(protos)
}

func tshark(t *testing.T, path string) []tsRow {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tshark not installed")
		}
		t.Skip("tshark not installed")
	}
	args := []string{"-r", path, "-n", "-d", "udp.port==8472,vxlan", "-d", "udp.port==8285,ip",
		"-T", "fields", "-E", "occurrence=a", "-E", "aggregator=;", "-E", "separator=/t"}
	for _, f := range tsharkFields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command("tshark", args...).Output()
	if err != nil {
		t.Fatalf("tshark %s: %v", path, err)
	}
	var rows []tsRow
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		vals := strings.Split(sc.Text(), "\t")
		var protos []string
		if len(vals) > 1 {
			for _, p := range strings.Split(vals[1], ":") {
				if p != "ethertype" && !strings.HasPrefix(p, "ipv6.") {
					protos = append(protos, p)
				}
			}
		}
		// A view is the headers the decoder reads of one frame: from its
		// link layer (lo) through the first IP header and the one after
		// it (hi); inside a tunnel the inner frame's, one level deep. A
		// field is its protocol's occurrence there, absent when the
		// protocol is not in the view (the header quoted by an ICMP
		// error, a tunnel the decoder does not enter).
		typ, start := tsharkTunnel(protos)
		row := tsRow{inner: map[string]string{}, outer: map[string]string{}, encap: typ}
		view := func(lo, hi int, proto string, all []string) string {
			if !slices.Contains(protos[lo:hi], proto) {
				return ""
			}
			o := 0
			for _, p := range protos[:lo] {
				if p == proto {
					o++
				}
			}
			if o < len(all) {
				return all[o]
			}
			return ""
		}
		lo, hi := 0, viewEnd(protos, 0)
		if start >= 0 {
			lo, hi = start, viewEnd(protos, start)
		}
		for i, v := range vals {
			if i >= len(tsharkFields) {
				break
			}
			field := tsharkFields[i]
			all := strings.Split(v, ";")
			proto, _, _ := strings.Cut(field, ".")
			if proto == "frame" || proto == "vxlan" || proto == "geneve" || proto == "gre" {
				row.inner[field] = all[0]
				continue
			}
			row.inner[field] = view(lo, hi, proto, all)
			switch {
			case start >= 0:
				row.outer[field] = view(0, start, proto, all)
			case typ != correlate.EncapNone: // encrypted: the frame is the outer packet
				row.outer[field] = row.inner[field]
			}
		}
		for _, m := range []map[string]string{row.inner, row.outer} {
			maps.DeleteFunc(m, func(_, v string) bool { return v == "" })
		}
		rows = append(rows, row)
	}
	return rows
}
