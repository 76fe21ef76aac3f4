package cluster_test

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestTwoNodeCluster brings up two nodes, runs pods on both, and checks what
// pathtrace's Kubernetes tests rely on: Running pods with IPs from their
// node's CIDR, same- and cross-node ping through `kubectl exec` (the API
// server -> kubelet exec path), VXLAN on the wire (tcpdump in node2), the
// CRI's netns path valid inside the node, ClusterIP Services via kube-proxy
// (nftables), and a clean machine after `down`.
func TestTwoNodeCluster(t *testing.T) {
	requireRoot(t)
	c := startCluster(t, 2)
	for _, k := range []string{"KUBECONFIG", "PATHTRACE_K8S_NODE1_NAME", "PATHTRACE_K8S_NODE2_IP", "PATHTRACE_K8S_NODE1_CRI_HOST"} {
		if c.env[k] == "" {
			t.Fatalf("cluster.sh env: no %s in %v", k, c.env)
		}
	}
	for _, n := range []string{c.env["PATHTRACE_K8S_NODE1_NAME"], c.env["PATHTRACE_K8S_NODE2_NAME"]} {
		if got := c.kubectl("get", "node", n, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`); got != "True" {
			t.Fatalf("node %s Ready = %q", n, got)
		}
	}

	start := time.Now()
	c.mustRun(time.Minute, "ns", "shop")
	httpd := func(body string) []string {
		return []string{"--", "sh", "-c", "mkdir -p /www && echo " + body + " > /www/index.html && exec httpd -f -p 8080 -h /www"}
	}
	c.mustRun(time.Minute, "pod", "shop/web-1", "node1")
	c.mustRun(time.Minute, append([]string{"pod", "shop/web-2", "node1"}, httpd("web-2")...)...)
	c.mustRun(time.Minute, append([]string{"pod", "shop/db-0", "node2"}, httpd("db-0")...)...)
	ip := map[string]netip.Addr{}
	for _, p := range []string{"web-1", "web-2", "db-0"} {
		out := strings.TrimSpace(c.mustRun(2*time.Minute, "wait-pod", "shop/"+p, "90"))
		a, err := netip.ParseAddr(out)
		if err != nil {
			t.Fatalf("wait-pod shop/%s: IP %q: %v", p, out, err)
		}
		ip[p] = a
	}
	t.Logf("3 pods Running with IPs %v in %v", ip, time.Since(start).Round(time.Millisecond))
	for p, cidr := range map[string]string{"web-1": c.env["PATHTRACE_K8S_NODE1_POD_CIDR"], "web-2": c.env["PATHTRACE_K8S_NODE1_POD_CIDR"], "db-0": c.env["PATHTRACE_K8S_NODE2_POD_CIDR"]} {
		if pfx := netip.MustParsePrefix(cidr); !pfx.Contains(ip[p]) {
			t.Errorf("pod %s IP %v not in its node's pod CIDR %v", p, ip[p], pfx)
		}
	}

	t.Run("ping same node", func(t *testing.T) { ping(t, c, "web-1", ip["web-2"]) })
	t.Run("ping across nodes on VXLAN", func(t *testing.T) { pingOverVXLAN(t, c, ip["web-1"], ip["db-0"]) })
	t.Run("CRI netns path valid in the node", func(t *testing.T) { criNetns(t, c, "shop", "web-1", ip["web-1"]) })
	t.Run("ClusterIP via kube-proxy nftables", func(t *testing.T) {
		if out, err := c.onNode("node1", 30*time.Second, "nft", "list", "table", "ip", "kube-proxy"); err != nil {
			t.Fatalf("no kube-proxy nftables table in node1: %v\n%s", err, out)
		}
		for svc, pod := range map[string]string{"db": "db-0", "web": "web-2"} {
			cip := strings.TrimSpace(c.mustRun(time.Minute, "service", "shop/"+svc, "80", "8080", pod))
			var got string
			// kube-proxy programs the rules asynchronously: a few tries.
			for i := 0; i < 30; i++ {
				// busybox-static's wget segfaults (static glibc): nc speaks HTTP.
				got, _ = c.run(30*time.Second, "kubectl", "-n", "shop", "exec", "web-1", "--", "sh", "-c",
					`printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 `+cip+` 80 | tail -n 1`)
				if strings.TrimSpace(got) == pod {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			if strings.TrimSpace(got) != pod {
				t.Errorf("web-1 -> service %s (%s:80) -> %s:8080: got %q, want %q", svc, cip, pod, got, pod)
			}
		}
	})
}

var pingReceived = regexp.MustCompile(`(\d+) packets transmitted, (\d+) packets received`)

// ping from pod `from` (namespace shop) through `kubectl exec`.
func ping(t *testing.T, c *testCluster, from string, to netip.Addr) {
	t.Helper()
	out, err := c.run(time.Minute, "kubectl", "-n", "shop", "exec", from, "--", "ping", "-c", "3", "-W", "2", to.String())
	m := pingReceived.FindStringSubmatch(out)
	if err != nil || m == nil || m[2] != "3" {
		t.Fatalf("kubectl exec %s -- ping %v: %v\n%s", from, to, err, out)
	}
}

// pingOverVXLAN pings web-1 -> db-0 while tcpdump in node2's namespaces
// watches its eth0: the echo requests must arrive VXLAN-encapsulated on UDP
// 8472 (VNI 1) from node1's IP.
func pingOverVXLAN(t *testing.T, c *testCluster, src, dst netip.Addr) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.script, "--prefix", c.prefix, "exec", "node2", "--",
		"tcpdump", "-i", "eth0", "-nn", "-l", "-c", "6", "-T", "vxlan", "udp", "port", "8472")
	var out strings.Builder
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// tcpdump says "listening on" once its capture is open.
	buf := make([]byte, 4096)
	var errText strings.Builder
	for !strings.Contains(errText.String(), "listening on") {
		n, err := stderr.Read(buf)
		errText.Write(buf[:n])
		if err != nil {
			t.Fatalf("tcpdump in node2 did not start: %v\n%s", err, errText.String())
		}
	}
	go func() { _, _ = stderr.Read(buf) }()
	ping(t, c, "web-1", dst)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tcpdump in node2: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errText.String())
	}
	text := out.String()
	node1 := c.env["PATHTRACE_K8S_NODE1_IP"]
	want := []string{
		fmt.Sprintf("IP %s.", node1), ".8472: VXLAN", "vni 1",
		fmt.Sprintf("IP %s > %s: ICMP echo request", src, dst),
	}
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("tcpdump on node2 eth0: no %q in\n%s", w, text)
		}
	}
}
