package pipeline

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sync"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/afpacket"
	"github.com/pathtrace/pathtrace/capture/pcapfile"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/discover"
	"github.com/pathtrace/pathtrace/internal/interrupt"
	"github.com/pathtrace/pathtrace/internal/safefile"
	"github.com/pathtrace/pathtrace/report"
)

// Evidence writes what a live run saw, for a ticket: one nanosecond pcap per
// point named as the seed names its files, one pcapng with an interface per
// point in path order, and the report as JSON, Markdown and HTML. Files are 0600
// in a 0700 directory and never replace existing ones without force; they
// are created through safefile, so no link, FIFO or folder someone planted
// under their names, and no folder others can write, redirects them.
//
// Every method is safe on a nil *Evidence (no evidence asked for), so the
// live loop calls them unconditionally.
type Evidence struct {
	dir     string
	force   bool
	pol     safefile.Policy
	d       *safefile.Dir
	written []*safefile.File

	unregister func() // the forced-exit cleanup, once files are closed
	reportFile *safefile.File
	report     *report.JSONStream
	keep       report.Keeper // the traces report.html draws

	// Each point's pcap is written by its capture goroutine under its own
	// lock (so points never wait for each other); path.pcapng is assembled
	// from them once the capture is over, under mu. The locks are for close
	// (a signal handler).
	points []*evPoint
	mu     sync.Mutex
	ngFile *safefile.File
	ng     *pcapfile.NgWriter // made when the capture is over, with the notes
	// path.pcapng's interfaces and point order, and its section notes (the
	// kernel's drops: analyze reads them back)
	ngIfaces []capture.Interface
	ngOrder  []string
	ngNotes  []string
	ngHead   []string // section comments before the notes: an agent's record (agent.go)
	ngDone   bool     // path.pcapng holds every frame of the pcaps
	err      error

	// Per-point kernel counters and capture windows, for path.pcapng's
	// statistics (set once the capture ended).
	stats      []afpacket.PointStats
	start, end int64
}

type evPoint struct {
	mu     sync.Mutex
	f      *safefile.File
	w      *pcapfile.Writer
	err    error
	frames int
	// A bit per frame written: sent by the interface. A pcap records no
	// direction; path.pcapng does. (1/1000 of the pcap's size.)
	out []uint64
}

// NewEvidence checks where evidence goes (an existing folder: its owner
// and mode; allowShared accepts one others can write) but creates nothing
// before the path is known, so a run that fails early leaves no trace.
func NewEvidence(dir string, force, allowShared bool) (*Evidence, error) {
	e := &Evidence{dir: dir, force: force, pol: safefile.UserPolicy(allowShared, "--allow-shared-out")}
	if err := safefile.Check(dir, e.pol); err != nil {
		return nil, folderError(err)
	}
	return e, nil
}

func folderError(err error) error {
	var re *safefile.RefusedError
	if errors.As(err, &re) {
		return fmt.Errorf("evidence folder %w", err)
	}
	return fmt.Errorf("evidence folder: %w", err)
}

// create places a streamed file under its name at once (a run killed
// midway leaves valid captures under their names); force replaces what
// has the name, never what a link there points to.
func (e *Evidence) create(name string) (*safefile.File, error) {
	f, err := e.d.Place(name, e.force)
	if err != nil {
		return nil, e.fileError(name, err)
	}
	e.written = append(e.written, f)
	return f, nil
}

func (e *Evidence) fileError(name string, err error) error {
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("evidence file %s exists (use --force to overwrite)", filepath.Join(e.dir, name))
	}
	return fmt.Errorf("evidence file: %w", err)
}

// plan creates every capture file before capturing starts, so a name clash
// fails before the node is touched.
func (e *Evidence) plan(path *discover.Path) error {
	if e == nil {
		return nil
	}
	// Check every name first: a refused run must not leave new files behind.
	names := []string{"report.json", "report.md", "report.html", "path.pcapng"}
	for _, p := range path.Points {
		names = append(names, p.Name+".cap")
	}
	d, err := safefile.MkdirAll(e.dir, e.pol)
	if err != nil {
		return folderError(err)
	}
	e.d = d
	if !e.force {
		for _, name := range names {
			if ok, err := d.Exists(name); ok || err != nil {
				e.abort()
				return e.fileError(name, cmp.Or(err, fs.ErrExist))
			}
		}
	}
	var ifaces []capture.Interface
	var order []string
	var f *safefile.File
	for _, p := range path.Points {
		f, err = e.create(p.Name + ".cap")
		if err != nil {
			e.abort()
			return err
		}
		ep := &evPoint{f: f}
		e.points = append(e.points, ep)
		ifc := evidenceInterface(p)
		w, err := pcapfile.NewWriter(f, ifc.LinkType, ifc.Snaplen)
		if err != nil {
			e.abort()
			return err
		}
		ep.w = w
		ifaces = append(ifaces, ifc)
		order = append(order, p.Name)
	}
	f, err = e.create("path.pcapng")
	if err != nil {
		e.abort()
		return err
	}
	e.ngFile = f
	// Checked now, written once the drops are known too.
	if _, err = pcapfile.NewNgWriter(io.Discard, ifaces, order); err != nil {
		e.abort()
		return err
	}
	e.ngIfaces, e.ngOrder = ifaces, order
	// report.json is written as traces come (a long capture need not keep
	// them); a run cut short removes it, as it would be incomplete.
	if e.reportFile, err = e.create("report.json"); err != nil {
		e.abort()
		return err
	}
	e.report = report.NewJSONStream(e.reportFile)
	e.unregister = interrupt.AtExit(func() { e.close() })
	return nil
}

// evidenceInterface is a point's interface in path.pcapng.
func evidenceInterface(p discover.Point) capture.Interface {
	link := capture.LinkTypeEthernet
	if p.RawIP { // a TUN or IP tunnel device: IP packets, no link header
		link = capture.LinkTypeRaw
	}
	return capture.Interface{Name: p.Name, Description: evidenceDescription(p),
		IfIndex: p.IfIndex, LinkType: link, Snaplen: afpacket.FilterSnaplen, MTU: p.MTU}
}

// evidenceDescription describes a point's interface in path.pcapng: where
// it is, and its MTU, which pcapng has no option for ("netns node1,
// veth9903a3d4 (ifindex 7), MTU 1450"); analysing the file reads it back.
func evidenceDescription(p discover.Point) string {
	d := fmt.Sprintf("netns %s, %s (ifindex %d)", p.Netns, p.Interface, p.IfIndex)
	if p.MTU > 0 {
		d += fmt.Sprintf(", MTU %d", p.MTU)
	}
	return d
}

// trace adds one trace to report.json; the correlator calls it serialized.
func (e *Evidence) trace(t *correlate.Trace) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.report != nil {
		e.report.Trace(t)
		e.keep.Add(t)
	}
}

// paths lists every evidence file of the run, the reports included.
func (e *Evidence) paths() []string {
	if e == nil {
		return nil
	}
	var ps []string
	for _, f := range e.written {
		ps = append(ps, f.Name())
	}
	return append(ps, filepath.Join(e.dir, "report.md"), filepath.Join(e.dir, "report.html"))
}

// abort closes and removes what this run created: a run that captured
// nothing leaves nothing.
func (e *Evidence) abort() {
	if e == nil {
		return
	}
	if e.unregister != nil {
		e.unregister()
	}
	e.close()
	for _, f := range e.written {
		f.Remove() // only while the name is still this run's file
	}
	e.written = nil
	if e.d != nil {
		e.d.RemoveIfEmpty() // only if this run made it
		e.d = nil
	}
}

// frame records one captured frame in its point's pcap; the point's
// capture goroutine calls it.
func (e *Evidence) frame(point int, rf *capture.RawFrame) {
	if e == nil || point >= len(e.points) {
		return
	}
	ep := e.points[point]
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.err != nil || ep.w == nil {
		return
	}
	if ep.err = ep.w.WriteFrame(*rf); ep.err != nil {
		return
	}
	if ep.frames%64 == 0 {
		ep.out = append(ep.out, 0)
	}
	if rf.Dir == correlate.DirOut {
		ep.out[ep.frames/64] |= 1 << (ep.frames % 64)
	}
	ep.frames++
}

// setCounters keeps each point's kernel drops and capture window for the
// pcapng's statistics.
func (e *Evidence) setCounters(stats []afpacket.PointStats, start, end int64) {
	if e == nil {
		return
	}
	e.stats, e.start, e.end = stats, start, end
}

// assemble writes path.pcapng from the points' pcaps, merged by stamp, once
// the capture is over: during a flood the correlator has better use for the
// CPU than writing every frame twice. A signal may close the files at any
// time; close then removes the unfinished pcapng.
func (e *Evidence) assemble() error {
	n := len(e.points)
	srcs := make([]pcapfile.File, n)
	defer func() {
		for _, s := range srcs {
			if s != nil {
				s.Close()
			}
		}
	}()
	for i, ep := range e.points {
		ep.mu.Lock()
		if ep.w == nil { // closed by a signal
			ep.mu.Unlock()
			return nil
		}
		err, f := ep.w.Flush(), ep.f
		ep.mu.Unlock()
		if err != nil {
			return fmt.Errorf("write %s: %w", f.Name(), err)
		}
		// Read back through this run's own descriptor, never by name: the
		// name could have been swapped for a link in a shared folder.
		size, err := f.Size()
		if err == nil {
			srcs[i], err = pcapfile.NewReader(f.Name(), io.NewSectionReader(f, 0, size), size)
		}
		if err != nil {
			return fmt.Errorf("assemble path.pcapng: %w", err)
		}
	}
	// Each point's pcap is in capture order: its next frame is all the
	// merge needs to hold.
	heads := newStampMerge[capture.RawFrame](n)
	read := make([]int, n)
	advance := func(i int) error {
		rf, err := srcs[i].Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("assemble path.pcapng: %w", err)
		}
		*heads.push(i, rf.Time) = rf
		return nil
	}
	for i := range srcs {
		if err := advance(i); err != nil {
			return err
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ngFile == nil { // closed by a signal
		return nil
	}
	ng, err := pcapfile.NewNgWriter(e.ngFile, e.ngIfaces, e.ngOrder, append(e.ngHead[:len(e.ngHead):len(e.ngHead)], e.ngNotes...)...)
	if err != nil {
		return fmt.Errorf("assemble path.pcapng: %w", err)
	}
	e.ng = ng
	for written := 1; ; written++ {
		best := heads.earliest()
		if best < 0 {
			e.ngDone = true
			return nil
		}
		if written%4096 == 0 { // let a signal handler in
			e.mu.Unlock()
			e.mu.Lock()
		}
		if e.ng == nil {
			return nil
		}
		rf := heads.pop(best)
		rf.Dir = correlate.DirIn
		if k := read[best]; k < e.points[best].frames && e.points[best].out[k/64]&(1<<(k%64)) != 0 {
			rf.Dir = correlate.DirOut
		}
		read[best]++
		if err := e.ng.WriteFrame(best, rf); err != nil {
			return err
		}
		if err := advance(best); err != nil {
			return err
		}
	}
}

// Finish assembles path.pcapng and closes the captures (with each point's
// kernel counters in the pcapng statistics), then writes the reports. Call
// it once the run's own report is out, so a full disk cannot hide what was
// captured.
func (e *Evidence) Finish(doc report.Document) error {
	if e == nil {
		return nil
	}
	defer e.d.Close()
	if err := e.assemble(); err != nil && e.err == nil {
		e.err = err
	}
	e.mu.Lock()
	for i, ps := range e.stats {
		if e.ng != nil {
			e.ng.SetDrops(i, ps.Drops)
			until := e.end
			if ps.Err != nil && !ps.Until.IsZero() {
				until = min(until, ps.Until.UnixNano())
			}
			from := e.start
			if !ps.From.IsZero() {
				from = ps.From.UnixNano()
			}
			e.ng.SetWindow(i, from, until)
		}
	}
	e.mu.Unlock()
	if e.unregister != nil {
		e.unregister()
	}
	e.mu.Lock()
	rerr := e.report.Finish(doc)
	e.report = nil
	if cerr := e.reportFile.Close(); rerr == nil {
		rerr = cerr
	}
	e.reportFile = nil
	e.mu.Unlock()
	if err := e.close(); err != nil {
		return err
	}
	werr := e.err
	for _, ep := range e.points {
		werr = cmp.Or(werr, ep.err)
	}
	if werr != nil {
		return fmt.Errorf("write evidence: %w", werr)
	}
	if rerr != nil {
		return fmt.Errorf("write report.json: %w", rerr)
	}
	// The Markdown report shows the traces the run kept (--limit); the
	// JSON report has them all; the HTML page draws what its Keeper kept.
	if err := e.writeReport("report.md", func(w io.Writer) error { return report.Markdown(w, doc, report.Options{}) }); err != nil {
		return err
	}
	res := *doc.Result
	res.Traces = e.keep.Traces()
	page := doc
	page.Result = &res
	return e.writeReport("report.html", func(w io.Writer) error { return report.HTML(w, page, report.Options{}) })
}

// writeReport writes a report whole, then renames it into place.
func (e *Evidence) writeReport(name string, render func(io.Writer) error) error {
	f, err := e.d.Create(name)
	if err != nil {
		return e.fileError(name, err)
	}
	if err := render(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Commit(e.force); err != nil {
		return e.fileError(name, err)
	}
	return nil
}

// close flushes and closes every capture file; files stay valid even when a
// run is cut short (it also runs on a second Ctrl-C).
func (e *Evidence) close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	if e.ngFile != nil {
		if e.ng != nil {
			errs = append(errs, e.ng.Close())
			e.ng = nil
		}
		errs = append(errs, e.ngFile.Close())
		if !e.ngDone {
			// Cut short before it held every frame: a pcapng missing frames
			// would show losses that did not happen. The pcaps are complete.
			e.ngFile.Remove()
		}
		e.ngFile = nil
	}
	for _, ep := range e.points {
		ep.mu.Lock()
		if ep.w != nil {
			errs = append(errs, ep.w.Flush())
			ep.w = nil
		}
		if ep.f != nil {
			errs = append(errs, ep.f.Close())
			ep.f = nil
		}
		ep.mu.Unlock()
	}
	if e.reportFile != nil {
		// Unfinished: the run was cut short. Half a JSON document helps no one.
		e.reportFile.Remove()
		e.reportFile.Close()
		e.reportFile, e.report = nil, nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close evidence: %w", err)
	}
	return nil
}
