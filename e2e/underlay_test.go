package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/pathtrace/pathtrace/internal/testenv"
	"github.com/pathtrace/pathtrace/lab"
	"github.com/pathtrace/pathtrace/netns"
)

// A node's NIC carries everything the node sends: while pathtrace traces
// pod1 → pod2 over VXLAN, nodeA talks TCP to the outside host, the pods
// talk TCP to each other through the same tunnel, and VXLAN datagrams of
// another VNI (carrying the pods' own echo) cross between the nodes.
// tcpdump without a filter sees all of it on both eth0; pathtrace's capture
// there keeps exactly the run's echoes in the tunnel and the ARP between
// the nodes, counted frame by frame.
func TestUnderlayFilterKeepsTheRun(t *testing.T) {
	testenv.RequireRoot(t)
	needTools(t, "ip", "tcpdump", "tshark", "socat")
	l := nodesLab(t, lab.NodesConfig{Backend: lab.BackendVXLAN})
	a, b := l.Nodes[0], l.Nodes[1]
	p1, p2 := l.Pods[0], l.Pods[1]
	eth0 := []pointSpec{{a.Name + "-eth0", a.Name, "eth0"}, {b.Name + "-eth0", b.Name, "eth0"}}
	tds := startTcpdumpFilter(t, t.TempDir(), eth0, "")

	ctx, cancel := context.WithCancel(traceCtx(t))
	defer cancel()
	listen := func(ns, port string) {
		cmd := inNetns(ctx, ns, "socat", "-u", "TCP-LISTEN:"+port+",reuseaddr,fork", "OPEN:/dev/null")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	listen(l.Ext, "5001")
	listen(p2.Name, "5002")
	time.Sleep(300 * time.Millisecond)
	wait := startTrace(t, ctx, "--src", p1.Name, "--dst", p2.Name, "-c", "5", "-i", "200ms", "--timeout", "1s", "-f", "json")
	noise := []*exec.Cmd{
		talkTCP(ctx, a.Name, "192.168.56.3:5001"),
		talkTCP(ctx, p1.Name, p2.IP.String()+":5002"),
	}
	vni2 := otherVNI(t, l)
	for _, c := range noise {
		c.Wait()
	}
	r := wait()
	<-vni2
	stopTcpdump(t, tds)
	if r.Code != exitOK || r.Doc == nil {
		t.Fatalf("exit %d, want 0\n%s", r.Code, r.describe())
	}
	d := r.Doc
	id := *d.ofType("echo-request")[0].ID
	for i, td := range tds {
		pt := d.Points[slicesIndexName(d, td.point.Name)]
		got := pt.Coverage.Frames
		first, last := coverage(t, d, td.point.Name)
		c := classify(t, td.file, id, a.IP.String(), b.IP.String(), first, last)
		if got != c.run || c.run < 10 {
			t.Errorf("%s: pathtrace captured %d frames, tcpdump saw %d of the run's (echoes in VNI 1 and ARP between the nodes)", td.point.Name, got, c.run)
		}
		if i == 0 && (c.tcpExt < 5 || c.tunnelTCP < 5 || c.vni2 < 3) || i == 1 && (c.tunnelTCP < 5 || c.vni2 < 3) {
			t.Errorf("%s: too little unrelated traffic to tell: %+v", td.point.Name, c)
		}
		t.Logf("%s: %d frames kept of %d tcpdump saw meanwhile (%+v)", td.point.Name, got, c.all, c)
	}
}

// talkTCP sends a dozen lines over TCP from the namespace ns to addr.
func talkTCP(ctx context.Context, ns, addr string) *exec.Cmd {
	cmd := inNetns(ctx, ns, "socat", "-u", "-", "TCP:"+addr)
	var lines bytes.Buffer
	for i := range 12 {
		fmt.Fprintf(&lines, "unrelated line %d\n", i)
	}
	cmd.Stdin = &slowReader{b: lines.Bytes()}
	cmd.Start()
	return cmd
}

// slowReader hands out one line per 100 ms, so the connection sends a
// frame per line.
type slowReader struct{ b []byte }

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	time.Sleep(100 * time.Millisecond)
	i := bytes.IndexByte(r.b, '\n') + 1
	n := copy(p, r.b[:i])
	r.b = r.b[n:]
	return n, nil
}

// otherVNI sends, from nodeA to nodeB's VXLAN port, datagrams of VNI 2
// that carry the pods' own echo request: only the VNI tells them apart
// from the run's.
func otherVNI(t *testing.T, l *lab.Lab) <-chan struct{} {
	t.Helper()
	p1, p2 := l.Pods[0], l.Pods[1]
	inner := gopacket.NewSerializeBuffer()
	src, _ := net.ParseMAC(p1.MAC)
	dst, _ := net.ParseMAC(p2.MAC)
	err := gopacket.SerializeLayers(inner, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, IHL: 5, TTL: 63, Protocol: layers.IPProtocolICMPv4, SrcIP: p1.IP.AsSlice(), DstIP: p2.IP.AsSlice()},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 4242, Seq: 1}, gopacket.Payload("not the run"))
	if err != nil {
		t.Fatal(err)
	}
	msg := append([]byte{0x08, 0, 0, 0, 0, 0, 2, 0}, inner.Bytes()...)
	ns, err := netns.Open("/run/netns/" + l.Nodes[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer ns.Close()
		var c net.Conn
		if err := netns.Do(ns, func() (err error) {
			c, err = net.Dial("udp4", net.JoinHostPort(l.Nodes[1].IP.String(), "8472"))
			return err
		}); err != nil {
			return
		}
		defer c.Close()
		for range 8 {
			c.Write(msg)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return done
}

type wireCount struct {
	all, run, tcpExt, tunnelTCP, vni2 int
}

// classify reads what tcpdump saw at an eth0 between first and last (ns).
func classify(t *testing.T, file string, id uint64, nodeA, nodeB string, first, last int64) wireCount {
	t.Helper()
	out, err := exec.Command("tshark", "-d", "udp.port==8472,vxlan", "-r", file, "-T", "fields", "-E", "occurrence=l",
		"-e", "frame.time_epoch", "-e", "vxlan.vni", "-e", "icmp.ident", "-e", "tcp.srcport",
		"-e", "arp.src.proto_ipv4", "-e", "arp.dst.proto_ipv4", "-e", "ip.dst").Output()
	if err != nil {
		t.Fatalf("tshark %s: %v", file, err)
	}
	var c wireCount
	nodes := map[string]bool{nodeA: true, nodeB: true}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 7 {
			t.Fatalf("tshark line %q", sc.Text())
		}
		ts, err := epochToNs(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if ts < first || ts > last {
			continue
		}
		c.all++
		ident, _ := strconv.ParseUint(f[2], 0, 16)
		switch {
		case f[1] == "1" && f[2] != "" && ident == id:
			c.run++
		case f[4] != "" && nodes[f[4]] && nodes[f[5]]:
			c.run++
		case f[1] == "2":
			c.vni2++
		case f[1] == "1" && f[3] != "":
			c.tunnelTCP++
		case f[3] != "" && f[1] == "":
			c.tcpExt++
		}
	}
	return c
}

func coverage(t *testing.T, d *liveDoc, point string) (int64, int64) {
	t.Helper()
	for _, p := range d.Points {
		if p.Name == point && p.Coverage.First != nil && p.Coverage.Last != nil {
			return hopNs(t, &jHop{Time: *p.Coverage.First}), hopNs(t, &jHop{Time: *p.Coverage.Last})
		}
	}
	t.Fatalf("no coverage for %s", point)
	return 0, 0
}

func slicesIndexName(d *liveDoc, name string) int {
	for i, p := range d.Points {
		if p.Name == name {
			return i
		}
	}
	return 0
}
