package pipeline

import (
	"context"
	"io"
	"runtime"
	"testing"

	"github.com/pathtrace/pathtrace/report"
)

// allocBudget is the most a frame may allocate beyond the first input's:
// the pipeline allocates nothing per frame once warm (a few latency
// buffers and anomaly examples grow with the input, not per frame).
const allocBudget = 0.01

// BenchmarkAnalyzePipeline drives the pipeline `pathtrace analyze` uses
// (bundle → readers and decoders → stamp merge → correlator, default table
// limit; and with every trace streamed as JSON) over a 30× replicated
// flood-wrap set (three points, seq wraps); frames/s is the figure to watch.
// It also guards the allocation budget: allocs/frame is what each frame of
// the 30× input allocates beyond the 1× input's, and the benchmark fails
// above allocBudget. CI runs it once (.ci/run: -benchtime 1x).
func BenchmarkAnalyzePipeline(b *testing.B) {
	small := replicate(b, b.TempDir(), 1)
	big := replicate(b, b.TempDir(), 30)
	for _, tc := range []struct {
		name string
		json bool
	}{{"table", false}, {"json", true}} {
		b.Run(tc.name, func(b *testing.B) {
			run := func(inputs []Input) (allocs uint64, frames int) {
				o := Options{Inputs: inputs, Limit: 20}
				var js *report.JSONStream
				if tc.json {
					js = report.NewJSONStream(io.Discard)
					o.Sink = js.Trace
				}
				var ms0, ms1 runtime.MemStats
				runtime.ReadMemStats(&ms0)
				res, err := Run(context.Background(), o)
				if err == nil && js != nil {
					err = js.Finish(report.Document{Result: res})
				}
				runtime.ReadMemStats(&ms1)
				if err != nil {
					b.Fatal(err)
				}
				return ms1.Mallocs - ms0.Mallocs, res.Summary.Frames
			}
			run(small) // warm: what is allocated once per process
			a1, f1 := run(small)
			frames := 0
			var a9 uint64
			b.ResetTimer()
			for b.Loop() {
				var f9 int
				a9, f9 = run(big)
				frames += f9
			}
			b.ReportMetric(float64(frames)/b.Elapsed().Seconds(), "frames/s")
			f9 := frames / b.N
			perFrame := float64(int64(a9)-int64(a1)) / float64(f9-f1)
			b.ReportMetric(perFrame, "allocs/frame")
			if perFrame > allocBudget {
				b.Fatalf("%.4f allocations per extra frame (budget %v): the per-frame path allocates", perFrame, allocBudget)
			}
		})
	}
}
