package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pathtrace/pathtrace/internal/cli"
	"github.com/pathtrace/pathtrace/internal/iostreams"
	"github.com/pathtrace/pathtrace/internal/testenv"
)

// capturesDir holds the real captures made by testdata/gen/make-captures.sh.
const capturesDir = "../testdata/captures"

// Exit statuses as the README documents them.
const (
	exitOK          = 0
	exitFindings    = 1
	exitUsage       = 2
	exitInterrupted = 3
	exitOutput      = 4
)

// runIO runs one pathtrace command line in-process with the given outputs,
// none of them a terminal.
func runIO(ctx context.Context, args []string, out, errOut io.Writer) int {
	return cli.Run(ctx, args, &iostreams.IOStreams{Out: out, ErrOut: errOut})
}

// runCLI runs one pathtrace command line in-process.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runIO(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// The JSON result as a reader of `analyze -f json` sees it. Nullable fields
// are pointers so a null is told apart from a zero.
type jResult struct {
	Version    int        `json:"version"`
	Points     []jPoint   `json:"points"`
	Traces     []jTrace   `json:"traces"`
	HopLatency []jHopStat `json:"hop_latency"`
	Anomalies  []jAnomaly `json:"anomalies"`
	Warnings   []string   `json:"warnings"`
	Summary    jSummary   `json:"summary"`
}

// jClockOffset is one point's clock correction (analyze's clock_offsets).
type jClockOffset struct {
	Point         string  `json:"point"`
	Reference     string  `json:"reference"`
	OffsetNs      int64   `json:"offset_ns"`
	UncertaintyNs int64   `json:"uncertainty_ns"`
	DriftPPM      float64 `json:"drift_ppm"`
	Samples       int     `json:"samples"`
	Source        string  `json:"source"`
}

type jPoint struct {
	Name      string  `json:"name"`
	Node      string  `json:"node"`
	Interface *string `json:"interface"`
	IfIndex   *int    `json:"ifindex"`
	Source    string  `json:"source"`
	Coverage  struct {
		First       *string `json:"first"`
		Last        *string `json:"last"`
		Frames      int     `json:"frames"`
		KernelDrops *uint64 `json:"kernel_drops"`
	} `json:"coverage"`
}

type jTrace struct {
	N         int        `json:"n"`
	Protocol  string     `json:"protocol"`
	Type      string     `json:"type"`
	ID        *uint64    `json:"id"`
	Seq       *uint64    `json:"seq"`
	SrcIP     *string    `json:"src_ip"`
	DstIP     *string    `json:"dst_ip"`
	Direction string     `json:"direction"`
	Hops      []jHop     `json:"hops"`
	LostAfter string     `json:"lost_after"`
	Missing   []string   `json:"missing"`
	Rewrites  []jRewrite `json:"rewrites"`
	ReplyTo   *int       `json:"reply_to"`
	RTT       *jRTT      `json:"rtt"`
	Flags     []string   `json:"flags"`
	Drop      *jDrop     `json:"drop"`
}

type jDrop struct {
	Reason    string `json:"reason"`
	Location  string `json:"location"`
	Netns     string `json:"netns"`
	Interface string `json:"interface"`
	Time      string `json:"time"`
	Rule      string `json:"rule"`
}

type jHop struct {
	Point      string  `json:"point"`
	Time       string  `json:"time"`
	DeltaNs    int64   `json:"delta_ns"`
	SrcMAC     *string `json:"src_mac"`
	DstMAC     *string `json:"dst_mac"`
	TTL        *uint64 `json:"ttl"`
	Dir        string  `json:"dir"`
	Frame      int     `json:"frame"`
	Reflection bool    `json:"reflection"`
	Encap      *jEncap `json:"encap"`
}

// jEncap is a hop's tunnel: the outer headers it was seen in.
type jEncap struct {
	Type       string  `json:"type"`
	VNI        *uint64 `json:"vni"`
	OuterSrcIP *string `json:"outer_src_ip"`
	OuterDstIP *string `json:"outer_dst_ip"`
	DstPort    *uint64 `json:"dst_port"`
}

type jRewrite struct {
	Point string `json:"point"`
	Field string `json:"field"`
	From  string `json:"from"`
	To    string `json:"to"`
}

type jRTT struct {
	TotalNs      int64 `json:"total_ns"`
	ForwardNs    int64 `json:"forward_ns"`
	TurnaroundNs int64 `json:"turnaround_ns"`
	ReverseNs    int64 `json:"reverse_ns"`
}

type jHopStat struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Count int    `json:"count"`
	MinNs int64  `json:"min_ns"`
	P50Ns int64  `json:"p50_ns"`
	P99Ns int64  `json:"p99_ns"`
	MaxNs int64  `json:"max_ns"`
	Exact bool   `json:"exact"`
}

type jAnomaly struct {
	Kind     string `json:"kind"`
	Severity string `json:"severity"`
	Point    string `json:"point"`
	Count    int    `json:"count"`
	Traces   []int  `json:"traces"`
	Message  string `json:"message"`
}

type jSummary struct {
	Frames       int            `json:"frames"`
	Decoded      int            `json:"decoded"`
	Traces       int            `json:"traces"`
	Complete     int            `json:"complete"`
	Lost         int            `json:"lost"`
	WithGaps     int            `json:"with_gaps"`
	OffPath      int            `json:"off_path"`
	OffPathFlows int            `json:"off_path_flows"`
	ByProto      map[string]int `json:"by_protocol"`
	Verdict      string         `json:"verdict"`
	Clean        bool           `json:"clean"`
}

func decodeResult(t *testing.T, out string) *jResult {
	t.Helper()
	var r jResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("decode analyze JSON: %v\n%.2000s", err, out)
	}
	return &r
}

func (r *jResult) point(name string) (int, *jPoint) {
	for i := range r.Points {
		if r.Points[i].Name == name {
			return i, &r.Points[i]
		}
	}
	return -1, nil
}

func (r *jResult) trace(n int) *jTrace {
	for i := range r.Traces {
		if r.Traces[i].N == n {
			return &r.Traces[i]
		}
	}
	return nil
}

func (r *jResult) pointNames() []string {
	var s []string
	for _, p := range r.Points {
		s = append(s, p.Name)
	}
	return s
}

func (r *jResult) tracesOfType(typ string) []*jTrace {
	var s []*jTrace
	for i := range r.Traces {
		if r.Traces[i].Type == typ {
			s = append(s, &r.Traces[i])
		}
	}
	return s
}

func (tr *jTrace) hopPoints() []string {
	var s []string
	for _, h := range tr.Hops {
		s = append(s, h.Point)
	}
	return s
}

// tsRow is one frame as tshark dissects it. Empty strings are fields tshark
// does not have for that frame.
type tsRow struct {
	File       string // absolute path of the capture file
	Num        int    // tshark's frame.number within that file
	IfaceName  string // frame.interface_name (pcapng IDB if_name)
	Epoch      string // frame.time_epoch as printed
	Ns         int64  // Epoch in ns
	EthSrc     string
	EthDst     string
	SLLSrc     string
	SLLIfIndex string
	SLLPktType string
	TTL        string // ip.ttl, else ipv6.hlim
	ICMPType   string // icmp.type, else icmpv6.type
	Seq        string // icmp.seq, else icmpv6.echo.sequence_number
	Ident      string // icmp.ident, else icmpv6.echo.identifier
	ARPOp      string
}

// srcMAC is the source MAC tshark shows: Ethernet's, or SLL's link-layer
// address where there is no Ethernet header.
func (r *tsRow) srcMAC() string {
	if r.EthSrc != "" {
		return r.EthSrc
	}
	return r.SLLSrc
}

// traceType names the frame as the correlator's trace types do; "" for
// frames outside the golden set (ARP, ICMP echo, ND).
func (r *tsRow) traceType() string {
	switch {
	case r.ARPOp == "1":
		return "arp-request"
	case r.ARPOp == "2":
		return "arp-reply"
	}
	switch r.ICMPType {
	case "8", "128":
		return "echo-request"
	case "0", "129":
		return "echo-reply"
	case "135":
		return "neighbor-solicitation"
	case "136":
		return "neighbor-advertisement"
	}
	return ""
}

// tsharkFields are asked of tshark, in this order.
var tsharkFields = []string{
	"frame.number", "frame.interface_id", "frame.interface_name", "frame.time_epoch",
	"eth.src", "eth.dst", "sll.src.eth", "sll.ifindex", "sll.pkttype",
	"ip.ttl", "ipv6.hlim", "icmp.type", "icmpv6.type",
	"icmp.seq", "icmp.ident", "icmpv6.echo.sequence_number", "icmpv6.echo.identifier",
	"arp.opcode",
}

var (
	tsharkOnce sync.Once
	tsharkRows map[string]map[int]*tsRow // abs file → frame.number → row
	tsharkErr  error
	tsharkSkip string
)

// tshark returns every frame of every capture under testdata/captures as
// tshark dissects it, keyed by file and tshark's frame.number. tshark takes
// seconds to start on a loaded machine, so all files are concatenated with
// `mergecap -a -I none` (each input keeps its own interfaces, so
// frame.interface_id tells the files apart) and dissected in one run; the
// rows are then cross-checked against each scenario's tshark.tsv, which
// `tshark -r FILE` wrote file by file, so the concatenation cannot hide a
// renumbering or a changed stamp.
func tshark(t *testing.T) map[string]map[int]*tsRow {
	t.Helper()
	tsharkOnce.Do(func() {
		for _, tool := range []string{"tshark", "mergecap"} {
			if _, err := exec.LookPath(tool); err != nil {
				tsharkSkip = tool + " not installed"
				return
			}
		}
		tsharkRows, tsharkErr = loadTshark()
	})
	if tsharkSkip != "" {
		testenv.SkipOrFail(t, "%s", tsharkSkip)
	}
	if tsharkErr != nil {
		t.Fatal(tsharkErr)
	}
	return tsharkRows
}

func loadTshark() (map[string]map[int]*tsRow, error) {
	var files []string
	for _, pat := range []string{"*/*.cap", "*/*.pcap", "*/*.pcapng", "*/*.gz"} {
		m, err := filepath.Glob(filepath.Join(capturesDir, pat))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no captures under %s", capturesDir)
	}
	// interface id → file index, in mergecap's concatenation order
	var ifFile []int
	for i, f := range files {
		n, err := countInterfaces(f)
		if err != nil {
			return nil, err
		}
		for ; n > 0; n-- {
			ifFile = append(ifFile, i)
		}
	}
	merged := filepath.Join(os.TempDir(), fmt.Sprintf("pathtrace-golden-%d.pcapng", os.Getpid()))
	defer os.Remove(merged)
	if out, err := exec.Command("mergecap", append([]string{"-a", "-I", "none", "-F", "pcapng", "-w", merged}, files...)...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mergecap: %v: %s", err, out)
	}
	args := []string{"-n", "-r", merged, "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"}
	for _, f := range tsharkFields {
		args = append(args, "-e", f)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("tshark", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("tshark: %v: %s", err, stderr.String())
	}
	rows := map[string]map[int]*tsRow{}
	offset := map[int]int{} // file index → merged frame.number of its frame 0
	last := map[int]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		c := strings.Split(sc.Text(), "\t")
		if len(c) != len(tsharkFields) {
			return nil, fmt.Errorf("tshark line %q: %d fields, want %d", sc.Text(), len(c), len(tsharkFields))
		}
		mnum, err1 := strconv.Atoi(c[0])
		ifid, err2 := strconv.Atoi(c[1])
		if err1 != nil || err2 != nil || ifid < 0 || ifid >= len(ifFile) {
			return nil, fmt.Errorf("tshark line %q: bad frame number or interface id", sc.Text())
		}
		fi := ifFile[ifid]
		if _, ok := offset[fi]; !ok {
			offset[fi] = mnum - 1
		} else if mnum != last[fi]+1 {
			return nil, fmt.Errorf("mergecap interleaved %s: merged frame %d after %d", files[fi], mnum, last[fi])
		}
		last[fi] = mnum
		ns, err := epochNs(c[3])
		if err != nil {
			return nil, fmt.Errorf("%s frame %d: %w", files[fi], mnum-offset[fi], err)
		}
		abs, _ := filepath.Abs(files[fi])
		r := &tsRow{
			File: abs, Num: mnum - offset[fi], IfaceName: c[2], Epoch: c[3], Ns: ns,
			EthSrc: c[4], EthDst: c[5], SLLSrc: c[6], SLLIfIndex: c[7], SLLPktType: c[8],
			TTL: or(c[9], c[10]), ICMPType: or(c[11], c[12]),
			Seq: decimal(or(c[13], c[15])), Ident: decimal(or(c[14], c[16])), ARPOp: c[17],
		}
		if rows[abs] == nil {
			rows[abs] = map[int]*tsRow{}
		}
		rows[abs][r.Num] = r
	}
	if err := crossCheckTSV(rows); err != nil {
		return nil, err
	}
	return rows, nil
}

// decimal normalises a number tshark may print in hex (icmpv6.echo.identifier).
func decimal(s string) string {
	if v, err := strconv.ParseUint(s, 0, 64); err == nil {
		return strconv.FormatUint(v, 10)
	}
	return s
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// epochNs parses tshark's frame.time_epoch. The captures are nanosecond
// files, so tshark must print nine fractional digits; fewer would mean it
// rounded and the ns comparison would be meaningless.
func epochNs(s string) (int64, error) {
	sec, frac, ok := strings.Cut(s, ".")
	if !ok || len(frac) != 9 {
		return 0, fmt.Errorf("frame.time_epoch %q: want nine fractional digits", s)
	}
	a, err1 := strconv.ParseInt(sec, 10, 64)
	b, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("frame.time_epoch %q: not a number", s)
	}
	return a*1e9 + b, nil
}

// countInterfaces is how many interfaces mergecap gives a file: one for
// pcap, one per interface description block for pcapng; gzip is read through.
func countInterfaces(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
	}
	if len(b) < 4 || binary.LittleEndian.Uint32(b) != 0x0A0D0D0A {
		return 1, nil // pcap
	}
	var bo binary.ByteOrder = binary.LittleEndian
	n := 0
	for off := 0; off+12 <= len(b); {
		if binary.LittleEndian.Uint32(b[off:]) == 0x0A0D0D0A { // section header: byte order may change
			if binary.LittleEndian.Uint32(b[off+8:]) == 0x1A2B3C4D {
				bo = binary.LittleEndian
			} else {
				bo = binary.BigEndian
			}
		}
		typ, l := bo.Uint32(b[off:]), int(bo.Uint32(b[off+4:]))
		if l < 12 || off+l > len(b) {
			return 0, fmt.Errorf("%s: pcapng block at %d has length %d", path, off, l)
		}
		if typ == 1 {
			n++
		}
		off += l
	}
	return n, nil
}

// crossCheckTSV compares the live rows with tshark.tsv of every scenario.
func crossCheckTSV(rows map[string]map[int]*tsRow) error {
	tsvs, _ := filepath.Glob(filepath.Join(capturesDir, "*", "tshark.tsv"))
	for _, tsv := range tsvs {
		data, err := os.ReadFile(tsv)
		if err != nil {
			return err
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		col := map[string]int{}
		for i, h := range strings.Split(lines[0], "\t") {
			col[h] = i
		}
		for _, need := range []string{"file", "frame.number", "frame.time_epoch", "eth.src"} {
			if _, ok := col[need]; !ok {
				return fmt.Errorf("%s: no column %s", tsv, need)
			}
		}
		for _, ln := range lines[1:] {
			c := strings.Split(ln, "\t")
			abs, _ := filepath.Abs(filepath.Join(filepath.Dir(tsv), c[col["file"]]))
			num, _ := strconv.Atoi(c[col["frame.number"]])
			r := rows[abs][num]
			switch {
			case r == nil:
				return fmt.Errorf("%s: %s frame %d: not in the live tshark output", tsv, c[col["file"]], num)
			case r.Epoch != c[col["frame.time_epoch"]] || r.EthSrc != c[col["eth.src"]]:
				return fmt.Errorf("%s: %s frame %d: live tshark says %s %s, tshark.tsv says %s %s",
					tsv, c[col["file"]], num, r.Epoch, r.EthSrc, c[col["frame.time_epoch"]], c[col["eth.src"]])
			}
		}
	}
	return nil
}

// factIface is a host-side interface as FACTS.md lists it.
type factIface struct {
	IfIndex int
	Name    string
}

// facts reads the "Host-side interfaces" list of a scenario's FACTS.md
// ("- pod1-veth: 3 veth280767c4 26:af:..."): the names and ifindexes change
// each time the captures are made.
func facts(t *testing.T, dir string) map[string]factIface {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "FACTS.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]factIface{}
	for _, ln := range strings.Split(string(data), "\n") {
		role, rest, ok := strings.Cut(strings.TrimPrefix(ln, "- "), ": ")
		f := strings.Fields(rest)
		if !ok || !strings.HasPrefix(ln, "- ") || len(f) != 3 {
			continue
		}
		if n, err := strconv.Atoi(f[0]); err == nil {
			m[role] = factIface{IfIndex: n, Name: f[1]}
		}
	}
	for _, role := range []string{"cni0", "pod1-veth"} {
		if _, ok := m[role]; !ok {
			t.Fatalf("%s/FACTS.md lists no host-side interface %s", dir, role)
		}
	}
	return m
}
