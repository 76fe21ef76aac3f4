package privs

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Current reads what the kernel shows in /proc/self/status.
func TestCurrentMatchesProcStatus(t *testing.T) {
	eff, perm, err := Current()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]Set{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		for _, k := range []string{"CapEff:", "CapPrm:"} {
			if v, ok := strings.CutPrefix(s.Text(), k); ok {
				n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				if err != nil {
					t.Fatal(err)
				}
				want[k] = Set(n)
			}
		}
	}
	if eff != want["CapEff:"] || perm != want["CapPrm:"] {
		t.Errorf("Current: effective %#x permitted %#x; /proc/self/status %#x %#x", eff, perm, want["CapEff:"], want["CapPrm:"])
	}
}

// One line naming every missing capability once, with the first step of
// the command that needs it; permitted-but-not-effective ones say so.
func TestRequireMessage(t *testing.T) {
	if err := require("live trace", Of(NetRaw, SysAdmin, SysPtrace), 0, LiveTrace); err != nil {
		t.Errorf("all held: %v", err)
	}
	err := require("lab up", Of(NetAdmin), Of(DacOverride), Lab)
	var me *MissingError
	if !errors.As(err, &me) {
		t.Fatalf("lab up with CAP_NET_ADMIN only: %v, want a MissingError", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("message %q is more than one line", msg)
	}
	for _, w := range []string{"lab up", "CAP_SYS_ADMIN (create network namespaces under /run/netns)",
		"CAP_DAC_OVERRIDE", "CAP_DAC_OVERRIDE permitted but not effective", "Running without root"} {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q lacks %q", msg, w)
		}
	}
	if strings.Count(msg, "CAP_SYS_ADMIN") != 1 || strings.Contains(msg, "CAP_NET_ADMIN") {
		t.Errorf("message %q: want CAP_SYS_ADMIN once and no CAP_NET_ADMIN (held)", msg)
	}
	if got := For(LiveTrace...); len(got) != 3 || got[0] != NetRaw || got[1] != SysPtrace || got[2] != SysAdmin {
		t.Errorf("For(LiveTrace) = %v, want CAP_NET_RAW, CAP_SYS_PTRACE, CAP_SYS_ADMIN", got)
	}
	for _, n := range Table {
		if n.What == "" || n.Found == "" {
			t.Errorf("step %d: no description or experiment", n.Step)
		}
	}
}
