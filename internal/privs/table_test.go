package privs

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The table, re-established on the kernel the tests run on: each step is
// tried by this test binary re-run as uid 65534 holding exactly the step's
// capabilities (and what it takes to get there) - it must work - and with
// each of the step's own capabilities removed - it must fail.

const probeEnv = "PTS_PRIVS_PROBE"

func TestMain(m *testing.M) {
	if step := os.Getenv(probeEnv); step != "" {
		if err := runProbe(step); err != nil {
			fmt.Println("FAIL", err)
			os.Exit(1)
		}
		fmt.Println("ok")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// probe is how one step is tried; base is what it needs besides the step's
// own capabilities (a capture socket before a membership on it).
type probe struct {
	step Step
	base []Cap
}

var probes = []probe{
	{ListNamespaces, nil},
	{OtherProcessNS, nil},
	{EnterNamespace, nil},
	{PacketCapture, nil},
	{Promiscuous, []Cap{NetRaw, SysAdmin}},
	{SocketFilter, []Cap{NetRaw}},
	{Probe, nil},
	{Evidence, nil},
	{LabNamespaces, nil},
	{LabLinks, nil},
	{LabState, nil},
	{DropReasons, nil},
	{DropLocation, nil},
	{LabTunnel, nil},
}

func TestTableOnThisKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the capability table is checked as root (it runs probes as uid 65534)")
		}
		t.Skip("the capability table is checked as root (it runs probes as uid 65534)")
	}
	env := probeSetup(t)
	covered := map[Step]bool{}
	for _, p := range probes {
		covered[p.step] = true
		t.Run(p.step.String(), func(t *testing.T) {
			all := Of(append(append([]Cap{}, p.base...), p.step.Caps()...)...)
			if out, ok := runAs(t, env, p.step, all); !ok {
				t.Errorf("with exactly %v: failed: %s", all, out)
			}
			for _, c := range p.step.Caps() {
				less := all &^ Of(c)
				if out, ok := runAs(t, env, p.step, less); ok {
					t.Errorf("without %s (holding %v): worked (%s), so the step does not need it", c, less, out)
				}
			}
		})
	}
	for _, n := range Table {
		if !covered[n.Step] && n.Step != HandEvidence && n.Step != Analyze {
			t.Errorf("step %q has no probe", n.Step)
		}
	}
}

// probeSetup makes what the probes act on: a network namespace, root's
// folders, a folder of uid 65534, the test binary where 65534 may run it.
func probeSetup(t *testing.T) []string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pts-privs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ns := fmt.Sprintf("pts-privs-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "privs.test")
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	for name, mode := range map[string]os.FileMode{"root0755": 0o755, "root0700": 0o700, "mine": 0o700} {
		if err := os.Mkdir(filepath.Join(dir, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(filepath.Join(dir, "mine"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{"PTS_PRIVS_BIN=" + bin, "PTS_PRIVS_DIR=" + dir, "PTS_PRIVS_NS=/run/netns/" + ns,
		fmt.Sprintf("PTS_PRIVS_ROOTPID=%d", os.Getpid())}
}

// runAs runs the probe of step as uid 65534 with exactly caps (ambient).
func runAs(t *testing.T, env []string, step Step, caps Set) (string, bool) {
	t.Helper()
	var bin string
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PTS_PRIVS_BIN="); ok {
			bin = v
		}
	}
	cmd := exec.Command(bin)
	cmd.Env = append(append([]string{"PATH=" + os.Getenv("PATH")}, env...), fmt.Sprintf("%s=%d", probeEnv, step))
	cmd.Dir = "/"
	var amb []uintptr
	for _, c := range caps.Caps() {
		amb = append(amb, uintptr(c))
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential:  &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}},
		AmbientCaps: amb,
	}
	out, err := cmd.CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil && !strings.HasPrefix(s, "FAIL") {
		t.Fatalf("probe %v: %v: %s", step, err, s)
	}
	return s, err == nil
}
