// Package nftrace finds the nftables rule that dropped a probe. In one
// network namespace it installs a table of pathtrace's own that sets
// nftrace on the run's probes only (ICMP/ICMPv6 echo id + payload prefix),
// listens for the kernel's trace events (NFNLGRP_NFTRACE) and, for a drop,
// renders the dropping rule like `nft list ruleset` prints it. iptables-nft
// rules are nft rules and show up too (their xtables matches rendered as
// far as known); legacy iptables (ip_tables) is invisible here: its drops
// only have the kernel's drop reason and location (package kdrop).
package nftrace

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/netns"
)

// MaxPayload is the longest payload prefix one trace rule compares (one
// 16-byte register).
const MaxPayload = 16

// Match selects the run's packets: its probes by ICMP/ICMPv6 echo id and a
// payload prefix unique to the run (requests and replies both carry them),
// or, with Addrs (a passive run), the endpoints' own ICMP/ICMPv6 by source
// or destination address.
type Match struct {
	EchoID  uint16
	Payload []byte
	Addrs   []netip.Addr
}

// ownerTables: ask for owner tables (tests turn it off to leave a table
// behind on SIGKILL, as a kernel without owner tables does).
var ownerTables = true

// ErrClosed is returned by Read after Close.
var ErrClosed = errors.New("nft tracer closed")

// Tracer traces the run's probes in one namespace.
type Tracer struct {
	ns     *netns.Handle
	table  string
	own    *netlink.Conn // made the tables (and owns them, see Owned)
	owner  bool
	mon    *netlink.Conn
	events chan Event
	errc   chan error
	rules  *ruleCache

	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
}

// Open installs the trace table in ns and starts listening. The table is
// owned by the tracer's netlink socket where the kernel supports that, so
// it vanishes with the process even on SIGKILL; Close removes it anyway.
func Open(ns *netns.Handle, m Match) (*Tracer, error) {
	if len(m.Payload) > MaxPayload {
		return nil, fmt.Errorf("nft trace: payload prefix of %d bytes, at most %d", len(m.Payload), MaxPayload)
	}
	if len(m.Addrs) > maxAddrs {
		return nil, fmt.Errorf("nft trace: %d addresses, at most %d", len(m.Addrs), maxAddrs)
	}
	name, err := TableName(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("nft trace: own table name: %w", err)
	}
	t := &Tracer{ns: ns, table: name, events: make(chan Event, 256), errc: make(chan error, 1), done: make(chan struct{})}
	// Listen first, so no trace of an early probe is missed.
	t.mon, err = netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: ns.Fd()})
	if err != nil {
		return nil, fmt.Errorf("nft trace: netlink socket in %s: %w", ns.Path, err)
	}
	if err := t.mon.JoinGroup(unix.NFNLGRP_NFTRACE); err != nil {
		t.mon.Close()
		return nil, fmt.Errorf("nft trace: join NFNLGRP_NFTRACE in %s: %w", ns.Path, err)
	}
	_ = t.mon.SetReadBuffer(4 << 20)
	if err := t.installTables(m); err != nil {
		t.mon.Close()
		return nil, err
	}
	t.rules = newRuleCache(ns)
	go t.listen()
	return t, nil
}

func (t *Tracer) installTables(m Match) error {
	var errs []error
	for _, owner := range []bool{ownerTables, false} {
		c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: t.ns.Fd()})
		if err != nil {
			return fmt.Errorf("nft trace: netlink socket in %s: %w", t.ns.Path, err)
		}
		if err := install(c, t.table, m, owner); err != nil {
			c.Close()
			errs = append(errs, err)
			// Kernels before 5.12 refuse the owner flag: retry without
			// (then CleanStale removes what a killed run leaves).
			continue
		}
		t.own, t.owner = c, owner
		return nil
	}
	return fmt.Errorf("nft trace: add table %s in %s: %w", t.table, t.ns.Path, errors.Join(errs...))
}

// Table is the name of the tracer's tables (bridge and inet).
func (t *Tracer) Table() string { return t.table }

// Owned reports whether the kernel removes the tables by itself when the
// process dies (NFT_TABLE_F_OWNER).
func (t *Tracer) Owned() bool { return t.owner }

// packet is what the kernel dumps of a traced packet: only in the first
// event of each trace id (usually the own table's rule), so it is kept to
// complete the later events of the same packet.
type packet struct {
	ll, network, transport []byte
	iif, oif               int
	iifType, oifType       uint16
	mark                   uint32
}

// maxPackets bounds the trace ids remembered (each packet's trace is over
// in microseconds; old ids are simply forgotten).
const maxPackets = 4096

func (t *Tracer) listen() {
	defer close(t.events)
	packets := map[uint32]packet{}
	for {
		msgs, err := t.mon.Receive()
		if err != nil {
			select {
			case <-t.done:
			default:
				if errors.Is(err, unix.ENOBUFS) {
					// Overrun: some events were lost; keep going.
					continue
				}
				t.errc <- fmt.Errorf("nft trace in %s: receive: %w", t.ns.Path, err)
			}
			return
		}
		now := time.Now()
		for _, msg := range msgs {
			if msg.Header.Type != netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_TRACE) {
				continue
			}
			ev, err := parseTrace(msg.Data)
			if err != nil {
				continue
			}
			if len(ev.Network) > 0 || len(ev.LL) > 0 {
				if len(packets) >= maxPackets {
					clear(packets)
				}
				packets[ev.ID] = packet{ev.LL, ev.Network, ev.Transport, ev.Iif, ev.Oif, ev.IifType, ev.OifType, ev.Mark}
			} else if p, ok := packets[ev.ID]; ok {
				ev.LL, ev.Network, ev.Transport = p.ll, p.network, p.transport
				ev.Iif, ev.Oif, ev.IifType, ev.OifType, ev.Mark = p.iif, p.oif, p.iifType, p.oifType, p.mark
			}
			if ev.Table == t.table {
				continue // own rules: every probe passes them
			}
			ev.Time = now
			if ev.Dropped() {
				ev.Rule, ev.RuleErr = t.rules.describe(ev)
			}
			select {
			case t.events <- ev:
			case <-t.done:
				return
			}
		}
	}
}

// Read returns the next trace event (of other tables than the tracer's
// own) until ctx ends; ErrClosed after Close.
func (t *Tracer) Read(ctx context.Context) (Event, error) {
	select {
	case ev, ok := <-t.events:
		if ok {
			return ev, nil
		}
		select {
		case err := <-t.errc:
			return Event{}, err
		default:
			return Event{}, ErrClosed
		}
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
}

// Close removes the tables and stops listening.
func (t *Tracer) Close() error {
	t.closeOnce.Do(func() {
		close(t.done)
		var errs []error
		if err := remove(t.own, t.table); err != nil {
			errs = append(errs, fmt.Errorf("remove table %s in %s: %w", t.table, t.ns.Path, err))
		}
		errs = append(errs, t.own.Close(), t.mon.Close())
		t.closeErr = errors.Join(errs...)
	})
	return t.closeErr
}
