package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/capture"
)

// TestAnalyzeCorpus runs `pathtrace analyze` on every file of the public
// corpus of odd and broken captures (PATHTRACE_CAPTURES): each finishes within
// seconds, never panics, and either analyses what it can — as many frames as
// the reader returns, which capture's corpus test holds equal to tshark's
// count — or exits 2 with one stderr line naming the file.
func TestAnalyzeCorpus(t *testing.T) {
	dir := os.Getenv("PATHTRACE_CAPTURES")
	if dir == "" {
		skipOrFail(t, "PATHTRACE_CAPTURES not set: no capture corpus")
	}
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
		code := -1
		var out, errb strings.Builder
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: panic: %v", rel, r)
				}
			}()
			code = run(ctx, []string{"analyze", "-q", "-f", "json", "--point", "x=" + f}, &out, &errb)
		}()
		cancel()
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s: took %v", rel, d)
		}
		switch code {
		case 0, 1:
			analysed++
			var r struct {
				Summary struct{ Frames int } `json:"summary"`
			}
			if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
				t.Errorf("%s: output is not JSON: %v", rel, err)
				continue
			}
			if want := readerFrames(f); r.Summary.Frames != want {
				t.Errorf("%s: analysed %d frames, the reader returns %d", rel, r.Summary.Frames, want)
			}
		case 2:
			refused++
			msg := strings.TrimSuffix(errb.String(), "\n")
			if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, filepath.Base(f)) || out.Len() != 0 {
				t.Errorf("%s: exit 2 must give one line naming the file and no output; stderr %q, stdout %d bytes", rel, msg, out.Len())
			}
		default:
			t.Errorf("%s: exit %d", rel, code)
		}
	}
	t.Logf("%d files: %d analysed, %d refused with a reason", len(files), analysed, refused)
}

// readerFrames counts the frames capture's reader returns before the end
// or an error.
func readerFrames(path string) int {
	s, err := capture.OpenFile(path)
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
