package pipeline

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/pcapfile"
)

// replicate writes each flood-wrap capture `times` over, shifted by 10 s a
// copy, as plain pcap files in dir: a larger input with the same shape.
func replicate(t testing.TB, dir string, times int) []Input {
	t.Helper()
	src := filepath.Join("..", "testdata", "captures", "flood-wrap")
	files, _ := filepath.Glob(filepath.Join(src, "*.cap.gz"))
	if len(files) == 0 {
		t.Skip("no flood-wrap captures")
	}
	return replicateFiles(t, files, dir, times, 10e9)
}

// replicateFiles writes each capture of files `times` over, copy c
// stamped c*every ns later, as plain pcap files in dir, in files' order.
func replicateFiles(t testing.TB, files []string, dir string, times int, every int64) []Input {
	t.Helper()
	var inputs []Input
	for _, f := range files {
		var frames []capture.RawFrame
		s, err := pcapfile.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		for {
			rf, err := s.Next()
			if errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			rf.Data = append([]byte(nil), rf.Data...)
			frames = append(frames, rf)
		}
		s.Close()
		out := filepath.Join(dir, PointBaseName(f)+".cap")
		fh, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		w, err := pcapfile.NewWriter(fh, capture.LinkTypeEthernet, 262144)
		if err != nil {
			t.Fatal(err)
		}
		for c := 0; c < times; c++ {
			for _, rf := range frames {
				rf.Time += int64(c) * every
				if err := w.WriteFrame(rf); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		fh.Close()
		inputs = append(inputs, Input{Path: out})
	}
	return inputs
}

func allocsOf(t testing.TB, inputs []Input) (allocs uint64, frames int) {
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	res, err := Run(context.Background(), Options{Inputs: inputs, Limit: 20})
	runtime.ReadMemStats(&ms1)
	if err != nil {
		t.Fatal(err)
	}
	return ms1.Mallocs - ms0.Mallocs, res.Summary.Frames
}

// TestAnalyzeSteadyStateAllocs: the pipeline the CLI runs allocates nothing
// per frame once warm — the allocations of a 9× larger input exceed those of
// the 1× input by a small constant (latency buffers, anomaly examples), not by
// a multiple of the extra frames.
func TestAnalyzeSteadyStateAllocs(t *testing.T) {
	small := replicate(t, t.TempDir(), 1)
	big := replicate(t, t.TempDir(), 9)
	a1, f1 := allocsOf(t, small)
	a9, f9 := allocsOf(t, big)
	perFrame := float64(int64(a9)-int64(a1)) / float64(f9-f1)
	t.Logf("1×: %d frames %d allocs; 9×: %d frames %d allocs; marginal %.4f allocs/frame", f1, a1, f9, a9, perFrame)
	if perFrame > 0.01 {
		t.Errorf("%.4f allocations per extra frame: the per-frame path allocates", perFrame)
	}
}
