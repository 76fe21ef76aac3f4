// Package nstest holds what the capture packages' root tests share: a
// routed lab of namespaces, commands run inside them, and the check that a
// test leaves every namespace's nft ruleset as it found it. Every name it
// makes starts with the caller's prefix.
package nstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/capture/probe"
	"github.com/pathtrace/pathtrace/lab"
	"github.com/pathtrace/pathtrace/netns"
)

// RequireRoot fails (CI=true) or skips the test when not root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test needs root")
		}
		t.Skip("this test needs root")
	}
}

// Lab is a routed lab: node with cni0 (pods 0, 1) and cni1 (pod 2).
type Lab struct {
	*lab.Lab
	Cfg lab.Config
}

// UpLab builds a lab whose names start with prefix + random hex, removed at
// cleanup. second picks the /24 (10.second.x.0) so packages do not collide.
func UpLab(t testing.TB, prefix string, second byte) *Lab {
	t.Helper()
	var b [3]byte
	rand.Read(b[:])
	cfg := lab.Config{
		Prefix: prefix + hex.EncodeToString(b[:]) + "-",
		Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, second, b[0] &^ 1, 0}), 24),
		Routed: true,
	}
	t.Cleanup(func() {
		if err := lab.Down(cfg); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	l, err := lab.Up(context.Background(), cfg)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	return &Lab{Lab: l, Cfg: cfg}
}

// Namespaces are the lab's namespace names, node first.
func (l *Lab) Namespaces() []string {
	names := []string{l.Node}
	for _, p := range l.Pods {
		names = append(names, p.Name)
	}
	return names
}

// Sh runs a command inside the named namespace ("" = the caller's) and
// fails the test if it fails.
func Sh(t testing.TB, ns string, args ...string) string {
	t.Helper()
	out, err := ShErr(ns, args...)
	if err != nil {
		t.Fatalf("%s in %q: %v\n%s", strings.Join(args, " "), ns, err, out)
	}
	return out
}

// ShErr runs a command inside the named namespace ("" = the caller's).
func ShErr(ns string, args ...string) (string, error) {
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

// KeepRulesets snapshots `nft list ruleset` of each namespace and checks at
// cleanup (after the test's own cleanups, registered later, ran) that
// each is as it was.
func KeepRulesets(t testing.TB, namespaces ...string) {
	t.Helper()
	before := map[string]string{}
	for _, n := range namespaces {
		before[n] = Sh(t, n, "nft", "list", "ruleset")
	}
	t.Cleanup(func() {
		for _, n := range namespaces {
			if after, _ := ShErr(n, "nft", "list", "ruleset"); after != before[n] {
				t.Errorf("ruleset of %s changed:\nbefore:\n%s\nafter:\n%s", n, before[n], after)
			}
		}
	})
}

// Nft applies an nft script in ns; the tables it names ("table FAMILY
// NAME") are deleted at cleanup.
func Nft(t testing.TB, ns, script string) {
	t.Helper()
	f, err := os.CreateTemp("", "ptd-nft-*.nft")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	f.WriteString(script)
	f.Close()
	for _, line := range strings.Split(script, "\n") {
		if w := strings.Fields(line); len(w) >= 3 && w[0] == "table" {
			t.Cleanup(func() { ShErr(ns, "nft", "delete", "table", w[1], w[2]) })
		}
	}
	Sh(t, ns, "nft", "-f", f.Name())
}

// Iptables appends an iptables-nft rule (-A ...) in ns, removed at
// cleanup with the table iptables-nft leaves behind.
func Iptables(t testing.TB, ns string, rule ...string) {
	t.Helper()
	if len(rule) < 2 || rule[0] != "-A" {
		t.Fatalf("iptables rule %v: want -A CHAIN ...", rule)
	}
	t.Cleanup(func() { ShErr(ns, "nft", "delete", "table", "ip", "filter") })
	t.Cleanup(func() { ShErr(ns, append([]string{"iptables", "-D"}, rule[1:]...)...) })
	Sh(t, ns, append([]string{"iptables"}, rule...)...)
}

// Inode of the namespace at path.
func Inode(t testing.TB, path string) uint32 {
	t.Helper()
	h, err := netns.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	return uint32(h.Inode)
}

// Ifindex of dev inside the named namespace.
func Ifindex(t testing.TB, ns, dev string) int {
	t.Helper()
	var i int
	fmt.Sscan(Sh(t, ns, "cat", "/sys/class/net/"+dev+"/ifindex"), &i)
	return i
}

// Sysctl sets key in the named namespace and restores it at cleanup.
func Sysctl(t testing.TB, ns, key, val string) {
	t.Helper()
	old := strings.TrimSpace(Sh(t, ns, "sysctl", "-n", key))
	t.Cleanup(func() { ShErr(ns, "sysctl", "-qw", key+"="+old) })
	Sh(t, ns, "sysctl", "-qw", key+"="+val)
}

// Pair makes two namespaces, prefix+"a"+pid and prefix+"b"+pid, joined by
// a veth (prefix+"0" in a, prefix+"1" in b) with net.1/24 and net.2/24
// (net: the first three octets, "10.254.0"); removed at cleanup.
func Pair(t testing.TB, prefix, net string) (a, b string) {
	t.Helper()
	a, b = fmt.Sprintf("%sa%d", prefix, os.Getpid()), fmt.Sprintf("%sb%d", prefix, os.Getpid())
	for _, n := range []string{a, b} {
		Sh(t, "", "ip", "netns", "add", n)
		t.Cleanup(func() { ShErr("", "ip", "netns", "del", n) })
	}
	Sh(t, "", "ip", "link", "add", prefix+"0", "netns", a, "type", "veth", "peer", "name", prefix+"1", "netns", b)
	for i, n := range []string{a, b} {
		dev := fmt.Sprintf("%s%d", prefix, i)
		Sh(t, n, "ip", "addr", "add", fmt.Sprintf("%s.%d/24", net, i+1), "dev", dev)
		Sh(t, n, "ip", "link", "set", dev, "up")
	}
	return a, b
}

// SendProbes sends pathtrace probes seq first..first+n-1 (id, payload tag)
// from the namespace at path to dst, 20 ms apart.
func SendProbes(t testing.TB, path string, dst netip.Addr, id uint16, tag []byte, first uint16, n int) {
	t.Helper()
	h, err := netns.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	p, err := probe.New(h, dst, id, tag)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := 0; i < n; i++ {
		if _, err := p.Send(first + uint16(i)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
