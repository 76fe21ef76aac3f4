package correlate

import (
	"bytes"
	"reflect"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// goid is the calling goroutine's number (from its stack's header).
func goid() uint64 {
	var buf [64]byte
	b := bytes.TrimPrefix(buf[:runtime.Stack(buf[:], false)], []byte("goroutine "))
	id, _ := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return id
}

// TestHelpedSharesTheBuilding: with Config.Helped, the traces are built by
// a goroutine that helps and, while that one is busy elsewhere and no
// batch is back, by the correlator itself — and come out as without a
// builder: the same traces, in number order.
func TestHelpedSharesTheBuilding(t *testing.T) {
	c := cfgFor(seedPath...)
	c.Window = 1e6 // traces go out as the stamps pass, not at Finish
	var frames []Frame
	for seq := range uint32(3000) {
		frames = append(frames, pingFrames(int64(seq)*200_000, seq)...)
	}
	want := analyze(t, c, frames).Traces

	c.Async, c.Helped = true, true
	var got []Trace
	finishing := false
	builtBy := map[uint64]int{}
	var helper, correlator uint64
	addingBuilt := 0 // by the correlator before Finish: when no batch came back
	e, err := New(c, func(tr *Trace) {
		got = append(got, tr.Clone())
		id := goid()
		builtBy[id]++
		if id == correlator && !finishing {
			addingBuilt++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	h := e.Helper()
	if h == nil {
		t.Fatal("no Helper with Config.Helped")
	}
	// The helper builds one batch, then is busy elsewhere: the correlator,
	// out of empty batches, has to build the rest itself. (Left to the
	// scheduler, on one CPU the helper might never run.)
	helperID, helped := make(chan uint64, 1), make(chan struct{})
	go func() {
		helperID <- goid()
		for !h.Help() {
			select { // a wake-up, or a look now and then: Help may lose the lock to the correlator
			case <-h.Ready():
			case <-time.After(time.Millisecond):
			}
		}
		close(helped)
	}()
	helper = <-helperID
	correlator = goid()
	for i := range frames {
		if i == len(frames)/4 { // ~1,500 traces out: batches queued
			select {
			case <-helped:
			case <-time.After(10 * time.Second):
				t.Fatal("the helper built nothing in 10 s")
			}
		}
		e.Add(&frames[i])
	}
	finishing = true
	e.Finish()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("helped: %d traces differ from the engine's without a builder (%d)", len(got), len(want))
	}
	if builtBy[helper] != handBatchTraces || addingBuilt == 0 || builtBy[helper]+builtBy[correlator] != len(want) {
		t.Fatalf("traces built by the helper %d (want a batch, %d), the correlator %d (%d before Finish), others %v; %d in all",
			builtBy[helper], handBatchTraces, builtBy[correlator], addingBuilt, builtBy, len(want))
	}
	if h.Help() {
		t.Fatal("Help built after Finish")
	}
}
