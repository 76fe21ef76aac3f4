// Package privs knows which capability each step of pathtrace needs, reads
// the ones this process has and refuses a command, in one line naming what
// is missing and what for, before it changes anything. It checks
// capabilities, never uid 0: pathtrace runs as an unprivileged user holding
// just these (setcap on the binary, a pod's securityContext).
package privs

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Cap is a Linux capability (its bit number, linux/capability.h).
type Cap uint

const (
	Chown         Cap = unix.CAP_CHOWN
	DacOverride   Cap = unix.CAP_DAC_OVERRIDE
	DacReadSearch Cap = unix.CAP_DAC_READ_SEARCH
	NetAdmin      Cap = unix.CAP_NET_ADMIN
	NetRaw        Cap = unix.CAP_NET_RAW
	SysPtrace     Cap = unix.CAP_SYS_PTRACE
	SysAdmin      Cap = unix.CAP_SYS_ADMIN
	Syslog        Cap = unix.CAP_SYSLOG
	Perfmon       Cap = unix.CAP_PERFMON
	BPF           Cap = unix.CAP_BPF
)

var capNames = map[Cap]string{
	Chown: "CAP_CHOWN", DacOverride: "CAP_DAC_OVERRIDE", DacReadSearch: "CAP_DAC_READ_SEARCH",
	NetAdmin: "CAP_NET_ADMIN", NetRaw: "CAP_NET_RAW", SysPtrace: "CAP_SYS_PTRACE",
	SysAdmin: "CAP_SYS_ADMIN", Syslog: "CAP_SYSLOG", Perfmon: "CAP_PERFMON", BPF: "CAP_BPF",
}

// String is the kernel's name, "CAP_NET_RAW".
func (c Cap) String() string {
	if n, ok := capNames[c]; ok {
		return n
	}
	return fmt.Sprintf("CAP_%d", uint(c))
}

// Lower is the name as setcap and setpriv take it, "cap_net_raw".
func (c Cap) Lower() string { return strings.ToLower(c.String()) }

// Set is a capability set.
type Set uint64

// Has reports whether c is in the set.
func (s Set) Has(c Cap) bool { return c < 64 && s&(1<<c) != 0 }

// Of is the set holding caps.
func Of(caps ...Cap) Set {
	var s Set
	for _, c := range caps {
		s |= 1 << c
	}
	return s
}

// Caps lists the set's capabilities in bit order.
func (s Set) Caps() []Cap {
	var out []Cap
	for c := Cap(0); c < 64; c++ {
		if s.Has(c) {
			out = append(out, c)
		}
	}
	return out
}

func (s Set) String() string {
	var n []string
	for _, c := range s.Caps() {
		n = append(n, c.String())
	}
	return strings.Join(n, ", ")
}

// Current returns the calling thread's effective and permitted sets (Go
// threads share them: pathtrace never changes its capabilities).
func Current() (effective, permitted Set, err error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, 0, fmt.Errorf("read capabilities: %w", err)
	}
	effective = Set(data[0].Effective) | Set(data[1].Effective)<<32
	permitted = Set(data[0].Permitted) | Set(data[1].Permitted)<<32
	return effective, permitted, nil
}
