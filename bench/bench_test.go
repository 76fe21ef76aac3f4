// Package bench holds the issue #5 benchmarks: run.sh builds a large capture
// set in the lab and times pathtrace against tcpdump and tshark; the Go
// benchmarks here run the offline pipeline in-process on such a set, for CPU
// and allocation profiles (go test -bench . -cpuprofile cpu.prof ./bench/).
package bench

import (
	"context"

	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/pipeline"
	"github.com/pathtrace/pathtrace/report"
)

// files of a set in path order, as run.sh writes them.
var files = []string{"pod1.cap", "pod1-veth.cap", "cni0.cap", "pod2-veth.cap", "pod2.cap"}

// benchSet is the directory of a set (PATHTRACE_BENCH_SET, e.g.
// /tmp/pathtrace-bench/set1x after bench/run.sh); without it the seed's
// small promisc captures keep the benchmark runnable anywhere.
func benchSet(b *testing.B) []pipeline.Input {
	dir := os.Getenv("PATHTRACE_BENCH_SET")
	if dir == "" {
		dir = filepath.Join("..", "testdata", "captures", "promisc")
	}
	var in []pipeline.Input
	for _, f := range files {
		p := filepath.Join(dir, f)
		if _, err := os.Stat(p); err != nil {
			b.Fatalf("bench set: %v", err)
		}
		in = append(in, pipeline.Input{Path: p})
	}
	return in
}

// analyze runs the pipeline `pathtrace analyze` runs (package analysis),
// keeping all traces (JSON) or the first 20 (the table's default --limit).
func analyze(inputs []pipeline.Input, keepAll bool) (*correlate.Result, error) {
	limit := 20
	if keepAll {
		limit = 0
	}
	return pipeline.Run(context.Background(), pipeline.Options{Inputs: inputs, Limit: limit})
}

func BenchmarkAnalyze(b *testing.B) {
	inputs := benchSet(b)
	for _, tc := range []struct {
		name    string
		keepAll bool
		render  func(io.Writer, report.Document) error
	}{
		{"table", false, func(w io.Writer, d report.Document) error { return report.Table(w, d, report.Options{Limit: 20}) }},
		{"json", true, report.JSON},
	} {
		b.Run(tc.name, func(b *testing.B) {
			frames := 0
			for b.Loop() {
				res, err := analyze(inputs, tc.keepAll)
				if err != nil {
					b.Fatal(err)
				}
				if err := tc.render(io.Discard, report.Document{Result: res}); err != nil {
					b.Fatal(err)
				}
				frames = res.Summary.Frames
			}
			b.ReportMetric(float64(frames)*float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}
