package discover

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/internal/testenv"
	"github.com/pathtrace/pathtrace/lab"
	"github.com/pathtrace/pathtrace/netns"
)

const childEnv = "PATHTRACE_DISCOVER_TEST_CHILD"

// init runs on the main thread: a child that must live in a pod namespace
// (so /proc/PID/ns/net names it) switches that thread before anything else.
func init() {
	mode, arg, _ := strings.Cut(os.Getenv(childEnv), ",")
	if mode != "enter" {
		return
	}
	runtime.LockOSThread()
	f, err := os.Open(arg)
	if err == nil {
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "enter:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
	os.Exit(0)
}

func TestMain(m *testing.M) {
	if lab.IsTunnelCommand(os.Args) { // the two-node labs' userspace tunnels run this binary
		os.Exit(lab.TunnelMain(os.Args[3:]))
	}
	if mode, arg, ok := strings.Cut(os.Getenv(childEnv), ","); ok && mode == "node-in-current" {
		if err := nodeInCurrentChild(arg); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testConfig gives each test its own namespaces and a subnet no other test
// uses, so searching every namespace for an IP finds only this lab's.
func testConfig() lab.Config {
	var b [3]byte
	rand.Read(b[:])
	return lab.Config{
		Prefix: fmt.Sprintf("dt%x-", b),
		Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 251, b[0] &^ 1, 0}), 24),
	}
}

func labUp(t *testing.T, cfg lab.Config) *lab.Lab {
	t.Helper()
	t.Cleanup(func() {
		if err := lab.Down(lab.Config{Prefix: cfg.Prefix}); err != nil {
			t.Errorf("lab.Down: %v", err)
		}
	})
	l, err := lab.Up(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// talk sends one UDP datagram from pod a to pod b so the bridge learns
// both MACs (a's ARP request and b's reply).
func talk(a, b lab.Pod) error {
	ns, err := netns.Open(a.Netns)
	if err != nil {
		return err
	}
	defer ns.Close()
	return netns.Do(ns, func() error {
		c, err := net.Dial("udp4", net.JoinHostPort(b.IP.String(), "9"))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("pathtrace"))
		return err
	})
}

// discoverLearned runs Discover until the FDB holds both endpoints' MACs.
func discoverLearned(src, dst Endpoint) (*Path, error) {
	deadline := time.Now().Add(3 * time.Second)
	for {
		p, err := Discover(context.Background(), src, dst)
		if err != nil || len(p.FDB) >= 2 || time.Now().After(deadline) {
			return p, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func resolve(t *testing.T, arg string) Endpoint {
	t.Helper()
	ep, err := NewResolver().Resolve(arg)
	if err != nil {
		t.Fatalf("Resolve(%s): %v", arg, err)
	}
	return ep
}

// checkBridged verifies the five points between pods a and b of l.
func checkBridged(p *Path, l *lab.Lab, a, b lab.Pod, nodeLabel string) error {
	var names []string
	for _, pt := range p.Points {
		names = append(names, pt.Name)
	}
	want := []string{a.Name, a.Name + "-veth", "cni0", b.Name + "-veth", b.Name}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		return fmt.Errorf("points %v, want %v", names, want)
	}
	pts := p.Points
	if pts[0].Interface != "eth0" || pts[0].MAC.String() != a.MAC || pts[4].MAC.String() != b.MAC || pts[0].Netns != a.Name {
		return fmt.Errorf("endpoint points %+v %+v", pts[0], pts[4])
	}
	for i, pod := range []lab.Pod{a, b} {
		v := pts[1+2*i]
		if v.Interface != pod.HostVeth || v.Role != "veth" || v.Netns != nodeLabel || v.Inode != l.NodeInode ||
			v.Master != "cni0" || v.Hairpin == nil || !*v.Hairpin || v.MTU != lab.MTU || v.Promisc {
			return fmt.Errorf("veth point of %s: %+v", pod.Name, v)
		}
		ep := pts[4*i]
		if !strings.HasPrefix(ep.Peer, pod.HostVeth+"@"+nodeLabel+" (ifindex ") || v.Peer != fmt.Sprintf("eth0@%s (ifindex %d)", pod.Name, ep.IfIndex) {
			return fmt.Errorf("peers %q / %q", ep.Peer, v.Peer)
		}
		if p.Owners[pod.MAC] != pod.Name+" eth0" || p.Owners[v.MAC.String()] != fmt.Sprintf("%s-veth (%s %s)", pod.Name, nodeLabel, pod.HostVeth) {
			return fmt.Errorf("owners %v", p.Owners)
		}
	}
	if br := pts[2]; br.Role != "bridge" || !br.Promisc || br.Inode != l.NodeInode || p.Owners[br.MAC.String()] != "cni0" {
		return fmt.Errorf("bridge point %+v", br)
	}
	fdb := map[string]string{}
	for _, e := range p.FDB {
		if !e.Local {
			fdb[e.MAC.String()] = e.Port
		}
	}
	if fdb[a.MAC] != a.HostVeth || fdb[b.MAC] != b.HostVeth {
		return fmt.Errorf("fdb %+v", p.FDB)
	}
	return nil
}

func TestBridgedByName(t *testing.T) {
	testenv.RequireRoot(t)
	l := labUp(t, testConfig())
	a, b := l.Pods[0], l.Pods[1]
	if err := talk(a, b); err != nil {
		t.Fatal(err)
	}
	src, dst := resolve(t, a.Name), resolve(t, b.Name)
	if src.Label != a.Name || src.Interface != "eth0" || src.IP != a.IP || src.MAC.String() != a.MAC {
		t.Fatalf("src endpoint %+v", src)
	}
	start := time.Now()
	p, err := discoverLearned(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("discovery took %v (incl. waiting for the FDB)", time.Since(start))
	if err := checkBridged(p, l, a, b, l.Node); err != nil {
		js, _ := json.MarshalIndent(p, "", " ")
		t.Fatalf("%v\n%s", err, js)
	}
}

func TestResolveForms(t *testing.T) {
	testenv.RequireRoot(t)
	l := labUp(t, testConfig())
	a := l.Pods[0]
	byName := resolve(t, a.Name)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=enter,"+a.Netns)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("child said %q", line)
	}

	for _, arg := range []string{a.Netns, a.IP.String(), fmt.Sprint(cmd.Process.Pid)} {
		ep := resolve(t, arg)
		if ep.Arg != arg || ep.Label != a.Name || ep.Inode != byName.Inode || ep.IfIndex != byName.IfIndex || ep.MAC.String() != a.MAC || ep.IP != a.IP {
			t.Errorf("Resolve(%s) = %+v, want like %+v", arg, ep, byName)
		}
	}
	// The bridge address is the node's.
	if ep := resolve(t, netip.PrefixFrom(l.Pods[0].IP, 24).Masked().Addr().Next().String()); ep.Label != l.Node || ep.Interface != "cni0" {
		t.Errorf("gateway resolved to %+v", ep)
	}
}

func TestResolveErrors(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := testConfig()
	l := labUp(t, cfg)
	unused := cfg.Subnet.Addr().As4()
	unused[3] = 254
	_, err := NewResolver().Resolve(netip.AddrFrom4(unused).String())
	if !errors.Is(err, ErrNoMatch) || !strings.Contains(err.Error(), l.Pods[1].Name) || !strings.Contains(err.Error(), "ip netns list") {
		t.Errorf("unknown IP: %v", err)
	}
	if _, err := NewResolver().Resolve(cfg.Prefix + "nosuchpod"); !errors.Is(err, ErrNoMatch) || !strings.Contains(err.Error(), l.Node) {
		t.Errorf("unknown name: %v", err)
	}
	// The same IP in two namespaces is ambiguous and names both.
	cfg2 := testConfig()
	cfg2.Subnet = cfg.Subnet
	l2 := labUp(t, cfg2)
	_, err = NewResolver().Resolve(l.Pods[0].IP.String())
	if !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), l.Pods[0].Name) || !strings.Contains(err.Error(), l2.Pods[0].Name) {
		t.Errorf("ambiguous IP: %v", err)
	}
}

func TestRouted(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := testConfig()
	cfg.Routed = true
	l := labUp(t, cfg)
	a, c := l.Pods[0], l.Pods[2]
	p, err := Discover(context.Background(), resolve(t, a.Name), resolve(t, c.IP.String()))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, pt := range p.Points {
		names = append(names, pt.Name)
	}
	want := []string{a.Name, a.Name + "-veth", "cni0", "cni1", c.Name + "-veth", c.Name}
	if fmt.Sprint(names) != fmt.Sprint(want) || len(p.Notes) != 0 {
		t.Fatalf("points %v notes %v, want %v", names, p.Notes, want)
	}
	if p.Points[3].Role != "bridge" || p.Points[4].Interface != c.HostVeth || p.Points[4].Master != "cni1" {
		t.Errorf("cni1 side %+v %+v", p.Points[3], p.Points[4])
	}
}

// A destination that is on no namespace here leaves the node: the path
// stops at the node's egress interface.
func TestEgress(t *testing.T) {
	testenv.RequireRoot(t)
	l := labUp(t, testConfig())
	node, err := netns.Open(l.NodePath)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	h, err := handleAt(node)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// An uplink for the lab node only (TEST-NET-1, inside the node namespace).
	// A veth pair, since the dummy module may be missing.
	up := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "uplink0"}
	if err := h.LinkAdd(up); err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr("192.0.2.10/24")
	if err := h.AddrAdd(up, addr); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(up); err != nil {
		t.Fatal(err)
	}
	if peer, err := h.LinkByName("uplink0"); err != nil || h.LinkSetUp(peer) != nil {
		t.Fatalf("uplink0: %v", err)
	}
	if err := h.RouteAdd(&netlink.Route{Gw: net.ParseIP("192.0.2.1"), LinkIndex: up.Attrs().Index}); err != nil {
		t.Fatal(err)
	}
	p, err := Discover(context.Background(), resolve(t, l.Pods[0].Name), Remote(netip.MustParseAddr("198.51.100.7")))
	if err != nil {
		t.Fatal(err)
	}
	last := p.Points[len(p.Points)-1]
	if len(p.Points) != 4 || last.Role != "egress" || last.Interface != "eth0" || last.Netns != l.Node || len(p.Notes) != 1 ||
		!strings.Contains(p.Notes[0], "leaves node") {
		t.Fatalf("points %+v notes %v", p.Points, p.Notes)
	}
}

// The node is the namespace Discover itself runs in, as when pathtrace runs
// on a real node: a child process in a fresh namespace builds it there.
func TestNodeInCurrent(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := testConfig()
	t.Cleanup(func() { lab.Down(lab.Config{Prefix: cfg.Prefix}) })
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=node-in-current,%s;%s", childEnv, cfg.Prefix, cfg.Subnet))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func nodeInCurrentChild(arg string) error {
	prefix, subnet, _ := strings.Cut(arg, ";")
	cfg := lab.Config{Prefix: prefix, Subnet: netip.MustParsePrefix(subnet), NodeInCurrent: true}
	l, err := lab.Up(context.Background(), cfg)
	if err != nil {
		return err
	}
	defer lab.Down(cfg)
	a, b := l.Pods[0], l.Pods[1]
	if err := talk(a, b); err != nil {
		return err
	}
	r := NewResolver()
	src, err := r.Resolve(a.Name)
	if err != nil {
		return err
	}
	dst, err := r.Resolve(filepath.Join("/run/netns", b.Name))
	if err != nil {
		return err
	}
	p, err := discoverLearned(src, dst)
	if err != nil {
		return err
	}
	// Seen from the pods, this process's namespace is "pid N" (or "root"
	// when a lower PID shares it, which it cannot: it is fresh).
	if err := checkBridged(p, l, a, b, fmt.Sprintf("pid %d", os.Getpid())); err != nil {
		js, _ := json.MarshalIndent(p, "", " ")
		return fmt.Errorf("%w\n%s", err, js)
	}
	return nil
}

// A node wired by the real CNI bridge plugin with Flannel's config.
func TestCNINode(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		t.Skip("no /usr/lib/cni/bridge")
	}
	cfg := testConfig()
	t.Cleanup(func() {
		if err := lab.Down(lab.Config{Prefix: cfg.Prefix}); err != nil {
			t.Errorf("lab.Down: %v", err)
		}
	})
	l, err := lab.CNINode(context.Background(), lab.CNIConfig{Prefix: cfg.Prefix, Subnet: cfg.Subnet, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := l.Pods[0], l.Pods[1], l.Pods[2]
	if err := talk(a, b); err != nil {
		t.Fatal(err)
	}
	p, err := discoverLearned(resolve(t, a.Name), resolve(t, b.IP.String()))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkBridged(p, l, a, b, l.Node); err != nil {
		js, _ := json.MarshalIndent(p, "", " ")
		t.Fatalf("%v\n%s", err, js)
	}
	for _, pt := range p.Points {
		if pt.Interface == c.HostVeth {
			t.Errorf("path includes pod3's veth %s", c.HostVeth)
		}
	}
}
