package filter

import (
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"
	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/internal/testenv"
)

// The differential test: for every frame of every capture, the filter
// must keep exactly the frames tcpdump keeps. Frames are pooled by link
// type into one file per link type (the filter's answer depends only on a
// frame's bytes, length and link type), so each expression costs one
// tcpdump run per link type. For a VXLAN frame the filter must answer
// "tcpdump keeps the frame, or tcpdump keeps the frame inside it".

// commonExprs run on every capture.
var commonExprs = []string{
	"ip", "ip6", "arp", "rarp", "tcp", "udp", "icmp", "icmp6", "sctp", "igmp", "pim", "esp", "ah",
	"tcp or udp", "not ip", "not tcp and not udp", "ip and not icmp", "icmp or icmp6 or arp",
	"port 53", "port 80 or 443", "udp port 53", "tcp port 80", "src port 80", "dst port 80",
	"src or dst port 22", "src and dst port 53", "port 53 or 80 and tcp", "tcp port 80 or 443 or 8080",
	"portrange 1-1023", "tcp portrange 1024-65535", "udp dst portrange 4000-9000", "portrange 9000-4000",
	"port 4789 or 8472", "udp port 4789", "port domain", "tcp port http", "port ssh or https",
	"greater 100", "less 64", "greater 1000 and ip", "less 60 or greater 1500", "not greater 200",
	"vlan", "vlan and ip", "vlan and vlan", "vlan and ip6", "not vlan", "vlan or arp", "ip or vlan",
	"vlan and vlan and ip", "vlan and tcp", "vlan and not arp", "ether broadcast", "ether multicast",
	"broadcast or multicast", "ip multicast", "ip6 multicast", "ip broadcast", "multicast and not ip6",
	"proto 17", "ip proto 1", "ip6 proto 58", "ip6 proto 17", "ip6 proto 44", "ip6 proto 0",
	"ip proto \\tcp", "proto \\udp or proto 47", "ether proto 0x0806", "ether proto \\ip6",
	"ether proto 0x8100", "ether proto 0x88a8",
	"net 10.0.0.0/8", "net 192.168", "net 172.16.0.0 mask 255.240.0.0", "src net 10", "dst net 224.0.0.0/4",
	"net 0.0.0.0/0", "host 10.1", "net fe80::/10", "ip6 net ff00::/8", "host ::1", "net ::/0",
	"(tcp or udp) and not port 53", "not (port 22 or port 80)", "tcp and (port 80 or 443) and not vlan",
	"not not ip", "ip and (not udp or port 53)", "arp or (ip and not tcp) or ip6 and udp",
	"ether src 00:00:00:00:00:00 or ether dst ff:ff:ff:ff:ff:ff",
}

// origin says where a pooled frame came from.
type origin struct {
	source, file string
	num          int // 1-based frame number in the file, as tcpdump counts
}

// group pools the frames of one link type.
type group struct {
	link    layers.LinkType
	frames  []rawFrame
	origins []origin
	outer   []Fields
	inner   []*Fields
	// The inner frames of the tunnelled ones, and the index of the frame
	// each belongs to.
	innerFrames []rawFrame
	innerOf     []int
	files       map[string]bool
	path        string
	innerPath   string
}

type source struct {
	name  string
	files []string
}

// corpusDir is the shared public capture corpus, read in place.
func corpusDir(t *testing.T) string { return testenv.Corpus(t) }

func isCapture(name string) bool {
	for _, ext := range []string{".pcap", ".pcapng", ".cap", ".cap.gz", ".pcap.gz"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

func captureSources(t *testing.T) []source {
	var srcs []source
	add := func(name, root string) {
		var files []string
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && isCapture(d.Name()) {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("list %s captures: %v", name, err)
		}
		if len(files) == 0 {
			t.Fatalf("no %s captures under %s", name, root)
		}
		sort.Strings(files)
		srcs = append(srcs, source{name, files})
	}
	add("repo", "../../testdata/captures")
	add("own", "testdata")
	if dir := corpusDir(t); dir != "" {
		add("corpus", dir)
	}
	return srcs
}

// loadGroups reads every capture through tcpdump (so the frame list is
// tcpdump's own) and pools the frames by link type.
func loadGroups(t *testing.T, tcpdump string, srcs []source, tmp string) ([]*group, map[string][2]int) {
	groups := map[layers.LinkType]*group{}
	stats := map[string][2]int{} // source -> files, frames
	for _, src := range srcs {
		for _, path := range src.files {
			rel := path
			if strings.HasSuffix(path, ".gz") {
				var err error
				if path, err = gunzipTo(path, tmp); err != nil {
					t.Fatalf("%v", err)
				}
			}
			link, frames, err := tcpdumpFrames(tcpdump, path, "")
			if err != nil {
				continue // tcpdump cannot read it: nothing to compare
			}
			if _, ok := linkFields(&Fields{}, capture.LinkType(link), nil); !ok {
				continue // a link type the product does not decode
			}
			g := groups[link]
			if g == nil {
				g = &group{link: link, files: map[string]bool{}}
				groups[link] = g
			}
			g.files[src.name+":"+rel] = true
			for i, fr := range frames {
				outer, inner, innerOff := extract(link, fr.data, fr.wire)
				if inner != nil {
					g.innerFrames = append(g.innerFrames, rawFrame{data: fr.data[innerOff:], wire: inner.WireLen})
					g.innerOf = append(g.innerOf, len(g.frames))
				}
				g.frames = append(g.frames, fr)
				g.origins = append(g.origins, origin{src.name, rel, i + 1})
				g.outer = append(g.outer, outer)
				g.inner = append(g.inner, inner)
			}
			s := stats[src.name]
			stats[src.name] = [2]int{s[0] + 1, s[1] + len(frames)}
		}
	}
	var out []*group
	for link, g := range groups {
		g.path = filepath.Join(tmp, fmt.Sprintf("ptf-link%d.pcap", link))
		if err := writePcap(g.path, link, g.frames); err != nil {
			t.Fatalf("write pooled capture: %v", err)
		}
		if len(g.innerFrames) > 0 {
			g.innerPath = filepath.Join(tmp, fmt.Sprintf("ptf-link%d-inner.pcap", link))
			if err := writePcap(g.innerPath, layers.LinkTypeEthernet, g.innerFrames); err != nil {
				t.Fatalf("write inner capture: %v", err)
			}
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *group) int { return int(a.link) - int(b.link) })
	return out, stats
}

// derivedExprs builds expressions on the addresses, ports and VLANs the
// group's frames carry, so that host/net/port/vlan primitives are tested
// where they match.
func derivedExprs(g *group) []string {
	var v4, v6 []netip.Addr
	var macs [][6]byte
	var ports []uint16
	var vlans []uint16
	addAddr := func(a netip.Addr) {
		switch {
		case !a.IsValid():
		case a.Is4() && len(v4) < 6 && !slices.Contains(v4, a):
			v4 = append(v4, a)
		case a.Is6() && len(v6) < 4 && !slices.Contains(v6, a):
			v6 = append(v6, a)
		}
	}
	views := slices.Clone(g.outer)
	for _, in := range g.inner {
		if in != nil {
			views = append(views, *in)
		}
	}
	for _, f := range views {
		addAddr(f.Src)
		addAddr(f.Dst)
		addAddr(f.ARPSender)
		if f.HasMAC && len(macs) < 4 && !slices.Contains(macs, f.SrcMAC) {
			macs = append(macs, f.SrcMAC)
		}
		if (f.Proto == 6 || f.Proto == 17) && f.Have&HaveDstPort != 0 && !f.NonFirstFragment && len(ports) < 6 {
			for _, p := range []uint16{f.SrcPort, f.DstPort} {
				if !slices.Contains(ports, p) && len(ports) < 6 {
					ports = append(ports, p)
				}
			}
		}
		for _, v := range f.VLANs[:f.NumVLAN] {
			if len(vlans) < 4 && !slices.Contains(vlans, v.ID) {
				vlans = append(vlans, v.ID)
			}
		}
	}
	var ex []string
	add := func(format string, args ...any) { ex = append(ex, fmt.Sprintf(format, args...)) }
	for i, a := range v4 {
		b := v4[(i+1)%len(v4)]
		add("host %s", a)
		add("src host %s", a)
		add("dst %s", a)
		add("ip host %s and not icmp", a)
		add("arp host %s or rarp src %s", a, a)
		add("net %s", netip.PrefixFrom(a, 16).Masked())
		add("src net %s and dst net %s", netip.PrefixFrom(a, 24).Masked(), netip.PrefixFrom(b, 8).Masked())
		add("host %s or %s", a, b)
		add("src %s and dst %s", a, b)
		add("not host %s", a)
		add("host %s and (tcp or udp)", a)
	}
	for _, a := range v6 {
		add("host %s", a)
		add("ip6 src %s", a)
		add("net %s", netip.PrefixFrom(a, 64).Masked())
		add("dst host %s or icmp6", a)
	}
	for _, m := range macs {
		mac := net.HardwareAddr(m[:])
		add("ether host %s", mac)
		add("ether src %s", mac)
		add("ether dst %s or ether broadcast", mac)
		add("ether src and dst %s", mac)
		add("not ether src %s and ip", mac)
	}
	for _, p := range ports {
		add("port %d", p)
		add("tcp src port %d", p)
		add("udp port %d", p)
		add("portrange %d-%d", max(int(p), 5)-5, min(int(p)+5, 65535))
		add("port %d and not tcp", p)
		add("port %d or 53", p)
		if len(v4) > 0 {
			add("tcp and host %s and port %d", v4[0], p)
		}
	}
	for _, v := range vlans {
		add("vlan %d", v)
		add("vlan %d and ip", v)
		add("vlan and vlan %d", v)
		add("vlan %d or ip", v)
		add("not vlan %d", v)
		if len(v4) > 0 {
			add("vlan %d and host %s", v, v4[0])
		}
	}
	return ex
}

func TestTcpdumpDifferential(t *testing.T) {
	tcpdump := needTcpdump(t)
	srcs := captureSources(t)
	groups, stats := loadGroups(t, tcpdump, srcs, t.TempDir())
	if len(groups) == 0 {
		t.Fatal("no readable capture")
	}
	for _, s := range srcs {
		t.Logf("source %-6s: %d of %d files read, %d frames", s.name, stats[s.name][0], len(s.files), stats[s.name][1])
	}
	mismatches, payloadAsType := 0, 0
	byExpr := map[string]int{}
	for _, g := range groups {
		exprs := append(slices.Clone(commonExprs), derivedExprs(g)...)
		var ran, refused, kept, innerKept int
		for _, expr := range exprs {
			f, err := Compile(expr)
			if err != nil {
				t.Errorf("Compile(%q): %v", expr, err)
				continue
			}
			_, outKept, err := tcpdumpFrames(tcpdump, g.path, expr)
			if err != nil {
				refused++ // tcpdump refuses it on this link type (ether on raw IP...)
				continue
			}
			want, err := keptIndexes(g.frames, outKept)
			if err != nil {
				t.Fatalf("link %d, %q: %v", g.link, expr, err)
			}
			wantInner := make([]bool, len(g.frames))
			if g.innerPath != "" {
				_, inKept, err := tcpdumpFrames(tcpdump, g.innerPath, expr)
				if err != nil {
					t.Fatalf("tcpdump on inner frames: %v", err)
				}
				in, err := keptIndexes(g.innerFrames, inKept)
				if err != nil {
					t.Fatalf("link %d inner, %q: %v", g.link, expr, err)
				}
				for k, ok := range in {
					wantInner[g.innerOf[k]] = ok
					if ok {
						innerKept++
					}
				}
			}
			ran++
			for i := range g.frames {
				w := want[i] || wantInner[i]
				if want[i] {
					kept++
				}
				if got := f.Match(&g.outer[i], g.inner[i]); got != w {
					d := f.typeDepth()
					if g.outer[i].NumVLAN < d || g.inner[i] != nil && g.inner[i].NumVLAN < d {
						// The documented deviation: tcpdump reads payload
						// bytes as the type field of a missing VLAN tag.
						payloadAsType++
						continue
					}
					mismatches++
					byExpr[expr]++
					if byExpr[expr] == 1 {
						o := g.origins[i]
						t.Errorf("%s %s frame %d, %q: filter %v, tcpdump %v (inner %v)\n\touter %+v\n\tinner %+v",
							o.source, o.file, o.num, expr, got, want[i], wantInner[i], g.outer[i], g.inner[i])
					}
				}
			}
		}
		t.Logf("link %-4d: %3d files, %5d frames (%d tunnelled) x %3d expressions (%d refused by tcpdump on this link): %d frame answers, tcpdump kept %d (+%d inner)",
			g.link, len(g.files), len(g.frames), len(g.innerFrames), ran, refused, ran*len(g.frames), kept, innerKept)
	}
	t.Logf("%d answers where tcpdump read payload bytes as the type field of a VLAN tag the frame lacks (filter: no match, by design)", payloadAsType)
	if mismatches > 0 {
		t.Errorf("%d frame answers differ from tcpdump: %v", mismatches, byExpr)
	}
}
