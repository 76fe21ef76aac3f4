package pipeline

import (
	"net/netip"

	"github.com/pathtrace/pathtrace/correlate"
)

// whyMatch is what the drop watcher keeps: the probes (echo id and
// payload tag), or in a passive run the endpoints' addresses and --filter.
func (lt *liveTrace) whyMatch() whyMatch {
	if !lt.o.Passive {
		return whyMatch{echoID: lt.echoID, tag: lt.tag}
	}
	m := whyMatch{passive: true, filter: lt.o.Filter}
	for _, a := range []netip.Addr{lt.path.Src.IP, lt.path.Dst.IP} {
		if a.IsValid() {
			m.addrs = append(m.addrs, a)
		}
	}
	return m
}

// closeWatch stops the drop watcher once (it removes the nft trace tables)
// and keeps its drops and notes (warnings once the correlator is done).
func (lt *liveTrace) closeWatch() {
	if lt.watch == nil {
		return
	}
	lt.drops, lt.whyNotes = lt.watch.close()
	lt.watch = nil
}

// seeProbe notes the seqs of the run's probes some point saw (the keeper
// calls it for every trace).
func (lt *liveTrace) seeProbe(t *correlate.Trace) {
	if lt.o.Passive || t.Type != "echo-request" || !t.ID.Valid || t.ID.V != uint64(lt.echoID) {
		return
	}
	if lt.seen == nil {
		lt.seen = map[uint16]bool{}
	}
	lt.seen[uint16(t.Seq.V)] = true
}

// lostProbes warns what the drop watcher noted, then makes a trace of
// every probe sent that no point saw, keyed as its drop if the kernel
// reported one.
func (lt *liveTrace) lostProbes() {
	for _, n := range lt.whyNotes {
		lt.eng.Warn(n)
	}
	if lt.o.Passive || lt.o.TCP.IsValid() { // SYNs are told apart by sequence number, not echo id
		return
	}
	for seq := uint16(1); int(seq) <= lt.info.Sent; seq++ {
		if !lt.seen[seq] {
			lt.lost = append(lt.lost, lostNote{ID: lt.echoID, Seq: seq, Src: lt.path.Src.IP, Dst: lt.path.Dst.IP})
		}
	}
	addLostProbes(lt.eng, lt.lost, lt.drops)
}

// attachDrops joins the drops to the held traces, says why in the
// verdict, and lets the traces go to the sinks; the evidence records the
// drops.
func (lt *liveTrace) attachDrops(r *correlate.Result) {
	lt.keep.release(func(traces []correlate.Trace) { joinDrops(r, traces, lt.drops) })
	if lt.keep.released > 0 {
		r.Warnings = append(r.Warnings, "the first traces of a long run were reported before the kernel's drops were known: they carry none")
	}
	lt.o.Evidence.setDrops(lt.drops, lt.lost)
}
