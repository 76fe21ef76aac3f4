package pipeline

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/capture/pcapfile"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/internal/testenv"
)

// TestAnalyzeCorpus runs the analysis `pathtrace analyze` runs on every
// file of the public corpus of odd and broken captures (PATHTRACE_CAPTURES):
// each finishes within seconds, never panics, and either analyses what it
// can — as many frames as the reader returns, which pcapfile's corpus test
// holds equal to tshark's count — or fails with one line naming the file
// (which the command prints as its one stderr line, exit 2).
func TestAnalyzeCorpus(t *testing.T) {
	dir := testenv.Corpus(t)
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.HasSuffix(p, ".tsv") && !strings.HasSuffix(p, ".md") {
			files = append(files, p)
		}
		return nil
	})
	if len(files) < 100 {
		t.Fatalf("only %d files under %s", len(files), dir)
	}
	analysed, refused := 0, 0
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		start := time.Now()
		var res *correlate.Result
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: panic: %v", rel, r)
				}
			}()
			res, err = Run(ctx, Options{Inputs: []Input{{Name: "x", Path: f}}})
		}()
		cancel()
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s: took %v", rel, d)
		}
		switch {
		case err == nil && res != nil && res.Summary.Frames > 0:
			analysed++
			if want := readerFrames(f); res.Summary.Frames != want {
				t.Errorf("%s: analysed %d frames, the reader returns %d", rel, res.Summary.Frames, want)
			}
		case err != nil:
			refused++
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, filepath.Base(f)) {
				t.Errorf("%s: an error must be one line naming the file: %q", rel, msg)
			}
		default:
			// No frame at all: the command refuses it naming the file.
			refused++
		}
	}
	t.Logf("%d files: %d analysed, %d refused with a reason", len(files), analysed, refused)
}

// readerFrames counts the frames capture's reader returns before the end
// or an error.
func readerFrames(path string) int {
	s, err := pcapfile.Open(path)
	if err != nil {
		return 0
	}
	defer s.Close()
	n := 0
	for {
		if _, err := s.Next(); err != nil {
			if !errors.Is(err, io.EOF) {
				return n
			}
			return n
		}
		n++
	}
}
