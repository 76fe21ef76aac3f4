package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/internal/testenv"
)

// Command-level behaviour of the reports (issue 13): a closed output pipe,
// cut captures, the version, and messages a new user meets.

// A reader that stops early (`pathtrace analyze … | head -c 100`) is not an
// error: pathtrace stops quietly, with the status the analysis earned (0
// clean, 1 findings) and nothing on stderr, in every format. Real
// processes and a real pipe; the outputs are far larger than the pipe
// holds, so pathtrace does write into the closed pipe.
func TestClosedPipe(t *testing.T) {
	testenv.RequireTools(t, "head")
	bin := ptBinary(t)
	input := filepath.Join(capturesDir, "flood-wrap")
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"table", []string{"--detail"}, exitOK},
		{"json", []string{"-f", "json"}, exitOK},
		{"markdown", []string{"-f", "markdown"}, exitOK},
		// Every packet (44 bytes) over a 40-byte MTU: findings, exit 1.
		{"table findings", []string{"--detail", "--mtu", "40"}, exitFindings},
		{"json findings", []string{"-f", "json", "--mtu", "40"}, exitFindings},
		{"markdown findings", []string{"-f", "markdown", "--mtu", "40"}, exitFindings},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"analyze", "-q", "--limit", "0", input}, tc.args...)
			full, err := exec.Command(bin, args...).Output()
			if code := exitCode(err); code != tc.want {
				t.Fatalf("unpiped: exit %d, want %d", code, tc.want)
			}
			if len(full) < 96<<10 {
				t.Fatalf("output is %d bytes: too small to outlast the pipe's buffer, the test would prove nothing", len(full))
			}
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			var errb, got bytes.Buffer
			pt := exec.Command(bin, args...)
			pt.Stdout, pt.Stderr = pw, &errb
			head := exec.Command("head", "-c", "100")
			head.Stdin, head.Stdout = pr, &got
			if err := head.Start(); err != nil {
				t.Fatal(err)
			}
			if err := pt.Start(); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			pr.Close()
			herr := head.Wait()
			code := exitCode(pt.Wait())
			if herr != nil || !bytes.Equal(got.Bytes(), full[:100]) {
				t.Errorf("head: %v, read %q", herr, got.Bytes())
			}
			if code != tc.want || errb.Len() != 0 {
				t.Errorf("piped into head -c 100: exit %d, stderr %q; want exit %d and no stderr", code, errb.String(), tc.want)
			}
		})
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// cutCopy copies a scenario's captures into a temp dir, with point cut
// changed by cut, and returns the five files in path order.
func cutCopy(t *testing.T, scenario, point string, cut func([]byte) []byte) []string {
	t.Helper()
	dir := t.TempDir()
	var files []string
	for _, f := range files5 {
		b, err := os.ReadFile(filepath.Join(capturesDir, scenario, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == point+".cap" {
			b = cut(b)
		}
		p := filepath.Join(dir, f)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	return files
}

// snaplen rewrites a pcap as a capture with -s n would have written it:
// every record cut to n bytes, its original length kept.
func snaplen(t *testing.T, n int) func([]byte) []byte {
	return func(b []byte) []byte {
		if binary.LittleEndian.Uint32(b) != 0xa1b23c4d && binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 {
			t.Fatalf("not a little-endian pcap: % x", b[:4])
		}
		out := append([]byte(nil), b[:24]...)
		for off := 24; off+16 <= len(b); {
			incl := int(binary.LittleEndian.Uint32(b[off+8:]))
			rec := append([]byte(nil), b[off:off+16]...)
			keep := min(incl, n)
			binary.LittleEndian.PutUint32(rec[8:], uint32(keep))
			out = append(append(out, rec...), b[off+16:off+16+keep]...)
			off += 16 + incl
		}
		return out
	}
}

// A capture file cut inside a record (a copy interrupted, a disk that
// filled): the verdict names the point and where, exit 1, the JSON says
// where in the point's coverage and the tables mark it. Frames cut to a
// snaplen are the other truncation: counted in TRUNC, and named in the
// verdict when they leave traces unmatched.
func TestTruncatedCapture(t *testing.T) {
	// promisc is a clean capture (exit 0 whole); pod2.cap cut in frame 7.
	files := cutCopy(t, "promisc", "pod2", func(b []byte) []byte { return b[:700] })
	code, out, errs := runCLI(t, append([]string{"analyze", "-q", "-f", "json"}, files...)...)
	res := decodeResult(t, out)
	if code != exitFindings {
		t.Errorf("exit %d, want %d; stderr %s", code, exitFindings, errs)
	}
	v := res.Summary.Verdict
	want := regexp.MustCompile(`^CAPTURE INCOMPLETE: pod2's capture was cut after its frame at 2026-11-25T18:03:15\.\d{9}Z \(.*pod2\.cap: file ends inside frame 7 .*\); up to there all 8 traces crossed every capturing point on their way$`)
	if !want.MatchString(v) || res.Summary.Clean {
		t.Errorf("verdict %q (clean %v), want it to match %s", v, res.Summary.Clean, want)
	}
	var raw struct {
		Points []struct {
			Name     string `json:"name"`
			Coverage struct {
				Cut string `json:"cut"`
			} `json:"coverage"`
		} `json:"points"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	for _, p := range raw.Points {
		if (p.Name == "pod2") != strings.Contains(p.Coverage.Cut, "frame 7") {
			t.Errorf("point %s coverage.cut %q", p.Name, p.Coverage.Cut)
		}
	}
	_, table, _ := runCLI(t, append([]string{"analyze", "-q"}, files...)...)
	if !regexp.MustCompile(`(?m)^ pod2 .* 18:03:15\.\d{6}–18:03:15\.\d{6} cut +6 +- +0$`).MatchString(table) ||
		!strings.Contains(table, "Verdict: "+v) {
		t.Errorf("table does not mark pod2's coverage as cut or lacks the verdict:\n%s", table)
	}

	// The same capture cut to a 60-byte snaplen: every frame whole, 6
	// cut short, which their copies elsewhere no longer match.
	files = cutCopy(t, "promisc", "pod2", snaplen(t, 60))
	code, out, _ = runCLI(t, append([]string{"analyze", "-q", "-f", "json"}, files...)...)
	res = decodeResult(t, out)
	_, p2 := res.point("pod2")
	if code != exitFindings || !strings.HasPrefix(res.Summary.Verdict,
		"CAPTURE INCOMPLETE: pod2's capture cut 6 frames to 60 bytes or less (its snaplen), so they may not match their copies at other points; ") {
		t.Errorf("snaplen 60: exit %d, verdict %q", code, res.Summary.Verdict)
	}
	var cov struct {
		Points []struct {
			Coverage struct {
				Truncated int `json:"truncated"`
			} `json:"coverage"`
		} `json:"points"`
	}
	json.Unmarshal([]byte(out), &cov)
	if p2 == nil || cov.Points[4].Coverage.Truncated != 6 {
		t.Errorf("pod2 truncated = %+v, want 6 frames cut by the snaplen", cov.Points)
	}
}

// --version names the build in one line; the JSON report carries the same
// in "pathtrace", and the table and Markdown end with it.
func TestVersion(t *testing.T) {
	bin := ptBinary(t)
	out, err := exec.Command(bin, "--version").Output()
	line := strings.TrimSuffix(string(out), "\n")
	if err != nil || !strings.HasPrefix(line, "pathtrace ") || strings.Contains(line, "\n") || len(line) < len("pathtrace x") {
		t.Fatalf("--version: %q, %v", out, err)
	}
	files := cutCopy(t, "promisc", "", nil)
	code, js, _ := runCLI(t, append([]string{"analyze", "-q", "-f", "json"}, files...)...)
	var doc struct {
		Pathtrace *struct {
			Version  *string `json:"version"`
			Revision *string `json:"revision"`
		} `json:"pathtrace"`
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil || code != exitOK {
		t.Fatalf("analyze -f json: exit %d, %v", code, err)
	}
	if doc.Pathtrace == nil || doc.Pathtrace.Version == nil || *doc.Pathtrace.Version == "" {
		t.Errorf(`JSON "pathtrace" = %+v, want the version`, doc.Pathtrace)
	}
	// The built binary's report names the same build as its --version.
	tbl, _ := exec.Command(bin, append([]string{"analyze", "-q"}, files...)...).Output()
	md, _ := exec.Command(bin, append([]string{"analyze", "-q", "-f", "md"}, files...)...).Output()
	if !strings.Contains(string(tbl), "\n"+line+"\n") || !strings.HasSuffix(string(md), "\n"+line+"\n") {
		t.Errorf("the table or the Markdown lacks %q in its footer", line)
	}
}

// Flags a passive run cannot use are refused, not ignored; sizes take
// units; an unknown endpoint is one short line.
func TestUsageMessages(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--src", "a", "--dst", "b", "--passive", "-c", "5"}, "--count shape probes, and --passive sends none"},
		{[]string{"--src", "a", "--dst", "b", "--passive", "--size", "1400"}, "--size shape probes"},
		{[]string{"--src", "a", "--dst", "b", "--spool-size", "lots"}, `"lots": want bytes, optionally with a unit`},
	} {
		code, out, errs := runCLI(t, tc.args...)
		line := oneLine(t, strings.Join(tc.args, " "), errs)
		if code != exitUsage || out != "" || !strings.Contains(line, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tc.args, code, line, tc.want)
		}
	}
	testenv.RequireRoot(t)
	start := time.Now()
	code, _, errs := runCLI(t, "--src", "nosuchns-ptr", "--dst", "nosuchns-ptr2", "--spool-size", "256MiB")
	line := oneLine(t, "unknown endpoint", errs)
	if code != exitUsage || len(line) > 300 || strings.Contains(line, "/proc/2/") || strings.Contains(line, "strconv") ||
		!regexp.MustCompile(`\d+ namespaces on this node`).MatchString(line) {
		t.Errorf("unknown endpoint: exit %d, %d-byte line %q", code, len(line), line)
	}
	t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), line)
}

// The Markdown of the real nft-drop and routed captures, analysed from the
// files, is report/testdata's golden Markdown (rendered there from these
// captures' JSON), footer aside: the build that ran differs.
func TestMarkdownOfRealCaptures(t *testing.T) {
	for _, tc := range []struct{ scenario, points string }{
		{"nft-drop", "pod1 pod1-veth cni0 pod2-veth pod2"},
		{"routed", "pod1 pod1-veth cni0 cni1 pod3-veth pod3"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			args := []string{"analyze", "-q", "-f", "markdown"}
			for _, p := range strings.Fields(tc.points) {
				args = append(args, filepath.Join(capturesDir, tc.scenario, p+".cap"))
			}
			_, got, errs := runCLI(t, args...)
			want, err := os.ReadFile(filepath.Join("..", "report", "testdata", "markdown_"+tc.scenario+".golden"))
			if err != nil {
				t.Fatal(err)
			}
			if g, w := withoutFooter(got), withoutFooter(string(want)); g != w {
				t.Errorf("markdown of %s differs from the golden (stderr %q)\n--- got\n%s\n--- want\n%s", tc.scenario, errs, g, w)
			}
			if !regexp.MustCompile(`\n---\n\npathtrace \S+.*\n$`).MatchString(got) {
				t.Errorf("no footer naming the build:\n%s", got)
			}
		})
	}
}

// withoutFooter drops the closing rule and the build line.
func withoutFooter(s string) string {
	if i := strings.LastIndex(s, "\n---\n\npathtrace "); i >= 0 {
		return s[:i+1]
	}
	return s
}
