package correlate

import "golang.org/x/sys/cpu"

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
	e    *Engine
	sink Sink
	todo chan *handBatch
	back chan *handBatch // built: its traces are the correlator's again
	done chan struct{}
	cur  *handBatch // the correlator's
	// The builder goroutine's, written once a trace: on cache lines apart
	// from cur, which the correlator reads as often (sharing one, each
	// took the line from the other core).
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

// startBuilder starts the builder goroutine for e's sink.
func (e *Engine) startBuilder() {
	b := &builder{e: e, sink: e.sink, todo: make(chan *handBatch, handBatches),
		back: make(chan *handBatch, handBatches), done: make(chan struct{})}
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
	go b.run()
	e.async = b
}

// hand passes a copy of t on, out holding the correlator's judgements. A
// full batch goes to the builder; the next one is the first batch back.
func (b *builder) hand(t *trace, out *Trace, order, prev []int) {
	if b.cur == nil {
		b.cur = <-b.back
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

func (b *builder) flush() {
	if b.cur != nil && b.cur.n > 0 {
		b.todo <- b.cur
		b.cur = nil
	}
}

// wait hands over what is left and returns once every trace is built and
// handed to the sink.
func (b *builder) wait() {
	b.flush()
	close(b.todo)
	<-b.done
}

func (b *builder) run() {
	defer close(b.done)
	out := &b.out
	for batch := range b.todo {
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
		b.back <- batch
	}
}

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
