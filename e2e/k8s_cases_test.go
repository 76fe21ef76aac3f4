package e2e

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/discover"
)

// k8sAgainstTcpdump: pods by -n, five echoes compared with tcpdump at the
// five points (and with the evidence pcaps, named after the pods), the
// points and namespaces named after the pods, discovery.src/dst.pod as
// the API server has them.
func k8sAgainstTcpdump(t *testing.T, c *kcluster, pods []string) {
	args := []string{"--src", "web-1", "--dst", "db-0", "-n", "shop", "-q", "-f", "json"}
	pre := c.pt(t, nil, append(args, "-c", "1")...)
	if pre.Code != exitOK {
		t.Fatalf("%s", pre)
	}
	points := k8sPoints(t, pre.Doc)
	if got := specNames(points); !slices.Equal(got, pods) {
		t.Fatalf("points %v, want %v", got, pods)
	}
	dir := t.TempDir()
	tds := startTcpdump(t, dir, points)
	out := filepath.Join(dir, "evidence")
	r := c.pt(t, nil, append(args, "-c", "5", "-i", "100ms", "--timeout", "500ms", "--out", out)...)
	stopTcpdump(t, tds)
	if r.Code != exitOK {
		t.Fatalf("%s", r)
	}
	checkAgainstTcpdump(t, r.Doc, points, tds, out)

	var netnsLabels []string
	for _, p := range r.Doc.Discovery.Points {
		netnsLabels = append(netnsLabels, p.Netns)
	}
	if want := []string{"web-1", "host", "host", "host", "db-0"}; !slices.Equal(netnsLabels, want) {
		t.Errorf("point namespaces %v, want %v", netnsLabels, want)
	}
	for _, side := range []struct {
		name string
		pod  *discover.Pod
	}{{"web-1", r.Doc.Discovery.Src.Pod}, {"db-0", r.Doc.Discovery.Dst.Pod}} {
		checkPodInfo(t, c, side.name, side.pod)
	}
	for _, name := range append(slices.Clone(pods), "report.json", "path.pcapng") {
		f := name
		if !strings.Contains(name, ".") {
			f = name + ".cap"
		}
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("evidence: %v", err)
		}
	}
}

// checkPodInfo compares discovery's pod with what kubectl says.
func checkPodInfo(t *testing.T, c *kcluster, name string, p *discover.Pod) {
	t.Helper()
	if p == nil {
		t.Fatalf("discovery has no pod for %s", name)
	}
	want := strings.Fields(c.kubectl(t, "-n", "shop", "get", "pod", name, "-o",
		"jsonpath={.metadata.uid} {.spec.nodeName} {.status.podIP} {.status.containerStatuses[0].containerID}"))
	if len(want) != 4 {
		t.Fatalf("kubectl get pod %s: %v", name, want)
	}
	_, cid, _ := strings.Cut(want[3], "://")
	got := []string{p.UID, p.Node, p.IP.String(), strings.Join(p.ContainerIDs, ",")}
	if p.Namespace != "shop" || p.Name != name || p.HostNetwork || !slices.Equal(got, []string{want[0], want[1], want[2], cid}) {
		t.Errorf("discovery pod %s = %+v, kubectl says uid, node, ip, container = %v", name, p, []string{want[0], want[1], want[2], cid})
	}
}

// k8sService: svc/db is traced to db-0 with TCP SYNs to the ClusterIP;
// kube-proxy's DNAT shows as dst_ip/dst_port rewrites, and db-0 gets each
// SYN exactly once (tcpdump in db-0), as without pathtrace.
func k8sService(t *testing.T, c *kcluster, ip map[string]netip.Addr, clusterIP netip.Addr) {
	// kube-proxy programs a new Service asynchronously.
	for i := 0; ; i++ {
		out, _ := c.run(30*time.Second, "kubectl", "-n", "shop", "exec", "web-1", "--", "sh", "-c",
			`printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 `+clusterIP.String()+` 80 | tail -n 1`)
		if strings.TrimSpace(out) == "db-0" {
			break
		}
		if i == 30 {
			t.Fatalf("svc/db %v:80 does not answer through kube-proxy: %q", clusterIP, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	pre := c.pt(t, nil, "--src", "web-1", "--dst", "svc/db", "-n", "shop", "-c", "1", "-q", "-f", "json")
	if pre.Code != exitOK {
		t.Fatalf("%s", pre)
	}
	points := k8sPoints(t, pre.Doc)
	if got, want := specNames(points), []string{"web-1", "web-1-veth", "db-0-veth", "db-0"}; !slices.Equal(got, want) {
		t.Fatalf("points %v, want %v (no bridge: the DNAT happens inside it)", got, want)
	}
	dir := t.TempDir()
	td := exec.Command("nsenter", "--net="+points[3].Netns, "tcpdump", "-n", "-U", "--immediate-mode", "-i", "eth0", "-w", filepath.Join(dir, "db-0.pcap"), "tcp port 8080")
	errb := &syncBuffer{}
	td.Stderr = errb
	if err := td.Start(); err != nil {
		t.Fatal(err)
	}
	defer td.Process.Kill()
	for !strings.Contains(errb.String(), "listening on") {
		time.Sleep(10 * time.Millisecond)
	}
	r := c.pt(t, nil, "--src", "web-1", "--dst", "svc/db", "-n", "shop", "-c", "3", "-i", "100ms", "-q", "-f", "json")
	td.Process.Signal(os.Interrupt)
	td.Wait()
	if r.Code != exitOK {
		t.Fatalf("%s", r)
	}
	sv := r.Doc.Discovery.Dst.Service
	if sv == nil || sv.ClusterIP != clusterIP || sv.Port != 80 || sv.TargetPort != 8080 || r.Doc.Discovery.Dst.Pod.Name != "db-0" {
		t.Fatalf("discovery.dst: service %+v pod %+v", sv, r.Doc.Discovery.Dst.Pod)
	}
	syns := 0
	for _, tr := range r.Doc.ofType("syn") {
		if *tr.DstIP != clusterIP.String() || len(tr.Missing) > 0 {
			t.Errorf("syn %s to %s missing %v", tr, *tr.DstIP, tr.Missing)
			continue
		}
		syns++
		rw := map[string]string{}
		for _, w := range tr.Rewrites {
			rw[w.Field] = w.From + "→" + w.To + "@" + w.Point
		}
		if rw["dst_ip"] != clusterIP.String()+"→"+ip["db-0"].String()+"@db-0-veth" || rw["dst_port"] != "80→8080@db-0-veth" {
			t.Errorf("syn %s rewrites %v, want dst_ip %v→%v and dst_port 80→8080 at db-0-veth", tr, rw, clusterIP, ip["db-0"])
		}
	}
	if syns != 3 || len(r.Doc.ofType("syn-ack")) != 3 {
		t.Errorf("%d complete SYNs and %d SYN-ACKs, want 3 and 3\n%s", syns, len(r.Doc.ofType("syn-ack")), r)
	}
	var seen, got []uint64
	for _, tr := range r.Doc.ofType("syn") {
		seen = append(seen, *tr.Seq)
	}
	for seq := range tsharkSyns(t, filepath.Join(dir, "db-0.pcap")) {
		got = append(got, seq)
	}
	slices.Sort(got)
	slices.Sort(seen)
	if !slices.Equal(got, seen) {
		t.Errorf("tcpdump in db-0 saw SYNs %v, pathtrace %v (each once)", got, seen)
	}
}

// k8sPassive: pathtrace --passive by pod names while the user pings with
// kubectl exec.
func k8sPassive(t *testing.T, c *kcluster, dbIP netip.Addr, pods []string) {
	pre := c.pt(t, nil, "--src", "web-1", "--dst", "db-0", "-n", "shop", "-c", "1", "-q", "-f", "json")
	if pre.Code != exitOK {
		t.Fatalf("%s", pre)
	}
	points := k8sPoints(t, pre.Doc)
	wait := c.ptStart(t, nil, "--src", "web-1", "--dst", "db-0", "-n", "shop", "--passive", "--duration", "8s", "-q", "-f", "json")
	waitArmed(t, nil, points, 30*time.Second)
	ping, perr := c.run(time.Minute, "kubectl", "-n", "shop", "exec", "web-1", "--", "ping", "-c", "3", "-i", "0.2", dbIP.String())
	r := wait()
	if perr != nil {
		t.Fatalf("kubectl exec ping: %v\n%s", perr, ping)
	}
	if r.Code != exitOK {
		t.Fatalf("%s", r)
	}
	checkEchoesFrom(t, r.Doc, 0, 3, pods) // busybox's ping counts from 0
}

// k8sPlugin: the same binary as `kubectl pathtrace`, found by kubectl on
// PATH as kubectl-pathtrace.
func k8sPlugin(t *testing.T, c *kcluster) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(c.bin, filepath.Join(dir, "kubectl-pathtrace")); err != nil {
		t.Fatal(err)
	}
	path := "PATH=" + dir + ":" + os.Getenv("PATH")
	kubectl := c.env["PATHTRACE_K8S_KUBECTL"]
	list := c.onNode(t, []string{path}, kubectl, "plugin", "list")()
	if !strings.Contains(list.Stdout, filepath.Join(dir, "kubectl-pathtrace")) {
		t.Errorf("kubectl plugin list does not find it:\n%s", list)
	}
	help := c.onNode(t, []string{path}, kubectl, "pathtrace", "--help")()
	if help.Code != 0 || !strings.Contains(help.Stdout, "kubectl pathtrace --src ENDPOINT") {
		t.Errorf("kubectl pathtrace --help does not name itself so:\n%s", help)
	}
	r := c.onNode(t, []string{path}, kubectl, "pathtrace", "--src", "web-1", "--dst", "db-0", "-n", "shop", "-c", "2", "-i", "50ms", "-q", "-f", "json")()
	if r.Code != exitOK || r.Doc == nil {
		t.Fatalf("%s", r)
	}
	checkEchoes(t, r.Doc, 2, []string{"web-1", "web-1-veth", "db-0-veth", "db-0"})
	if !slices.ContainsFunc(r.Doc.Warnings, func(w string) bool { return strings.HasPrefix(w, "cni0 captured without promiscuous mode") }) {
		t.Errorf("no note that cni0 is not promiscuous: %q", r.Doc.Warnings)
	}
}

// k8sAuth: a kubeconfig with a bad token, a service account without any
// role, an API server nobody listens on: exit 2, one line naming the
// server and what pathtrace needed.
func k8sAuth(t *testing.T, c *kcluster) {
	raw := strings.Fields(c.kubectl(t, "config", "view", "--raw", "--minify", "--flatten", "-o", "jsonpath={.clusters[0].cluster.server} {.clusters[0].cluster.certificate-authority-data}"))
	server, ca := raw[0], raw[1]
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.kubeconfig")
	writeKubeconfig(t, bad, server, ca, "not-a-token", "ctx", map[string]string{"ctx": "shop"})
	r := c.pt(t, []string{"KUBECONFIG=" + bad}, "--src", "web-1", "--dst", "db-0")
	wantUsage(t, r, "API server "+server, "401 Unauthorized", "pathtrace needs to get pods in namespace shop")

	c.kubectl(t, "-n", "shop", "create", "serviceaccount", "nobody")
	tok := c.kubectl(t, "-n", "shop", "create", "token", "nobody")
	none := filepath.Join(dir, "nobody.kubeconfig")
	writeKubeconfig(t, none, server, ca, tok, "ctx", map[string]string{"ctx": "shop"})
	r = c.pt(t, []string{"KUBECONFIG=" + none}, "--src", "web-1", "--dst", "db-0")
	wantUsage(t, r, "forbids it", "pathtrace needs to get pods in namespace shop", "system:serviceaccount:shop:nobody")

	down := filepath.Join(dir, "down.kubeconfig")
	writeKubeconfig(t, down, "https://127.0.0.1:1", ca, tok, "ctx", map[string]string{"ctx": "shop"})
	r = c.pt(t, []string{"KUBECONFIG=" + down}, "--src", "web-1", "--dst", "db-0")
	wantUsage(t, r, "API server https://127.0.0.1:1 (context ctx) unreachable", "connection refused")
}

// k8sInCluster: pathtrace in a pod (hostNetwork, hostPID, privileged, the
// CRI socket mounted) with the service account bound to the repository's
// ClusterRole, configured in-cluster only: the manifest grants exactly
// what a trace by pod, Service and workload needs.
func k8sInCluster(t *testing.T, c *kcluster) {
	// The image: the static binary, and busybox to keep the pod running.
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for _, cp := range [][2]string{{c.bin, "pathtrace"}, {"/bin/busybox", "bin/busybox"}} {
		if out, err := exec.Command("install", "-D", "-m", "0755", cp[0], filepath.Join(root, cp[1])).CombinedOutput(); err != nil {
			t.Fatalf("install %s: %v\n%s", cp[0], err, out)
		}
	}
	img := filepath.Join(dir, "pathtrace.tar")
	c.must(t, time.Minute, "make-image", "pathtrace.test/pathtrace:1", root, img, "--", "/pathtrace")
	c.must(t, 2*time.Minute, "import-image", "node1", img)
	rbac, err := os.ReadFile("../deploy/rbac/pathtrace.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.apply(t, string(rbac))
	c.must(t, time.Minute, "ns", "pathtrace-system")
	c.apply(t, inClusterManifest(c.node(1), c.env["PATHTRACE_K8S_APISERVER"]))
	c.must(t, 2*time.Minute, "wait-pod", "pathtrace-system/tracer", "90")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, ends := range [][2]string{{"shop/web-1", "shop/db-0"}, {"shop/web-1", "svc/db"}, {"deploy/web", "shop/db-0"}} {
		dst := ends[1]
		args := []string{"--prefix", c.prefix, "kubectl", "-n", "pathtrace-system", "exec", "tracer", "--",
			"/pathtrace", "--src", ends[0], "--dst", dst, "-c", "1", "-q"}
		if ends != [2]string{"shop/web-1", "shop/db-0"} {
			// svc/ and deploy/ take the current namespace: -n shop.
			args = append(args, "-n", "shop")
		} else {
			args = append(args, "--node", c.node(1)) // else NODE_NAME (downward API)
		}
		out, err := exec.CommandContext(ctx, c.script, args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Verdict: OK") {
			t.Errorf("in-cluster pathtrace --dst %s: %v\n%s", dst, err, out)
		}
	}
}

// inClusterManifest is the tracer pod. KUBERNETES_SERVICE_HOST/PORT are
// the API server's own address (what the kubelet would inject from the
// default/kubernetes Service): the test cluster has no controller that
// keeps that Service's endpoints.
func inClusterManifest(node, apiserver string) string {
	hostPort := strings.TrimPrefix(apiserver, "https://")
	host, port, _ := strings.Cut(hostPort, ":")
	return `apiVersion: v1
kind: ServiceAccount
metadata: {name: pathtrace, namespace: pathtrace-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: pathtrace-test}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: pathtrace}
subjects: [{kind: ServiceAccount, name: pathtrace, namespace: pathtrace-system}]
---
apiVersion: v1
kind: Pod
metadata: {name: tracer, namespace: pathtrace-system}
spec:
  nodeName: ` + node + `
  serviceAccountName: pathtrace
  hostNetwork: true
  hostPID: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: pathtrace
    image: pathtrace.test/pathtrace:1
    imagePullPolicy: Never
    command: ["/bin/busybox", "sleep", "1000000"]
    env:
    - {name: KUBERNETES_SERVICE_HOST, value: "` + host + `"}
    - {name: KUBERNETES_SERVICE_PORT, value: "` + port + `"}
    - name: NODE_NAME
      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
    securityContext: {privileged: true}
    volumeMounts: [{name: cri, mountPath: /run/containerd/containerd.sock}]
  # The socket alone: a mount of /run/containerd would hold copies of the
  # other containers' rootfs mounts, and the runtime could not remove them.
  volumes: [{name: cri, hostPath: {path: /run/containerd/containerd.sock, type: Socket}}]
`
}
