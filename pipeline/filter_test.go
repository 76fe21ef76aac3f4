package pipeline

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pathtrace/pathtrace/capture/decode"
	"github.com/pathtrace/pathtrace/capture/filter"
	"github.com/pathtrace/pathtrace/capture/pcapfile"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/internal/testenv"
)

// TestFilterThroughTheDecoder: --filter as the pipeline applies it (the
// product decoder's frames, its tunnel offsets) keeps exactly the frames
// tcpdump keeps with the same expression, among the frames the decoder
// keys; for VXLAN captures, a frame whose inner frame matches is kept too
// (tcpdump sees only the outer one: those are counted apart).
func TestFilterThroughTheDecoder(t *testing.T) {
	testenv.RequireTools(t, "tcpdump")
	files, _ := filepath.Glob(filepath.Join(testenv.Captures(t), "*", "*.cap*"))
	corpus := testenv.Corpus(t)
	files = append(files, filepath.Join(corpus, "tcpdump", "vxlan.pcap"), filepath.Join(corpus, "zeek", "tunnels__vxlan.pcap"))
	exprs := []string{"icmp", "arp", "host 10.244.1.3", "icmp and src host 10.244.1.2", "not arp", "ip6", "icmp6 or arp",
		"udp", "net 10.244.1.0/24", "host 30.1.1.1", "greater 100", "ether host ff:ff:ff:ff:ff:ff", "icmp[icmptype] == 8 or arp"}
	compared, tunnelled := 0, 0
	for _, expr := range exprs {
		f, err := filter.Compile(expr)
		if err != nil {
			var fe *filter.Error
			if errors.As(err, &fe) && fe.Kind == filter.ErrUnsupported {
				continue // byte offsets: refused with a clear error, checked elsewhere
			}
			t.Fatalf("%q: %v", expr, err)
		}
		for _, file := range files {
			want, ok := tcpdumpStamps(t, file, expr)
			if !ok {
				continue
			}
			src, err := pcapfile.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			dec, ff := decode.New(), newFrameFilter(f)
			for {
				rf, err := src.Next()
				if errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Fatal(err)
				}
				var fr correlate.Frame
				dec.DecodeAny(&rf, &fr)
				if fr.Key.Proto == correlate.ProtoNone {
					continue
				}
				ff.apply(dec, &rf, &fr)
				kept, inTcpdump := fr.Key.Proto != correlate.ProtoNone, want[rf.Time]
				off, _ := dec.Tunnel()
				switch {
				case kept == inTcpdump:
					compared++
				case kept && off > 0:
					tunnelled++ // its inner frame matched: tcpdump looks at the outer one only
				default:
					t.Errorf("%s frame %d (%q): kept %v, tcpdump %v", filepath.Base(file), rf.Num, expr, kept, inTcpdump)
				}
			}
			src.Close()
		}
	}
	if compared < 1000 || tunnelled == 0 {
		t.Fatalf("compared %d frames, %d kept by their inner frame", compared, tunnelled)
	}
	t.Logf("%d frames agree with tcpdump, %d more kept by their tunnelled inner frame", compared, tunnelled)
}

// tcpdumpStamps is the set of ns stamps of the frames tcpdump keeps.
func tcpdumpStamps(t *testing.T, file, expr string) (map[int64]bool, bool) {
	t.Helper()
	out, err := exec.Command("tcpdump", "-nn", "-tt", "--time-stamp-precision=nano", "-r", file, expr).Output()
	if err != nil {
		return nil, false
	}
	set := map[int64]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !strings.Contains(f[0], ".") {
			continue // a continuation line
		}
		sec, frac, _ := strings.Cut(f[0], ".")
		s, err1 := strconv.ParseInt(sec, 10, 64)
		ns, err2 := strconv.ParseInt(frac, 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		set[s*1e9+ns] = true
	}
	return set, true
}

// TestEmptyFilterCostsNothing: analyze and --passive compile the empty
// --filter as well; it matches every frame, so the readers must not fill
// fields for it on every frame (a nil frameFilter skips that).
func TestEmptyFilterCostsNothing(t *testing.T) {
	for _, expr := range []string{"", "  "} {
		f, err := filter.Compile(expr)
		if err != nil {
			t.Fatalf("Compile(%q): %v", expr, err)
		}
		if ff := newFrameFilter(f); ff != nil {
			t.Errorf("Compile(%q): a frame filter that fills fields for every frame", expr)
		}
	}
	f, err := filter.Compile("icmp")
	if err != nil {
		t.Fatal(err)
	}
	if newFrameFilter(f) == nil {
		t.Error(`"icmp": no frame filter`)
	}
}
