package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/internal/privs"
	"github.com/pathtrace/pathtrace/internal/testenv"
	"github.com/pathtrace/pathtrace/lab"
)

// Security (the evidence folder, least privilege), against the real binary:
// links, hard links and FIFOs planted under every evidence name in folders
// of every kind, with and without --force, change no file outside the
// folder; a live trace runs as uid 65534 with exactly the capabilities the
// README lists, and stops in one line before creating anything without any
// one of them.

// securityConfig builds a lab and returns a short trace's arguments and
// the evidence names it writes.
func securityConfig(t *testing.T) (args []string, names []string) {
	t.Helper()
	cfg := uniqueLab(t, "pts", 70)
	l := e2eUp(t, cfg)
	for _, pt := range labPoints(l) {
		names = append(names, pt.Name+".cap")
	}
	names = append(names, "path.pcapng", "report.json", "report.md")
	args = []string{"--src", l.Pods[0].Name, "--dst", l.Pods[1].Name, "-c", "1", "-i", "10ms", "--timeout", "200ms", "-q", "-f", "json"}
	return args, names
}

// secBase is a 0755 root folder under /tmp, removed at the end.
func secBase(t *testing.T) string {
	t.Helper()
	b, err := os.MkdirTemp("", "pts-sec-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(b) })
	if err := os.Chmod(b, 0o755); err != nil {
		t.Fatal(err)
	}
	return b
}

// outsideFile is a file outside the evidence folder and what it was.
type outsideFile struct {
	path  string
	data  []byte
	ino   uint64
	mtime time.Time
}

func newOutside(t *testing.T, path string) *outsideFile {
	t.Helper()
	o := &outsideFile{path: path, data: []byte("not evidence: " + path + "\n")}
	if err := os.WriteFile(path, o.data, 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	o.ino, o.mtime = fi.Sys().(*syscall.Stat_t).Ino, fi.ModTime()
	return o
}

func (o *outsideFile) unchanged(t *testing.T, what string) {
	t.Helper()
	b, err := os.ReadFile(o.path)
	fi, serr := os.Stat(o.path)
	if err != nil || serr != nil || !bytes.Equal(b, o.data) || fi.Sys().(*syscall.Stat_t).Ino != o.ino || !fi.ModTime().Equal(o.mtime) {
		t.Errorf("%s: %s outside the folder changed: %q (%v %v)", what, o.path, b, err, serr)
	}
}

func TestSecurityPlantedEvidence(t *testing.T) {
	testenv.RequireRoot(t)
	args, names := securityConfig(t)
	base := secBase(t)
	kinds := []struct {
		name    string
		mode    os.FileMode
		uid     int
		refused string // "" accepted; else what the line says
	}{
		{"ours", 0o700, 0, ""},
		{"world", 0o777, 0, "others can write it"},
		{"sticky-root", 0o777 | os.ModeSticky, 0, ""},
		{"sticky-other", 0o777 | os.ModeSticky, 65534, "belongs to another user"},
		{"other", 0o755, 65534, "belongs to another user"},
	}
	plants := map[string]func(target, at string) error{
		"symlink":  os.Symlink,
		"hardlink": os.Link,
		"fifo":     func(_, at string) error { return syscall.Mkfifo(at, 0o666) },
	}
	n := 0
	for _, k := range kinds {
		for _, pk := range []string{"symlink", "hardlink", "fifo"} {
			for _, force := range []bool{false, true} {
				n++
				t.Run(fmt.Sprintf("%s/%s/force=%v", k.name, pk, force), func(t *testing.T) {
					dir := filepath.Join(base, fmt.Sprint(n))
					if err := os.Mkdir(dir, 0o755); err != nil {
						t.Fatal(err)
					}
					out := filepath.Join(dir, "case")
					if err := os.Mkdir(out, 0o700); err != nil {
						t.Fatal(err)
					}
					var outside []*outsideFile
					for _, name := range names {
						o := newOutside(t, filepath.Join(dir, "victim-"+name))
						outside = append(outside, o)
						if err := plants[pk](o.path, filepath.Join(out, name)); err != nil {
							t.Fatal(err)
						}
					}
					if err := os.Chmod(out, k.mode); err != nil {
						t.Fatal(err)
					}
					if err := os.Chown(out, k.uid, k.uid); err != nil {
						t.Fatal(err)
					}
					a := append(slices.Clone(args), "--out", out)
					if force {
						a = append(a, "--force")
					}
					p := startPT(t, "", nil, a...)
					code := p.wait(t, 20*time.Second)
					checkPlantedRun(t, p, code, out, names, k.refused, force)
					for _, o := range outside {
						o.unchanged(t, "pathtrace "+strings.Join(a, " "))
					}
				})
			}
		}
	}

	// The case, accepted on purpose: a world-writable folder with
	// --allow-shared-out --force, every name a link to one file.
	out := filepath.Join(base, "shared")
	if err := os.Mkdir(out, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(out, 0o777)
	victim := newOutside(t, filepath.Join(base, "victim"))
	for _, name := range names {
		if err := os.Symlink(victim.path, filepath.Join(out, name)); err != nil {
			t.Fatal(err)
		}
	}
	p := startPT(t, "", nil, append(slices.Clone(args), "--out", out, "--force", "--allow-shared-out")...)
	checkPlantedRun(t, p, p.wait(t, 20*time.Second), out, names, "", true)
	victim.unchanged(t, "--allow-shared-out --force")

	// Under sudo: the invoking user's own folder is accepted, and the
	// evidence folder pathtrace makes in it, and every file, are theirs.
	theirs := filepath.Join(base, "sudo-user")
	if err := os.Mkdir(theirs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	ev := filepath.Join(theirs, "ev")
	p = startPTAttr(t, "", nil, []string{"SUDO_UID=65534", "SUDO_GID=65534"}, append(slices.Clone(args), "--out", ev)...)
	if code := p.wait(t, 20*time.Second); code != exitOK {
		t.Fatalf("under sudo into the user's folder: exit %d; stderr %s", code, p.errb)
	}
	for _, name := range append([]string{"."}, names...) {
		fi, err := os.Lstat(filepath.Join(ev, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 || st.Gid != 65534 {
			t.Errorf("under sudo: %s belongs to %d:%d, want the invoking user 65534", filepath.Join(ev, name), st.Uid, st.Gid)
		}
	}
}

// checkPlantedRun: refused in one line (naming why and the way out) with
// nothing written, or exit 0 with every name our own regular file.
func checkPlantedRun(t *testing.T, p *ptProc, code int, out string, names []string, refused string, force bool) {
	t.Helper()
	switch {
	case refused != "":
		line := oneLine(t, "refused folder", p.errb.String())
		if code != exitUsage || !strings.Contains(line, refused) || !strings.Contains(line, "--allow-shared-out") {
			t.Errorf("exit %d, stderr %q; want %d and one line saying %q and naming --allow-shared-out", code, line, exitUsage, refused)
		}
	case !force:
		line := oneLine(t, "planted names without --force", p.errb.String())
		if code != exitUsage || !strings.Contains(line, "exists") || !strings.Contains(line, "--force") {
			t.Errorf("exit %d, stderr %q; want %d and one line naming the existing file and --force", code, line, exitUsage)
		}
	default:
		if code != exitOK {
			t.Fatalf("--force over planted names: exit %d; stderr %s", code, p.errb)
		}
		for _, name := range names {
			fi, err := os.Lstat(filepath.Join(out, name))
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			st := fi.Sys().(*syscall.Stat_t)
			if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 || st.Nlink != 1 || fi.Size() == 0 {
				t.Errorf("%s: %v, %d links, %d bytes; want pathtrace's own regular file 0600", name, fi.Mode(), st.Nlink, fi.Size())
			}
		}
		return
	}
	if p.out.String() != "" {
		t.Errorf("a refused run printed %q", p.out)
	}
	es, _ := os.ReadDir(out)
	for _, e := range es {
		if !slices.Contains(names, e.Name()) {
			t.Errorf("a refused run left %s in %s", e.Name(), out)
		}
	}
}

// readmeCaps is the capability list of a setcap line of the README's
// "Running without root" section: the first line, or the one after marker.
func readmeCaps(t *testing.T, marker string) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "## Running without root\n")
	if !ok {
		t.Fatal(`README.md has no "## Running without root" section`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	if marker != "" {
		if _, sec, ok = strings.Cut(sec, marker); !ok {
			t.Fatalf("README: no %q in Running without root", marker)
		}
	}
	m := regexp.MustCompile("(cap_[a-z_]+(?:,cap_[a-z_]+)*)\\+ep").FindStringSubmatch(sec)
	if m == nil {
		t.Fatal("README: no setcap capability list in Running without root")
	}
	return strings.Split(m[1], ",")
}

func capsOf(t *testing.T, names []string) []uintptr {
	t.Helper()
	var out []uintptr
	for _, n := range names {
		found := false
		for c := privs.Cap(0); c < 41; c++ {
			if c.Lower() == n {
				out, found = append(out, uintptr(c)), true
			}
		}
		if !found {
			t.Fatalf("README names %s, not a capability pathtrace knows", n)
		}
	}
	return out
}

func asNobody(caps []uintptr) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Credential:  &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}},
		AmbientCaps: caps,
	}
}

func without(caps []uintptr, c uintptr) []uintptr {
	return slices.DeleteFunc(slices.Clone(caps), func(x uintptr) bool { return x == c })
}

// A live trace as uid 65534 holding exactly the README's capabilities;
// then without each: one line naming it, exit 2, no evidence folder. The
// lab likewise: up and down as 65534, and without each capability no
// namespace made.
func TestSecurityLeastPrivilege(t *testing.T) {
	testenv.RequireRoot(t)
	traceCaps := readmeCaps(t, "")
	labCaps := readmeCaps(t, "with the lab:")
	var want []string
	for _, c := range privs.For(privs.LiveTrace...) {
		want = append(want, c.Lower())
	}
	if slices.Sort(traceCaps); !slices.Equal(traceCaps, slices.Sorted(slices.Values(want))) {
		t.Errorf("README lists %v for a trace, privs.LiveTrace needs %v", traceCaps, want)
	}
	want = want[:0]
	for _, c := range privs.For(privs.Demo...) {
		want = append(want, c.Lower())
	}
	if slices.Sort(labCaps); !slices.Equal(labCaps, slices.Sorted(slices.Values(want))) {
		t.Errorf("README lists %v with the lab, privs.Demo needs %v", labCaps, want)
	}

	args, names := securityConfig(t)
	base := secBase(t)
	mine := filepath.Join(base, "nobody")
	if err := os.Mkdir(mine, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(mine, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	caps := capsOf(t, traceCaps)
	out := filepath.Join(mine, "ev")
	p := startPTAttr(t, mine, asNobody(caps), nil, append(slices.Clone(args), "--out", out)...)
	if code := p.wait(t, 20*time.Second); code != exitOK {
		t.Fatalf("trace as uid 65534 with %v: exit %d; stderr %s", traceCaps, code, p.errb)
	}
	var d liveDoc
	if err := json.Unmarshal([]byte(p.out.String()), &d); err != nil || d.Live == nil || d.Live.Replies != 1 {
		t.Errorf("trace as uid 65534: report %v, live %+v; want the probe answered", err, d.Live)
	}
	for _, name := range names {
		fi, err := os.Stat(filepath.Join(out, name))
		if err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65534 || fi.Size() == 0 {
			t.Errorf("evidence %s: %v, want written by uid 65534", name, err)
		}
	}
	for i, c := range caps {
		name := strings.ToUpper(traceCaps[i])
		t.Run("trace without "+name, func(t *testing.T) {
			ev := filepath.Join(mine, "ev-"+traceCaps[i])
			p := startPTAttr(t, mine, asNobody(without(caps, c)), nil, append(slices.Clone(args), "--out", ev)...)
			code := p.wait(t, 20*time.Second)
			line := oneLine(t, "without "+name, p.errb.String())
			if code != exitUsage || !strings.Contains(line, name) {
				t.Errorf("exit %d, stderr %q; want %d naming %s", code, line, exitUsage, name)
			}
			if _, err := os.Lstat(ev); !os.IsNotExist(err) {
				t.Errorf("refused run made %s (%v)", ev, err)
			}
			if p.out.String() != "" {
				t.Errorf("stdout %q, want nothing", p.out)
			}
		})
	}

	cfg := uniqueLab(t, "pts", 70)
	t.Cleanup(func() { lab.Down(cfg) })
	labArgs := []string{"lab", "up", "--prefix", cfg.Prefix, "--subnet", cfg.Subnet.String()}
	lcaps := capsOf(t, labCaps)
	for _, c := range privs.For(privs.Lab...) {
		name := c.String()
		p := startPTAttr(t, mine, asNobody(without(lcaps, uintptr(c))), nil, labArgs...)
		code := p.wait(t, 20*time.Second)
		line := oneLine(t, "lab up without "+name, p.errb.String())
		if code != exitUsage || !strings.Contains(line, name) {
			t.Errorf("lab up without %s: exit %d, stderr %q; want %d naming it", name, code, line, exitUsage)
		}
		if left := labLeftovers(cfg.Prefix); len(left) != 0 {
			t.Errorf("lab up without %s left %v", name, left)
		}
	}
	p = startPTAttr(t, mine, asNobody(lcaps), nil, labArgs...)
	if code := p.wait(t, 30*time.Second); code != exitOK {
		t.Fatalf("lab up as uid 65534 with %v: exit %d; stderr %s", labCaps, code, p.errb)
	}
	if left := labLeftovers(cfg.Prefix); len(left) < 3 {
		t.Errorf("lab up as uid 65534: %v, want its namespaces and state", left)
	}
	p = startPTAttr(t, mine, asNobody(lcaps), nil, "lab", "down", "--prefix", cfg.Prefix)
	if code := p.wait(t, 30*time.Second); code != exitOK {
		t.Fatalf("lab down as uid 65534: exit %d; stderr %s", code, p.errb)
	}
	if left := labLeftovers(cfg.Prefix); len(left) != 0 {
		t.Errorf("lab down as uid 65534 left %v", left)
	}
}
