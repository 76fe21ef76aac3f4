package pipeline

import (
	"context"
	"reflect"
	"testing"

	"github.com/pathtrace/pathtrace/correlate"
)

// TestRunSinkEqualsKept: traces handed to a sink — built by the merge's
// goroutine and the correlator's as each has time (correlate's Helped) —
// are the traces a run keeps without a sink (built by the correlator as
// it emits them), in the same order. Three copies of flood-wrap: more
// traces than the builder's batches hold, so they are built while the
// analysis runs, not only at its end.
func TestRunSinkEqualsKept(t *testing.T) {
	in := replicate(t, t.TempDir(), 3)
	kept, err := Run(context.Background(), Options{Inputs: in})
	if err != nil {
		t.Fatal(err)
	}
	var sunk []correlate.Trace
	res, err := Run(context.Background(), Options{Inputs: in, Sink: func(tr *correlate.Trace) { sunk = append(sunk, tr.Clone()) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(kept.Traces) < 2000 || !reflect.DeepEqual(sunk, kept.Traces) {
		t.Fatalf("sink: %d traces, kept %d (want over 2,000, equal)", len(sunk), len(kept.Traces))
	}
	if !reflect.DeepEqual(res.Summary, kept.Summary) {
		t.Fatalf("summary with a sink %+v\nwithout %+v", res.Summary, kept.Summary)
	}
}
