package bench

import (
	"context"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/capture/decode"
	"github.com/pathtrace/pathtrace/capture/pcapfile"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/pipeline"
	"github.com/pathtrace/pathtrace/report"
)

// cpuTime is the CPU time (user + system) the process used so far, every
// goroutine included: what a stage costs on a shared machine, where wall
// time depends on the neighbours.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStages measures the offline pipeline stage by stage, each one
// including the stages before it, in CPU ns per frame (cpu-ns/frame) and
// wall ns per frame: a stage's own cost is its figure minus the previous
// one's. read: the pcap readers alone, one file after the other; decode:
// plus the decoder on the same goroutine; merge: the merger (its merge
// goroutine reads, decodes and orders the files, after their stamps
// passes) without the correlator; analyze: the whole
// `pathtrace analyze` (table); json: plus the streamed JSON report.
func BenchmarkStages(b *testing.B) {
	inputs := benchSet(b)
	stages := []struct {
		name string
		run  func(b *testing.B) int
	}{
		{"read", func(b *testing.B) int { return readAll(b, inputs, false) }},
		{"decode", func(b *testing.B) int { return readAll(b, inputs, true) }},
		{"merge", func(b *testing.B) int { return mergeAll(b, inputs) }},
		{"analyze", func(b *testing.B) int {
			res, err := analyze(inputs, false)
			if err != nil {
				b.Fatal(err)
			}
			return res.Summary.Frames
		}},
		{"json", func(b *testing.B) int {
			// As the CLI does: every trace streamed as it is emitted.
			js := report.NewJSONStream(io.Discard)
			res, err := pipeline.Run(context.Background(), pipeline.Options{Inputs: inputs, Sink: js.Trace})
			if err != nil {
				b.Fatal(err)
			}
			if err := js.Finish(report.Document{Result: res}); err != nil {
				b.Fatal(err)
			}
			return res.Summary.Frames
		}},
	}
	for _, st := range stages {
		b.Run(st.name, func(b *testing.B) {
			frames := 0
			cpu0 := cpuTime()
			for b.Loop() {
				frames += st.run(b)
			}
			cpu := cpuTime() - cpu0
			if frames > 0 {
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(frames), "cpu-ns/frame")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(frames), "ns/frame")
			}
		})
	}
}

// readAll reads every input file in turn, decoding each frame when asked.
func readAll(b *testing.B, inputs []pipeline.Input, dec bool) int {
	d := decode.New()
	var f correlate.Frame
	n := 0
	for _, in := range inputs {
		src, err := pcapfile.Open(in.Path)
		if err != nil {
			b.Fatal(err)
		}
		for {
			rf, err := src.Next()
			if errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				b.Fatal(err)
			}
			if dec {
				d.DecodeAny(&rf, &f)
			}
			n++
		}
		src.Close()
	}
	return n
}

// merged calls fn for the first n frames of the set in merge order (the
// merger's readers and decoders on their goroutines); n < 0: all.
func merged(b *testing.B, inputs []pipeline.Input, n int, fn func(*correlate.Frame)) []correlate.PointSpec {
	bundle, err := pipeline.OpenBundle(inputs, nil, correlate.DefaultWindow)
	if err != nil {
		b.Fatal(err)
	}
	m, files, err := bundle.Open(0, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer files.Close()
	defer m.Close()
	for f := m.Next(); f != nil && n != 0; f, n = m.Next(), n-1 {
		fn(f)
	}
	return bundle.Specs()
}

// mergeAll runs the merger and drops every frame it yields.
func mergeAll(b *testing.B, inputs []pipeline.Input) int {
	n := 0
	merged(b, inputs, -1, func(*correlate.Frame) { n++ })
	return n
}

// engineFrames is the first n frames of the set in merge order, decoded,
// held in memory for BenchmarkEngine.
func engineFrames(b *testing.B, inputs []pipeline.Input, n int) ([]correlate.PointSpec, []correlate.Frame) {
	var frames []correlate.Frame
	specs := merged(b, inputs, n, func(f *correlate.Frame) { frames = append(frames, *f) })
	return specs, frames
}

// BenchmarkEngine is the correlator alone (matching, emitting, statistics)
// on frames held in memory: the stage the other cores cannot take. sink:
// every trace built and handed out (JSON); nosink: statistics only, as
// the table's report once it has its first traces.
func BenchmarkEngine(b *testing.B) {
	specs, frames := engineFrames(b, benchSet(b), 500_000)
	for _, tc := range []struct {
		name string
		sink correlate.Sink
	}{{"sink", func(*correlate.Trace) {}}, {"nosink", nil}} {
		b.Run(tc.name, func(b *testing.B) {
			cpu0 := cpuTime()
			for b.Loop() {
				eng, err := correlate.New(correlate.Config{Points: specs}, tc.sink)
				if err != nil {
					b.Fatal(err)
				}
				for i := range frames {
					eng.Add(&frames[i])
				}
				eng.Finish()
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N*len(frames)), "cpu-ns/frame")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(frames)), "ns/frame")
		})
	}
}
