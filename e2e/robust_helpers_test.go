package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/lab"
)

// Helpers for the live-fault and resource tests (robust_test.go): a built
// pathtrace binary run as a real process, so signals, SIGKILL and dropped
// privileges act on pathtrace alone and not on the test binary.

// TestMain removes the binary built for the process tests (and runs a
// two-node lab's userspace tunnel when the lab starts this binary as one).
func TestMain(m *testing.M) {
	if lab.IsTunnelCommand(os.Args) { // the two-node labs' userspace tunnels run this binary
		os.Exit(lab.TunnelMain(os.Args[3:]))
	}
	code := m.Run()
	if ptBuild.dir != "" {
		os.RemoveAll(ptBuild.dir)
	}
	os.Exit(code)
}

var ptBuild struct {
	once sync.Once
	dir  string // 0755, so an unprivileged user can run the binary
	bin  string
	err  error
}

// ptBinary builds ./cmd/pathtrace once per test run and returns its path.
func ptBinary(t *testing.T) string {
	t.Helper()
	ptBuild.once.Do(func() {
		root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
		if err != nil {
			ptBuild.err = fmt.Errorf("find module root: %w", err)
			return
		}
		dir, err := os.MkdirTemp("", "pathtrace-robust-")
		if err != nil {
			ptBuild.err = err
			return
		}
		ptBuild.dir = dir
		if err := os.Chmod(dir, 0o755); err != nil {
			ptBuild.err = err
			return
		}
		bin := filepath.Join(dir, "pathtrace")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/pathtrace")
		cmd.Dir = strings.TrimSpace(string(root))
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			ptBuild.err = fmt.Errorf("go build ./cmd/pathtrace: %w\n%s", err, out)
			return
		}
		ptBuild.bin = bin
	})
	if ptBuild.err != nil {
		t.Fatal(ptBuild.err)
	}
	return ptBuild.bin
}

// robustConfig gives a test a lab prefix and a /24 in 10.80–10.89, clear of
// the other live tests (10.90–10.99).
func robustConfig(t *testing.T) lab.Config { return uniqueLab(t, "rb", 80) }

// ptProc is one pathtrace process.
type ptProc struct {
	cmd         *exec.Cmd
	out, errb   *syncBuffer
	done        chan struct{}
	exited      time.Time
	waitErr     error
	description string
}

// startPT starts the built binary in dir (the test's temp dir when empty);
// the process is killed when the test ends, also on failure.
func startPT(t *testing.T, dir string, cred *syscall.Credential, args ...string) *ptProc {
	t.Helper()
	var attr *syscall.SysProcAttr
	if cred != nil {
		attr = &syscall.SysProcAttr{Credential: cred}
	}
	return startPTAttr(t, dir, attr, nil, args...)
}

// startPTAttr is startPT with process attributes (credentials, ambient
// capabilities) and extra environment variables.
func startPTAttr(t *testing.T, dir string, attr *syscall.SysProcAttr, env []string, args ...string) *ptProc {
	t.Helper()
	p := &ptProc{out: &syncBuffer{}, errb: &syncBuffer{}, done: make(chan struct{}),
		description: "pathtrace " + strings.Join(args, " ")}
	p.cmd = exec.Command(ptBinary(t), args...)
	p.cmd.Dir = dir
	if dir == "" {
		p.cmd.Dir = t.TempDir()
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.errb
	p.cmd.SysProcAttr = attr
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.description, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		p.exited = time.Now()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the process to end and returns its exit status (-1 when a
// signal killed it).
func (p *ptProc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s still running after %v; killed\nstderr: %s", p.description, timeout, p.errb)
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *ptProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *ptProc) signal(t *testing.T, sig syscall.Signal) time.Time {
	t.Helper()
	now := time.Now()
	if err := syscall.Kill(p.cmd.Process.Pid, sig); err != nil {
		t.Fatalf("send %v to %s: %v (stderr: %s)", sig, p.description, err, p.errb)
	}
	return now
}

// waitArmed waits until a capture socket is bound at every point (bound
// last, after the filter and ring, so a bound socket is capturing).
func waitArmed(t *testing.T, p *ptProc, points []pointSpec, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for _, pt := range points {
		link, err := linkIn(nsPath(pt.Netns), pt.Ifname)
		if err != nil {
			t.Fatal(err)
		}
		for {
			n, err := packetSocketsArmed(nsPath(pt.Netns), link.Attrs().Index)
			if err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				break
			}
			if p != nil && !p.running() {
				t.Fatalf("%s ended before it was armed: exit %d\nstderr: %s", p.description, p.cmd.ProcessState.ExitCode(), p.errb)
			}
			if time.Now().After(deadline) {
				t.Fatalf("no capture socket bound at %s after %v", pt.Name, timeout)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return time.Since(start)
}

// nsPath is a point's namespace as a path: a name under /run/netns, or a
// path already (/proc/PID/ns/net for a pod of the Kubernetes tests).
func nsPath(ns string) string {
	if strings.HasPrefix(ns, "/") {
		return ns
	}
	return "/run/netns/" + ns
}

// promiscuity is the kernel's promiscuity count of an interface in a named
// namespace (IFLA_PROMISCUITY, what `ip -d link` shows).
func promiscuity(t *testing.T, ns, ifname string) int {
	t.Helper()
	l, err := linkIn("/run/netns/"+ns, ifname)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Promisc
}

// waitPromiscuity polls until the count is want; the kernel drops a packet
// socket's membership when the socket is released, which can trail the
// process's exit by a moment.
func waitPromiscuity(t *testing.T, ns, ifname string, want int, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := promiscuity(t, ns, ifname)
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// captureCheck is what tshark and capinfos say about one capture file.
type captureCheck struct {
	file    string
	packets int   // capinfos "Number of packets"
	perIf   []int // pcapng: packets per interface, in interface order
	echoes  []echoRow
	err     error
}

// echoRow is one ICMP echo in a capture file as tshark decodes it.
type echoRow struct {
	ns           int64
	typ, id, seq uint64
}

// requestSeqs is the distinct echo-request seqs of echo id at or after from
// (a hairpin reflection shows one request twice at a point), and the
// latest stamp of a request.
func (c *captureCheck) requestSeqs(id uint64, from time.Time) (seqs []uint64, last int64) {
	seen := map[uint64]bool{}
	for _, e := range c.echoes {
		if e.typ != 8 || e.id != id || e.ns < from.UnixNano() {
			continue
		}
		last = max(last, e.ns)
		if !seen[e.seq] {
			seen[e.seq] = true
			seqs = append(seqs, e.seq)
		}
	}
	slices.Sort(seqs)
	return seqs, last
}

var (
	capinfosPackets = regexp.MustCompile(`(?m)^Number of packets:\s+(\d+)`)
	capinfosIfPkts  = regexp.MustCompile(`(?m)^\s+Number of packets = (\d+)`)
)

// checkCapture reads a capture file with tshark and capinfos: both must
// exit 0 and neither may say the file was cut short.
func checkCapture(file string) captureCheck {
	c := captureCheck{file: file}
	// One tshark per file both checks it and reads its echoes: tshark's
	// start-up is most of a test's time on a busy machine.
	var tout, terr bytes.Buffer
	ts := exec.Command("tshark", "-r", file, "-n", "-T", "fields",
		"-e", "frame.time_epoch", "-e", "icmp.type", "-e", "icmp.ident", "-e", "icmp.seq")
	ts.Stdout, ts.Stderr = &tout, &terr
	if err := ts.Run(); err != nil {
		c.err = fmt.Errorf("tshark -r %s: %w: %s", file, err, tsharkNoise(terr.String()))
		return c
	}
	if s := tsharkNoise(terr.String()); s != "" {
		c.err = fmt.Errorf("tshark -r %s: %s", file, s)
		return c
	}
	for _, line := range strings.Split(tout.String(), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 || f[1] == "" || strings.Contains(line, ",") {
			continue // not an echo (or an ICMP error quoting one)
		}
		ns, err1 := epochToNs(f[0])
		typ, err2 := strconv.ParseUint(f[1], 10, 8)
		id, err3 := strconv.ParseUint(f[2], 0, 16)
		seq, err4 := strconv.ParseUint(f[3], 0, 16)
		if firstErr(err1, err2, err3, err4) != nil || (typ != 0 && typ != 8) {
			continue
		}
		c.echoes = append(c.echoes, echoRow{ns, typ, id, seq})
	}
	out, err := exec.Command("capinfos", "-c", "-M", file).CombinedOutput()
	if err != nil || strings.Contains(string(out), "cut short") {
		c.err = fmt.Errorf("capinfos %s: %v: %s", file, err, out)
		return c
	}
	m := capinfosPackets.FindSubmatch(out)
	if m == nil {
		c.err = fmt.Errorf("capinfos %s: no packet count in %q", file, out)
		return c
	}
	c.packets, _ = strconv.Atoi(string(m[1]))
	if strings.HasSuffix(file, ".pcapng") {
		// Per-interface counts need the full report, not -c.
		full, err := exec.Command("capinfos", "-M", file).CombinedOutput()
		if err != nil {
			c.err = fmt.Errorf("capinfos %s: %v: %s", file, err, full)
			return c
		}
		for _, m := range capinfosIfPkts.FindAllSubmatch(full, -1) {
			n, _ := strconv.Atoi(string(m[1]))
			c.perIf = append(c.perIf, n)
		}
	}
	return c
}

// tsharkNoise drops tshark's warning about running as root; what is left is
// a complaint about the file.
func tsharkNoise(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "Running as user") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "; ")
}

// checkCaptures checks files in parallel (tshark's start-up dominates) and
// fails the test for any file tshark or capinfos rejects.
func checkCaptures(t *testing.T, files []string) map[string]captureCheck {
	t.Helper()
	res := make([]captureCheck, len(files))
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Go(func() { res[i] = checkCapture(f) })
	}
	wg.Wait()
	m := map[string]captureCheck{}
	for _, c := range res {
		if c.err != nil {
			t.Errorf("evidence file not valid: %v", c.err)
		}
		m[filepath.Base(c.file)] = c
	}
	return m
}

// labPoints is the five points pod1 → pod2 of a lab with their interfaces.
func labPoints(l *lab.Lab) []pointSpec {
	return labPath(l, l.Pods[0], l.Pods[1])
}

// labLeftovers lists what of lab prefix remains: named namespaces in
// /run/netns and files in lab.StateDir.
func labLeftovers(prefix string) []string {
	var left []string
	nsRE := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `(node1|pod[0-9]+)$`)
	if es, err := os.ReadDir(lab.RunDir); err == nil {
		for _, e := range es {
			if nsRE.MatchString(e.Name()) {
				left = append(left, filepath.Join(lab.RunDir, e.Name()))
			}
		}
	}
	if es, err := os.ReadDir(lab.StateDir); err == nil {
		for _, e := range es {
			if strings.HasPrefix(e.Name(), "lab-"+prefix) {
				left = append(left, filepath.Join(lab.StateDir, e.Name()))
			}
		}
	}
	return left
}

// fileState is a file's mode, mtime and content, to tell whether it changed.
type fileState struct {
	mode  os.FileMode
	mtime time.Time
	data  []byte
}

func snapshot(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]fileState{}
	for _, e := range es {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = fileState{fi.Mode(), fi.ModTime(), b}
	}
	return m
}

// countFDs counts the process's open descriptors and, of them, sockets.
func countFDs(t *testing.T) (fds, sockets int) {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // the directory's own descriptor, closed meanwhile
		}
		fds++
		if strings.HasPrefix(l, "socket:[") {
			sockets++
		}
	}
	return fds, sockets
}

// oneLine fails unless s is exactly one newline-terminated line.
func oneLine(t *testing.T, what, s string) string {
	t.Helper()
	if !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
		t.Errorf("%s: stderr %q, want exactly one line", what, s)
	}
	return strings.TrimSpace(s)
}
