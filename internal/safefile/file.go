package safefile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// File is a file this package created in a Dir. Until placed it has a
// temporary name in the same folder; Place or Commit gives it its name.
type File struct {
	*os.File
	dir    *Dir
	name   string // its name once placed
	tmp    string // its name until then
	placed bool
	dev    uint64
	ino    uint64
}

// Create makes a new empty file that becomes name only on Commit: readers
// never see half of it, and a failed write leaves nothing (Close removes
// it). Open for reading and writing, 0600, handed to Policy.HandTo.
func (d *Dir) Create(name string) (*File, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	var fd int
	var tmp string
	for tries := 0; ; tries++ {
		tmp = tempName(name)
		var err error
		fd, err = unix.Openat(d.fd, tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EEXIST) || tries == 16 {
			return nil, &fs.PathError{Op: "create", Path: d.join(name), Err: err}
		}
	}
	f := &File{File: os.NewFile(uintptr(fd), d.join(name)), dir: d, name: name, tmp: tmp}
	var st unix.Stat_t
	err := unix.Fstat(fd, &st)
	if err == nil && st.Mode&0o7777 != 0o600 {
		err = unix.Fchmod(fd, 0o600) // umask may have taken bits; 0600 exactly
	}
	if err == nil && d.pol.HandTo != nil {
		err = unix.Fchown(fd, d.pol.HandTo.UID, d.pol.HandTo.GID)
	}
	if err != nil {
		f.Close()
		return nil, &fs.PathError{Op: "create", Path: d.join(name), Err: err}
	}
	f.dev, f.ino = st.Dev, st.Ino
	return f, nil
}

// Place creates name now and returns it open for streaming (a capture
// written as it comes): the file has its name from the start, so a run
// killed midway leaves what it wrote, under its name. Without replace an
// existing name of any kind is refused (fs.ErrExist); with replace a file,
// link, FIFO... under the name is replaced - the name, never what a link
// points to. A folder under the name is refused either way.
func (d *Dir) Place(name string, replace bool) (*File, error) {
	f, err := d.Create(name)
	if err != nil {
		return nil, err
	}
	if err := f.place(replace); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Commit writes the file's data out (fsync), gives it its name (see Place
// for replace) and closes it. On failure the temporary file is removed.
func (f *File) Commit(replace bool) error {
	if f.placed {
		return f.Close()
	}
	err := f.File.Sync()
	if err != nil {
		err = fmt.Errorf("sync %s: %w", f.Name(), err)
	} else {
		err = f.place(replace)
	}
	if err == nil {
		err = f.dir.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (f *File) place(replace bool) error {
	d := f.dir
	var err error
	if replace {
		err = unix.Renameat(d.fd, f.tmp, d.fd, f.name)
	} else {
		err = unix.Renameat2(d.fd, f.tmp, d.fd, f.name, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EINVAL) {
			// A filesystem without RENAME_NOREPLACE: a hard link is made
			// only if the name is free, never through a link.
			if err = unix.Linkat(d.fd, f.tmp, d.fd, f.name, 0); err == nil {
				unix.Unlinkat(d.fd, f.tmp, 0)
			}
		}
	}
	switch {
	case err == nil:
		f.placed = true
		return nil
	case errors.Is(err, unix.EEXIST) && !replace:
		return &fs.PathError{Op: "create", Path: d.join(f.name), Err: fs.ErrExist}
	case errors.Is(err, unix.EISDIR), errors.Is(err, unix.ENOTEMPTY), errors.Is(err, unix.EEXIST):
		return &fs.PathError{Op: "create", Path: d.join(f.name), Err: errors.New("a folder has that name")}
	}
	return &fs.PathError{Op: "create", Path: d.join(f.name), Err: err}
}

// Close closes the file: a placed file is synced first (evidence must
// survive a crash once pathtrace said it was written); a file never placed
// is removed.
func (f *File) Close() error {
	if f.File == nil {
		return nil
	}
	var err error
	if f.placed {
		if err = f.File.Sync(); err != nil {
			err = fmt.Errorf("sync %s: %w", f.Name(), err)
		}
	} else {
		f.unlinkIfOurs(f.tmp)
	}
	if cerr := f.File.Close(); err == nil && cerr != nil && !errors.Is(cerr, os.ErrClosed) {
		err = cerr
	}
	return err
}

// Remove removes the file's name, if the name still refers to this file.
func (f *File) Remove() {
	if f.placed {
		f.unlinkIfOurs(f.name)
		f.placed = false
	} else {
		f.unlinkIfOurs(f.tmp)
	}
}

func (f *File) unlinkIfOurs(name string) {
	var st unix.Stat_t
	if unix.Fstatat(f.dir.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Dev == f.dev && st.Ino == f.ino {
		unix.Unlinkat(f.dir.fd, name, 0)
	}
}

// Size is how many bytes the file holds.
func (f *File) Size() (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	return st.Size, nil
}

// WriteFile replaces name with data atomically: temporary file, fsync,
// rename (replace as for Place).
func (d *Dir) WriteFile(name string, data []byte, replace bool) error {
	f, err := d.Create(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", d.join(name), err)
	}
	return f.Commit(replace)
}

// ReadFile reads a regular file of the folder, not through a link.
func (d *Dir) ReadFile(name string) ([]byte, error) {
	f, err := d.open(name, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", d.join(name), err)
	}
	return b, nil
}

// OpenLock opens (creating it if missing, 0600) a regular file of the
// folder to hold a lock on; it is never written and never a link.
func (d *Dir) OpenLock(name string) (*os.File, error) {
	return d.open(name, unix.O_RDWR|unix.O_CREAT, 0o600)
}

// open opens a regular file of the folder without following a link and
// without blocking on a FIFO.
func (d *Dir) open(name string, flags int, perm uint32) (*os.File, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	fd, err := unix.Openat(d.fd, name, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, perm)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			err = errors.New("a symbolic link has that name")
		}
		return nil, &fs.PathError{Op: "open", Path: d.join(name), Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		if err == nil {
			err = errors.New("not a regular file")
		}
		return nil, &fs.PathError{Op: "open", Path: d.join(name), Err: err}
	}
	// Back to blocking reads: it is a regular file.
	unix.SetNonblock(fd, false)
	return os.NewFile(uintptr(fd), d.join(name)), nil
}

// Exists reports whether anything (a link included) has the name.
func (d *Dir) Exists(name string) (bool, error) {
	if err := checkName(name); err != nil {
		return false, err
	}
	var st unix.Stat_t
	err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, &fs.PathError{Op: "stat", Path: d.join(name), Err: err}
	}
	return true, nil
}

// Remove removes a file (not a folder) of the folder by name.
func (d *Dir) Remove(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := unix.Unlinkat(d.fd, name, 0); err != nil {
		return &fs.PathError{Op: "remove", Path: d.join(name), Err: err}
	}
	return nil
}

func (d *Dir) join(name string) string { return join(d.path, name) }

// checkName allows one name within the folder, nothing that leaves it.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return fmt.Errorf("file name %q: want a name within the folder", name)
	}
	return nil
}

// tempName is a fresh hidden name next to name, recognisably pathtrace's.
func tempName(name string) string {
	var b [6]byte
	rand.Read(b[:])
	return ".pathtrace-" + hex.EncodeToString(b[:]) + "-" + name
}
