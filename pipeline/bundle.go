package pipeline

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/decode"
	"github.com/pathtrace/pathtrace/capture/pcapfile"
	"github.com/pathtrace/pathtrace/correlate"
)

// SampleFrames is how many frames per file the ordering pre-pass reads.
const SampleFrames = 100_000

// Input is one command-line capture argument: a file or a directory,
// optionally named (`NAME=FILE`, `--point NAME=FILE`).
type Input struct {
	Name string // "" → derived from the file or its interfaces
	Path string
}

// ParseInput splits NAME=FILE; an argument that exists as a file is taken
// as a path even if it contains '='.
func ParseInput(arg string) Input {
	if _, err := os.Stat(arg); err == nil {
		return Input{Path: arg}
	}
	if name, path, ok := strings.Cut(arg, "="); ok && name != "" {
		return Input{Name: name, Path: path}
	}
	return Input{Path: arg}
}

// Point is one capture point of a bundle.
type Point struct {
	Name  string
	base  string // the file's base name the name was made of ("" when named otherwise)
	Iface capture.Interface
	File  string
	file  int // index into Bundle.files
	iface int // interface index within that file
}

type bundleFile struct {
	path   string
	ifaces []capture.Interface
	format string
	own    bool         // written by pathtrace: interfaces are in path order
	agent  *AgentRecord // an agent's capture of one node's part (agent_join.go)
}

// Bundle is a set of capture files resolved to named points in path order.
type Bundle struct {
	Points   []Point
	Warnings []string
	files    []bundleFile
	// OrderInferred names the groups whose order came from the traffic.
	OrderInferred []string
	// OrderListed: the path order is the command line's alone (files
	// listed one by one, none pathtrace wrote, no --order): the
	// correlator checks it against the traffic (Config.CheckOrder).
	OrderListed bool
	// notes are the section comments of files pathtrace wrote (the live
	// run's drops and lost probes among them).
	notes []string
	// agentPaired: two agents' captures of one run, put together as
	// recorded (agent_join.go).
	agentPaired bool
	// scans are the stamps passes started ahead (StartSpanScans), by file.
	scans []*spanScan
}

// OpenBundle resolves inputs to points: a single-interface file is one point
// named after its base name; a multi-interface file (pcapng interface
// blocks, SLL2 ifindexes) one point per interface, named after the interface
// where the file records a name, else <file>:if<N>. Path order is the
// command-line order; the points of a multi-interface file or of a directory
// are placed by the traffic unless the file is one pathtrace wrote (it
// records the order) or order names every point explicitly.
func OpenBundle(inputs []Input, order []string, window int64) (*Bundle, error) {
	b := &Bundle{}
	var groups [][]int
	var groupName []string
	for _, in := range inputs {
		paths, err := pcapfile.ExpandPaths([]string{in.Path})
		if err != nil {
			return nil, err
		}
		st, _ := os.Stat(in.Path)
		isDir := st != nil && st.IsDir()
		if isDir && in.Name != "" {
			return nil, fmt.Errorf("%s=%s: a directory cannot be one named point", in.Name, in.Path)
		}
		if isDir {
			// A live run's evidence folder holds path.pcapng and the same
			// frames again as <point>.cap: the pcapng alone is the bundle.
			if own := ownFiles(paths); len(own) > 0 && len(own) < len(paths) {
				b.Warnings = append(b.Warnings, fmt.Sprintf("%s: analysing %s, written by pathtrace, not the per-point captures beside it", in.Path, strings.Join(own, ", ")))
				paths = own
			}
		}
		var group []int
		for _, p := range paths {
			pts, err := b.addFile(p, in.Name)
			if err != nil {
				return nil, err
			}
			if b.files[len(b.files)-1].own {
				// its interfaces keep their recorded order: one fixed group each
				for _, pt := range pts {
					groups = append(groups, []int{pt})
					groupName = append(groupName, "")
				}
				continue
			}
			group = append(group, pts...)
		}
		if len(group) > 0 {
			groups = append(groups, group)
			groupName = append(groupName, in.Path)
		}
	}
	if len(b.Points) == 0 {
		return nil, errors.New("no capture points")
	}
	if len(b.Points) > correlate.MaxPoints {
		return nil, fmt.Errorf("%d capture points: at most %d are supported", len(b.Points), correlate.MaxPoints)
	}
	b.shortenNames()
	b.nodeNames()
	seen := map[string]string{}
	for _, p := range b.Points {
		if prev, dup := seen[p.Name]; dup {
			return nil, fmt.Errorf("two capture points named %q (%s and %s): name them with NAME=FILE or --point NAME=FILE", p.Name, prev, p.File)
		}
		seen[p.Name] = p.File
	}

	var perm []int
	switch {
	case len(order) > 0:
		idx := map[string]int{}
		for i, p := range b.Points {
			idx[p.Name] = i
		}
		for _, name := range order {
			i, ok := idx[name]
			if !ok {
				return nil, fmt.Errorf("--order names %q, which is not a capture point (points: %s)", name, strings.Join(b.names(), ", "))
			}
			if slices.Contains(perm, i) {
				return nil, fmt.Errorf("--order names %q twice", name)
			}
			perm = append(perm, i)
		}
		if len(perm) != len(b.Points) {
			var left []string
			for i, p := range b.Points {
				if !slices.Contains(perm, i) {
					left = append(left, p.Name)
				}
			}
			return nil, fmt.Errorf("--order leaves out %s", strings.Join(left, ", "))
		}
	default:
		groups, groupName = b.agentOrder(groups, groupName)
		needs := false
		for _, g := range groups {
			needs = needs || len(g) > 1
		}
		if needs {
			sample, err := b.sample()
			if err != nil {
				return nil, err
			}
			perm = correlate.InferOrder(sample, groups, window)
			for gi, g := range groups {
				if len(g) > 1 {
					b.OrderInferred = append(b.OrderInferred, groupName[gi])
				}
			}
		} else {
			for _, g := range groups {
				perm = append(perm, g...)
			}
			b.OrderListed = !slices.ContainsFunc(b.files, func(f bundleFile) bool { return f.own || f.agent != nil })
		}
	}
	pts := make([]Point, len(perm))
	for i, j := range perm {
		pts[i] = b.Points[j]
	}
	b.Points = pts
	return b, nil
}

// shortenNames drops from the names made of file names what those files'
// names all share (shortNames); Source keeps the whole file name.
func (b *Bundle) shortenNames() {
	var bases []string
	for _, p := range b.Points {
		if p.base != "" && !slices.Contains(bases, p.base) {
			bases = append(bases, p.base)
		}
	}
	short := shortNames(bases)
	for i := range b.Points {
		p := &b.Points[i]
		if k := slices.Index(bases, p.base); p.base != "" && k >= 0 {
			p.Name = short[k] + strings.TrimPrefix(p.Name, p.base)
		}
	}
}

func (b *Bundle) names() []string {
	var s []string
	for _, p := range b.Points {
		s = append(s, p.Name)
	}
	return s
}

// ownFiles are the files among paths that pathtrace wrote (pcapng with
// shb_userappl "pathtrace").
func ownFiles(paths []string) []string {
	var own []string
	for _, p := range paths {
		src, err := pcapfile.Open(p)
		if err != nil {
			continue
		}
		for _, s := range src.Sections() {
			if s.UserAppl == "pathtrace" {
				own = append(own, p)
				break
			}
		}
		src.Close()
	}
	return own
}

// addFile scans a file's interfaces. pcap files other than SLL2 have one
// interface known from the header; pcapng and SLL2 files are read ahead
// (up to SampleFrames) since their interfaces appear as blocks or ifindexes.
func (b *Bundle) addFile(path, name string) ([]int, error) {
	src, err := pcapfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	// An SLL2 pcap lists no interface until its frames reveal ifindexes.
	ifs := src.Interfaces()
	multi := (src.Format() != "pcap" && src.Format() != "pcap.gz") || len(ifs) != 1 || ifs[0].LinkType == capture.LinkTypeSLL2
	if multi {
		for n := 0; n < SampleFrames; n++ {
			if _, err := src.Next(); err != nil {
				break
			}
		}
	}
	ifaces := src.Interfaces()
	own := false
	for _, s := range src.Sections() {
		own = own || s.UserAppl == "pathtrace"
		if s.UserAppl == "pathtrace" {
			b.notes = append(b.notes, s.Comments...)
		}
	}
	// An SLL2 file's container interface carries no frames of its own: each
	// ifindex became an interface. Keep only interfaces that can hold frames.
	var keep []int
	for i, ifc := range ifaces {
		if ifc.LinkType == capture.LinkTypeSLL2 && ifc.IfIndex < 0 && len(ifaces) > 1 {
			continue
		}
		keep = append(keep, i)
	}
	b.files = append(b.files, bundleFile{path: path, ifaces: ifaces, format: src.Format(), own: own, agent: b.agentIn(path, src.Sections())})
	fi := len(b.files) - 1
	base := PointBaseName(path)
	// capture.Interface names can repeat within a file (one per pcapng section):
	// those get their index too, so every point keeps a distinct name.
	nameCount := map[string]int{}
	for _, i := range keep {
		nameCount[ifaces[i].Name]++
	}
	var out []int
	for _, i := range keep {
		ifc := ifaces[i]
		pn, fromBase := name, false
		switch {
		case len(keep) == 1 && pn == "":
			pn, fromBase = base, true
		case len(keep) > 1:
			prefix := base
			if name != "" {
				prefix = name
			}
			switch {
			case ifc.Name != "" && nameCount[ifc.Name] > 1:
				pn = fmt.Sprintf("%s:if%d", ifc.Name, i)
			case ifc.Name != "":
				pn = ifc.Name
			case ifc.IfIndex >= 0:
				pn, fromBase = fmt.Sprintf("%s:if%d", prefix, ifc.IfIndex), name == ""
			default:
				pn, fromBase = fmt.Sprintf("%s:if%d", prefix, i), name == ""
			}
		}
		p := Point{Name: pn, Iface: ifc, File: path, file: fi, iface: i}
		if fromBase {
			p.base = base
		}
		b.Points = append(b.Points, p)
		out = append(out, len(b.Points)-1)
	}
	if len(keep) == 0 {
		return nil, fmt.Errorf("%s: no capture interfaces in it", path)
	}
	return out, nil
}

// sampleBudget bounds the frames the ordering pre-pass holds in all.
const sampleBudget = 200_000

// sample decodes the first frames of every file, for order inference: at
// most sampleBudget in all, split between the files.
func (b *Bundle) sample() ([]correlate.Frame, error) {
	return b.sampleFrames(min(SampleFrames, max(sampleBudget/len(b.files), 10_000)))
}

// sampleFrames decodes the first perFile frames of every file, with Point
// set to the bundle's current point order.
func (b *Bundle) sampleFrames(perFile int) ([]correlate.Frame, error) {
	var frames []correlate.Frame
	dec := decode.New()
	for fi := range b.files {
		src, err := pcapfile.Open(b.files[fi].path)
		if err != nil {
			return nil, err
		}
		m := b.ifaceMap(fi)
		var f correlate.Frame
		for n := 0; n < perFile; n++ {
			rf, err := src.Next()
			if err != nil {
				break
			}
			if rf.Iface >= len(m) || m[rf.Iface] < 0 || !dec.Decode(&rf, &f) {
				continue
			}
			f.Point = m[rf.Iface]
			frames = append(frames, f)
		}
		src.Close()
	}
	return frames, nil
}

// ifaceMap maps a file's interface indices to point indices (-1: none).
func (b *Bundle) ifaceMap(fi int) []int {
	m := make([]int, len(b.files[fi].ifaces))
	for i := range m {
		m[i] = -1
	}
	for pi, p := range b.Points {
		if p.file == fi {
			m[p.iface] = pi
		}
	}
	return m
}

// Specs describes the points for the correlator.
func (b *Bundle) Specs() []correlate.PointSpec {
	specs := make([]correlate.PointSpec, len(b.Points))
	for i, p := range b.Points {
		specs[i] = correlate.PointSpec{
			Name: p.Name, Interface: p.Iface.Name, IfIndex: p.Iface.IfIndex, Source: p.File,
			MTU: cmp.Or(p.Iface.MTU, describedMTU(p.Iface.Description)), Snaplen: p.Iface.Snaplen, Drops: p.Iface.Drops, HasDrops: p.Iface.HasDrops,
			CoverFrom: p.Iface.Start, CoverTo: p.Iface.End, Clock: p.file, Node: b.agentNode(p.file),
		}
	}
	return specs
}

// describedMTU is the MTU an interface description ends with (", MTU
// 1450", as pathtrace's evidence writes it: pcapng has no MTU option), or 0.
func describedMTU(d string) int {
	m := mtuSuffix.FindStringSubmatch(d)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

var mtuSuffix = regexp.MustCompile(`, MTU (\d{2,5})$`)

// Open opens every file of the bundle into a Merger feeding frames in stamp
// order with Point set to the path position. Interfaces a file reveals
// after the pre-pass are ignored with a warning. Close the returned Files.
func (b *Bundle) Open(reorder int64, closed func(point int, ifc capture.Interface, early bool)) (*Merger, Files, error) {
	m := NewMerger(reorder, closed)
	measure := b.measurable()
	var srcs Files
	for fi := range b.files {
		src, err := pcapfile.Open(b.files[fi].path)
		if err != nil {
			srcs.Close()
			return nil, nil, err
		}
		srcs = append(srcs, src)
		path := b.files[fi].path
		// Interfaces a file reveals after the pre-pass have no point: the
		// merger warns about them.
		m.Add(path, src, b.ifaceMap(fi))
		if b.files[fi].own {
			m.NumberPerInterface()
		}
		if measure[fi] && !strings.HasSuffix(src.Format(), ".gz") {
			m.MeasureSpan(func() (capture.Source, error) { return pcapfile.Open(path) })
			if fi < len(b.scans) && b.scans[fi] != nil {
				m.inputs[len(m.inputs)-1].ahead(b.scans[fi])
			}
		}
	}
	return m, srcs, nil
}

// measureMaxBytes bounds the bundles whose files are read twice, the first
// time for their stamps alone (Merger.MeasureSpan): that costs ~90
// instructions a frame and saves the merge holding, and reaching back in
// memory for, a reorder span of decoded frames (flood captures in stamp
// order: 20-28 MiB of peak RSS, a third of the last-level cache misses;
// bench/README). The second read comes from the page cache while the
// bundle fits in memory; a larger one is read once, with the reorder span.
// A bound on the input alone, so a bundle is always merged alike.
const measureMaxBytes = 4 << 30

// measurable says which files are read twice: regular files (not pipes),
// when the bundle's files together hold at most measureMaxBytes. (A file
// still being written gains frames the pass did not see; they are held
// back by what it measured, as a file stepping back past --reorder is by
// that.)
func (b *Bundle) measurable() []bool {
	ok := make([]bool, len(b.files))
	var total int64
	for fi, f := range b.files {
		st, err := os.Stat(f.path)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		ok[fi], total = true, total+st.Size()
	}
	if total > measureMaxBytes {
		clear(ok)
	}
	return ok
}

// Files are the open files of a bundle.
type Files []pcapfile.File

// Progress sums the bytes read and the total over all files.
func (c Files) Progress() (read, total int64) {
	for _, s := range c {
		r, t := s.Progress()
		read += r
		total += max(t, 0)
	}
	return read, total
}

func (c Files) Close() error {
	var errs []error
	for _, s := range c {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
