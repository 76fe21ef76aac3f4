// Package netns runs code inside Linux network namespaces safely: on a
// locked OS thread that is switched back before it is unlocked, and discarded
// if switching back fails, so no goroutine ever runs in a namespace it did not
// ask for.
package netns

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Handle is an open network namespace file (/proc/PID/ns/net, /run/netns/NAME).
type Handle struct {
	f     *os.File
	Path  string
	Inode uint64
	Dev   uint64
}

// Open opens the namespace at path and records its identity (dev, inode).
func Open(path string) (*Handle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat network namespace %s: %w", path, err)
	}
	return &Handle{f: f, Path: path, Inode: st.Ino, Dev: st.Dev}, nil
}

// Current opens the calling thread's network namespace.
func Current() (*Handle, error) {
	return Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
}

// Fd returns the namespace file descriptor (for netlink.NewHandleAt and
// LinkSetNsFd).
func (h *Handle) Fd() int { return int(h.f.Fd()) }

// Same reports whether two handles name the same namespace.
func (h *Handle) Same(o *Handle) bool { return h.Inode == o.Inode && h.Dev == o.Dev }

func (h *Handle) Close() error { return h.f.Close() }

// Do runs fn on a fresh locked OS thread switched into ns. fn must not start
// goroutines (they would run in whatever namespace their thread is in). File
// descriptors fn opens (sockets) stay bound to ns after Do returns. If the
// thread cannot be switched back, it is left locked so the runtime destroys
// it rather than reuse it in the wrong namespace.
func Do(ns *Handle, fn func() error) error {
	type result struct{ err error }
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := Current()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{fmt.Errorf("open current network namespace: %w", err)}
			return
		}
		defer orig.Close()
		if err := unix.Setns(ns.Fd(), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{fmt.Errorf("enter network namespace %s: %w", ns.Path, err)}
			return
		}
		ferr := fn()
		if err := unix.Setns(orig.Fd(), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: the runtime kills it when this goroutine exits.
			done <- result{fmt.Errorf("return from network namespace %s: %w", ns.Path, err)}
			return
		}
		runtime.UnlockOSThread()
		done <- result{ferr}
	}()
	return (<-done).err
}
