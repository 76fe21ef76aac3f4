package correlate

import (
	"sync"

	"golang.org/x/sys/cpu"
)

// With Config.Async, a finished trace's report — its hops, rewrites and
// addresses — is built, and handed to the sink, on a goroutine of the
// engine's (the builder): the correlator's goroutine keeps the matching and
// everything judged against frames still coming (loss, gaps, pairing,
// statistics, anomalies) and passes each trace on with those judgements.
// Traces reach the sink in number order, as without it. The builder gets a
// copy of each trace, made while the correlator has it in cache, in a
// batch it reads front to back; the trace itself is the correlator's again
// at once. (Handing over the trace instead made both cores miss on it:
// the builder reading what the correlator wrote, the correlator refilling
// what the builder had read.)
//
// With Config.Helped the builder has no goroutine of its own: the batches
// are built by goroutines that would otherwise wait (Helper: the offline
// merge, whose frames the correlator has not taken yet, and the
// correlator waiting for frames), and by the correlator itself when every
// batch is out. A third busy goroutine on two cores took turns with the
// two that carry the analysis, and moved them between cores (set1x -f
// json: the correlator ran 504 ms against the table's 383, and moved 83
// times against 11).

// handed is one trace passed to the builder, with what the correlator
// judged of it.
type handed struct {
	t          trace // a copy: its slices are the record's own
	order      []int
	prev       []int
	direction  Direction
	dirCertain bool
	missing    []string
	lostAfter  string
	flags      []Flag
	replyTo    OptInt
	rtt        RTT
	hasRTT     bool
}

type handBatch struct {
	recs []handed
	n    int
}

type builder struct {
	e      *Engine
	sink   Sink
	helped bool          // Config.Helped: no goroutine of its own
	mu     sync.Mutex    // Helped: held while building, so batches go out one at a time, in order
	ready  chan struct{} // Helped: a batch was queued
	todo   chan *handBatch
	back   chan *handBatch // built: its traces are the correlator's again
	done   chan struct{}
	cur    *handBatch // the correlator's
	// The builder's (with Helped, the goroutine holding mu), written once
	// a trace: on cache lines apart from cur, which the correlator reads
	// as often (sharing one, each took the line from the other core).
	_   cpu.CacheLinePad
	out Trace
}

const (
	handBatchTraces = 64
	// handBatches being filled or built bounds the traces out at once. The
	// builder shares its core with the merge and the GC, so its pace
	// varies: with 16 the correlator seldom waits for a batch back (set1x
	// -f json: 8% less wall than with 4; 2 were slower still, 64 no faster).
	handBatches = 16
)

// startBuilder sets up the builder for e's sink, and starts its goroutine
// unless Helped.
func (e *Engine) startBuilder() {
	b := &builder{e: e, sink: e.sink, helped: e.cfg.Helped, ready: make(chan struct{}, 1),
		todo: make(chan *handBatch, handBatches), back: make(chan *handBatch, handBatches), done: make(chan struct{})}
	// Each record's slices sized for a trace crossing every point once, in
	// one block: records do not allocate as they are first used.
	n := len(e.cfg.Points)
	hops, ips, ints := make([]hop, handBatches*handBatchTraces*n), make([]ipPair, handBatches*handBatchTraces), make([]int, 2*handBatches*handBatchTraces*n)
	for range handBatches {
		hb := &handBatch{recs: make([]handed, handBatchTraces)}
		for i := range hb.recs {
			r := &hb.recs[i]
			r.t.hops, hops = hops[:0:n], hops[n:]
			r.t.ips, ips = ips[:0:1], ips[1:]
			r.order, r.prev, ints = ints[:0:n], ints[n:n:2*n], ints[2*n:]
		}
		b.back <- hb
	}
	if !b.helped {
		go b.run()
	}
	e.async = b
}

// hand passes a copy of t on, out holding the correlator's judgements. A
// full batch goes to the builder; the next one is the first batch back.
func (b *builder) hand(t *trace, out *Trace, order, prev []int) {
	if b.cur == nil {
		b.cur = b.take()
		b.cur.n = 0
	}
	r := &b.cur.recs[b.cur.n]
	b.cur.n++
	r.t.copyOf(t)
	r.order = append(r.order[:0], order...)
	r.prev = append(r.prev[:0], prev...)
	r.direction, r.dirCertain, r.lostAfter, r.replyTo = out.Direction, out.dirCertain, out.LostAfter, out.ReplyTo
	r.missing = append(r.missing[:0], out.Missing...)
	r.flags = append(r.flags[:0], out.Flags...)
	r.hasRTT = out.RTT != nil
	if r.hasRTT {
		r.rtt = *out.RTT
	}
	if b.cur.n == handBatchTraces {
		b.flush()
	}
}

// take is an empty batch: one built, or, Helped, one the correlator builds
// itself when none is back and no other goroutine is building.
func (b *builder) take() *handBatch {
	for b.helped {
		select {
		case hb := <-b.back:
			return hb
		default:
		}
		if !b.help() {
			break // another goroutine is building: its batch comes back
		}
	}
	// Not in vain: with cur nil, each of the handBatches is
	// back, queued or being built — and what is built comes back.
	return <-b.back
}

// flush queues the batch being filled (never blocks: todo holds every
// batch).
func (b *builder) flush() {
	if b.cur != nil && b.cur.n > 0 {
		b.todo <- b.cur
		b.cur = nil
		if b.helped {
			select {
			case b.ready <- struct{}{}:
			default: // a wake-up is pending already
			}
		}
	}
}

// wait hands over what is left and returns once every trace is built and
// handed to the sink.
func (b *builder) wait() {
	b.flush()
	if b.helped {
		b.mu.Lock() // after the batch another goroutine may be building
		defer b.mu.Unlock()
		for len(b.todo) > 0 {
			b.buildOne()
		}
		return
	}
	close(b.todo)
	<-b.done
}

// help builds the oldest batch queued, unless none is or another goroutine
// is building one; it reports whether it built one.
func (b *builder) help() bool {
	if !b.mu.TryLock() {
		return false
	}
	defer b.mu.Unlock()
	if len(b.todo) == 0 { // nothing queued (receives from todo are all under mu)
		return false
	}
	b.buildOne()
	return true
}

// buildOne builds the oldest batch queued (one is) and gives it back.
func (b *builder) buildOne() {
	hb := <-b.todo
	b.build(hb)
	b.back <- hb
}

func (b *builder) run() {
	defer close(b.done)
	for batch := range b.todo {
		b.build(batch)
		b.back <- batch
	}
}

// build makes each trace of batch a report and hands it to the sink.
func (b *builder) build(batch *handBatch) {
	out := &b.out
	for i := range batch.n {
		r := &batch.recs[i]
		out.reset()
		out.Missing, out.Flags = append(out.Missing, r.missing...), append(out.Flags, r.flags...)
		b.e.describe(&r.t, out)
		out.Direction, out.dirCertain, out.LostAfter, out.ReplyTo = r.direction, r.dirCertain, r.lostAfter, r.replyTo
		if r.hasRTT {
			out.RTT = &r.rtt
		}
		b.e.buildHops(&r.t, out, r.order, r.prev)
		b.sink(out)
	}
}

// Helper is what goroutines other than the correlator's do for an engine
// with Config.Helped instead of waiting: build its finished traces.
type Helper struct{ b *builder }

// Helper is e's, nil without Config.Async and Config.Helped (or a sink).
func (e *Engine) Helper() *Helper {
	if e.async == nil || !e.async.helped {
		return nil
	}
	return &Helper{e.async}
}

// Help builds a batch of finished traces if one is queued and no other
// goroutine is building; it reports whether it did. Safe from any
// goroutine, also once the engine has finished.
func (h *Helper) Help() bool { return h.b.help() }

// Ready is signalled when a batch is queued: a goroutine waiting for
// something else waits for it too, to Help.
func (h *Helper) Ready() <-chan struct{} { return h.b.ready }

// copyOf makes d a copy of t in d's own memory, without t's links into the
// engine's tables (the builder reads neither).
func (d *trace) copyOf(t *trace) {
	hops, ips, encaps := d.hops, d.ips, d.encaps
	*d = *t
	d.hops = append(hops[:0], t.hops...)
	d.ips = append(ips[:0], t.ips...)
	d.encaps = append(encaps[:0], t.encaps...)
	d.nextSame, d.flow = nil, nil
}
