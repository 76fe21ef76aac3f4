package pipeline

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/correlate"
)

// TestRunSinkEqualsKept: traces handed to a sink — built by the merge's
// goroutine and the correlator's as each has time (correlate's Helped) —
// are the traces a run keeps without a sink (built by the correlator as
// it emits them), in the same order. 600 copies of the promisc bundle:
// 4,800 traces, going out as the stamps pass (flood-wrap's mostly leave
// at the end), more than the builder's batches hold, so the merge
// goroutine builds some.
func TestRunSinkEqualsKept(t *testing.T) {
	var files []string
	for _, in := range promisc() {
		files = append(files, in.Path)
	}
	in := replicateFiles(t, files, t.TempDir(), 600, 2e9) // copies further apart than the match window
	kept, err := Run(context.Background(), Options{Inputs: in})
	if err != nil {
		t.Fatal(err)
	}
	var sunk []correlate.Trace
	res, err := Run(context.Background(), Options{Inputs: in, Sink: func(tr *correlate.Trace) {
		sunk = append(sunk, tr.Clone())
		if len(sunk)%8 == 0 {
			time.Sleep(20 * time.Microsecond) // a slow writer: the merge gets ahead, waits, and builds
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(kept.Traces) != 4800 || !reflect.DeepEqual(sunk, kept.Traces) {
		t.Fatalf("sink: %d traces, kept %d (want 4,800, equal)", len(sunk), len(kept.Traces))
	}
	if !reflect.DeepEqual(res.Summary, kept.Summary) {
		t.Fatalf("summary with a sink %+v\nwithout %+v", res.Summary, kept.Summary)
	}
}
