package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/internal/testenv"
)

// Fifty traces in one process leak no descriptor, socket, goroutine or
// thread outside the original namespace.
func TestRobustNoLeaks(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := robustConfig(t)
	l := e2eUp(t, cfg)
	home := netnsLink(t)
	args := []string{"--src", l.Pods[0].Name, "--dst", l.Pods[1].Name, "-c", "1", "-i", "10ms", "--timeout", "100ms"}
	// A deadline per run: fifty runs on a loaded CI machine outlast one.
	trace := func(i int) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var out, errb bytes.Buffer
		if code := runIO(ctx, args, &out, &errb); code != exitOK && code != exitFindings {
			t.Fatalf("run %d: exit %d; stderr %s", i, code, errb.String())
		}
	}
	// Goroutines of a finished run may take a moment to return.
	settle := func(limit int) int {
		n := runtime.NumGoroutine()
		for deadline := time.Now().Add(time.Second); n > limit && time.Now().Before(deadline); n = runtime.NumGoroutine() {
			time.Sleep(10 * time.Millisecond)
		}
		return n
	}
	start := time.Now()
	for i := 1; i <= 10; i++ {
		trace(i)
	}
	fds0, socks0 := countFDs(t)
	g0 := settle(0)
	for i := 11; i <= 50; i++ {
		trace(i)
	}
	t.Logf("50 traces in %v", time.Since(start).Round(time.Millisecond))
	checkThreadsHome(t, home)
	g1 := settle(g0)
	fds1, socks1 := countFDs(t)
	t.Logf("after run 10: %d fds (%d sockets), %d goroutines; after run 50: %d fds (%d sockets), %d goroutines",
		fds0, socks0, g0, fds1, socks1, g1)
	if fds1-fds0 > 2 {
		t.Errorf("runs 11..50 leaked %d file descriptors (%d → %d)", fds1-fds0, fds0, fds1)
	}
	if socks1 > socks0 {
		t.Errorf("runs 11..50 leaked %d sockets (%d → %d)", socks1-socks0, socks0, socks1)
	}
	if g1 > g0 {
		t.Errorf("runs 11..50 leaked %d goroutines (%d → %d)", g1-g0, g0, g1)
	}
}

// Evidence files: 0600 in directories made 0700, never overwritten without
// --force (exit 2, one line naming the file, the files untouched), replaced
// and 0600 again with --force, paths used as given and nothing written
// anywhere else.
func TestRobustEvidenceFiles(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := robustConfig(t)
	l := e2eUp(t, cfg)
	names := []string{}
	for _, pt := range labPoints(l) {
		names = append(names, pt.Name+".cap")
	}
	names = append(names, "path.pcapng", "report.json", "report.md", "report.html")
	slices.Sort(names)
	args := []string{"--src", cfg.Prefix + "pod1", "--dst", cfg.Prefix + "pod2", "-c", "2", "-i", "50ms", "--timeout", "200ms"}
	tmp := t.TempDir()
	cwd := filepath.Join(tmp, "cwd") // stays empty: --out is absolute
	if err := os.Mkdir(cwd, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "a", "b", "ev") // three directories to create

	checkModes := func(t *testing.T, what string) {
		t.Helper()
		for _, d := range []string{filepath.Join(tmp, "a"), filepath.Join(tmp, "a", "b"), out} {
			if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("%s: directory %s: %v, want mode 0700", what, d, modeOf(fi, err))
			}
		}
		es, err := os.ReadDir(out)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range es {
			got = append(got, e.Name())
			if fi, err := e.Info(); err != nil || fi.Mode().Perm() != 0o600 || !fi.Mode().IsRegular() {
				t.Errorf("%s: %s: %v, want a regular file 0600", what, e.Name(), modeOf(fi, err))
			}
		}
		if !slices.Equal(got, names) {
			t.Errorf("%s: %s holds %v, want %v", what, out, got, names)
		}
		if es, _ := os.ReadDir(cwd); len(es) != 0 {
			t.Errorf("%s: the working directory got %v", what, es)
		}
	}

	p := startPT(t, cwd, nil, append(args, "--out", out)...)
	if code := p.wait(t, 10*time.Second); code != exitOK {
		t.Fatalf("first run: exit %d; stderr %s", code, p.errb)
	}
	checkModes(t, "first run")
	before := snapshot(t, out)

	// Again into the same directory: refused before capturing.
	time.Sleep(10 * time.Millisecond) // an overwrite would show in the mtime
	p = startPT(t, cwd, nil, append(args, "--out", out)...)
	code := p.wait(t, 10*time.Second)
	line := oneLine(t, "second run", p.errb.String())
	if code != exitUsage {
		t.Errorf("second run into %s: exit %d, want %d", out, code, exitUsage)
	}
	if !strings.Contains(line, out+"/") || !strings.Contains(line, "--force") {
		t.Errorf("second run: stderr %q, want the existing file's path and --force", line)
	}
	if p.out.String() != "" {
		t.Errorf("second run: stdout %q, want nothing", p.out)
	}
	after := snapshot(t, out)
	for name, b := range before {
		a, ok := after[name]
		if !ok || !a.mtime.Equal(b.mtime) || !bytes.Equal(a.data, b.data) || a.mode != b.mode {
			t.Errorf("second run without --force changed %s", name)
		}
	}
	if len(after) != len(before) {
		t.Errorf("second run without --force: %d files, before %d", len(after), len(before))
	}

	// --force replaces them, and loosened modes are 0600 again.
	for _, name := range []string{names[0], "report.json", "path.pcapng"} {
		if err := os.Chmod(filepath.Join(out, name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p = startPT(t, cwd, nil, append(args, "--out", out, "--force")...)
	if code := p.wait(t, 10*time.Second); code != exitOK {
		t.Fatalf("--force run: exit %d; stderr %s", code, p.errb)
	}
	checkModes(t, "--force run")
	for name, a := range snapshot(t, out) {
		if bytes.Equal(a.data, before[name].data) {
			t.Errorf("--force run left %s as it was", name)
		}
	}

	// A clash on the last file planned: refused before anything is created,
	// so the directory holds only the file that was there.
	for _, name := range names {
		if name != "path.pcapng" {
			if err := os.Remove(filepath.Join(out, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	p = startPT(t, cwd, nil, append(args, "--out", out)...)
	code = p.wait(t, 10*time.Second)
	line = oneLine(t, "clash on path.pcapng", p.errb.String())
	if code != exitUsage || !strings.Contains(line, filepath.Join(out, "path.pcapng")) {
		t.Errorf("clash on path.pcapng: exit %d, stderr %q; want 2 naming the file", code, line)
	}
	if es, _ := os.ReadDir(out); len(es) != 1 {
		var got []string
		for _, e := range es {
			got = append(got, e.Name())
		}
		t.Errorf("a run refused for path.pcapng left %v in %s, want only path.pcapng", got, out)
	}

	// A run that fails before capturing (no such endpoint) makes no
	// evidence directory.
	bad := filepath.Join(tmp, "bad")
	p = startPT(t, cwd, nil, "--src", cfg.Prefix+"nosuch", "--dst", cfg.Prefix+"pod2", "--out", bad)
	if code := p.wait(t, 10*time.Second); code != exitUsage {
		t.Errorf("no such endpoint: exit %d, want %d", code, exitUsage)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("a run refused for its endpoint made the evidence directory %s (%v)", bad, err)
	}

	// A relative --out is relative to the working directory, and that is
	// the only thing made there.
	rel := filepath.Join(tmp, "rel")
	if err := os.Mkdir(rel, 0o755); err != nil {
		t.Fatal(err)
	}
	p = startPT(t, rel, nil, append(args, "--out", "ev", "-f", "json")...)
	if code := p.wait(t, 10*time.Second); code != exitOK {
		t.Fatalf("relative --out: exit %d; stderr %s", code, p.errb)
	}
	if es, _ := os.ReadDir(rel); len(es) != 1 || es[0].Name() != "ev" {
		t.Errorf("relative --out ev: the working directory holds %v, want only ev", es)
	}
	var d liveDoc
	if err := json.Unmarshal([]byte(p.out.String()), &d); err != nil || d.Live == nil {
		t.Fatalf("relative --out: report %v", err)
	}
	if len(d.Live.Evidence) != len(names) {
		t.Errorf("relative --out: live.evidence %v, want %d files", d.Live.Evidence, len(names))
	}
	for _, f := range d.Live.Evidence {
		if !strings.HasPrefix(f, "ev/") {
			t.Errorf("live.evidence lists %q, want the path as given (ev/...)", f)
		}
		if fi, err := os.Stat(filepath.Join(rel, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("evidence %s: %v, want a file 0600", f, modeOf(fi, err))
		}
	}
}

func modeOf(fi os.FileInfo, err error) any {
	if err != nil {
		return err
	}
	return fi.Mode()
}
