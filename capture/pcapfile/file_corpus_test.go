package pcapfile

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/internal/testenv"
)

// corpusKnown lists corpus files where the frames we return differ from the
// frames tshark lists: relative path → our frame count and why. A mismatch
// not listed here, or a listed count that changes, fails the test.
var corpusKnown = map[string]struct {
	frames int
	why    string
}{
	// Wireshark shows pcapng custom blocks (0xBAD, 0x40000BAD) as frames. We
	// skip them (they carry no packet) but count them in Num, so our Num
	// still equals tshark's frame.number for every packet (checked below).
	"pcapng-test-generator/output_be/test017.pcapng": {0, "4 custom blocks shown as frames by tshark"},
	"pcapng-test-generator/output_le/test017.pcapng": {0, "4 custom blocks shown as frames by tshark"},
	"pcapng-test-generator/output_be/test018.pcapng": {4, "4 custom blocks shown as frames by tshark"},
	"pcapng-test-generator/output_le/test018.pcapng": {4, "4 custom blocks shown as frames by tshark"},
	"pcapng-test-generator/output_be/test102.pcapng": {5, "3 custom blocks shown as frames by tshark"},
	"pcapng-test-generator/output_le/test102.pcapng": {5, "3 custom blocks shown as frames by tshark"},
	"pcapng-test-generator/output_be/test202.pcapng": {8, "3 custom blocks shown as frames by tshark"},
	"pcapng-test-generator/output_le/test202.pcapng": {8, "3 custom blocks shown as frames by tshark"},
	// Not pcapng at all after the broken SHB: tshark gives up on pcapng and
	// falls back to a generic reader that shows the whole file as one record.
	"libpcap/pcapng-shb-len-insane.pcapng": {0, "SHB claims 2 MiB; tshark falls back to showing the raw file as 1 record"},
	"libpcap/pcapng-truncated-shb.pcapng":  {0, "file cut inside the SHB; tshark shows the raw 16 bytes as 1 record"},
}

type ftTsharkFrame struct {
	num    int
	caplen int
	epoch  string
	iface  string
}

// ftTsharkCacheKey identifies a tshark listing: file content and tshark
// binary. Listings are cached because tshark needs ~1 s of CPU per file.
func ftTsharkCacheKey(path string) (string, error) {
	h := sha256.New()
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	bin, err := exec.LookPath("tshark")
	if err != nil {
		return "", err
	}
	st, err := os.Stat(bin)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "|%s|%d|%d", bin, st.Size(), st.ModTime().UnixNano())
	return hex.EncodeToString(h.Sum(nil)), nil
}

func ftTsharkFrames(ctx context.Context, path string) ([]ftTsharkFrame, error) {
	var out bytes.Buffer
	key, err := ftTsharkCacheKey(path)
	if err != nil {
		return nil, err
	}
	cacheFile := ""
	if dir, err := os.UserCacheDir(); err == nil {
		cacheFile = filepath.Join(dir, "pathtrace-test-tshark", key+".tsv")
	}
	if b, err := os.ReadFile(cacheFile); cacheFile != "" && err == nil {
		out.Write(b)
	} else {
		cmd := exec.CommandContext(ctx, "tshark", "-n", "-r", path, "-T", "fields",
			"-e", "frame.number", "-e", "frame.cap_len", "-e", "frame.time_epoch", "-e", "frame.interface_name")
		cmd.Stdout = &out
		err := cmd.Run()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("tshark %s: %w", path, ctx.Err())
		}
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			return nil, fmt.Errorf("tshark %s: %w", path, err)
		}
		// tshark exits non-zero on broken files but lists what it read.
		if cacheFile != "" && os.MkdirAll(filepath.Dir(cacheFile), 0o755) == nil {
			_ = os.WriteFile(cacheFile, out.Bytes(), 0o644)
		}
	}
	var frames []ftTsharkFrame
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) < 4 {
			return nil, fmt.Errorf("tshark %s: odd line %q", path, sc.Text())
		}
		num, err1 := strconv.Atoi(f[0])
		caplen, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("tshark %s: odd line %q", path, sc.Text())
		}
		frames = append(frames, ftTsharkFrame{num: num, caplen: caplen, epoch: f[2], iface: f[3]})
	}
	return frames, nil
}

// ftTsharkNs parses frame.time_epoch. tshark prints an out-of-range
// sub-second field as is ("10.1000000000"), so the digits after the point
// are nanoseconds, not a decimal fraction, when there are 9 or more.
func ftTsharkNs(epoch string) (int64, bool) {
	sec, frac, ok := strings.Cut(epoch, ".")
	if !ok || len(frac) < 9 {
		return 0, false
	}
	s, err1 := strconv.ParseInt(sec, 10, 64)
	f, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return s*1e9 + f, true
}

type ftOurFrame struct {
	num    int
	caplen int
	time   int64
	iface  string
	sll2   bool
}

type ftOurResult struct {
	format   string
	frames   []ftOurFrame
	openErr  error
	readErr  error
	warnings []string
}

func ftReadAllFrames(path string) ftOurResult {
	var res ftOurResult
	src, err := Open(path)
	if err != nil {
		res.openErr = err
		return res
	}
	defer src.Close()
	res.format = src.Format()
	for {
		rf, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			res.readErr = err
			break
		}
		ifs := src.Interfaces()
		if rf.Iface < 0 || rf.Iface >= len(ifs) {
			res.readErr = fmt.Errorf("frame %d: Iface %d outside Interfaces() (%d)", rf.Num, rf.Iface, len(ifs))
			break
		}
		res.frames = append(res.frames, ftOurFrame{num: rf.Num, caplen: len(rf.Data), time: rf.Time,
			iface: ifs[rf.Iface].Name, sll2: rf.LinkType == capture.LinkTypeSLL2})
	}
	res.warnings = src.Warnings()
	return res
}

// ftEpoch formats ns like tshark's frame.time_epoch.
func ftEpoch(ns int64) string {
	sec, frac := ns/1e9, ns%1e9
	if frac < 0 {
		sec, frac = sec-1, frac+1e9
	}
	return fmt.Sprintf("%d.%09d", sec, frac)
}

func TestCorpusMatchesTshark(t *testing.T) {
	dir := testenv.Corpus(t)
	if _, err := exec.LookPath("tshark"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tshark not installed")
		}
		t.Skip("tshark not installed")
	}
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && d.Name() != "MANIFEST.tsv" {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no files under %s", dir)
	}

	type result struct {
		rel    string
		ours   ftOurResult
		tshark []ftTsharkFrame
		terr   error
		hung   bool
	}
	results := make([]result, len(files))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			rel, _ := filepath.Rel(dir, f)
			r := result{rel: rel}
			done := make(chan ftOurResult, 1)
			go func() { done <- ftReadAllFrames(f) }()
			select {
			case r.ours = <-done:
			case <-time.After(5 * time.Second):
				r.hung = true
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			r.tshark, r.terr = ftTsharkFrames(ctx, f)
			cancel()
			results[i] = r
		}()
	}
	wg.Wait()

	var totalOurs, totalTshark, mismatches, refused, warned int
	for _, r := range results {
		if r.hung {
			t.Errorf("%s: reading took more than 5s", r.rel)
			continue
		}
		if r.terr != nil {
			t.Errorf("%s: %v", r.rel, r.terr)
			continue
		}
		ours := r.ours
		if ours.openErr != nil || (ours.readErr != nil && len(ours.frames) == 0) {
			refused++
		} else if len(ours.warnings) > 0 {
			warned++
		}
		totalOurs += len(ours.frames)
		totalTshark += len(r.tshark)
		if ours.readErr != nil && len(ours.frames) > 0 {
			t.Errorf("%s: error after %d frames (should be a warning): %v", r.rel, len(ours.frames), ours.readErr)
		}
		known, isKnown := corpusKnown[r.rel]
		switch {
		case isKnown && len(ours.frames) != known.frames:
			t.Errorf("%s: read %d frames, table expects %d (%s); tshark %d; open err %v, warnings %q",
				r.rel, len(ours.frames), known.frames, known.why, len(r.tshark), ours.openErr, ours.warnings)
		case isKnown && len(ours.frames) == len(r.tshark):
			t.Errorf("%s: now matches tshark (%d frames): drop it from corpusKnown", r.rel, len(r.tshark))
		case !isKnown && len(ours.frames) != len(r.tshark):
			t.Errorf("%s: read %d frames, tshark %d; open err %v, read err %v, warnings %q",
				r.rel, len(ours.frames), len(r.tshark), ours.openErr, ours.readErr, ours.warnings)
		}
		if isKnown {
			mismatches++
		}
		// Every frame we return is the tshark frame with the same number.
		byNum := make(map[int]ftTsharkFrame, len(r.tshark))
		for _, tf := range r.tshark {
			byNum[tf.num] = tf
		}
		timeDiffs := 0
		for _, of := range ours.frames {
			tf, ok := byNum[of.num]
			if !ok {
				t.Errorf("%s: our frame %d has no tshark frame with that number", r.rel, of.num)
				break
			}
			if _, known := caplenKnown[r.rel]; !known && tf.caplen != of.caplen {
				t.Errorf("%s: frame %d: caplen %d, tshark %d", r.rel, of.num, of.caplen, tf.caplen)
				break
			}
			// An empty tshark time is a simple packet block (no timestamp).
			if tns, ok := ftTsharkNs(tf.epoch); tf.epoch != "" && (!ok || tns != of.time) {
				timeDiffs++
				if _, known := timeKnown[r.rel]; !known {
					t.Errorf("%s: frame %d: time %s, tshark %s", r.rel, of.num, ftEpoch(of.time), tf.epoch)
					break
				}
			}
			name := strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(of.iface)
			if name == "" {
				name = "unknown" // tshark's word for an IDB without if_name
			}
			if _, known := ifaceKnown[r.rel]; !known && strings.HasSuffix(ours.format, "pcapng") && !of.sll2 && name != tf.iface {
				t.Errorf("%s: frame %d: interface %q, tshark %q", r.rel, of.num, of.iface, tf.iface)
				break
			}
		}
		if reason, known := timeKnown[r.rel]; known && timeDiffs == 0 {
			t.Errorf("%s: times now match tshark: drop timeKnown entry (%s)", r.rel, reason)
		}
	}
	t.Logf("corpus: %d files (%d refused with an error, %d read with warnings), %d frames read (tshark %d), %d known mismatches",
		len(files), refused, warned, totalOurs, totalTshark, mismatches)
}

// timeKnown lists files whose timestamps we deliberately compute differently
// from tshark 4.0.
var timeKnown = map[string]string{
	// if_tsresol 2^-63 and a stamp of 2^63-1 units: 0.999999999 s is right;
	// tshark 4.0 overflows while scaling and shows 0.000000001.
	"libpcap/pcapng-tsresol-bin-overflow.pcapng": "tshark 4.0 overflows scaling binary resolutions",
	// Sub-second fields >= 1e6 us / 1e9 ns: we carry the excess into the
	// seconds; tshark scales them in 32 bits (overflow) or reads them signed.
	"tcpdump/atm-oam-loopback-print-overrun.pcap": "sub-second field out of range",
	"tcpdump/timestamp_invalid_micro.pcap":        "sub-second field out of range",
	"tcpdump/timestamp_invalid_nano.pcap":         "sub-second field out of range",
}

// caplenKnown: tshark strips a link-layer pseudo-header from the frame.
var caplenKnown = map[string]string{
	"tcpdump/atm-oam-loopback-print-overrun.pcap": "tshark removes the 4-byte SunATM pseudo-header",
}

// ifaceKnown: files whose later sections reuse interface ids. pcapng scopes
// ids to their section; tshark 4.0 resolves them against the first
// section's interfaces (frame 2 of test201 has caplen 128, the snaplen of
// its own section's interface 0, not the 96 of the first section's).
var ifaceKnown = map[string]string{
	"pcapng-test-generator/output_be/test201.pcapng": "per-section interface ids",
	"pcapng-test-generator/output_le/test201.pcapng": "per-section interface ids",
	"pcapng-test-generator/output_be/test202.pcapng": "per-section interface ids",
	"pcapng-test-generator/output_le/test202.pcapng": "per-section interface ids",
}
