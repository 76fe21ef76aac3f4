package e2e

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/internal/testenv"
)

// TestPassiveFloodSpills: a flood through the lab while nobody reads the
// report (the JSON stream blocks, and the correlator behind it): the spool
// goes past --spool-memory into its file; once the report is read, every
// echo of the flood is in it, complete and paired. With a $TMPDIR it
// cannot use, the same from memory, and the report says so.
func TestPassiveFloodSpills(t *testing.T) {
	testenv.RequireRoot(t)
	needTools(t, "ping")
	l := e2eUp(t, e2eConfig(t))
	points := labPath(l, l.Pods[0], l.Pods[1])
	for _, tc := range []struct {
		name   string
		tmpdir string
		file   bool
	}{
		{"file", t.TempDir(), true},
		{"no file", filepath.Join(t.TempDir(), "missing"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TMPDIR", tc.tmpdir)
			ctx := traceCtx(t)
			out := &gatedWriter{open: make(chan struct{})}
			t.Cleanup(out.read) // a failure before the read must not leave the run blocked
			var errb bytes.Buffer
			code := make(chan int, 1)
			args := []string{"--src", l.Pods[0].Name, "--dst", l.Pods[1].Name, "--passive", "--duration", "5s", "-q", "-f", "json", "--spool-memory", "2MiB"}
			go func() { code <- runIO(ctx, args, out, &errb) }()
			waitArmed(t, nil, points, 5*time.Second)
			time.Sleep(100 * time.Millisecond)

			// 20,000 echoes, 200,000 frames at the five points: 9.6 MB
			// spooled, 5 MB a ring, which hold 16 MiB each (no drops).
			ping := inNetns(ctx, l.Pods[0].Name, "ping", "-q", "-f", "-c", "20000", "-W", "1", l.Pods[1].IP.String())
			pout, perr := ping.CombinedOutput()
			out.read()
			rc := <-code
			if perr != nil {
				t.Fatalf("ping: %v\n%s", perr, pout)
			}
			m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindSubmatch(pout)
			if m == nil || string(m[1]) != string(m[2]) {
				t.Fatalf("ping lost echoes in the lab itself:\n%s", pout)
			}
			n, _ := strconv.Atoi(string(m[1]))

			var d liveDoc
			if err := json.Unmarshal(out.buf.Bytes(), &d); err != nil {
				t.Fatalf("exit %d: decode JSON: %v\nstderr: %s", rc, err, errb.String())
			}
			r := &traceRun{Code: rc, Doc: &d, Stderr: errb.String()}
			if rc != exitOK {
				t.Fatalf("exit %d, want 0\n%s", rc, r.describe())
			}
			for _, p := range d.Points {
				if p.Coverage.KernelDrops != nil && *p.Coverage.KernelDrops != 0 {
					t.Errorf("%s: %d kernel drops", p.Name, *p.Coverage.KernelDrops)
				}
			}
			warned := false
			for _, w := range d.Warnings {
				warned = warned || strings.Contains(w, "kept its frames in memory past --spool-memory")
			}
			t.Logf("%d echoes; %d bytes through the spool's file; warned: %v", n, d.Live.SpoolFile, warned)
			switch {
			case tc.file && (d.Live.SpoolFile < 4<<20 || warned):
				t.Errorf("%d bytes through the spool's file, warned %v: want >= 4 MiB of the ~9.6 MB spooled, no warning", d.Live.SpoolFile, warned)
			case !tc.file && (d.Live.SpoolFile != 0 || !warned):
				t.Errorf("$TMPDIR missing: %d bytes through a file, warned %v: want none, and a warning", d.Live.SpoolFile, warned)
			}
			checkEchoes(t, &d, n, specNames(points))
		})
	}
}

// gatedWriter is a reader of the report that reads nothing until read is
// called: every write waits till then.
type gatedWriter struct {
	open chan struct{}
	once sync.Once
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

func (g *gatedWriter) read() { g.once.Do(func() { close(g.open) }) }
