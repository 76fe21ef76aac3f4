package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/internal/testenv"
)

// Helpers for the Kubernetes tests (k8s_test.go): a real cluster from
// test/cluster/cluster.sh (kube-apiserver, kubelets, containerd, kube-proxy
// in nftables mode, two nodes), pathtrace run as a process on node1 (in the
// node's network and mount namespaces, as on a real node), and the pods'
// namespaces for tcpdump.

// kcluster is the running test cluster.
type kcluster struct {
	script, prefix string
	env            map[string]string
	bin            string // the built pathtrace
}

// k8sPrefix names everything the cluster creates (namespaces, cgroups,
// /run/P, /var/lib/P): unique to these tests.
func k8sPrefix() string {
	if p := os.Getenv("PATHTRACE_K8S_E2E_PREFIX"); p != "" {
		return p
	}
	return "pk8"
}

// startK8s builds what is missing, removes what a crashed run of the
// prefix left, brings up two nodes and registers the teardown.
func startK8s(t *testing.T) *kcluster {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTools(t, "tcpdump", "tshark", "nsenter", "containerd", "etcd", "socat", "jq")
	script, err := filepath.Abs("../test/cluster/cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	c := &kcluster{script: script, prefix: k8sPrefix(), bin: ptBinary(t)}
	start := time.Now()
	c.must(t, 60*time.Minute, "build")
	c.must(t, 3*time.Minute, "down")
	t.Logf("cluster build (cached or not) and cleanup: %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if pods, err := c.run(time.Minute, "kubectl", "get", "pods", "-A", "-o", "wide"); err == nil {
			t.Logf("pods before down:\n%s", pods)
		}

		start := time.Now()
		out, err := c.run(3*time.Minute, "down")
		if err != nil {
			t.Errorf("cluster.sh down: %v\n%s", err, out)
		}
		t.Logf("cluster down: %v\n%s", time.Since(start).Round(time.Millisecond), out)
		for _, p := range []string{"/run/" + c.prefix, "/var/lib/" + c.prefix, "/run/netns/" + c.prefix + "-cp"} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("left over after down: %s", p)
			}
		}
	})
	start = time.Now()
	if out, err := c.run(5*time.Minute, "up", "--nodes", "2"); err != nil {
		t.Fatalf("cluster.sh up: %v\n%s", err, out)
	}
	t.Logf("cluster up, 2 nodes Ready: %v", time.Since(start).Round(time.Millisecond))
	c.env = map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(c.must(t, time.Minute, "env")))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			c.env[k] = strings.ReplaceAll(strings.Trim(v, "'"), `\ `, " ")
		}
	}
	return c
}

func (c *kcluster) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.script, append([]string{"--prefix", c.prefix}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *kcluster) must(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	out, err := c.run(timeout, args...)
	if err != nil {
		t.Fatalf("cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// kubectl runs kubectl as the cluster's admin; stdout+stderr, trimmed.
func (c *kcluster) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	return strings.TrimSpace(c.must(t, time.Minute, append([]string{"kubectl"}, args...)...))
}

// apply applies a manifest as the cluster's admin.
func (c *kcluster) apply(t *testing.T, yaml string) {
	t.Helper()
	cmd := exec.Command(c.script, "--prefix", c.prefix, "kubectl", "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(yaml)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s\n%s", err, out, yaml)
	}
}

// node is a node's name ("pk8-node1") by number.
func (c *kcluster) node(n int) string { return c.env[fmt.Sprintf("PATHTRACE_K8S_NODE%d_NAME", n)] }

// ptRun is one pathtrace process on a node.
type ptRun struct {
	Code           int
	Stdout, Stderr string
	Doc            *liveDoc
	args           []string
}

func (r *ptRun) String() string {
	return fmt.Sprintf("pathtrace %s: exit %d\nstderr: %s\nstdout: %.3000s", strings.Join(r.args, " "), r.Code, r.Stderr, r.Stdout)
}

// pt runs pathtrace on node1 with the admin kubeconfig in KUBECONFIG
// (unless env sets another) and waits for it.
func (c *kcluster) pt(t *testing.T, env []string, args ...string) *ptRun {
	t.Helper()
	return c.ptStart(t, env, args...)()
}

// ptStart starts pathtrace on node1; the returned function waits for it.
func (c *kcluster) ptStart(t *testing.T, env []string, args ...string) func() *ptRun {
	t.Helper()
	return c.onNode(t, env, append([]string{c.bin}, args...)...)
}

// onNode starts argv on node1 (its network and mount namespaces) with
// KUBECONFIG set to the admin's, then env.
func (c *kcluster) onNode(t *testing.T, env []string, argv ...string) func() *ptRun {
	t.Helper()
	full := append([]string{"--prefix", c.prefix, "exec", "node1", "--", "env", "KUBECONFIG=" + c.env["KUBECONFIG"]}, env...)
	cmd := exec.Command(c.script, append(full, argv...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	timer := time.AfterFunc(3*time.Minute, func() { cmd.Process.Signal(syscall.SIGINT) })
	return func() *ptRun {
		t.Helper()
		err := cmd.Wait()
		timer.Stop()
		r := &ptRun{Stdout: out.String(), Stderr: errb.String(), args: argv[1:]}
		if ee, ok := err.(*exec.ExitError); ok {
			r.Code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%v: %v", argv, err)
		}
		t.Logf("%s: exit %d in %v", strings.Join(argv, " "), r.Code, time.Since(start).Round(time.Millisecond))
		if containsSeq(argv, "-f", "json") && out.Len() > 0 {
			var d liveDoc
			if err := json.Unmarshal(out.Bytes(), &d); err != nil {
				t.Fatalf("decode JSON: %v\n%s", err, r)
			}
			r.Doc = &d
		}
		return r
	}
}

func containsSeq(s []string, a, b string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == a && s[i+1] == b {
			return true
		}
	}
	return false
}

// wantUsage checks a run failed with exit 2 and one line on stderr that
// holds every part.
func wantUsage(t *testing.T, r *ptRun, parts ...string) {
	t.Helper()
	if r.Code != exitUsage {
		t.Fatalf("exit %d, want %d\n%s", r.Code, exitUsage, r)
	}
	msg := strings.TrimRight(r.Stderr, "\n")
	if strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "pathtrace: ") {
		t.Errorf("stderr is not one 'pathtrace: ' line: %q", msg)
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("stderr %q does not say %q", msg, p)
		}
	}
}

// procNetns is a /proc/PID/ns/net path of the namespace with this inode
// (the pods' netns files exist only inside the node's mount namespace).
func procNetns(t *testing.T, inode uint64) string {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		p := fmt.Sprintf("/proc/%d/ns/net", pid)
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil && st.Ino == inode {
			return p
		}
	}
	t.Fatalf("no process in the network namespace with inode %d", inode)
	return ""
}

// k8sPoints are the discovered points as tcpdump can reach them.
func k8sPoints(t *testing.T, d *liveDoc) []pointSpec {
	t.Helper()
	var ps []pointSpec
	for _, p := range d.Discovery.Points {
		ps = append(ps, pointSpec{Name: p.Name, Netns: procNetns(t, p.Inode), Ifname: p.Interface})
	}
	return ps
}
