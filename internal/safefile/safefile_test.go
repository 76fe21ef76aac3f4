package safefile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Planted names in folders of every kind: whatever is under a name and
// whoever owns the folder, no file outside the folder changes (content,
// inode, size, mtime), and a write either produces our own regular files
// or is refused in one line.

const nobody = 65534

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("safefile tests need root (folders of other users, chown)")
		}
		t.Skip("safefile tests need root (folders of other users, chown)")
	}
}

// base is a fresh 0755 root folder under /tmp named with the task prefix.
func base(t *testing.T) string {
	t.Helper()
	b, err := os.MkdirTemp("", "pts-safefile-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(b) })
	if err := os.Chmod(b, 0o755); err != nil {
		t.Fatal(err)
	}
	return b
}

type folderKind struct {
	name   string
	mode   os.FileMode
	uid    int
	refuse Reason // 0: accepted
}

var folderKinds = []folderKind{
	{"ours", 0o700, 0, 0},
	{"world", 0o777, 0, WritableByOthers},
	{"group", 0o770, 0, WritableByOthers},
	{"sticky-root", 0o777 | os.ModeSticky, 0, 0},
	{"sticky-other", 0o777 | os.ModeSticky, nobody, ForeignOwner},
	{"other", 0o755, nobody, ForeignOwner},
}

func mkFolder(t *testing.T, path string, k folderKind) {
	t.Helper()
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, k.mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, k.uid, k.uid); err != nil {
		t.Fatal(err)
	}
}

// victim is a file outside the folder and what it was.
type victim struct {
	path  string
	data  []byte
	ino   uint64
	size  int64
	mtime time.Time
}

func newVictim(t *testing.T, path string) *victim {
	t.Helper()
	data := []byte("victim " + path + "\n")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	v := &victim{path: path, data: data}
	v.ino, v.size, v.mtime = statOf(t, path)
	return v
}

func statOf(t *testing.T, path string) (uint64, int64, time.Time) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("victim %s: %v", path, err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino, fi.Size(), fi.ModTime()
}

func (v *victim) check(t *testing.T, what string) {
	t.Helper()
	b, err := os.ReadFile(v.path)
	ino, size, mtime := statOf(t, v.path)
	if err != nil || !bytes.Equal(b, v.data) || ino != v.ino || size != v.size || !mtime.Equal(v.mtime) {
		t.Errorf("%s: victim %s changed: %q inode %d size %d mtime %v (was %q inode %d)", what, v.path, b, ino, size, mtime, v.data, v.ino)
	}
}

type plantKind string

const (
	plantNone     plantKind = "none"
	plantSymlink  plantKind = "symlink"
	plantHardlink plantKind = "hardlink"
	plantFIFO     plantKind = "fifo"
	plantDir      plantKind = "dir"
)

func plant(t *testing.T, kind plantKind, at string, v *victim) {
	t.Helper()
	var err error
	switch kind {
	case plantNone:
	case plantSymlink:
		err = os.Symlink(v.path, at)
	case plantHardlink:
		err = os.Link(v.path, at)
	case plantFIFO:
		err = syscall.Mkfifo(at, 0o666)
	case plantDir:
		if err = os.Mkdir(at, 0o755); err == nil {
			err = os.WriteFile(filepath.Join(at, "inside"), []byte("x"), 0o644)
		}
	}
	if err != nil {
		t.Fatalf("plant %s at %s: %v", kind, at, err)
	}
}

// oneLine fails unless err's message is one line.
func oneLine(t *testing.T, err error) {
	t.Helper()
	if strings.ContainsAny(err.Error(), "\n\r") {
		t.Errorf("error %q is more than one line", err)
	}
}

func TestPlantedNames(t *testing.T) {
	needRoot(t)
	names := []string{"pod1.cap", "report.json"} // one streamed (Place), one committed (WriteFile)
	for _, k := range folderKinds {
		for _, pk := range []plantKind{plantNone, plantSymlink, plantHardlink, plantFIFO, plantDir} {
			for _, force := range []bool{false, true} {
				for _, shared := range []bool{false, true} {
					name := fmt.Sprintf("%s/%s/force=%v/shared=%v", k.name, pk, force, shared)
					t.Run(name, func(t *testing.T) { plantedCase(t, k, pk, force, shared, names) })
				}
			}
		}
	}
}

func plantedCase(t *testing.T, k folderKind, pk plantKind, force, shared bool, names []string) {
	b := base(t)
	outside := filepath.Join(b, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	folder := filepath.Join(b, "case")
	mkFolder(t, folder, k)
	var victims []*victim
	for _, n := range names {
		v := newVictim(t, filepath.Join(outside, n))
		victims = append(victims, v)
		plant(t, pk, filepath.Join(folder, n), v)
	}
	defer func() {
		for _, v := range victims {
			v.check(t, "after the write")
		}
		es, _ := os.ReadDir(folder)
		for _, e := range es {
			if strings.HasPrefix(e.Name(), ".pathtrace-") {
				t.Errorf("temporary file %s left in the folder", e.Name())
			}
		}
	}()

	d, err := MkdirAll(folder, UserPolicy(shared, "--allow-shared-out"))
	if k.refuse != 0 && !shared {
		var re *RefusedError
		if !errors.As(err, &re) || re.Reason != k.refuse {
			t.Fatalf("folder %s %v: got %v, want refused: %v", k.name, k.mode, err, k.refuse)
		}
		oneLine(t, err)
		if !strings.Contains(err.Error(), "--allow-shared-out") || !strings.Contains(err.Error(), folder) {
			t.Errorf("refusal %q does not name the folder and the flag", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("folder %s: %v", k.name, err)
	}
	defer d.Close()
	if d.Created() {
		t.Error("Created() for an existing folder")
	}
	want := map[string][]byte{}
	for i, n := range names {
		data := []byte(fmt.Sprintf("ours %d %s\n", i, n))
		if i == 0 {
			f, perr := d.Place(n, force)
			if perr == nil {
				if _, werr := f.Write(data); werr != nil {
					t.Fatal(werr)
				}
				perr = f.Close()
			}
			err = perr
		} else {
			err = d.WriteFile(n, data, force)
		}
		switch {
		case pk == plantNone || (force && pk != plantDir):
			if err != nil {
				t.Fatalf("write %s over %s (force %v): %v", n, pk, force, err)
			}
			want[n] = data
		case pk == plantDir:
			if err == nil || (force && !strings.Contains(err.Error(), "folder has that name")) || (!force && !errors.Is(err, fs.ErrExist)) {
				t.Errorf("write %s over a folder: %v, want refused", n, err)
			} else {
				oneLine(t, err)
			}
			if _, serr := os.Stat(filepath.Join(folder, n, "inside")); serr != nil {
				t.Errorf("the planted folder %s lost its file: %v", n, serr)
			}
		default:
			if !errors.Is(err, fs.ErrExist) {
				t.Errorf("write %s over %s without force: %v, want fs.ErrExist", n, pk, err)
			} else {
				oneLine(t, err)
			}
		}
	}
	for n, data := range want {
		p := filepath.Join(folder, n)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 || st.Nlink != 1 || st.Uid != 0 {
			t.Errorf("%s: mode %v links %d uid %d, want our regular file 0600 with one link", n, fi.Mode(), st.Nlink, st.Uid)
		}
		if b, _ := os.ReadFile(p); !bytes.Equal(b, data) {
			t.Errorf("%s holds %q, want %q", n, b, data)
		}
	}
}

// Links on the way to the folder: followed where no one else can change
// them, refused where others can (even with the override), and a missing
// path is created 0700 one folder at a time.
func TestWalk(t *testing.T) {
	needRoot(t)
	b := base(t)
	target := filepath.Join(b, "target")
	mkFolder(t, target, folderKind{mode: 0o700})
	shared := filepath.Join(b, "shared")
	mkFolder(t, shared, folderKind{mode: 0o777})
	if err := os.Symlink(target, filepath.Join(shared, "case")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(b, "mine")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("target", filepath.Join(b, "rel")); err != nil {
		t.Fatal(err)
	}
	sticky := filepath.Join(b, "sticky")
	mkFolder(t, sticky, folderKind{mode: 0o777 | os.ModeSticky})
	if err := os.Symlink(target, filepath.Join(sticky, "rootlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(sticky, "theirlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(sticky, "theirlink"), nobody, nobody); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path   string
		refuse Reason
	}{
		{filepath.Join(shared, "case"), UntrustedLink},
		{filepath.Join(shared, "case", "sub"), UntrustedLink},
		{filepath.Join(sticky, "theirlink"), UntrustedLink},
		{filepath.Join(sticky, "rootlink"), 0},
		{filepath.Join(b, "mine"), 0},
		{filepath.Join(b, "rel"), 0},
		{filepath.Join(b, "mine", "..", "target"), 0},
	} {
		for _, allow := range []bool{false, true} {
			d, err := OpenDir(tc.path, UserPolicy(allow, "--allow-shared-out"))
			var re *RefusedError
			switch {
			case tc.refuse != 0 && (!errors.As(err, &re) || re.Reason != tc.refuse):
				t.Errorf("%s (allow %v): %v, want refused: %v", tc.path, allow, err, tc.refuse)
			case tc.refuse == 0 && err != nil:
				t.Errorf("%s (allow %v): %v", tc.path, allow, err)
			case tc.refuse == 0:
				if err := d.WriteFile("x", []byte("x"), true); err != nil {
					t.Errorf("%s: write: %v", tc.path, err)
				} else if _, err := os.Stat(filepath.Join(target, "x")); err != nil {
					t.Errorf("%s: file not in the link's target: %v", tc.path, err)
				}
				d.Close()
			}
		}
	}

	// Check creates nothing; MkdirAll creates every missing folder 0700.
	deep := filepath.Join(b, "a", "b", "c")
	if err := Check(deep, UserPolicy(false, "")); err != nil {
		t.Fatalf("Check %s: %v", deep, err)
	}
	if _, err := os.Lstat(filepath.Join(b, "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Check created %s/a (%v)", b, err)
	}
	d, err := MkdirAll(deep, UserPolicy(false, ""))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Created() {
		t.Error("MkdirAll of a new folder: Created() false")
	}
	for _, p := range []string{"a", "a/b", "a/b/c"} {
		if fi, err := os.Lstat(filepath.Join(b, p)); err != nil || fi.Mode().Perm() != 0o700 || !fi.IsDir() {
			t.Errorf("%s: %v, want a folder 0700", p, fi.Mode())
		}
	}
	d.RemoveIfEmpty()
	if _, err := os.Lstat(deep); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("RemoveIfEmpty left %s (%v)", deep, err)
	}
	// A name on the way that is a file.
	if err := os.WriteFile(filepath.Join(b, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var re *RefusedError
	if _, err := MkdirAll(filepath.Join(b, "file", "x"), UserPolicy(false, "")); !errors.As(err, &re) || re.Reason != NotFolder {
		t.Errorf("MkdirAll through a file: %v, want refused: %v", err, NotFolder)
	}
}

// Under sudo the invoking user gets what is created and their folder is
// trusted; without a root real uid SUDO_UID means nothing.
func TestHandToSudoUser(t *testing.T) {
	needRoot(t)
	t.Setenv("SUDO_UID", fmt.Sprint(nobody))
	t.Setenv("SUDO_GID", fmt.Sprint(nobody))
	b := base(t)
	theirs := filepath.Join(b, "theirs")
	mkFolder(t, theirs, folderKind{mode: 0o755, uid: nobody})
	d, err := MkdirAll(filepath.Join(theirs, "ev"), UserPolicy(false, "--allow-shared-out"))
	if err != nil {
		t.Fatalf("the sudo user's folder: %v", err)
	}
	defer d.Close()
	if err := d.WriteFile("report.json", []byte("{}"), false); err != nil {
		t.Fatal(err)
	}
	f, err := d.Place("pod1.cap", false)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, p := range []string{"ev", "ev/report.json", "ev/pod1.cap"} {
		fi, err := os.Lstat(filepath.Join(theirs, p))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != nobody || st.Gid != nobody {
			t.Errorf("%s: owner %d:%d, want the sudo user %d", p, st.Uid, st.Gid, nobody)
		}
	}
	// Another user's folder is still refused.
	other := filepath.Join(b, "other")
	mkFolder(t, other, folderKind{mode: 0o755, uid: nobody + 1})
	var re *RefusedError
	if _, err := OpenDir(other, UserPolicy(false, "--allow-shared-out")); !errors.As(err, &re) || re.Reason != ForeignOwner {
		t.Errorf("uid %d's folder under sudo by %d: %v, want refused", nobody+1, nobody, err)
	}
}

// Remove takes away only what this run created: a name someone replaced
// in between is left alone. Reads never follow a link or block on a FIFO.
func TestRemoveAndRead(t *testing.T) {
	needRoot(t)
	b := base(t)
	d, err := MkdirAll(filepath.Join(b, "ev"), SystemPolicy())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f, err := d.Place("report.json", false)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(b, "ev", "report.json")
	if err := os.Rename(p, p+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("someone else's"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.Remove()
	f.Close()
	if b, err := os.ReadFile(p); err != nil || string(b) != "someone else's" {
		t.Errorf("Remove took a name that was no longer ours: %q %v", b, err)
	}

	v := newVictim(t, filepath.Join(b, "victim"))
	if err := os.Symlink(v.path, filepath.Join(b, "ev", "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(b, "ev", "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"link", "fifo"} {
		done := make(chan error, 1)
		go func() {
			_, err := d.ReadFile(n)
			if err == nil {
				_, err = d.OpenLock(n)
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("ReadFile/OpenLock %s: no error", n)
			} else {
				oneLine(t, err)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("ReadFile %s blocked", n)
		}
	}
	v.check(t, "after reads through planted names")
	for _, bad := range []string{"", ".", "..", "../x", "a/b"} {
		if _, err := d.Create(bad); err == nil {
			t.Errorf("Create(%q): no error", bad)
		}
	}
}
