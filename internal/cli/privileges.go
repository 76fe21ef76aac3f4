package cli

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Capability bits (linux/capability.h).
const (
	capNetAdmin = 12
	capNetRaw   = 13
	capSysAdmin = 21
)

// effectiveCaps reads the process's effective capability set.
func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("no CapEff in /proc/self/status")
}

// needCaps fails with one line naming every missing capability and what it
// is for, before anything on the node is changed.
func needCaps(caps map[int]string) error {
	eff, err := effectiveCaps()
	if err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	var missing []string
	for _, bit := range []int{capNetRaw, capSysAdmin, capNetAdmin} {
		if why, ok := caps[bit]; ok && eff&(1<<uint(bit)) == 0 {
			missing = append(missing, why)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s (run as root, e.g. with sudo)", strings.Join(missing, ", "))
	}
	return nil
}

// checkPrivileges: a live trace opens packet and raw sockets (CAP_NET_RAW)
// inside other namespaces (CAP_SYS_ADMIN for setns).
func checkPrivileges() error {
	return needCaps(map[int]string{
		capNetRaw:   "CAP_NET_RAW for the capture and probe sockets",
		capSysAdmin: "CAP_SYS_ADMIN to enter network namespaces",
	})
}

// checkLabPrivileges: the lab also creates links and namespaces.
func checkLabPrivileges() error {
	return needCaps(map[int]string{
		capSysAdmin: "CAP_SYS_ADMIN to create network namespaces",
		capNetAdmin: "CAP_NET_ADMIN to create links",
	})
}
