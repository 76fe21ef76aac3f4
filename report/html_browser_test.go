package report

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The page as a real browser builds it: headless Chromium (Debian's
// chromium package) loads each page from a file, and the test reads back
// the DOM the browser built, the console (any message fails: the page has
// no script, and its Content-Security-Policy makes Chromium log any load or
// script it refuses) and, for the demo page, a screenshot.

func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (apt-get install chromium): the HTML report must be checked in a browser")
	}
	t.Skip("chromium not installed: skipping the browser check of the HTML report")
	return ""
}

// runChromium loads file with extra flags and returns stdout and stderr.
// Every run gets a new empty profile; its process group is killed if it
// hangs.
func runChromium(t *testing.T, bin, file string, extra ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--enable-logging=stderr", "--v=0"}
	args = append(append(args, extra...), "file://"+file)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), errb.String()
}

// consoleMessages are the lines Chromium logs for the page's console.
func consoleMessages(stderr string) []string {
	var m []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, ":CONSOLE") {
			m = append(m, l)
		}
	}
	return m
}

func writePage(t *testing.T, dir, name string, page []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, page, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHTMLInChromium(t *testing.T) {
	bin := chromium(t)
	dir := t.TempDir()

	// The console check must be able to fail: a page that logs, runs a
	// blocked script and loads an image shows up in it.
	t.Run("console-check-detects", func(t *testing.T) {
		bad := []byte(`<!DOCTYPE html><html><head><meta charset="utf-8">` +
			`<meta http-equiv="Content-Security-Policy" content="default-src 'none'"><title>x</title></head>` +
			`<body><img src="x.png"><script>console.log(1)</script></body></html>`)
		_, stderr := runChromium(t, bin, writePage(t, dir, "bad.html", bad), "--dump-dom")
		if len(consoleMessages(stderr)) == 0 {
			t.Fatalf("no console message logged for a page with a refused image and script: the check is blind\n%s", stderr)
		}
	})

	docs := htmlDocs(t)
	for _, name := range []string{"fixture-live", "nft-drop", "seed"} {
		t.Run(name, func(t *testing.T) {
			d := docs[name]
			dom, stderr := runChromium(t, bin, writePage(t, dir, name+".html", renderHTML(t, d)), "--dump-dom")
			if m := consoleMessages(stderr); len(m) > 0 {
				t.Errorf("console messages:\n%s", strings.Join(m, "\n"))
			}
			checkLaneCounts(t, countLanes(t, parseHTML(t, []byte(dom))), d.Result)
		})
	}

	t.Run("large", func(t *testing.T) {
		r := bigResult(t, 1000, 25)
		dom, stderr := runChromium(t, bin, writePage(t, dir, "large.html", renderHTML(t, Document{Result: r})), "--dump-dom")
		if m := consoleMessages(stderr); len(m) > 0 {
			t.Errorf("console messages:\n%s", strings.Join(m, "\n"))
		}
		c := countLanes(t, parseHTML(t, []byte(dom)))
		if c.lanes != len(r.Points) || c.traces != r.Summary.Lost || c.lost != r.Summary.Lost || c.aggs != 2 {
			t.Errorf("browser DOM: %d lanes, %d trace lines, %d lost, %d median lines; want %d, %d, %d, 2",
				c.lanes, c.traces, c.lost, c.aggs, len(r.Points), r.Summary.Lost, r.Summary.Lost)
		}
	})

	// The screenshot: the page paints (styles applied: the lost cross is
	// the diagram's red, the request lines its blue).
	t.Run("screenshot", func(t *testing.T) {
		shot := filepath.Join(dir, "shot.png")
		page := writePage(t, dir, "shot.html", renderHTML(t, live()))
		runChromium(t, bin, page, "--screenshot="+shot, "--window-size=1280,2000", "--hide-scrollbars")
		f, err := os.Open(shot)
		if err != nil {
			t.Fatalf("no screenshot: %v", err)
		}
		defer f.Close()
		img, err := png.Decode(f)
		if err != nil {
			t.Fatalf("screenshot is not a PNG: %v", err)
		}
		if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 2000 {
			t.Errorf("screenshot is %v, want 1280×2000", b)
		}
		for _, c := range []struct {
			name    string
			r, g, b uint32
		}{{"lost red", 0xcf, 0x22, 0x2e}, {"request blue", 0x09, 0x69, 0xda}, {"reply green", 0x1a, 0x7f, 0x37}} {
			if n := countColour(img, c.r, c.g, c.b); n < 20 {
				t.Errorf("%s (#%02x%02x%02x): %d pixels, want the diagram painted in it", c.name, c.r, c.g, c.b, n)
			}
		}
		if out := os.Getenv("PATHTRACE_HTML_SHOT"); out != "" {
			raw, err := os.ReadFile(shot)
			if err == nil {
				err = os.WriteFile(out, raw, 0o644)
			}
			if err != nil {
				t.Error(errors.Join(errors.New("copy the screenshot"), err))
			}
		}
	})
}

// countColour counts pixels within a few levels of an sRGB colour.
func countColour(img image.Image, r, g, b uint32) int {
	near := func(a, b uint32) bool { return a+6 >= b && b+6 >= a }
	n := 0
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			pr, pg, pb, _ := img.At(x, y).RGBA()
			if near(pr>>8, r) && near(pg>>8, g) && near(pb>>8, b) {
				n++
			}
		}
	}
	return n
}
