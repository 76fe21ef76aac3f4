package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/pathtrace/pathtrace/capture/decode"
	"github.com/pathtrace/pathtrace/capture/filter"
	"github.com/pathtrace/pathtrace/capture/kdrop"
	"github.com/pathtrace/pathtrace/capture/nftrace"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/discover"
	"github.com/pathtrace/pathtrace/internal/interrupt"
	"github.com/pathtrace/pathtrace/netns"
)

// Why a probe was lost: while the capture runs, kdrop reports the kernel's
// drops of the run's packets (skb:kfree_skb, matched in the kernel by the
// probes' echo id and payload tag, or by the endpoints' addresses in a
// passive run) and nftrace names the nftables rule of every netfilter drop
// in each namespace on the path. At the end the drops join the traces of
// the frames they freed (correlate.AttachDrops).

// neighGrace: a neighbour entry fails about 3 s after its first
// solicitation (3 tries of 1 s), and the probes queued behind it die only
// then (NEIGH_FAILED); an unanswered probe is waited for that long.
const neighGrace = 3500 * time.Millisecond

// maxDropEvents bounds what one run keeps (a flood of matched drops in a
// passive run).
const maxDropEvents = 20000

// whyMatch selects the run's packets: the probes, or (passive) the
// endpoints' own traffic narrowed by --filter.
type whyMatch struct {
	echoID  uint16
	tag     []byte // the probes' payload tag (its first 16 bytes are matched)
	addrs   []netip.Addr
	filter  *filter.Filter
	passive bool
}

// dropWatch is one run's kernel drop watcher and rule tracers.
type dropWatch struct {
	kd      *kdrop.Watcher
	tracers []*nsTracer
	notes   []string
	spaces  *nsNames
	filter  *frameFilter

	mu      sync.Mutex
	drops   []dropRecord
	rules   []ruleEvent
	skbs    map[uint64]int64 // skb address → time: one packet reported twice is one drop
	dropped int              // beyond maxDropEvents

	stop       context.CancelFunc
	stopOnce   sync.Once
	wg         sync.WaitGroup
	unregister func()
}

// nsTracer is the rule tracer of one namespace on the path.
type nsTracer struct {
	t     *nftrace.Tracer
	ns    *netns.Handle // the tracer reads rules through it
	inode uint64
	label string
}

// dropRecord is one matched drop, decoded and keyed.
type dropRecord struct {
	correlate.Drop
	echoID  uint16
	hasEcho bool
	inode   uint64
	ifindex int
	symbol  string
	l3proto uint16 // ethertype of packet
	packet  []byte // the headers from the (outer) network header on
	inner   int    // where the matched inner network header starts
}

// ruleEvent is a netfilter drop as nft trace reports it.
type ruleEvent struct {
	at    time.Time
	inode uint64
	key   ruleKey
	rule  string
}

// ruleKey ties an nft trace event to a kernel drop event: the same
// namespace, addresses and ICMP type, id and seq (a trace event carries
// only the first 40 bytes of the transport header, not the whole payload
// the correlator keys by).
type ruleKey struct {
	src, dst     netip.Addr
	typ          uint8
	echoID, seq  uint16
	hasEchoField bool
}

// openDropWatch starts watching before the first probe is sent. Nothing
// that fails here fails the run: each missing part is a note (no BTF, no
// CAP_BPF, a namespace whose ruleset cannot be traced).
func openDropWatch(path *discover.Path, m whyMatch) *dropWatch {
	dw := &dropWatch{skbs: map[uint64]int64{}, spaces: newNSNames(path), filter: newFrameFilter(m.filter)}
	km := kdrop.Match{Addrs: m.addrs}
	nm := nftrace.Match{Addrs: m.addrs}
	if !m.passive {
		prefix := m.tag[:min(len(m.tag), nftrace.MaxPayload)]
		km = kdrop.Match{EchoID: m.echoID, HasEchoID: true, Payload: prefix}
		nm = nftrace.Match{EchoID: m.echoID, Payload: prefix}
	}
	kd, err := kdrop.Open(km)
	if err != nil {
		var ue *kdrop.UnavailableError
		if errors.As(err, &ue) {
			dw.notes = append(dw.notes, "drop reasons unavailable: "+ue.Error())
		} else {
			dw.notes = append(dw.notes, fmt.Sprintf("drop reasons unavailable: %v", err))
		}
	} else {
		dw.kd = kd
	}
	seen := map[uint64]bool{}
	for _, p := range path.Points {
		if seen[p.Inode] {
			continue
		}
		seen[p.Inode] = true
		if err := dw.openTracer(p.NetnsPath, p.Inode, p.Netns, nm); err != nil {
			dw.notes = append(dw.notes, fmt.Sprintf("nftables rules of netns %s will not be named: %v", p.Netns, err))
		}
	}
	if dw.kd == nil && len(dw.tracers) == 0 {
		return dw
	}
	ctx, cancel := context.WithCancel(context.Background())
	dw.stop = cancel
	if dw.kd != nil {
		dw.wg.Add(1)
		go dw.readDrops(ctx)
	}
	for _, t := range dw.tracers {
		dw.wg.Add(1)
		go dw.readRules(ctx, t)
	}
	// A forced exit still removes the trace tables (the kernel removes
	// owned ones with the process anyway).
	dw.unregister = interrupt.AtExit(func() { dw.closeSources() })
	return dw
}

// openTracer removes trace tables left by killed runs in the namespace,
// then installs this run's.
func (dw *dropWatch) openTracer(nsPath string, inode uint64, label string, m nftrace.Match) error {
	h, err := netns.Open(nsPath)
	if err != nil {
		return err
	}
	removed, err := nftrace.CleanStale(h)
	if err != nil {
		h.Close()
		return fmt.Errorf("clean tables of dead runs: %w", err)
	}
	for _, name := range removed {
		dw.notes = append(dw.notes, fmt.Sprintf("removed nft table %s left in netns %s by a run that was killed", name, label))
	}
	t, err := nftrace.Open(h, m)
	if err != nil {
		h.Close()
		return err
	}
	dw.tracers = append(dw.tracers, &nsTracer{t: t, ns: h, inode: inode, label: label})
	return nil
}

// readDrops takes every matched drop as it comes, keyed at once so the
// probe loop can ask which probes the kernel dropped.
func (dw *dropWatch) readDrops(ctx context.Context) {
	defer dw.wg.Done()
	dec := decode.New()
	for {
		ev, err := dw.kd.Read(ctx)
		if err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, kdrop.ErrClosed) {
				dw.note(fmt.Sprintf("drop watcher stopped: %v", err))
			}
			return
		}
		// OTHERHOST: a copy of a frame for another MAC that a promiscuous
		// device (a capture point's bridge) passed up to its own IP stack;
		// the frame itself went on.
		if ev.ReasonName == "OTHERHOST" {
			continue
		}
		rec, ok := dw.record(dec, &ev)
		if !ok {
			continue
		}
		dw.mu.Lock()
		if t, dup := dw.skbs[ev.Skb]; dup && t == ev.Time {
			dw.mu.Unlock()
			continue
		}
		dw.skbs[ev.Skb] = ev.Time
		if len(dw.drops) < maxDropEvents {
			dw.drops = append(dw.drops, rec)
		} else {
			dw.dropped++
		}
		dw.mu.Unlock()
	}
}

// readRules keeps the netfilter drops nft trace reports in one namespace.
func (dw *dropWatch) readRules(ctx context.Context, t *nsTracer) {
	defer dw.wg.Done()
	for {
		ev, err := t.t.Read(ctx)
		if err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, nftrace.ErrClosed) {
				dw.note(fmt.Sprintf("nft trace in netns %s stopped: %v", t.label, err))
			}
			return
		}
		if !ev.Dropped() {
			continue
		}
		k, ok := nftKey(ev.Network, ev.Transport)
		if !ok {
			continue
		}
		rule := ev.Rule
		if rule == "" {
			rule = fmt.Sprintf("%s %s %s handle %d", ev.Family, ev.Table, ev.Chain, ev.Handle)
			if ev.RuleErr != nil {
				rule += fmt.Sprintf(" (rule text unavailable: %v)", ev.RuleErr)
			}
		}
		dw.mu.Lock()
		if len(dw.rules) < maxDropEvents {
			dw.rules = append(dw.rules, ruleEvent{at: ev.Time, inode: t.inode, key: k, rule: rule})
		}
		dw.mu.Unlock()
	}
}

func (dw *dropWatch) note(s string) {
	dw.mu.Lock()
	dw.notes = append(dw.notes, s)
	dw.mu.Unlock()
}

// active says whether anything watches drops.
func (dw *dropWatch) active() bool { return dw != nil && (dw.kd != nil || len(dw.tracers) > 0) }

// droppedSeqs reports which echo seqs of the run (id) the kernel dropped
// so far, requests or replies.
func (dw *dropWatch) droppedSeqs(id uint16) map[uint16]bool {
	seqs := map[uint16]bool{}
	if dw == nil {
		return seqs
	}
	dw.mu.Lock()
	defer dw.mu.Unlock()
	for i := range dw.drops {
		if d := &dw.drops[i]; d.hasEcho && d.echoID == id {
			seqs[uint16(d.Key.Seq)] = true
		}
	}
	return seqs
}

// close stops the sources, then gives the drops of the run with their
// rules and names, and the notes to print once.
func (dw *dropWatch) close() ([]dropRecord, []string) {
	if dw == nil {
		return nil, nil
	}
	dw.closeSources()
	if dw.unregister != nil {
		dw.unregister()
	}
	dw.mu.Lock()
	defer dw.mu.Unlock()
	if dw.kd != nil {
		dw.notes = append(dw.notes, dw.kd.Notes()...)
		if n := dw.kd.Lost(); n > 0 {
			dw.notes = append(dw.notes, fmt.Sprintf("%d drops of the run's packets were not reported (the drop ring buffer was full)", n))
		}
	}
	if dw.dropped > 0 {
		dw.notes = append(dw.notes, fmt.Sprintf("only the first %d drops of the run's packets were kept, %d more not", maxDropEvents, dw.dropped))
	}
	dw.joinRules()
	dw.spaces.name(dw.drops)
	return dw.drops, dw.notes
}

// closeSources detaches the program and removes the trace tables (also
// from the forced-exit path); the readers end with them.
func (dw *dropWatch) closeSources() {
	if dw.stop == nil {
		return
	}
	dw.stopOnce.Do(dw.closeOnce)
}

func (dw *dropWatch) closeOnce() {
	dw.stop()
	if dw.kd != nil {
		if err := dw.kd.Close(); err != nil {
			dw.note(err.Error())
		}
	}
	for _, t := range dw.tracers {
		if err := t.t.Close(); err != nil {
			dw.note(err.Error())
		}
	}
	dw.wg.Wait()
	for _, t := range dw.tracers {
		t.ns.Close()
	}
}

// joinRules gives each netfilter drop the rule that dropped it: a drop
// verdict nft trace reported in the same namespace for the same packet
// (addresses, ICMP type, id, seq), the nearest in time. Legacy iptables
// (x_tables) rules cannot be traced: their drops keep reason and location.
func (dw *dropWatch) joinRules() {
	used := make([]bool, len(dw.rules))
	for i := range dw.drops {
		d := &dw.drops[i]
		if d.Reason != "NETFILTER_DROP" {
			continue
		}
		k, ok := nftKey(d.packet[d.inner:], transportOf(d.packet[d.inner:]))
		if !ok {
			continue
		}
		best := -1
		var bestGap time.Duration
		for j := range dw.rules {
			r := &dw.rules[j]
			if used[j] || r.inode != d.inode || r.key != k {
				continue
			}
			gap := r.at.Sub(time.Unix(0, d.Time)).Abs()
			if gap > time.Second {
				continue
			}
			if best < 0 || gap < bestGap {
				best, bestGap = j, gap
			}
		}
		if best >= 0 {
			used[best] = true
			d.Rule = dw.rules[best].rule
		} else if legacyTable(d.symbol) {
			d.Rule = "a legacy iptables rule (x_tables): nft trace cannot name it; see iptables-legacy -L -v -n in netns " + d.Netns
		}
	}
}

// legacyTable: the drop was in legacy iptables/ip6tables/arptables/
// ebtables, which nft trace does not see.
func legacyTable(symbol string) bool {
	for _, f := range []string{"ipt_do_table", "ip6t_do_table", "arpt_do_table", "ebt_do_table"} {
		if len(symbol) >= len(f) && symbol[:len(f)] == f {
			return true
		}
	}
	return false
}
