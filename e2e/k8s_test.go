package e2e

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestKubernetes traces pods of a real two-node cluster (test/cluster) by
// the names kubectl users give them, with pathtrace running on node1 as on
// a real node, and checks the traces against tcpdump at the same points.
// Everything the "done when" lists is a subtest here; they share
// one cluster (up ~10-25 s, down ~10 s).
func TestKubernetes(t *testing.T) {
	c := startK8s(t)
	start := time.Now()
	c.must(t, time.Minute, "ns", "shop")
	httpd := []string{"--", "sh", "-c", "mkdir -p /www && echo db-0 > /www/index.html && exec httpd -f -p 8080 -h /www"}
	c.must(t, time.Minute, "pod", "shop/web-1", "node1", "--label", "tier=web")
	c.must(t, time.Minute, append([]string{"pod", "shop/db-0", "node1"}, httpd...)...)
	c.must(t, time.Minute, "pod", "shop/far-0", "node2")
	c.must(t, time.Minute, "pod", "shop/hn-1", "node1", "--host-network")
	ip := map[string]netip.Addr{}
	for _, p := range []string{"web-1", "db-0", "far-0", "hn-1"} {
		ip[p] = netip.MustParseAddr(strings.TrimSpace(c.must(t, 2*time.Minute, "wait-pod", "shop/"+p, "90")))
	}
	clusterIP := netip.MustParseAddr(strings.TrimSpace(c.must(t, time.Minute, "service", "shop/db", "80", "8080", "db-0")))
	t.Logf("4 pods Running and a Service in %v: %v, svc/db %v", time.Since(start).Round(time.Millisecond), ip, clusterIP)
	pods := []string{"web-1", "web-1-veth", "cni0", "db-0-veth", "db-0"}
	// kube-proxy rewrites Service addresses in prerouting and the node
	// passes bridged frames to iptables: cni0 is captured without
	// promiscuous mode (a promiscuous bridge would deliver Service traffic
	// twice), so frames bridged from pod to pod are seen at the other four
	// points only — unless a tcpdump on cni0 made it promiscuous.
	bridged := []string{"web-1", "web-1-veth", "db-0-veth", "db-0"}

	t.Run("by -n, against tcpdump, evidence named after the pods", func(t *testing.T) {
		k8sAgainstTcpdump(t, c, pods)
	})
	t.Run("NS/NAME and pod/NAME, table speaks Kubernetes", func(t *testing.T) {
		r := c.pt(t, nil, "--src", "shop/web-1", "--dst", "pod/db-0", "-n", "shop", "-c", "2", "-i", "50ms", "-q")
		if r.Code != exitOK {
			t.Fatalf("%s", r)
		}
		header := "Discovered path  shop/web-1 (" + ip["web-1"].String() + ", " + c.node(1) + ") → shop/db-0 (" + ip["db-0"].String() + ", " + c.node(1) + ")"
		if !strings.Contains(r.Stdout, header) {
			t.Errorf("no header %q in\n%s", header, r.Stdout)
		}
		for _, bad := range []string{"pid ", "cni-"} {
			if strings.Contains(r.Stdout, bad) {
				t.Errorf("table names a namespace %q…:\n%s", bad, r.Stdout)
			}
		}
	})
	t.Run("pod IPs are named after the pods; another node's pod through the overlay", func(t *testing.T) {
		r := c.pt(t, nil, "--src", ip["web-1"].String(), "--dst", ip["db-0"].String(), "-c", "1", "-q", "-f", "json")
		if r.Code != exitOK {
			t.Fatalf("%s", r)
		}
		if got := r.Doc.pointNames(); !slices.Equal(got, pods) {
			t.Errorf("points %v, want %v", got, pods)
		}
		if r.Doc.Discovery.Src.Pod == nil || r.Doc.Discovery.Dst.Pod == nil {
			t.Errorf("no pods in discovery: %+v", r.Doc.Discovery)
		}
		r = c.pt(t, nil, "--src", "web-1", "-n", "shop", "--dst", ip["far-0"].String(), "-c", "2", "-i", "50ms", "-q", "-f", "json")
		if r.Code != exitOK {
			t.Fatalf("%s", r)
		}
		// Both nodes are namespaces of this machine: the path crosses
		// into node2 and ends at the pod, its points named after the nodes.
		n1, n2 := c.node(1), c.node(2)
		want := []string{"web-1", "web-1-veth", n1 + "-cni0", n1 + "-flannel.1", n1 + "-eth0", n2 + "-eth0", n2 + "-flannel.1", n2 + "-cni0", "far-0-veth", "far-0"}
		if got := r.Doc.pointNames(); !slices.Equal(got, want) {
			t.Errorf("points %v, want %v", got, want)
		}
		for _, tr := range r.Doc.Traces {
			if tr.Protocol == "icmp" && len(tr.Hops) != len(want) {
				t.Errorf("trace %s: hops %v, want all %d points", &tr, tr.points(), len(want))
			}
		}
		if p := r.Doc.Discovery.Dst.Pod; p == nil || p.Name != "far-0" || p.Node != c.node(2) {
			t.Errorf("discovery.dst.pod = %+v, want far-0 on %s", p, c.node(2))
		}
	})
	t.Run("KUBECONFIG, --kubeconfig and --context (namespace from the context)", func(t *testing.T) {
		kc := contextsKubeconfig(t, c)
		r := c.pt(t, []string{"KUBECONFIG=" + kc}, "--context", "shop-ctx", "--src", "web-1", "--dst", "db-0", "-c", "1", "-q", "-f", "json")
		if r.Code != exitOK || r.Doc.Discovery.Dst.Pod == nil {
			t.Fatalf("KUBECONFIG with --context shop-ctx: %s", r)
		}
		r = c.pt(t, []string{"KUBECONFIG=/nonexistent"}, "--kubeconfig", kc, "--context", "shop-ctx", "--src", "web-1", "--dst", "db-0", "-c", "1", "-q")
		if r.Code != exitOK {
			t.Fatalf("--kubeconfig with --context shop-ctx: %s", r)
		}
		// The current context's namespace is "default": no web-1 there.
		r = c.pt(t, []string{"KUBECONFIG=" + kc}, "--src", "web-1", "--dst", "db-0", "-c", "1", "-q")
		wantUsage(t, r, `no pod "web-1" in namespace default`, "context default-ctx")
	})
	t.Run("Service by name: TCP SYN through kube-proxy's DNAT", func(t *testing.T) {
		k8sService(t, c, ip, clusterIP)
	})
	t.Run("Deployment: one of its pods, named", func(t *testing.T) {
		c.apply(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {tier: web}}
  template:
    metadata: {labels: {tier: web}}
    spec: {containers: [{name: main, image: pathtrace.test/busybox:1, imagePullPolicy: Never}]}
`)
		r := c.pt(t, nil, "--src", "deploy/web", "--dst", "db-0", "-n", "shop", "-c", "1", "-q")
		if r.Code != exitOK || !strings.Contains(r.Stdout, "deployments shop/web → pod shop/web-1") {
			t.Fatalf("%s", r)
		}
	})
	t.Run("passive: kubectl exec ping", func(t *testing.T) { k8sPassive(t, c, ip["db-0"], bridged) })
	t.Run("kubectl plugin", func(t *testing.T) { k8sPlugin(t, c) })
	t.Run("hostNetwork pod", func(t *testing.T) {
		r := c.pt(t, nil, "--src", "web-1", "--dst", "hn-1", "-n", "shop", "-c", "2", "-i", "50ms", "-q", "-f", "json")
		if r.Code != exitOK {
			t.Fatalf("%s", r)
		}
		if got, want := r.Doc.pointNames(), pods[:3]; !slices.Equal(got, want) {
			t.Errorf("points %v, want %v", got, want)
		}
		checkEchoes(t, r.Doc, 2, pods[:3])
		if p := r.Doc.Discovery.Dst.Pod; p == nil || !p.HostNetwork || p.IP != ip["hn-1"] {
			t.Errorf("discovery.dst.pod = %+v, want host_network and IP %v", p, ip["hn-1"])
		}
		if !slices.ContainsFunc(r.Doc.Discovery.Notes, func(n string) bool { return strings.Contains(n, "uses the host network") }) {
			t.Errorf("no note on the host network: %v", r.Doc.Discovery.Notes)
		}
	})
	t.Run("pod Pending or without IP", func(t *testing.T) {
		c.apply(t, `apiVersion: v1
kind: Pod
metadata: {name: ghost-0, namespace: shop}
spec:
  nodeName: `+c.prefix+`-ghost
  automountServiceAccountToken: false
  containers: [{name: main, image: pathtrace.test/busybox:1, imagePullPolicy: Never}]
`)
		// No kubelet confirms ghost-0's deletion: removed by force, or
		// `down` would wait for it.
		defer c.run(time.Minute, "kubectl", "-n", "shop", "delete", "pod", "ghost-0", "--force", "--grace-period=0")
		c.must(t, time.Minute, "pod", "shop/noimg-0", "node1", "--image", "pathtrace.test/missing:1")
		r := c.pt(t, nil, "--src", "web-1", "--dst", "ghost-0", "-n", "shop")
		wantUsage(t, r, "pod shop/ghost-0 is not running with an IP", "no IP yet")
		r = c.pt(t, nil, "--src", "noimg-0", "--dst", "web-1", "-n", "shop")
		wantUsage(t, r, "pod shop/noimg-0 is not running", "Pending")
	})
	t.Run("pod on another node", func(t *testing.T) {
		r := c.pt(t, nil, "--src", "web-1", "--dst", "far-0", "-n", "shop")
		wantUsage(t, r, "pod shop/far-0 runs on node "+c.node(2), "not on this node "+c.node(1), "run pathtrace on "+c.node(2))
	})
	t.Run("unknown pod", func(t *testing.T) {
		r := c.pt(t, nil, "--src", "web-1", "--dst", "pod/nope-9", "-n", "shop")
		wantUsage(t, r, `no pod "nope-9" in namespace shop`, "context "+c.prefix, c.env["PATHTRACE_K8S_APISERVER"])
	})
	t.Run("bad token, forbidden, unreachable", func(t *testing.T) { k8sAuth(t, c) })
	t.Run("netns and pod of one name", func(t *testing.T) {
		// In a private copy of the node's mounts: `ip netns add` remounts
		// /run/netns, which would hide the runtime's pod netns mounts
		// from containerd, and the pods could not be torn down.
		r := c.onNode(t, nil, "unshare", "--mount", "--propagation", "private", "sh", "-c",
			`ip netns add web-1 && exec "$0" "$@"`, c.bin, "--src", "web-1", "--dst", "db-0", "-n", "shop")()
		wantUsage(t, r, "both network namespace /run/netns/web-1 and pod shop/web-1", "pod/web-1")
	})
	t.Run("completion of pod names", func(t *testing.T) {
		r := c.pt(t, nil, "__complete", "-n", "shop", "--src", "")
		for _, want := range []string{"web-1", "db-0", "far-0", "svc/"} {
			if !slices.Contains(strings.Split(r.Stdout, "\n"), want) {
				t.Errorf("completion of --src lacks %q:\n%s", want, r.Stdout)
			}
		}
		r = c.pt(t, nil, "__complete", "-n", "shop", "--dst", "svc/")
		if !slices.Contains(strings.Split(r.Stdout, "\n"), "svc/db") {
			t.Errorf("completion of --dst svc/ lacks svc/db:\n%s", r.Stdout)
		}
	})
	t.Run("in-cluster config, RBAC manifest", func(t *testing.T) { k8sInCluster(t, c) })
}

// contextsKubeconfig writes a kubeconfig with the admin's credentials and
// two contexts: default-ctx (current, namespace default) and shop-ctx.
func contextsKubeconfig(t *testing.T, c *kcluster) string {
	t.Helper()
	raw := c.kubectl(t, "config", "view", "--raw", "--minify", "--flatten", "-o", "jsonpath={.users[0].user.token} {.clusters[0].cluster.server} {.clusters[0].cluster.certificate-authority-data}")
	f := strings.Fields(raw)
	if len(f) != 3 {
		t.Fatalf("admin kubeconfig: token, server, CA: %q", raw)
	}
	kc := filepath.Join(t.TempDir(), "contexts.kubeconfig")
	writeKubeconfig(t, kc, f[1], f[2], f[0], "default-ctx", map[string]string{"default-ctx": "default", "shop-ctx": "shop"})
	return kc
}

// writeKubeconfig writes a token kubeconfig with one context per
// namespace; current is the current context.
func writeKubeconfig(t *testing.T, path, server, caData, token, current string, contexts map[string]string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"" + server + "\", certificate-authority-data: \"" + caData + "\"}\n")
	b.WriteString("users:\n- name: u\n  user: {token: \"" + token + "\"}\ncontexts:\n")
	for name, ns := range contexts {
		b.WriteString("- name: " + name + "\n  context: {cluster: c, user: u, namespace: " + ns + "}\n")
	}
	b.WriteString("current-context: " + current + "\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
}
