package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/netns"
)

// RunDir is where named network namespaces live, as `ip netns` uses it.
const RunDir = "/run/netns"

// markPrefix is written as the alias of lo in every namespace the lab makes,
// so Down can tell its namespaces from someone else's of the same name.
const markPrefix = "pathtrace-lab:"

func mark(prefix string) string { return markPrefix + prefix }

// ensureRunDir makes /run/netns a shared mount point like iproute2 does, so
// bind mounts made under it propagate to other mount namespaces.
func ensureRunDir() error {
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", RunDir, err)
	}
	err := unix.Mount("", RunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("make %s shared: %w", RunDir, err)
	}
	// Not a mount point yet: bind it onto itself, then make it shared.
	if err := unix.Mount(RunDir, RunDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind mount %s: %w", RunDir, err)
	}
	if err := unix.Mount("", RunDir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", RunDir, err)
	}
	return nil
}

// createNamed makes a new network namespace named name (/run/netns/name),
// with lo up and carrying the lab's mark from before it becomes visible.
func createNamed(name, markText string) error {
	if err := ensureRunDir(); err != nil {
		return err
	}
	path := filepath.Join(RunDir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0)
	if err != nil {
		return fmt.Errorf("create namespace file %s: %w", path, err)
	}
	f.Close()

	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Current()
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("open current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("unshare network namespace: %w", err)
			return
		}
		ferr := markAndMount(path, markText)
		if err := unix.Setns(orig.Fd(), unix.CLONE_NEWNET); err != nil {
			// Keep the thread locked: the runtime discards it when we return.
			done <- fmt.Errorf("return from new network namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	if err := <-done; err != nil {
		os.Remove(path)
		return fmt.Errorf("create network namespace %s: %w", name, err)
	}
	return nil
}

// markAndMount runs on the thread that is inside the new namespace.
func markAndMount(path, markText string) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := h.LinkSetAlias(lo, markText); err != nil {
		return fmt.Errorf("mark lo: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
	if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount %s on %s: %w", self, path, err)
	}
	return nil
}

// readMark returns the alias of lo in the namespace at path.
func readMark(path string) (string, error) {
	ns, err := netns.Open(path)
	if err != nil {
		return "", err
	}
	defer ns.Close()
	h, err := handleAt(ns)
	if err != nil {
		return "", err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return "", fmt.Errorf("find lo in %s: %w", path, err)
	}
	return lo.Attrs().Alias, nil
}

// isNsfs reports whether path is a mounted namespace (as opposed to the
// empty placeholder file left when a creation was interrupted).
func isNsfs(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// removeNamed unmounts and removes /run/netns/name. A missing file is fine.
func removeNamed(name string) error {
	path := filepath.Join(RunDir, name)
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

func handleAt(ns *netns.Handle) (*netlink.Handle, error) {
	h, err := netlink.NewHandleAt(nsHandle(ns))
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", ns.Path, err)
	}
	return h, nil
}
