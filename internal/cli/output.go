package cli

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/report"
)

// outputOptions are shared by analyze and the live tracer.
type outputOptions struct {
	Format string
	Limit  int
	Detail bool
	Window time.Duration
	Quiet  bool
}

func (o *outputOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.Format, "format", "f", "table", "output format: table, json, markdown or html")
	f.IntVar(&o.Limit, "limit", 20, "traces shown in table and markdown output (0: all; html draws its own selection)")
	f.BoolVar(&o.Detail, "detail", false, "table: one row per hop (time, MACs, TTL, direction) instead of one row per trace")
	f.DurationVar(&o.Window, "window", time.Second, "how far apart in time two sightings of one frame may be")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "no progress output on stderr")
}

func (o *outputOptions) validate() error {
	switch o.Format {
	case "table", "json", "markdown", "md", "html":
	default:
		return fmt.Errorf("--format %q: want table, json, markdown or html", o.Format)
	}
	if o.Limit < 0 {
		return fmt.Errorf("--limit %d: want 0 (all) or more", o.Limit)
	}
	if o.Window <= 0 {
		return fmt.Errorf("--window %v: want a positive duration", o.Window)
	}
	return nil
}

// output is one run's report on its way out: JSON is written as the
// correlator emits traces, so memory does not grow with the input; HTML
// keeps what its page draws (report.Keeper); the other formats render the
// first --limit traces once the result is known.
type output struct {
	o      *outputOptions
	w      io.Writer
	stream *report.JSONStream
	keep   *report.Keeper
}

func (o *outputOptions) start(w io.Writer) *output {
	out := &output{o: o, w: w}
	switch o.Format {
	case "json":
		out.stream = report.NewJSONStream(w)
	case "html":
		out.keep = &report.Keeper{}
	}
	return out
}

// sink is the correlator's sink for the formats that take every trace as
// it comes, nil otherwise.
func (out *output) sink() func(*correlate.Trace) {
	switch {
	case out.stream != nil:
		return out.stream.Trace
	case out.keep != nil:
		return out.keep.Add
	}
	return nil
}

// finish writes the rest of the document.
func (out *output) finish(d report.Document) error {
	if d.Tool == (report.Tool{}) {
		d.Tool = buildTool()
	}
	if out.stream != nil {
		return out.stream.Finish(d)
	}
	ro := report.Options{Limit: out.o.Limit, Detail: out.o.Detail}
	if out.keep != nil {
		res := *d.Result
		res.Traces = out.keep.Traces()
		d.Result = &res
		return report.HTML(out.w, d, ro)
	}
	switch out.o.Format {
	case "markdown", "md":
		return report.Markdown(out.w, d, ro)
	default:
		return report.Table(out.w, d, ro)
	}
}

// reportError is the status of a run whose report could not be written: a
// reader that closed the pipe early (`pathtrace … | head`) got what it
// wanted, so the run ends as it would have, quietly; anything else is an
// output error.
func reportError(err error, interrupted, clean bool) error {
	if errors.Is(err, syscall.EPIPE) {
		return findings(interrupted, clean)
	}
	return outputError(err)
}
