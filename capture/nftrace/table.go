package nftrace

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/netns"
)

// TablePrefix starts the name of every table pathtrace makes:
// pathtrace_<pid>_<start>, with the owner's PID and its start time (clock
// ticks after boot, /proc/PID/stat field 22), so a later run can tell a
// leftover of a dead run from a live run's table even if the PID was reused.
const TablePrefix = "pathtrace_"

var tableRE = regexp.MustCompile(`^pathtrace_([0-9]+)_([0-9]+)$`)

// Priority of the trace chains: before everything else hooked there
// (conntrack defrag is -400, raw -300), so a probe is marked before any
// rule can drop it.
const Priority = math.MinInt32 + 1

// tableFlagOwner (NFT_TABLE_F_OWNER, Linux 5.12+): the kernel removes the
// table when the netlink socket that made it closes, so even a SIGKILLed run
// leaves nothing behind; no other socket may change it.
const tableFlagOwner = 0x2

// TableName is the table name for process pid.
func TableName(pid int) (string, error) {
	start, err := procStart(pid)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s%d_%d", TablePrefix, pid, start), nil
}

// procStart reads a process's start time from /proc/PID/stat.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and ')': fields follow the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); the start time is field 22.
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// ownerAlive: the process named in a pathtrace table name still runs (same
// PID and start time).
func ownerAlive(name string) (bool, error) {
	m := tableRE.FindStringSubmatch(name)
	if m == nil {
		return false, fmt.Errorf("%s is not a pathtrace table name", name)
	}
	pid, err := strconv.Atoi(m[1])
	if err != nil {
		return false, fmt.Errorf("table %s: pid: %w", name, err)
	}
	start, err := procStart(pid)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("table %s: owner: %w", name, err)
	}
	return strconv.FormatUint(start, 10) == m[2], nil
}

// CleanStale removes, in ns, the pathtrace tables whose owner is gone (a
// run killed on a kernel without owner tables, or one whose owner flag was
// refused), never a live run's. It returns "family name" of each removed.
func CleanStale(ns *netns.Handle) ([]string, error) {
	conn, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
	if err != nil {
		return nil, fmt.Errorf("nftables in %s: %w", ns.Path, err)
	}
	tables, err := conn.ListTables()
	if err != nil {
		return nil, fmt.Errorf("list nft tables in %s: %w", ns.Path, err)
	}
	var removed []string
	for _, t := range tables {
		if !tableRE.MatchString(t.Name) {
			continue
		}
		alive, err := ownerAlive(t.Name)
		if err != nil || alive {
			continue
		}
		conn.DelTable(t)
		if err := conn.Flush(); err != nil {
			return removed, fmt.Errorf("remove stale table %s %s in %s: %w", Family(t.Family), t.Name, ns.Path, err)
		}
		removed = append(removed, fmt.Sprintf("%s %s", Family(t.Family), t.Name))
	}
	return removed, nil
}

// install adds the run's tables on c (the tracer's own socket in the
// namespace): bridge and inet, each with prerouting and output chains whose
// one rule per ICMP version sets nftrace on the probes only. nf_trace is
// cleared when a packet enters another namespace, hence a table in each.
func install(c *netlink.Conn, name string, m Match, owner bool) error {
	var flags uint32
	if owner {
		flags = tableFlagOwner
	}
	var b batch
	for _, fam := range traceFamilies {
		b.newTable(fam, name, flags)
		for _, h := range []struct {
			name string
			num  uint32
		}{{"prerouting", unix.NF_INET_PRE_ROUTING}, {"output", unix.NF_INET_LOCAL_OUT}} {
			b.newChain(fam, name, h.name, h.num, Priority)
			if len(m.Addrs) > 0 {
				for _, a := range m.Addrs {
					for _, src := range []bool{true, false} {
						b.newRule(fam, name, h.name, addrExprs(a, src))
					}
				}
				continue
			}
			for _, proto := range []byte{unix.IPPROTO_ICMP, unix.IPPROTO_ICMPV6} {
				b.newRule(fam, name, h.name, traceExprs(proto, m))
			}
		}
	}
	return b.send(c)
}

// traceFamilies: the bridge family sees bridged frames, inet routed and
// local ones (the bridge hooks use the same numbers for prerouting and
// output).
var traceFamilies = []uint8{unix.NFPROTO_BRIDGE, unix.NFPROTO_INET}

// remove deletes the run's tables on c.
func remove(c *netlink.Conn, name string) error {
	var b batch
	for _, fam := range traceFamilies {
		b.delTable(fam, name)
	}
	return b.send(c)
}

// maxAddrs bounds the address rules of a passive run (two per address,
// chain and family).
const maxAddrs = 16

// addrExprs: meta l4proto icmp ip saddr A meta nftrace set 1 (daddr, and
// icmpv6 with ip6 for an IPv6 address): a passive run traces the
// endpoints' own echoes. The ICMP version pins the IP version.
func addrExprs(a netip.Addr, src bool) []expr.Any {
	a = a.Unmap()
	proto, off := byte(unix.IPPROTO_ICMP), uint32(12)
	if a.Is6() {
		proto, off = unix.IPPROTO_ICMPV6, 8
	}
	if !src {
		off += uint32(a.BitLen() / 8)
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(a.BitLen() / 8)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.AsSlice()},
		&expr.Immediate{Register: 1, Data: []byte{1}},
		&expr.Meta{Key: expr.MetaKeyNFTRACE, SourceRegister: true, Register: 1},
	}
}

// traceExprs: meta l4proto P @th,32,16 ID @th,64,LEN PAYLOAD meta nftrace set 1.
func traceExprs(proto byte, m Match) []expr.Any {
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 4, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(m.EchoID >> 8), byte(m.EchoID)}},
	}
	if len(m.Payload) > 0 {
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 8, Len: uint32(len(m.Payload))},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: append([]byte(nil), m.Payload...)})
	}
	return append(e,
		&expr.Immediate{Register: 1, Data: []byte{1}},
		&expr.Meta{Key: expr.MetaKeyNFTRACE, SourceRegister: true, Register: 1})
}
