// Command refcheck checks a streaming `pathtrace analyze -f json` run against
// the in-memory reference: it reads every frame of the same bundle into
// memory (same bundle resolution, decoder and merge order as analyze, for
// files listed in path order: analyze's placement of a listing the traffic
// contradicts is not repeated here), runs
// correlate.Analyze on the slice, and compares the traces and hop_latency
// of both as generic JSON. It prints the first difference and exits 1 if
// there is one, so a faster analyze cannot get there by doing less.
//
// It also checks every trace of the JSON on its own (streaming, so it works
// on sets too large for the reference): at most one non-reflection hop per
// point, and all hops of an echo-request trace within -span of each other
// (a trace spanning more merged two probes, e.g. across an ICMP seq wrap);
// with -requests N, that there are exactly N echo-request traces.
//
//	refcheck -json out.json -requests 200000 pod1.cap pod1-veth.cap cni0.cap pod2-veth.cap pod2.cap
//	refcheck -json out.json -requests 1000000 -noref ...   # checks only
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"sort"
	"time"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/pipeline"
	"github.com/pathtrace/pathtrace/report"
)

func main() {
	jsonPath := flag.String("json", "", "output of `pathtrace analyze -f json` on the same files (required)")
	window := flag.Duration("window", time.Second, "match window, as analyze --window")
	reorder := flag.Duration("reorder", time.Duration(pipeline.DefaultReorder), "as analyze --reorder")
	flag.IntVar(&opts.requests, "requests", -1, "expected number of echo-request traces (-1: not checked)")
	flag.DurationVar(&opts.span, "span", time.Millisecond, "longest time between the hops of one echo-request trace (a real probe can take up to ping's max rtt)")
	flag.BoolVar(&opts.noRef, "noref", false, "skip the in-memory reference; run the per-trace checks only")
	flag.Parse()
	if *jsonPath == "" || (flag.NArg() == 0 && !opts.noRef) {
		fmt.Fprintln(os.Stderr, "usage: refcheck -json OUT.json [-requests N] [-noref] FILE...")
		os.Exit(2)
	}
	if err := run(*jsonPath, flag.Args(), int64(*window), int64(*reorder)); err != nil {
		fmt.Fprintln(os.Stderr, "refcheck:", err)
		os.Exit(1)
	}
}

var opts struct {
	requests int
	span     time.Duration
	noRef    bool
}

func run(jsonPath string, files []string, window, reorder int64) error {
	ref := &correlate.Result{}
	if !opts.noRef {
		start := time.Now()
		var nframes int
		var err error
		ref, nframes, err = reference(files, window, reorder)
		if err != nil {
			return err
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Printf("reference: %d frames held in memory, %d traces, %d hop_latency rows, %.1f s, heap %d MiB\n",
			nframes, len(ref.Traces), len(ref.HopLatency), time.Since(start).Seconds(), ms.HeapAlloc>>20)
	}

	f, err := os.Open(jsonPath)
	if err != nil {
		return fmt.Errorf("open analyze output: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(f, 1<<20))
	if err := expectDelim(dec, '{'); err != nil {
		return fmt.Errorf("%s: %w", jsonPath, err)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%s: %w", jsonPath, err)
		}
		key, _ := tok.(string)
		switch key {
		case "traces":
			seen[key] = true
			if err := compareTraces(dec, ref.Traces); err != nil {
				return err
			}
		case "hop_latency":
			seen[key] = true
			var got any
			if err := dec.Decode(&got); err != nil {
				return fmt.Errorf("%s: hop_latency: %w", jsonPath, err)
			}
			want, err := generic(ref.HopLatency)
			if err != nil {
				return err
			}
			if d := diff("hop_latency", want, got); d != "" && !opts.noRef {
				return fmt.Errorf("first difference (reference vs analyze): %s", d)
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return fmt.Errorf("%s: %s: %w", jsonPath, key, err)
			}
		}
	}
	for _, k := range []string{"traces", "hop_latency"} {
		if !seen[k] {
			return fmt.Errorf("%s has no %q", jsonPath, k)
		}
	}
	fmt.Printf("checks: %d traces, %d echo-request traces (%d spanning > 1 ms), widest echo-request trace %.3f ms (limit %v); none with two non-reflection hops at one point\n",
		stats.traces, stats.requests, stats.over1ms, float64(stats.widest)/1e6, opts.span)
	if opts.requests >= 0 && stats.requests != opts.requests {
		return fmt.Errorf("%d echo-request traces, want %d (the echo requests seen at the first point)", stats.requests, opts.requests)
	}
	if !opts.noRef {
		fmt.Printf("OK: %d traces and %d hop_latency rows equal the in-memory reference\n", len(ref.Traces), len(ref.HopLatency))
	}
	return nil
}

var stats struct {
	traces, requests, over1ms int
	widest                    int64
}

// check applies the per-trace checks to one trace of analyze's JSON.
func check(i int, t any) error {
	m, ok := t.(map[string]any)
	if !ok {
		return fmt.Errorf("traces[%d] is not an object", i)
	}
	hops, _ := m["hops"].([]any)
	stats.traces++
	seen := map[string]bool{}
	var first, last int64
	for j, h := range hops {
		hm, _ := h.(map[string]any)
		pt, _ := hm["point"].(string)
		ts, _ := hm["time"].(string)
		tm, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return fmt.Errorf("traces[%d].hops[%d].time: %w", i, j, err)
		}
		ns := tm.UnixNano()
		if j == 0 || ns < first {
			first = ns
		}
		if j == 0 || ns > last {
			last = ns
		}
		if refl, _ := hm["reflection"].(bool); refl {
			continue
		}
		if seen[pt] {
			return fmt.Errorf("traces[%d] (n=%v) has two non-reflection hops at %s: %s", i, m["n"], pt, short(t))
		}
		seen[pt] = true
	}
	if m["type"] == "echo-request" {
		stats.requests++
		if w := last - first; w > int64(opts.span) {
			return fmt.Errorf("traces[%d] (n=%v, seq %v) spans %.3f ms > %v: two probes merged? %s", i, m["n"], m["seq"], float64(w)/1e6, opts.span, short(t))
		} else if w > stats.widest {
			stats.widest = w
		}
		if last-first > int64(time.Millisecond) {
			stats.over1ms++
		}
	}
	return nil
}

// reference reads the whole bundle into memory and analyses it at once.
func reference(files []string, window, reorder int64) (*correlate.Result, int, error) {
	var inputs []pipeline.Input
	for _, f := range files {
		inputs = append(inputs, pipeline.ParseInput(f))
	}
	b, err := pipeline.OpenBundle(inputs, nil, window)
	if err != nil {
		return nil, 0, fmt.Errorf("open bundle: %w", err)
	}
	specs := b.Specs()
	m, closer, err := b.Open(reorder, func(p int, ifc capture.Interface, _ bool) {
		if ifc.HasDrops {
			specs[p].Drops, specs[p].HasDrops = ifc.Drops, true
		}
	})
	if err != nil {
		return nil, 0, fmt.Errorf("open bundle files: %w", err)
	}
	defer closer.Close()
	defer m.Close()
	var frames []correlate.Frame
	for f := m.Next(); f != nil; f = m.Next() {
		frames = append(frames, *f)
	}
	res, err := correlate.Analyze(correlate.Config{Points: specs, Window: window}, frames)
	if err != nil {
		return nil, 0, fmt.Errorf("analyze in memory: %w", err)
	}
	return res, len(frames), nil
}

// compareTraces walks analyze's "traces" array one element at a time, so the
// comparison never holds a second copy of every trace as generic JSON.
func compareTraces(dec *json.Decoder, ref []correlate.Trace) error {
	if err := expectDelim(dec, '['); err != nil {
		return fmt.Errorf("traces: %w", err)
	}
	i := 0
	for ; dec.More(); i++ {
		var got any
		if err := dec.Decode(&got); err != nil {
			return fmt.Errorf("traces[%d]: %w", i, err)
		}
		if err := check(i, got); err != nil {
			return err
		}
		if opts.noRef {
			continue
		}
		if i >= len(ref) {
			return fmt.Errorf("first difference: analyze has more traces than the reference (%d): traces[%d] = %s", len(ref), i, short(got))
		}
		var want any
		if err := json.Unmarshal(report.AppendTraceJSON(nil, &ref[i]), &want); err != nil {
			return fmt.Errorf("reference traces[%d]: %w", i, err)
		}
		if d := diff(fmt.Sprintf("traces[%d]", i), want, got); d != "" {
			return fmt.Errorf("first difference (reference vs analyze): %s", d)
		}
	}
	if err := expectDelim(dec, ']'); err != nil {
		return fmt.Errorf("traces: %w", err)
	}
	if i != len(ref) && !opts.noRef {
		return fmt.Errorf("first difference: analyze has %d traces, the reference %d; traces[%d] = %s", i, len(ref), i, short(json.RawMessage(report.AppendTraceJSON(nil, &ref[i]))))
	}
	return nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %q, got %v", want, tok)
	}
	return nil
}

// generic round-trips v through JSON into maps, slices and float64s.
func generic(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode reference: %w", err)
	}
	var g any
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("decode reference: %w", err)
	}
	return g, nil
}

// diff returns the first differing path with both values, or "".
func diff(path string, want, got any) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: reference %s, analyze %s", path, short(want), short(got))
		}
		keys := make([]string, 0, len(w)+len(g))
		for k := range w {
			keys = append(keys, k)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			wv, wok := w[k]
			gv, gok := g[k]
			if wok != gok {
				return fmt.Sprintf("%s.%s: reference %s, analyze %s", path, k, presence(wok, wv), presence(gok, gv))
			}
			if d := diff(path+"."+k, wv, gv); d != "" {
				return d
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok {
			return fmt.Sprintf("%s: reference %s, analyze %s", path, short(want), short(got))
		}
		for i := 0; i < min(len(w), len(g)); i++ {
			if d := diff(fmt.Sprintf("%s[%d]", path, i), w[i], g[i]); d != "" {
				return d
			}
		}
		if len(w) != len(g) {
			return fmt.Sprintf("%s: reference has %d elements, analyze %d (reference %s, analyze %s)", path, len(w), len(g), short(want), short(got))
		}
		return ""
	default:
		if !reflect.DeepEqual(want, got) {
			return fmt.Sprintf("%s: reference %s, analyze %s", path, short(want), short(got))
		}
		return ""
	}
}

func presence(ok bool, v any) string {
	if !ok {
		return "(absent)"
	}
	return short(v)
}

func short(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}
