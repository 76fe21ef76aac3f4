package safefile

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is an open folder that files are created in, relative to its handle:
// renaming or replacing the folder's path afterwards changes nothing about
// where the files go.
type Dir struct {
	fd      int // O_RDONLY|O_DIRECTORY: *at calls, fsync, fchown
	parent  int // the folder holding it, for removing it again; -1 if none
	base    string
	path    string // as given, for messages and listed paths
	pol     Policy
	created bool
	dev     uint64
	ino     uint64
}

// OpenDir opens an existing folder and checks it (Policy). Links on the way
// are followed only where they sit in folders no one else can write.
func OpenDir(path string, pol Policy) (*Dir, error) {
	d, err := pol.walk(path, false)
	if err == nil && d == nil {
		err = &fs.PathError{Op: "open", Path: path, Err: unix.ENOENT}
	}
	return d, err
}

// MkdirAll opens the folder, creating what is missing of it 0700 (handed to
// Policy.HandTo), and checks it as OpenDir does when it existed.
func MkdirAll(path string, pol Policy) (*Dir, error) { return pol.walk(path, true) }

// Check says whether path would be accepted, without creating anything: an
// existing folder is checked; for a missing one, the way to it.
func Check(path string, pol Policy) error {
	d, err := pol.walk(path, false)
	if d != nil {
		d.Close()
	}
	return err
}

// Path is the folder's path as given.
func (d *Dir) Path() string { return d.path }

// Created reports whether this Dir made the folder.
func (d *Dir) Created() bool { return d.created }

// Sync makes the folder's entries (renames) durable.
func (d *Dir) Sync() error {
	if err := unix.Fsync(d.fd); err != nil {
		return fmt.Errorf("sync %s: %w", d.path, err)
	}
	return nil
}

// Close releases the handle.
func (d *Dir) Close() error {
	if d.parent >= 0 {
		unix.Close(d.parent)
		d.parent = -1
	}
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// RemoveIfEmpty removes the folder if this Dir created it, it is empty and
// its name still refers to it; it closes the Dir.
func (d *Dir) RemoveIfEmpty() {
	if d.created && d.parent >= 0 {
		var st unix.Stat_t
		if unix.Fstatat(d.parent, d.base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Dev == d.dev && st.Ino == d.ino {
			unix.Unlinkat(d.parent, d.base, unix.AT_REMOVEDIR) // fails unless empty: nothing else's is lost
		}
	}
	d.Close()
}

// maxLinks bounds the links followed on one path, as the kernel does.
const maxLinks = 40

// walk resolves path one name at a time from "/" or ".", following a link
// only where it sits in a folder no one else can write, and creating missing
// folders when create is set. Without create, a missing folder gives a nil
// Dir and no error.
func (p Policy) walk(path string, create bool) (*Dir, error) {
	if path == "" {
		return nil, errors.New("empty folder path")
	}
	start := "."
	if filepath.IsAbs(path) {
		start = "/"
	}
	cur, err := unix.Open(start, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: start, Err: err}
	}
	parent := -1
	defer func() {
		if cur >= 0 {
			unix.Close(cur)
		}
		if parent >= 0 {
			unix.Close(parent)
		}
	}()
	var curSt unix.Stat_t
	if err := unix.Fstat(cur, &curSt); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: start, Err: err}
	}
	names := split(path)
	shown := start // the path walked so far, for messages
	if start == "." {
		shown = ""
	}
	base, created, links, races := "", false, 0, 0
	for len(names) > 0 {
		name := names[0]
		names = names[1:]
		at := join(shown, name)
		var st unix.Stat_t
		err := unix.Fstatat(cur, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		made := false
		switch {
		case errors.Is(err, unix.ENOENT):
			if !create {
				return nil, nil
			}
			if err := unix.Mkdirat(cur, name, 0o700); errors.Is(err, unix.EEXIST) && races < 8 {
				races++ // someone made it meanwhile: look again
				names = append([]string{name}, names...)
				continue
			} else if err != nil {
				return nil, &fs.PathError{Op: "mkdir", Path: at, Err: err}
			}
			made = true
		case err != nil:
			return nil, &fs.PathError{Op: "stat", Path: at, Err: err}
		case st.Mode&unix.S_IFMT == unix.S_IFLNK:
			if !p.trustedEntry(&curSt, &st) {
				return nil, &RefusedError{Path: at, Reason: UntrustedLink,
					Detail: fmt.Sprintf("%s is mode %04o, owner %s", dirName(shown), curSt.Mode&0o7777, ownerName(curSt.Uid))}
			}
			if links++; links > maxLinks {
				return nil, &fs.PathError{Op: "open", Path: path, Err: unix.ELOOP}
			}
			target, err := readlinkat(cur, name)
			if err != nil {
				return nil, &fs.PathError{Op: "readlink", Path: at, Err: err}
			}
			if filepath.IsAbs(target) {
				root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
				if err != nil {
					return nil, &fs.PathError{Op: "open", Path: "/", Err: err}
				}
				unix.Close(cur)
				if parent >= 0 {
					unix.Close(parent)
				}
				cur, parent, shown, base = root, -1, "/", ""
				unix.Fstat(cur, &curSt)
			}
			names = append(split(target), names...)
			continue
		case st.Mode&unix.S_IFMT != unix.S_IFDIR:
			return nil, &RefusedError{Path: at, Reason: NotFolder}
		}
		fd, err := unix.Openat(cur, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil && made {
			return nil, &RefusedError{Path: at, Reason: Replaced, Detail: err.Error()}
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: at, Err: err}
		}
		if parent >= 0 {
			unix.Close(parent)
		}
		parent, cur = cur, fd
		if err := unix.Fstat(cur, &curSt); err != nil {
			return nil, &fs.PathError{Op: "stat", Path: at, Err: err}
		}
		if made {
			// Ours only if it is still the folder just made: a 0700
			// folder of the effective user.
			if int(curSt.Uid) != unix.Geteuid() || curSt.Mode&0o077 != 0 {
				return nil, &RefusedError{Path: at, Reason: Replaced, Detail: fmt.Sprintf("now mode %04o, owner %s", curSt.Mode&0o7777, ownerName(curSt.Uid))}
			}
			if h := p.HandTo; h != nil {
				if err := unix.Fchownat(cur, "", h.UID, h.GID, unix.AT_EMPTY_PATH); err != nil {
					return nil, &fs.PathError{Op: "chown", Path: at, Err: err}
				}
			}
		}
		shown, base, created = at, name, made
	}
	if !created {
		if err := p.checkFolder(path, &curSt); err != nil {
			return nil, err
		}
	}
	// The walk holds path handles (enough to pass folders that may not be
	// read); files are made through a real one.
	fd, err := unix.Openat(cur, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	unix.Close(cur)
	cur = fd
	d := &Dir{fd: cur, parent: parent, base: base, path: path, pol: p, created: created, dev: curSt.Dev, ino: curSt.Ino}
	cur, parent = -1, -1
	return d, nil
}

// checkFolder refuses a folder someone else could change: another user's,
// or one group or others can write unless it is sticky and ours.
func (p Policy) checkFolder(path string, st *unix.Stat_t) error {
	if p.AllowShared {
		return nil
	}
	if !p.trusted(st.Uid) {
		return &RefusedError{Path: path, Reason: ForeignOwner, Detail: "owner " + ownerName(st.Uid), Override: p.Override}
	}
	if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return &RefusedError{Path: path, Reason: WritableByOthers, Detail: fmt.Sprintf("mode %04o", st.Mode&0o7777), Override: p.Override}
	}
	return nil
}

// trustedEntry: a name in dir can be changed only by users we trust - the
// folder is ours and no one else may write it, or it is sticky (only the
// name's owner and the folder's may change it) and both are ours.
func (p Policy) trustedEntry(dir, entry *unix.Stat_t) bool {
	if !p.trusted(dir.Uid) {
		return false
	}
	return dir.Mode&0o022 == 0 || (dir.Mode&unix.S_ISVTX != 0 && p.trusted(entry.Uid))
}

// split is a path's names, cleaned lexically ("a/../b" is "b"; a leading
// ".." stays and is resolved as the real parent).
func split(path string) []string {
	var out []string
	for _, n := range strings.Split(filepath.Clean(path), "/") {
		if n != "" && n != "." {
			out = append(out, n)
		}
	}
	return out
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return filepath.Join(dir, name)
}

func dirName(shown string) string {
	if shown == "" {
		return "."
	}
	return shown
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}
