package filter

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Helpers to ask the real tcpdump which frames an expression keeps.

// needTcpdump returns tcpdump's path; without it the differential tests
// skip, except under CI where they must run.
func needTcpdump(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("tcpdump")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("tcpdump is required under CI: %v", err)
		}
		t.Skipf("tcpdump not installed: %v", err)
	}
	return p
}

// rawFrame is one frame as tcpdump wrote it.
type rawFrame struct {
	data []byte
	wire int
}

// tcpdumpFrames runs "tcpdump -r file -w - expr" and returns the frames
// it kept. An expression tcpdump refuses (for this link type) is an error;
// a file that ends badly is not, as long as tcpdump wrote its header: the
// frames before the damage are what it filtered.
func tcpdumpFrames(tcpdump, file, expr string) (layers.LinkType, []rawFrame, error) {
	args := []string{"-nn", "-r", file, "-w", "-"}
	if expr != "" {
		args = append(args, expr)
	}
	var out, stderr bytes.Buffer
	cmd := exec.Command(tcpdump, args...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	runErr := cmd.Run()
	if out.Len() < 24 {
		return 0, nil, fmt.Errorf("tcpdump %q: %v: %s", expr, runErr, strings.TrimSpace(stderr.String()))
	}
	return readPcap(&out)
}

func readPcap(r io.Reader) (layers.LinkType, []rawFrame, error) {
	pr, err := pcapgo.NewReader(r)
	if err != nil {
		return 0, nil, fmt.Errorf("read tcpdump output: %w", err)
	}
	var frames []rawFrame
	for {
		data, ci, err := pr.ReadPacketData()
		if err != nil {
			// tcpdump's output ends where its input was damaged.
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			return 0, nil, fmt.Errorf("read tcpdump output: %w", err)
		}
		frames = append(frames, rawFrame{data: bytes.Clone(data), wire: ci.Length})
	}
	return pr.LinkType(), frames, nil
}

// keptIndexes marks which frames of all tcpdump kept. kept is a
// subsequence of all; frames with equal bytes and length get the same
// answer from any filter, so the earliest match is the right one.
func keptIndexes(all, kept []rawFrame) ([]bool, error) {
	out := make([]bool, len(all))
	j := 0
	for _, k := range kept {
		for j < len(all) && (all[j].wire != k.wire || !bytes.Equal(all[j].data, k.data)) {
			j++
		}
		if j == len(all) {
			return nil, errors.New("tcpdump's filtered output is not a subsequence of its unfiltered output")
		}
		out[j] = true
		j++
	}
	return out, nil
}

// writePcap writes frames to a new pcap file.
func writePcap(path string, link layers.LinkType, frames []rawFrame) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(262144, link); err != nil {
		f.Close()
		return err
	}
	for _, fr := range frames {
		ci := gopacket.CaptureInfo{CaptureLength: len(fr.data), Length: max(fr.wire, len(fr.data))}
		if err := w.WritePacket(ci, fr.data); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// gunzipTo decompresses a .gz capture into dir and returns the new path.
func gunzipTo(path, dir string) (string, error) {
	in, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	out := filepath.Join(dir, strings.ReplaceAll(strings.TrimSuffix(path, ".gz"), string(filepath.Separator), "_"))
	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, zr); err != nil {
		f.Close()
		return "", err
	}
	return out, f.Close()
}
