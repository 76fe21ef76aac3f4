package lab

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/pathtrace/pathtrace/internal/testenv"
	"github.com/pathtrace/pathtrace/netns"
)

const childEnv = "PATHTRACE_LAB_TEST_CHILD"

// TestMain lets tests re-exec the test binary as a helper process: one that
// builds a lab and waits to be killed, or one that runs in a fresh namespace;
// and it runs the userspace tunnels the two-node labs start (the lab starts
// them as its own binary: here the test binary, as "BINARY lab tunnel ...").
func TestMain(m *testing.M) {
	if IsTunnelCommand(os.Args) {
		os.Exit(TunnelMain(os.Args[3:]))
	}
	if mode := os.Getenv(childEnv); mode != "" {
		if err := child(mode); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func child(mode string) error {
	var cfg Config
	parts := strings.Split(mode, ",")
	cfg.Prefix = parts[1]
	cfg.Subnet = netip.MustParsePrefix(parts[2])
	switch parts[0] {
	case "up-and-wait":
		if _, err := Up(context.Background(), cfg); err != nil {
			return err
		}
		fmt.Println("ready")
		time.Sleep(time.Minute)
		return fmt.Errorf("not killed")
	case "nodes-up-and-wait":
		if _, err := UpNodes(context.Background(), NodesConfig{Prefix: cfg.Prefix, Backend: BackendIPIP}); err != nil {
			return err
		}
		fmt.Println("ready")
		time.Sleep(time.Minute)
		return fmt.Errorf("not killed")
	case "node-in-current":
		cfg.NodeInCurrent, cfg.Routed = true, true
		l, err := Up(context.Background(), cfg)
		if err != nil {
			return err
		}
		if l.Node != "" || len(l.Pods) != 3 {
			return fmt.Errorf("unexpected lab %v", l)
		}
		cur, err := netns.Current()
		if err != nil {
			return err
		}
		defer cur.Close()
		if err := checkNode(cur, l, cfg); err != nil {
			return err
		}
		if err := Down(cfg); err != nil {
			return err
		}
		for _, name := range append([]string{"cni0", "cni1"}, l.Pods[0].HostVeth) {
			if _, err := netlink.LinkByName(name); err == nil {
				return fmt.Errorf("%s still exists after Down", name)
			}
		}
		return nil
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// testConfig gives each test namespaces and a subnet of its own so tests
// run beside each other and beside other packages' labs.
func testConfig(t *testing.T) Config {
	var b [3]byte
	rand.Read(b[:])
	return Config{
		Prefix: fmt.Sprintf("lt%s-", hex.EncodeToString(b[:])),
		Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 250, b[0] &^ 1, 0}), 24),
	}
}

func up(t *testing.T, cfg Config) *Lab {
	t.Helper()
	t.Cleanup(func() {
		if err := Down(cfg); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	l, err := Up(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	return l
}

var vethName = regexp.MustCompile(`^veth[0-9a-f]{8}$`)

// checkNode verifies, through netlink, the node and every pod of l.
func checkNode(node *netns.Handle, l *Lab, cfg Config) error {
	nh, err := handleAt(node)
	if err != nil {
		return err
	}
	defer nh.Close()
	subnets := []netip.Prefix{cfg.Subnet, nextSubnet(cfg.Subnet)}
	for i, b := range l.Bridges {
		br, err := nh.LinkByName(b)
		if err != nil {
			return fmt.Errorf("bridge %s: %w", b, err)
		}
		if br.Type() != "bridge" || br.Attrs().MTU != MTU || br.Attrs().Flags&(1<<0) == 0 {
			return fmt.Errorf("bridge %s: type %s mtu %d flags %v", b, br.Type(), br.Attrs().MTU, br.Attrs().Flags)
		}
		if err := hasAddr(nh, br, netip.PrefixFrom(hostAddr(subnets[i], 1), 24)); err != nil {
			return err
		}
	}
	for _, p := range l.Pods {
		host, err := nh.LinkByName(p.HostVeth)
		if err != nil {
			return fmt.Errorf("pod %s host veth: %w", p.Name, err)
		}
		if !vethName.MatchString(p.HostVeth) || host.Type() != "veth" || host.Attrs().MTU != MTU {
			return fmt.Errorf("host veth %s: type %s mtu %d", p.HostVeth, host.Type(), host.Attrs().MTU)
		}
		br, err := nh.LinkByIndex(host.Attrs().MasterIndex)
		if err != nil || br.Attrs().Name != p.Bridge {
			return fmt.Errorf("host veth %s master %d, want %s: %v", p.HostVeth, host.Attrs().MasterIndex, p.Bridge, err)
		}
		pi, err := nh.LinkGetProtinfo(host)
		if err != nil || !pi.Hairpin {
			return fmt.Errorf("host veth %s hairpin %v: %v", p.HostVeth, pi.Hairpin, err)
		}
		pns, err := netns.Open(p.Netns)
		if err != nil {
			return err
		}
		ph, err := handleAt(pns)
		pns.Close()
		if err != nil {
			return err
		}
		eth0, err := ph.LinkByName("eth0")
		if err != nil {
			ph.Close()
			return fmt.Errorf("pod %s eth0: %w", p.Name, err)
		}
		if eth0.Attrs().MTU != MTU || eth0.Attrs().HardwareAddr.String() != p.MAC || eth0.Attrs().ParentIndex != host.Attrs().Index {
			ph.Close()
			return fmt.Errorf("pod %s eth0: mtu %d mac %s peer %d, want %d %s %d", p.Name, eth0.Attrs().MTU,
				eth0.Attrs().HardwareAddr, eth0.Attrs().ParentIndex, MTU, p.MAC, host.Attrs().Index)
		}
		sn := subnets[0]
		if p.Bridge == "cni1" {
			sn = subnets[1]
		}
		if err := hasAddr(ph, eth0, netip.PrefixFrom(p.IP, 24)); err != nil || !sn.Contains(p.IP) {
			ph.Close()
			return fmt.Errorf("pod %s ip %s not in %s: %v", p.Name, p.IP, sn, err)
		}
		routes, err := ph.RouteList(eth0, netlink.FAMILY_V4)
		ph.Close()
		if err != nil {
			return err
		}
		var got []string
		for _, r := range routes {
			if r.Gw != nil {
				got = append(got, fmt.Sprintf("%v via %s", r.Dst, r.Gw))
			}
		}
		gw := hostAddr(sn, 1)
		want := fmt.Sprintf("[0.0.0.0/0 via %s %s via %s]", gw, clusterCIDR(cfg.Subnet), gw)
		if fmt.Sprint(got) != want {
			return fmt.Errorf("pod %s routes %v, want %s", p.Name, got, want)
		}
	}
	return nil
}

func hasAddr(h *netlink.Handle, l netlink.Link, want netip.Prefix) error {
	addrs, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if a.IPNet.String() == want.String() {
			return nil
		}
	}
	return fmt.Errorf("%s has %v, want %s", l.Attrs().Name, addrs, want)
}

func leftovers(cfg Config) []string {
	var left []string
	entries, _ := os.ReadDir(RunDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), cfg.Prefix) {
			left = append(left, e.Name())
		}
	}
	if _, err := os.Stat(statePath(cfg.Prefix)); err == nil {
		left = append(left, statePath(cfg.Prefix))
	}
	return left
}

func TestUpDown(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := testConfig(t)
	l := up(t, cfg)
	if l.Node != cfg.Prefix+"node1" || len(l.Pods) != 2 || l.Pods[0].Name != cfg.Prefix+"pod1" {
		t.Fatalf("lab %v", l)
	}
	if l.Pods[0].IP != hostAddr(cfg.Subnet, 2) || l.Pods[1].IP != hostAddr(cfg.Subnet, 3) {
		t.Errorf("pod IPs %s %s", l.Pods[0].IP, l.Pods[1].IP)
	}
	node, err := netns.Open(l.NodePath)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	if err := checkNode(node, l, cfg); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(statePath(cfg.Prefix))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("state file: %v %v", st.Mode(), err)
	}

	again, err := Up(context.Background(), cfg)
	if err != nil {
		t.Fatalf("second Up: %v", err)
	}
	if again.String() != l.String() {
		t.Errorf("second Up changed the lab:\n%s\n%s", l, again)
	}
	other := cfg
	other.Pods = 3
	if _, err := Up(context.Background(), other); err == nil {
		t.Error("Up with another config of the same prefix succeeded")
	}

	if err := Down(cfg); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if left := leftovers(cfg); len(left) > 0 {
		t.Errorf("left after Down: %v", left)
	}
	if _, err := Status(cfg); err == nil {
		t.Error("Status after Down succeeded")
	}
}

func TestRouted(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := testConfig(t)
	cfg.Routed = true
	l := up(t, cfg)
	if len(l.Bridges) != 2 || len(l.Pods) != 3 || l.Pods[2].Bridge != "cni1" || l.Pods[2].IP != hostAddr(nextSubnet(cfg.Subnet), 2) {
		t.Fatalf("routed lab %v", l)
	}
	node, err := netns.Open(l.NodePath)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	if err := checkNode(node, l, cfg); err != nil {
		t.Fatal(err)
	}
	var fwd []byte
	if err := netns.Do(node, func() (err error) {
		fwd, err = os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		return err
	}); err != nil || strings.TrimSpace(string(fwd)) != "1" {
		t.Errorf("ip_forward in node = %q, %v", fwd, err)
	}
}

// A lab whose maker was SIGKILLed is still removed by Down from its state
// file and marks.
func TestDownAfterCrash(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := testConfig(t)
	t.Cleanup(func() { Down(cfg) })
	upAndKill(t, fmt.Sprintf("up-and-wait,%s,%s", cfg.Prefix, cfg.Subnet))
	if left := leftovers(cfg); len(left) != 4 { // node1, pod1, pod2, state
		t.Fatalf("before Down: %v", left)
	}
	if err := Down(cfg); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if left := leftovers(cfg); len(left) > 0 {
		t.Errorf("left after Down: %v", left)
	}
}

// upAndKill runs the test binary as a child in mode (one that builds a lab
// and says "ready"), then SIGKILLs it.
func upAndKill(t *testing.T, mode string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if line != "ready\n" {
		t.Fatalf("child said %q", line)
	}
}

// Down leaves alone a namespace that has one of the lab's names but not
// its mark.
func TestDownSparesUnmarked(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := testConfig(t)
	name := cfg.Prefix + "pod7"
	if err := createNamed(name, "someone-else"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeNamed(name) })
	if err := Down(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(RunDir, name)); err != nil {
		t.Errorf("Down removed an unmarked namespace: %v", err)
	}
}

// NodeInCurrent: the node's links are made in (and removed from) the
// calling namespace, here a fresh one of a child process.
func TestNodeInCurrent(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := testConfig(t)
	t.Cleanup(func() { Down(Config{Prefix: cfg.Prefix}) })
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=node-in-current,%s,%s", childEnv, cfg.Prefix, cfg.Subnet))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if left := leftovers(cfg); len(left) > 0 {
		t.Errorf("left after Down: %v", left)
	}
}

func TestCNINode(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		t.Skip("no CNI bridge plugin")
	}
	cfg := testConfig(t)
	t.Cleanup(func() {
		if err := Down(Config{Prefix: cfg.Prefix}); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	l, err := CNINode(context.Background(), CNIConfig{Prefix: cfg.Prefix, Subnet: cfg.Subnet, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Pods) != 3 {
		t.Fatalf("lab %v", l)
	}
	node, err := netns.Open(l.NodePath)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	// The plugin configures what Up configures: the same checks pass.
	if err := checkNode(node, l, cfg); err != nil {
		t.Fatal(err)
	}
}
