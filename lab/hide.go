package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"golang.org/x/sys/unix"
)

// hiddenDir keeps the namespaces Hide took out of RunDir, still mounted.
const hiddenDir = StateDir + "/hidden"

// Hide takes the named namespace out of RunDir while it keeps running (its
// mount moves to a folder of the lab's own), so pathtrace on this machine
// sees it as it would see a node it does not run on: not at all. unhide
// puts it back; lab down cannot remove a hidden namespace, so call unhide
// before it.
func Hide(name string) (unhide func() error, err error) {
	if !prefixRE.MatchString(name) || name == "" {
		return nil, fmt.Errorf("hide %q: not a namespace name", name)
	}
	d, err := stateDir()
	if err != nil {
		return nil, err
	}
	d.Close()
	if err := os.MkdirAll(hiddenDir, 0o700); err != nil {
		return nil, fmt.Errorf("hide %s: %w", name, err)
	}
	from, to := filepath.Join(RunDir, name), filepath.Join(hiddenDir, name)
	if err := move(from, to); err != nil {
		return nil, fmt.Errorf("hide %s: %w", name, err)
	}
	return func() error {
		if err := move(to, from); err != nil {
			return fmt.Errorf("unhide %s: %w", name, err)
		}
		return nil
	}, nil
}

// move bind-mounts the namespace file from at to (a new empty file) and
// unmounts and removes from.
func move(from, to string) error {
	f, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return err
	}
	f.Close()
	if err := unix.Mount(from, to, "none", unix.MS_BIND, ""); err != nil {
		os.Remove(to)
		return fmt.Errorf("bind %s to %s: %w", from, to, err)
	}
	if err := unix.Unmount(from, unix.MNT_DETACH); err != nil {
		return errors.Join(fmt.Errorf("unmount %s: %w", from, err), unix.Unmount(to, unix.MNT_DETACH))
	}
	return os.Remove(from)
}

// unhideAll puts back the lab's hidden namespaces (a test that hid one
// and died), so down removes them like the others.
func unhideAll(names *regexp.Regexp) []error {
	entries, err := os.ReadDir(hiddenDir)
	if err != nil {
		return nil
	}
	var errs []error
	for _, e := range entries {
		if names.MatchString(e.Name()) {
			if err := move(filepath.Join(hiddenDir, e.Name()), filepath.Join(RunDir, e.Name())); err != nil {
				errs = append(errs, fmt.Errorf("unhide %s: %w", e.Name(), err))
			}
		}
	}
	return errs
}
