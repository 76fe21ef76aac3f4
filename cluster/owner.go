package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Owner is the coordinator that started agent pods: the process, told
// apart from any other on any machine. It is written on every agent pod
// (AnnOwner) so the next run can tell a killed run's leftovers from the
// agents of a run still going.
type Owner struct {
	Host   string `json:"host"`
	BootID string `json:"boot_id"` // /proc/sys/kernel/random/boot_id: this machine, this boot
	PIDNS  uint64 `json:"pidns"`   // the PID namespace's inode: a PID means something only there
	PID    int    `json:"pid"`
	Start  uint64 `json:"start"` // the process's start, clock ticks after boot (/proc/PID/stat): a reused PID differs
}

// Self is this process as an Owner.
func Self() Owner {
	o := Owner{PID: os.Getpid()}
	o.Host, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		o.BootID = strings.TrimSpace(string(b))
	}
	var st unix.Stat_t
	if unix.Stat("/proc/self/ns/pid", &st) == nil {
		o.PIDNS = st.Ino
	}
	o.Start, _ = startTicks(o.PID)
	return o
}

// String is the owner as pod annotations and messages show it.
func (o Owner) String() string { return fmt.Sprintf("%s pid %d", o.Host, o.PID) }

// Gone reports whether the owner has certainly exited: it ran on this
// machine in this boot and PID namespace, and its PID is free or now
// another process's. Of an owner elsewhere nothing is certain (false):
// its pods' deadline decides.
func (o Owner) Gone() bool {
	self := Self()
	if o.BootID == "" || o.BootID != self.BootID || o.PIDNS != self.PIDNS || o.PID <= 0 {
		return false
	}
	start, err := startTicks(o.PID)
	return err != nil || start != o.Start
}

// startTicks is field 22 of /proc/PID/stat: when the process started.
func startTicks(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command (field 2) is in parentheses and may hold spaces: count
	// fields after its closing one.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the command", pid, len(f))
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// marshal is the owner as the annotation's value.
func (o Owner) marshal() string {
	b, _ := json.Marshal(o)
	return string(b)
}

// parseOwner reads the annotation; false when absent or unreadable.
func parseOwner(s string) (Owner, bool) {
	var o Owner
	if s == "" || json.Unmarshal([]byte(s), &o) != nil {
		return Owner{}, false
	}
	return o, true
}

// parseDeadline reads the deadline annotation; false when absent or
// unreadable.
func parseDeadline(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, s)
	return t, err == nil
}
