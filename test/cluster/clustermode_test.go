package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestClusterMode: `pathtrace --cluster -n shop --src web-1 --dst db-0`
// with the pods on two nodes traces across both through agent pods the
// API server starts (the agent image imported as `pathtrace image --out`
// writes it), and leaves no agent pod behind: after a run, after SIGINT
// mid-run, and after SIGKILL once the next run has swept.
func TestClusterMode(t *testing.T) {
	requireRoot(t)
	bin := buildPathtrace(t)
	c := startCluster(t, 2)
	node1, node2 := c.env["PATHTRACE_K8S_NODE1_NAME"], c.env["PATHTRACE_K8S_NODE2_NAME"]

	image := filepath.Join(t.TempDir(), "pathtrace.tar")
	if out, err := exec.Command(bin, "image", "--out", image).CombinedOutput(); err != nil {
		t.Fatalf("pathtrace image: %v\n%s", err, out)
	}
	start := time.Now()
	c.mustRun(2*time.Minute, "import-image", "all", image)
	t.Logf("agent image imported into both nodes in %v", time.Since(start).Round(time.Millisecond))

	c.mustRun(time.Minute, "ns", "shop")
	c.mustRun(time.Minute, "ns", "pathtrace-system") // kube-root-ca.crt for the agents' token (no controller-manager here)
	c.kubectl("apply", "-f", "../../deploy/rbac/pathtrace.yaml", "-f", "../../deploy/rbac/pathtrace-cluster.yaml")
	c.mustRun(time.Minute, "pod", "shop/web-1", "node1")
	c.mustRun(time.Minute, "pod", "shop/db-0", "node2")
	c.mustRun(time.Minute, "pod", "shop/web-2", "node1")
	for _, p := range []string{"web-1", "db-0", "web-2"} {
		c.mustRun(2*time.Minute, "wait-pod", "shop/"+p, "90")
	}
	pt := &ptRun{t: t, bin: bin, kubeconfig: c.env["PATHTRACE_K8S_HOST_KUBECONFIG"]}

	t.Run("across nodes", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "evidence")
		seen := make(chan []agentPod, 1)
		stop := watchAgents(c, seen)
		start := time.Now()
		code, stdout, stderr := pt.run(t, "-c", "5", "-i", "300ms", "-f", "json", "--out", out)
		stop()
		t.Logf("run %v, exit %d; stderr:\n%s", time.Since(start).Round(time.Millisecond), code, stderr)
		if code != 0 {
			t.Fatalf("exit %d, want 0", code)
		}
		checkAgentPods(t, <-seen, node1, node2)
		var doc jsonDoc
		if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
			t.Fatalf("report: %v\n%s", err, stdout)
		}
		checkAcrossNodes(t, &doc, node1, node2)
		noAgents(t, c)

		// The nodes' evidence: a pcapng each that tshark reads (Flannel's
		// VXLAN port decoded as VXLAN: eth0's frames count too), and the
		// same report again from analyze, with each node's clock.
		for node, want := range map[string]int{node1: 25, node2: 25} {
			f := filepath.Join(out, node, "path.pcapng")
			n, err := exec.Command("tshark", "-r", f, "-d", "udp.port==8472,vxlan", "-Y", "icmp.type == 8").Output()
			if got := strings.Count(string(n), "\n"); err != nil || got != want {
				t.Errorf("tshark -r %s: %d echo requests (%v), want %d (5 probes at 5 points)", f, got, err, want)
			}
		}
		table, err := exec.Command(bin, "analyze", filepath.Join(out, node1), filepath.Join(out, node2)).CombinedOutput()
		if err != nil || !strings.Contains(string(table), "Clocks: "+node1+": the reference; "+node2+": ") {
			t.Errorf("analyze of the evidence: %v, no clock line for both nodes:\n%s", err, table)
		}
	})

	t.Run("same node", func(t *testing.T) {
		// The tracer itself runs in node1's one agent; its report comes back.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "--kubeconfig", pt.kubeconfig, "--cluster", "-n", "shop", "--src", "web-1", "--dst", "web-2", "-c", "3", "-f", "json")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		out, err := cmd.Output()
		var doc jsonDoc
		if err != nil || json.Unmarshal(out, &doc) != nil || len(doc.Points) != 5 || doc.Summary.Complete < 6 || !doc.Summary.Clean {
			t.Errorf("web-1 → web-2 on node1: %v, %d points, summary %+v; want 5 points, 3 echoes answered\n%s\n%s", err, len(doc.Points), doc.Summary, errb.String(), out)
		}
		if !strings.Contains(errb.String(), "on "+node1+" (running after") || strings.Contains(errb.String(), node2) {
			t.Errorf("want one agent, on %s:\n%s", node1, errb.String())
		}
		noAgents(t, c)
	})

	t.Run("SIGINT mid-run", func(t *testing.T) {
		code, stdout, stderr := pt.signalled(t, syscall.SIGINT, "-c", "100", "-f", "json")
		if code != 3 {
			t.Errorf("exit %d after SIGINT, want 3 (interrupted)\n%s", code, stderr)
		}
		var doc jsonDoc
		if err := json.Unmarshal([]byte(stdout), &doc); err != nil || doc.Summary.Complete == 0 {
			t.Errorf("after SIGINT: report %v, %d complete traces; want what was captured\n%s", err, doc.Summary.Complete, stdout)
		}
		noAgents(t, c)
	})

	t.Run("SIGKILL then next run sweeps", func(t *testing.T) {
		pt.signalled(t, syscall.SIGKILL, "-c", "100")
		left := agents(t, c)
		if len(left) != 2 {
			t.Fatalf("after SIGKILL: %d agent pods, want the killed run's 2 (they are what the next run must sweep)", len(left))
		}
		code, _, stderr := pt.run(t, "-c", "2")
		if code != 0 || strings.Count(stderr, "removed agent pod pathtrace-system/") != 2 || !strings.Contains(stderr, "has exited") {
			t.Errorf("next run: exit %d, want 0 and both leftovers removed (their coordinator has exited):\n%s", code, stderr)
		}
		noAgents(t, c)
	})
}

// buildPathtrace builds the product's static binary (the agents' image is
// this binary).
func buildPathtrace(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pathtrace")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/pathtrace")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build pathtrace: %v\n%s", err, out)
	}
	return bin
}

// ptRun runs `pathtrace --cluster -n shop --src web-1 --dst db-0` from the
// root network namespace (the API server through the harness's socat).
type ptRun struct {
	t          *testing.T
	bin        string
	kubeconfig string
}

func (p *ptRun) cmd(ctx context.Context, args ...string) *exec.Cmd {
	base := []string{"--kubeconfig", p.kubeconfig, "--cluster", "-n", "shop", "--src", "web-1", "--dst", "db-0"}
	return exec.CommandContext(ctx, p.bin, append(base, args...)...)
}

func (p *ptRun) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := p.cmd(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("pathtrace: %v", err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// signalled starts a run and sends sig once both nodes' captures are
// armed and probes go out.
func (p *ptRun) signalled(t *testing.T, sig syscall.Signal, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := p.cmd(ctx, args...)
	var out bytes.Buffer
	errb := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = &out, errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for strings.Count(errb.String(), "pathtrace capture: armed") < 2 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("captures not armed within a minute:\n%s", errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // probes on their way
	cmd.Process.Signal(sig)
	start := time.Now()
	cmd.Wait()
	t.Logf("%v: exited %v after the signal; stderr:\n%s", sig, time.Since(start).Round(time.Millisecond), errb.String())
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}
