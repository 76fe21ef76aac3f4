package afpacket

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/probe"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/internal/testenv"
	"github.com/pathtrace/pathtrace/netns"
)

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

var nsSeq int

// newNetns creates /run/netns/ptlive-<pid>-<name>-<n> and removes it when the
// test ends (also on failure).
func newNetns(t *testing.T, name string) (string, *netns.Handle) {
	t.Helper()
	nsSeq++
	full := fmt.Sprintf("ptlive-%d-%s-%d", os.Getpid(), name, nsSeq)
	sh(t, "ip", "netns", "add", full)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", full).Run() })
	h, err := netns.Open("/run/netns/" + full)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	sh(t, "ip", "-n", full, "link", "set", "lo", "up")
	return full, h
}

// topo is two "pods" on a bridge in a "node" namespace, like a Flannel node:
// pod1 eth0 -> veth-p1 -> ptbr0 -> veth-p2 -> pod2 eth0.
type topo struct {
	pod1, pod2, node         string
	hPod1, hPod2, hNode      *netns.Handle
	ip1, ip2, ipBr, ipOther  netip.Addr
	ip1v6, ip2v6             netip.Addr
	points                   []Point
	wantReqDir, wantReplyDir []correlate.LinkDir
}

func newTopo(t *testing.T) *topo {
	x := os.Getpid()%200 + 20
	tp := &topo{
		ip1: netip.MustParseAddr(fmt.Sprintf("10.251.%d.2", x)), ip2: netip.MustParseAddr(fmt.Sprintf("10.251.%d.3", x)),
		ipBr: netip.MustParseAddr(fmt.Sprintf("10.251.%d.1", x)), ipOther: netip.MustParseAddr(fmt.Sprintf("10.251.%d.4", x)),
		ip1v6: netip.MustParseAddr(fmt.Sprintf("fd00:251:%d::2", x)), ip2v6: netip.MustParseAddr(fmt.Sprintf("fd00:251:%d::3", x)),
	}
	tp.pod1, tp.hPod1 = newNetns(t, "pod1")
	tp.pod2, tp.hPod2 = newNetns(t, "pod2")
	tp.node, tp.hNode = newNetns(t, "node")
	n := tp.node
	sh(t, "ip", "-n", n, "link", "add", "ptbr0", "type", "bridge")
	sh(t, "ip", "-n", n, "addr", "add", tp.ipBr.String()+"/24", "dev", "ptbr0")
	sh(t, "ip", "-n", n, "link", "set", "ptbr0", "up")
	for i, pod := range []string{tp.pod1, tp.pod2} {
		veth := fmt.Sprintf("veth-p%d", i+1)
		ip4, ip6 := tp.ip1, tp.ip1v6
		if i == 1 {
			ip4, ip6 = tp.ip2, tp.ip2v6
		}
		sh(t, "ip", "-n", n, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", pod)
		sh(t, "ip", "-n", n, "link", "set", veth, "master", "ptbr0")
		sh(t, "bridge", "-n", n, "link", "set", "dev", veth, "hairpin", "on")
		sh(t, "ip", "-n", n, "link", "set", veth, "up")
		sh(t, "ip", "-n", pod, "addr", "add", ip4.String()+"/24", "dev", "eth0")
		sh(t, "ip", "-n", pod, "addr", "add", ip6.String()+"/64", "dev", "eth0", "nodad")
		sh(t, "ip", "-n", pod, "link", "set", "eth0", "up")
	}
	// An address the filter must not let through (traffic node -> .4).
	sh(t, "ip", "-n", tp.pod2, "addr", "add", tp.ipOther.String()+"/24", "dev", "eth0")
	tp.points = []Point{
		{Name: "pod1", NetnsLabel: "pod1", Netns: tp.hPod1, Ifname: "eth0"},
		{Name: "pod1-veth", NetnsLabel: "node", Netns: tp.hNode, Ifname: "veth-p1"},
		{Name: "ptbr0", NetnsLabel: "node", Netns: tp.hNode, Ifname: "ptbr0", Promisc: true},
		{Name: "pod2-veth", NetnsLabel: "node", Netns: tp.hNode, Ifname: "veth-p2"},
		{Name: "pod2", NetnsLabel: "pod2", Netns: tp.hPod2, Ifname: "eth0"},
	}
	in, out := correlate.DirIn, correlate.DirOut
	tp.wantReqDir = []correlate.LinkDir{out, in, in, out, in}
	tp.wantReplyDir = []correlate.LinkDir{in, out, in, in, out}
	return tp
}

// promiscuity is the kernel's promiscuity counter of ifname inside ns, and
// whether IFF_PROMISC shows in the flags netlink reports.
func promiscuity(t *testing.T, h *netns.Handle, ifname string) (int, bool) {
	t.Helper()
	nl, err := netlink.NewHandleAt(vnetns.NsHandle(h.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	l, err := nl.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Promisc, l.Attrs().RawFlags&unix.IFF_PROMISC != 0
}

// startTcpdump runs tcpdump in ns until the test stops it, and returns once
// it is listening.
func startTcpdump(t *testing.T, ns, ifname, file string) (stop func()) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "tcpdump", "-i", ifname, "-n", "-Z", "root", "--immediate-mode", "-B", "16384",
		"--time-stamp-precision=nano", "-U", "-w", file, "icmp or icmp6 or arp")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tcpdump: %v", err)
	}
	listening := make(chan struct{})
	var tail bytes.Buffer
	var tailMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			tailMu.Lock()
			tail.WriteString(sc.Text() + "\n")
			tailMu.Unlock()
			if !once && strings.Contains(sc.Text(), "listening on") {
				once = true
				close(listening)
			}
		}
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(os.Interrupt)
		err := cmd.Wait()
		tailMu.Lock()
		t.Logf("tcpdump: %v\n%s", err, tail.String())
		tailMu.Unlock()
	}
	t.Cleanup(stop)
	select {
	case <-listening:
	case <-time.After(30 * time.Second): // a loaded machine starts tcpdump slowly
		tailMu.Lock()
		defer tailMu.Unlock()
		t.Fatalf("tcpdump did not start listening:\n%s", tail.String())
	}
	return stop
}

// probeSeen is one probe frame found in a capture.
type probeSeen struct {
	reply bool
	seq   uint16
	v6    bool
	time  int64
	dir   correlate.LinkDir
}

func decodeProbe(tag []byte, data []byte) (probeSeen, bool) {
	p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.NoCopy)
	if l, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
		seq, _, ok := probe.ParsePayload(tag, l.Payload)
		typ := l.TypeCode.Type()
		return probeSeen{reply: typ == 0, seq: seq}, ok && (typ == 0 || typ == 8)
	}
	if l, ok := p.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo); ok {
		seq, _, ok := probe.ParsePayload(tag, l.Payload)
		typ := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6).TypeCode.Type()
		return probeSeen{reply: typ == 129, seq: seq, v6: true}, ok
	}
	return probeSeen{}, false
}

func TestLiveTopology(t *testing.T) {
	testenv.RequireRoot(t)
	tp := newTopo(t)
	filter, err := Filter(tp.ip1, tp.ip2)
	if err != nil {
		t.Fatal(err)
	}
	dump := filepath.Join(t.TempDir(), "pod1.pcap")
	stopDump := startTcpdump(t, tp.pod1, "eth0", dump)

	if n, _ := promiscuity(t, tp.hNode, "ptbr0"); n != 0 {
		t.Fatalf("bridge promiscuity %d before capture", n)
	}
	baseline := runtime.NumGoroutine()

	var mu sync.Mutex
	frames := make([][]capture.RawFrame, len(tp.points))
	armed := make(chan time.Duration, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		st  Stats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := Run(ctx, tp.points, Config{Filter: filter, RingBytes: 2 << 20,
			Armed: func(d time.Duration) { armed <- d }},
			funcSinks(len(tp.points), func(i int, rf capture.RawFrame) {
				mu.Lock()
				frames[i] = append(frames[i], rf)
				mu.Unlock()
			}))
		done <- result{st, err}
	}()
	var armTime time.Duration
	select {
	case armTime = <-armed:
	case r := <-done:
		t.Fatalf("Run returned before arming: %v", r.err)
	}
	t.Logf("armed %d points in %v", len(tp.points), armTime)
	// Arming is ~20 ms on an idle machine; the bound only catches a
	// regression by an order of magnitude (CI runs packages in parallel
	// on two cores).
	if armTime > 2*time.Second {
		t.Errorf("arming took %v, want < 2s", armTime)
	}
	promiscDuring, flagDuring := promiscuity(t, tp.hNode, "ptbr0")

	tag := []byte(fmt.Sprintf("ptlive-%d", os.Getpid()))
	pr, err := probe.New(tp.hPod1, tp.ip2, 0x4242, tag)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	const n4 = 20
	sent := map[uint16]time.Time{}
	for seq := uint16(65530); len(sent) < n4; seq++ { // wraps: seq is 16 bits
		at, err := pr.Send(seq)
		if err != nil {
			t.Fatal(err)
		}
		sent[seq] = at
		r, err := pr.Recv(time.Now().Add(time.Second))
		if err != nil {
			t.Fatalf("no reply to seq %d: %v", seq, err)
		}
		if r.Seq != seq || r.From != tp.ip2 || r.SentAt != at.UnixNano() {
			t.Fatalf("reply %+v does not match seq %d sent %v", r, seq, at)
		}
	}
	// Traffic the filter must reject: UDP between the pods, and ICMP/ARP
	// between the node and an address that is neither a nor b.
	err = netns.Do(tp.hPod1, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for i := 0; i < 5; i++ {
			if err := unix.Sendto(fd, []byte("not icmp"), 0, &unix.SockaddrInet4{Port: 9, Addr: tp.ip2.As4()}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send udp: %v", err)
	}
	other, err := probe.New(tp.hNode, tp.ipOther, 0x4343, tag)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for seq := uint16(1); seq <= 3; seq++ {
		if _, err := other.Send(seq); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Recv(time.Now().Add(time.Second)); err != nil {
			t.Fatalf("node -> other address: %v", err)
		}
	}
	// IPv6 probes: outside the v4 filter, so they must not show up either.
	pr6, err := probe.New(tp.hPod1, tp.ip2v6, 0x4242, tag)
	if err != nil {
		t.Fatal(err)
	}
	defer pr6.Close()
	if _, err := pr6.Send(1); err != nil {
		t.Fatal(err)
	}
	if r, err := pr6.Recv(time.Now().Add(2 * time.Second)); err != nil || r.Seq != 1 || r.From != tp.ip2v6 {
		t.Fatalf("ICMPv6 probe: reply %+v, %v", r, err)
	}

	time.Sleep(20 * time.Millisecond)
	cancel()
	var res result
	select {
	case res = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	// tcpdump writes what it has read when stopped, not what is still in its
	// ring: let it catch up (its file stops growing) first.
	for last, stable, end := int64(-1), 0, time.Now().Add(3*time.Second); stable < 3 && time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
		fi, err := os.Stat(dump)
		if err == nil && fi.Size() == last {
			stable++
		} else if err == nil {
			last, stable = fi.Size(), 0
		}
	}
	stopDump()

	for i, ps := range res.st.Points {
		t.Logf("%-10s frames=%d kernel packets=%d drops=%d err=%v", ps.Name, ps.Frames, ps.Packets, ps.Drops, ps.Err)
		if ps.Err != nil || ps.Drops != 0 || ps.Packets != ps.Frames || int(ps.Frames) != len(frames[i]) {
			t.Errorf("%s: stats %+v, %d frames delivered", ps.Name, ps, len(frames[i]))
		}
	}

	// Every probe and reply at every point, with the right direction, along
	// the path in time order, all within a few ms of the send.
	seen := make([]map[[2]int]probeSeen, len(tp.points))
	for i, fs := range frames {
		seen[i] = map[[2]int]probeSeen{}
		for j, rf := range fs {
			if rf.LinkType != capture.LinkTypeEthernet || rf.Num != j+1 {
				t.Errorf("%s frame %d: link type %d num %d", tp.points[i].Name, j, rf.LinkType, rf.Num)
			}
			pkt := gopacket.NewPacket(rf.Data, layers.LayerTypeEthernet, gopacket.NoCopy)
			if ip := pkt.Layer(layers.LayerTypeIPv4); ip != nil {
				ip := ip.(*layers.IPv4)
				if ip.Protocol != layers.IPProtocolICMPv4 || ip.SrcIP.Equal(tp.ipOther.AsSlice()) || ip.DstIP.Equal(tp.ipOther.AsSlice()) {
					t.Errorf("%s: filter let through %v -> %v proto %v", tp.points[i].Name, ip.SrcIP, ip.DstIP, ip.Protocol)
				}
			} else if arp := pkt.Layer(layers.LayerTypeARP); arp != nil {
				a := arp.(*layers.ARP)
				ok := func(b []byte) bool {
					x, _ := netip.AddrFromSlice(b)
					return x == tp.ip1 || x == tp.ip2
				}
				if !ok(a.SourceProtAddress) && !ok(a.DstProtAddress) {
					t.Errorf("%s: filter let through ARP %v", tp.points[i].Name, a)
				}
			} else {
				t.Errorf("%s: filter let through %v", tp.points[i].Name, pkt)
			}
			p, ok := decodeProbe(tag, rf.Data)
			if !ok {
				continue
			}
			p.time, p.dir = rf.Time, rf.Dir
			r := 0
			if p.reply {
				r = 1
			}
			seen[i][[2]int{int(p.seq), r}] = p
		}
	}
	var maxSpan time.Duration
	for seq, at := range sent {
		for r := 0; r < 2; r++ {
			var prev int64
			order := []int{0, 1, 2, 3, 4}
			want := tp.wantReqDir
			if r == 1 {
				order, want = []int{4, 3, 2, 1, 0}, tp.wantReplyDir
			}
			first := int64(0)
			for _, i := range order {
				p, ok := seen[i][[2]int{int(seq), r}]
				if !ok {
					t.Errorf("seq %d reply=%d not seen at %s", seq, r, tp.points[i].Name)
					continue
				}
				if p.dir != want[i] {
					t.Errorf("seq %d reply=%d at %s: dir %v, want %v", seq, r, tp.points[i].Name, p.dir, want[i])
				}
				if prev != 0 && p.time < prev {
					t.Errorf("seq %d reply=%d at %s: stamp %d before previous hop's %d", seq, r, tp.points[i].Name, p.time, prev)
				}
				if first == 0 {
					first = p.time
				}
				prev = p.time
				// The stamp is the kernel's, on the send's own clock: within
				// the send's scheduling delay (generous: a loaded machine).
				if d := time.Duration(p.time - at.UnixNano()); d < -time.Millisecond || d > 500*time.Millisecond {
					t.Errorf("seq %d at %s: stamp %v after send", seq, tp.points[i].Name, d)
				}
			}
			if span := time.Duration(prev - first); span > maxSpan {
				maxSpan = span
			}
		}
	}
	t.Logf("largest first-to-last point span of one frame: %v", maxSpan)

	// Promiscuity: held by the membership while capturing, gone after Close.
	promiscAfter, flagAfter := promiscuity(t, tp.hNode, "ptbr0")
	t.Logf("ptbr0 promiscuity during=%d (IFF_PROMISC in netlink flags: %v) after=%d (%v)", promiscDuring, flagDuring, promiscAfter, flagAfter)
	if promiscDuring != 1 || promiscAfter != 0 {
		t.Errorf("ptbr0 promiscuity during=%d after=%d, want 1 and 0", promiscDuring, promiscAfter)
	}

	// Goroutines back to baseline.
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > baseline && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > baseline {
		t.Errorf("%d goroutines after Run, %d before", g, baseline)
	}

	compareTcpdump(t, dump, frames[0])
}

// compareTcpdump checks that every ICMP frame tcpdump saw on pod1 eth0 was
// also captured live, byte for byte, with a stamp within 10 µs.
func compareTcpdump(t *testing.T, file string, live []capture.RawFrame) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	byData := map[string]capture.RawFrame{}
	liveICMP := 0
	for _, rf := range live {
		byData[string(rf.Data)] = rf
		if gopacket.NewPacket(rf.Data, layers.LayerTypeEthernet, gopacket.NoCopy).Layer(layers.LayerTypeICMPv4) != nil {
			liveICMP++
		}
	}
	var n int
	var worst time.Duration
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read tcpdump capture: %v", err)
		}
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.NoCopy)
		ip, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ok || ip.Protocol != layers.IPProtocolICMPv4 || pkt.Layer(layers.LayerTypeICMPv4) == nil {
			continue
		}
		lf, ok := byData[string(data)]
		if !ok {
			t.Errorf("tcpdump frame at %v not captured live", ci.Timestamp)
			continue
		}
		d := time.Duration(lf.Time - ci.Timestamp.UnixNano())
		if d < 0 {
			d = -d
		}
		if d > worst {
			worst = d
		}
		if d > 10*time.Microsecond {
			t.Errorf("stamp differs from tcpdump's by %v", d)
		}
		n++
	}
	t.Logf("tcpdump comparison: %d ICMP frames (%d live), worst stamp difference %v", n, liveICMP, worst)
	if n == 0 || n != liveICMP {
		t.Errorf("tcpdump captured %d ICMP frames, live capture %d", n, liveICMP)
	}
}
