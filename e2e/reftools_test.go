// The reference tools the live tests compare with: tcpdump at the same
// points, tshark reading its files, and the commands run in namespaces.

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/internal/testenv"
)

// inNetns runs argv in a named namespace the test made, or in the
// namespace at a path (/proc/PID/ns/net: a pod's).
func inNetns(ctx context.Context, ns string, argv ...string) *exec.Cmd {
	if strings.HasPrefix(ns, "/") {
		return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + ns, "--"}, argv...)...)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, argv...)...)
}

func mustRun(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out)
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.SkipOrFail(t, "%s not installed: %v", tool, err)
		}
	}
}

// tcpdumpAt is one tcpdump capturing at a point.
type tcpdumpAt struct {
	point pointSpec
	file  string
	cmd   *exec.Cmd
	errb  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startTcpdump starts tcpdump at every point and waits until each says it is
// listening. Nanosecond stamps as pathtrace records them; -U and
// --immediate-mode write every frame at once so SIGINT loses nothing, and a
// 16 MiB buffer keeps tcpdump from dropping on a busy machine.
func startTcpdump(t *testing.T, dir string, points []pointSpec) []*tcpdumpAt {
	t.Helper()
	return startTcpdumpFilter(t, dir, points, "icmp")
}

// startTcpdumpFilter is startTcpdump with another capture filter ("" keeps
// every frame).
func startTcpdumpFilter(t *testing.T, dir string, points []pointSpec, filter string) []*tcpdumpAt {
	t.Helper()
	var tds []*tcpdumpAt
	t.Cleanup(func() {
		for _, td := range tds {
			if td.cmd.ProcessState == nil {
				td.cmd.Process.Kill()
				td.cmd.Wait()
			}
		}
	})
	for _, p := range points {
		td := &tcpdumpAt{point: p, file: filepath.Join(dir, p.Name+".tcpdump.pcap"), errb: &syncBuffer{}}
		args := []string{"tcpdump", "--time-stamp-precision=nano", "-U", "--immediate-mode", "-B", "16384", "-n", "-i", p.Ifname, "-w", td.file}
		if filter != "" {
			args = append(args, filter)
		}
		td.cmd = inNetns(context.Background(), p.Netns, args...)
		td.cmd.Stderr = td.errb
		if err := td.cmd.Start(); err != nil {
			t.Fatalf("start tcpdump at %s: %v", p.Name, err)
		}
		tds = append(tds, td)
	}
	for _, td := range tds {
		deadline := time.Now().Add(30 * time.Second) // a loaded machine starts tcpdump slowly
		for !strings.Contains(td.errb.String(), "listening on") {
			if time.Now().After(deadline) {
				t.Fatalf("tcpdump at %s not listening after 10s: %s", td.point.Name, td.errb)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return tds
}

// stopTcpdump ends every tcpdump with SIGINT, as a user would, and checks it
// dropped nothing.
func stopTcpdump(t *testing.T, tds []*tcpdumpAt) {
	t.Helper()
	for _, td := range tds {
		td.cmd.Process.Signal(syscall.SIGINT)
	}
	for _, td := range tds {
		if err := td.cmd.Wait(); err != nil {
			t.Errorf("tcpdump at %s: %v\n%s", td.point.Name, err, td.errb)
		}
		if s := td.errb.String(); !tcpdumpNoDrops.MatchString(s) {
			t.Errorf("tcpdump at %s dropped frames: %s", td.point.Name, s)
		}
	}
}

// icmpKey names an ICMP echo at one point.
type icmpKey struct {
	Type, Seq uint64
}

// tsharkEchoes reads the ICMP echoes of one echo id from a capture file:
// (type, seq) → stamp in ns. A second sighting of the same key is an error.
func tsharkEchoes(file string, id uint64) (map[icmpKey]int64, error) {
	// Flannel's VXLAN port is not VXLAN's: decode it as such.
	out, err := exec.Command("tshark", "-d", "udp.port==8472,vxlan", "-r", file, "-T", "fields", "-Y", "icmp.type == 0 || icmp.type == 8",
		"-e", "frame.time_epoch", "-e", "icmp.type", "-e", "icmp.ident", "-e", "icmp.seq").Output()
	if err != nil {
		return nil, fmt.Errorf("tshark -r %s: %w", file, err)
	}
	m := map[icmpKey]int64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("tshark %s: line %q", file, sc.Text())
		}
		ident, err1 := strconv.ParseUint(f[2], 0, 16)
		typ, err2 := strconv.ParseUint(f[1], 10, 8)
		seq, err3 := strconv.ParseUint(f[3], 0, 16)
		ns, err4 := epochToNs(f[0])
		if err := firstErr(err1, err2, err3, err4); err != nil {
			return nil, fmt.Errorf("tshark %s: line %q: %w", file, sc.Text(), err)
		}
		if ident != id {
			continue
		}
		k := icmpKey{typ, seq}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("%s: ICMP type %d seq %d seen twice", file, typ, seq)
		}
		m[k] = ns
	}
	return m, nil
}

// tsharkAll runs tsharkEchoes on every file at once: tshark's start-up
// dominates, and the files are independent.
func tsharkAll(t *testing.T, files []string, id uint64) []map[icmpKey]int64 {
	t.Helper()
	res := make([]map[icmpKey]int64, len(files))
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Go(func() { res[i], errs[i] = tsharkEchoes(f, id) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return res
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// epochToNs parses tshark's frame.time_epoch ("1764094100.945737959")
// without going through a float.
func epochToNs(s string) (int64, error) {
	sec, frac, _ := strings.Cut(strings.TrimSpace(s), ".")
	if len(frac) > 9 {
		return 0, fmt.Errorf("epoch %q: more than 9 fractional digits", s)
	}
	frac += strings.Repeat("0", 9-len(frac))
	a, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("epoch %q: %w", s, err)
	}
	b, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("epoch %q: %w", s, err)
	}
	return a*1e9 + b, nil
}

// jsonEchoes is the same map from the JSON hops at one point.
func jsonEchoes(t *testing.T, d *liveDoc, point string) map[icmpKey]int64 {
	t.Helper()
	m := map[icmpKey]int64{}
	for i := range d.Traces {
		tr := &d.Traces[i]
		typ := map[string]uint64{"echo-request": 8, "echo-reply": 0}
		ty, ok := typ[tr.Type]
		if !ok || tr.Seq == nil {
			continue
		}
		if h := tr.hop(point); h != nil {
			m[icmpKey{ty, *tr.Seq}] = hopNs(t, h)
		}
	}
	return m
}
