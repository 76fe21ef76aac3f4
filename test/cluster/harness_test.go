package cluster_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCluster drives cluster.sh for one prefix.
type testCluster struct {
	t      *testing.T
	prefix string
	script string
	env    map[string]string
}

// requireRoot: the cluster needs root (namespaces, cgroups, mounts). Under
// CI=true a missing root is a failure, never a skip.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (CI=true: not skipping)")
	}
	t.Skip("needs root: network/mount namespaces, cgroups")
}

func testPrefix() string {
	if p := os.Getenv("PATHTRACE_K8S_PREFIX"); p != "" {
		return p
	}
	return "ptk"
}

// startCluster builds (if needed), removes what a crashed run of this prefix
// left, brings up a cluster of `nodes` nodes and registers its teardown and
// the leftovers check.
func startCluster(t *testing.T, nodes int) *testCluster {
	t.Helper()
	script, err := filepath.Abs("cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, prefix: testPrefix(), script: script}
	start := time.Now()
	c.mustRun(60*time.Minute, "build")
	t.Logf("build (cached or not): %v", time.Since(start).Round(time.Millisecond))
	c.mustRun(2*time.Minute, "down")
	t.Cleanup(func() {
		start := time.Now()
		if out, err := c.run(3*time.Minute, "down"); err != nil {
			t.Errorf("cluster.sh down: %v\n%s", err, out)
		}
		t.Logf("down: %v", time.Since(start).Round(time.Millisecond))
		for _, l := range leftovers(c.prefix) {
			t.Errorf("left over after down: %s", l)
		}
	})
	start = time.Now()
	if out, err := c.run(5*time.Minute, "up", "--nodes", fmt.Sprint(nodes)); err != nil {
		t.Fatalf("cluster.sh up: %v\n%s\n%s", err, out, failedLogs(c.prefix))
	}
	t.Logf("up --nodes %d (all nodes Ready, kube-proxy started): %v", nodes, time.Since(start).Round(time.Millisecond))
	c.env = parseEnv(c.mustRun(time.Minute, "env"))
	return c
}

func (c *testCluster) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.script, append([]string{"--prefix", c.prefix}, args...)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

func (c *testCluster) mustRun(timeout time.Duration, args ...string) string {
	c.t.Helper()
	out, err := c.run(timeout, args...)
	if err != nil {
		c.t.Fatalf("cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// kubectl runs kubectl against the cluster and returns its stdout, trimmed.
func (c *testCluster) kubectl(args ...string) string {
	c.t.Helper()
	return strings.TrimSpace(c.mustRun(time.Minute, append([]string{"kubectl"}, args...)...))
}

// onNode runs a command in the node's network + mount namespace.
func (c *testCluster) onNode(node string, timeout time.Duration, args ...string) (string, error) {
	return c.run(timeout, append([]string{"exec", node, "--"}, args...)...)
}

func parseEnv(s string) map[string]string {
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			env[k] = strings.ReplaceAll(strings.Trim(v, "'"), `\ `, " ")
		}
	}
	return env
}

// failedLogs: the tails of the logs a failed `up` kept, for the test output.
func failedLogs(prefix string) string {
	var b strings.Builder
	files, _ := filepath.Glob("/var/tmp/" + prefix + "-failed-logs/*.log")
	more, _ := filepath.Glob("/var/tmp/" + prefix + "-failed-logs/*/*.log")
	for _, f := range append(files, more...) {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 25 {
			lines = lines[len(lines)-25:]
		}
		fmt.Fprintf(&b, "==> %s (last %d lines)\n%s\n", f, len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}
