package lab

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/netns"
)

// tunnelProc identifies a running tunnel process across restarts of
// pathtrace: its PID and its start time (so a PID reused by another process
// is never killed).
type tunnelProc struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"` // /proc/PID/stat field 22, clock ticks since boot
}

// startTunnel starts "BINARY lab tunnel ..." inside node, detached (own
// session, no inherited terminal, never waited for), and returns once the
// tunnel says it is attached and listening. The binary is this process's
// own: pathtrace, or a test binary whose TestMain dispatches IsTunnelCommand.
func startTunnel(node *netns.Handle, s TunnelSpec) (tunnelProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return tunnelProc{}, fmt.Errorf("find own executable: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return tunnelProc{}, fmt.Errorf("pipe: %w", err)
	}
	defer r.Close()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		w.Close()
		return tunnelProc{}, err
	}
	defer null.Close()
	cmd := exec.Command(exe, append([]string{"lab", "tunnel"}, s.args()...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	cmd.ExtraFiles = []*os.File{w} // fd 3: "ok" or the error
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// Forked from a thread inside the node: the whole process lives there.
	err = netns.Do(node, cmd.Start)
	w.Close()
	if err != nil {
		return tunnelProc{}, fmt.Errorf("start tunnel on %s: %w", s.Dev, err)
	}
	p := tunnelProc{PID: cmd.Process.Pid}
	cmd.Process.Release()
	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, rerr := bufio.NewReader(r).ReadString('\n')
	if line = strings.TrimSpace(line); line != "ok" {
		stopPID(p.PID)
		if line == "" {
			line = fmt.Sprint("no answer: ", rerr)
		}
		return tunnelProc{}, fmt.Errorf("tunnel on %s: %s", s.Dev, strings.TrimPrefix(line, "error: "))
	}
	if p.Start, err = procStart(p.PID); err != nil {
		return tunnelProc{}, err
	}
	return p, nil
}

// alive reports whether p is still the process that was started.
func (p tunnelProc) alive() bool {
	if p.PID <= 0 {
		return false
	}
	st, err := procStart(p.PID)
	return err == nil && st == p.Start && !zombie(p.PID)
}

// stop kills p if it is still the process that was started.
func (p tunnelProc) stop() error {
	if st, err := procStart(p.PID); err != nil || st != p.Start {
		return nil // gone, or the PID is another process's now
	}
	return stopPID(p.PID)
}

// stopPID kills pid and waits until it is gone (reaping it when it is our
// child, as in tests that build labs in-process).
func stopPID(pid int) error {
	if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill tunnel process %d: %w", pid, err)
	}
	for range 200 {
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil || zombie(pid) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("tunnel process %d still there 2 s after SIGKILL", pid)
}

// procStart reads a process's start time from /proc/PID/stat.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return strconv.ParseUint(f[19], 10, 64) // field 22, the 20th after the name
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// killTunnelsIn kills every tunnel process ("... lab tunnel ...") whose
// network namespace is the one at path: the fallback for a state file that
// lost a PID (a crash between starting the tunnel and recording it).
func killTunnelsIn(path string) error {
	ns, err := netns.Open(path)
	if err != nil {
		return nil // no namespace, no process in it
	}
	want := fmt.Sprintf("net:[%d]", ns.Inode)
	ns.Close()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Errorf("list processes: %w", err)
	}
	var errs []error
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if l, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns/net")); err != nil || l != want {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !IsTunnelCommand(strings.Split(string(cmdline), "\x00")) {
			continue
		}
		errs = append(errs, stopPID(pid))
	}
	return errors.Join(errs...)
}
