package pipeline

import (
	"context"
	"testing"
)

// BenchmarkAnalyzePipeline drives the pipeline `pathtrace analyze` uses
// (bundle → merger → decoder → correlator, default table limit) over a
// 9× replicated flood-wrap set (three points, seq wraps); frames/s is the
// figure to watch. TestAnalyzeSteadyStateAllocs checks allocations.
func BenchmarkAnalyzePipeline(b *testing.B) {
	inputs := replicate(b, b.TempDir(), 9)
	frames := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := Run(context.Background(), Options{Inputs: inputs, Limit: 20})
		if err != nil {
			b.Fatal(err)
		}
		frames += res.Summary.Frames
	}
	b.ReportMetric(float64(frames)/b.Elapsed().Seconds(), "frames/s")
}
