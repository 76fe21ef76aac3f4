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
// the goroutine that helps and, when that one is busy elsewhere and no
// batch is back, by the correlator itself — and come out as without a builder: the same
// traces, in number order.
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
	helperID := make(chan uint64, 1)
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
	stop, helping := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(helping)
		helperID <- goid()
		for {
			if h.Help() {
				// A merge that seldom waits: the correlator, out of
				// empty batches, builds them itself meanwhile.
				time.Sleep(time.Millisecond)
				continue
			}
			select {
			case <-stop:
				return
			case <-h.Ready():
			}
		}
	}()
	helper = <-helperID
	correlator = goid()
	for i := range frames {
		e.Add(&frames[i])
	}
	finishing = true
	e.Finish()
	close(stop)
	<-helping
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("helped: %d traces differ from the engine's without a builder (%d)", len(got), len(want))
	}
	if builtBy[helper] == 0 || addingBuilt == 0 || builtBy[helper]+builtBy[correlator] != len(want) {
		t.Fatalf("traces built by the helper %d, the correlator %d (%d before Finish), others %v; want both, %d in all",
			builtBy[helper], builtBy[correlator], addingBuilt, builtBy, len(want))
	}
	if h.Help() {
		t.Fatal("Help built after Finish")
	}
	if testing.Verbose() {
		t.Logf("built by the helper %d, the correlator %d (%d before Finish)", builtBy[helper], builtBy[correlator], addingBuilt)
	}
}
