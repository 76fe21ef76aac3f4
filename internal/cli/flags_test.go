package cli

import (
	"context"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/pathtrace/pathtrace/discover"
	"github.com/pathtrace/pathtrace/internal/iostreams"
	"github.com/pathtrace/pathtrace/pipeline"
	"github.com/pathtrace/pathtrace/report"
)

// Sizes as people type them.
func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"256MiB": 256 << 20, "256M": 256 << 20, "256m": 256 << 20, "256MB": 256 << 20, "256 MiB": 256 << 20,
		"1G": 1 << 30, "1GiB": 1 << 30, "1.5GiB": 3 << 29, "4M": 4 << 20, "512KiB": 512 << 10, "512k": 512 << 10,
		"1048576": 1 << 20, "1048576B": 1 << 20, "1T": 1 << 40,
	} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "12XB", "1.5", "-1M", "1e3", "4 M B", "1GiBs", "3PiB"} {
		var b byteSize
		if err := b.Set(in); err == nil {
			t.Errorf("Set(%q) = %d, want an error", in, b)
		} else if strings.Contains(err.Error(), "strconv") {
			t.Errorf("Set(%q): %v names Go's parser", in, err)
		}
	}
	for n, want := range map[int64]string{256 << 20: "256MiB", 1 << 30: "1GiB", 1000: "1000", 0: "0", 1536: "1536"} {
		if got := formatByteSize(n); got != want {
			t.Errorf("formatByteSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// traceFlags parses the root command's flags into its options without
// running anything.
func traceFlags(t *testing.T, args ...string) (*traceOptions, error) {
	t.Helper()
	ios, _, _, _ := iostreams.Test()
	o := &traceOptions{IO: ios}
	cmd := &cobra.Command{Use: "pathtrace", RunE: func(cmd *cobra.Command, _ []string) error {
		o.noteProbeFlags(cmd)
		return o.validate()
	}}
	o.addFlags(cmd)
	return o, execute(t, cmd, args...)
}

func TestTraceFlags(t *testing.T) {
	o, err := traceFlags(t, "--src", "a", "--dst", "b", "--size", "1472", "--spool-size", "256MiB", "--spool-memory", "64M", "--ring-size", "8M")
	if err != nil || o.Size != 1472 || o.SpoolBytes != 256<<20 || o.SpoolMem != 64<<20 || o.RingBytes != 8<<20 {
		t.Fatalf("options %+v, %v", o, err)
	}
	o, err = traceFlags(t, "--src", "a", "--dst", "b")
	if err != nil || o.Size != pipeline.DefaultProbeSize || o.SpoolBytes != pipeline.DefaultSpoolBytes || o.SpoolMem != pipeline.DefaultSpoolMemory || o.RingBytes != 0 {
		t.Fatalf("defaults %+v, %v", o, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--passive", "-c", "5"}, "--count shape probes, and --passive sends none"},
		{[]string{"--passive", "--size", "1000", "-i", "1s"}, "--interval, --size shape probes"},
		{[]string{"--size", "10"}, "--size 10: want 27"},
		{[]string{"--size", "70000"}, "to 65507 bytes"},
		{[]string{"--spool-size", "1MiB"}, "--spool-size 1MiB: want at least 4MiB"},
		{[]string{"--spool-memory", "1MiB"}, "--spool-memory 1MiB: want at least 2MiB"},
		{[]string{"--ring-size", "64KiB"}, "--ring-size 64KiB: want at least 1MiB"},
		{[]string{"--spool-size", "lots"}, `invalid argument "lots" for "--spool-size" flag: "lots": want bytes`},
	} {
		_, err := traceFlags(t, append([]string{"--src", "a", "--dst", "b"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want one line with %q", tc.args, err, tc.want)
		}
	}
	// --passive alone, with its own flags, is fine.
	if _, err := traceFlags(t, "--src", "a", "--dst", "b", "--passive", "--duration", "3s", "--spool-size", "1G"); err != nil {
		t.Errorf("--passive --duration --spool-size: %v", err)
	}
}

// fakeResolver resolves every name to the endpoint of the same name.
type fakeResolver map[string]discover.Endpoint

func (f fakeResolver) Resolve(arg string) (discover.Endpoint, error) {
	if ep, ok := f[arg]; ok {
		return ep, nil
	}
	return discover.Endpoint{}, discover.ErrNoMatch
}

// Two arguments for the same namespace (its name and its IP) are one
// endpoint: refused in one line before any path is looked for.
func TestTraceSameEndpoint(t *testing.T) {
	pod1 := discover.Endpoint{Arg: "pod1", Label: "pod1", NetnsPath: "/run/netns/pod1", Inode: 4026532999}
	o := &traceOptions{Src: "pod1", Dst: "10.244.1.2", Resolver: fakeResolver{"pod1": pod1, "10.244.1.2": pod1}}
	_, err := o.discover(context.Background())
	want := "--src pod1 and --dst 10.244.1.2 are the same endpoint (network namespace pod1): give two different ones"
	if err == nil || err.Error() != want {
		t.Errorf("discover: %v\nwant %s", err, want)
	}
}

func TestVersion(t *testing.T) {
	bi := &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "6ad83a3c1e2f4b5a69788a9b0c1d2e3f40516273"}}}
	if got := toolOf(bi); got != (report.Tool{Version: "v1.4.0", Revision: "6ad83a3c1e2f4b5a69788a9b0c1d2e3f40516273"}) {
		t.Errorf("toolOf = %+v", got)
	}
	if got := toolOf(bi).String(); got != "pathtrace v1.4.0 (revision 6ad83a3c1e2f4b5a69788a9b0c1d2e3f40516273)" {
		t.Errorf("String = %q", got)
	}
	// A go build in a checkout: the pseudo-version already names the revision.
	bi.Main.Version = "v0.0.0-20261130050738-6ad83a3c1e2f+dirty"
	if got := toolOf(bi).String(); got != "pathtrace v0.0.0-20261130050738-6ad83a3c1e2f+dirty" {
		t.Errorf("String = %q", got)
	}
	if got := toolOf(&debug.BuildInfo{}); got.Version != "(devel)" || got.Revision != "" {
		t.Errorf("no build info: %+v", got)
	}

	ios, _, out, errb := iostreams.Test()
	if code := Run(context.Background(), []string{"--version"}, ios); code != 0 || !strings.HasPrefix(out.String(), "pathtrace ") ||
		strings.Count(out.String(), "\n") != 1 || errb.Len() != 0 {
		t.Errorf("--version: exit %d, stdout %q, stderr %q", code, out, errb)
	}
}

// lab down and status find a lab by its prefix: their help offers nothing
// else, though scripts that pass the build flags to every subcommand still
// work.
func TestLabHelp(t *testing.T) {
	for _, sub := range []string{"down", "status"} {
		ios, _, out, _ := iostreams.Test()
		if code := Run(context.Background(), []string{"lab", sub, "--help"}, ios); code != 0 {
			t.Fatalf("lab %s --help: exit %d", sub, code)
		}
		for _, f := range []string{"--subnet", "--pods", "--routed"} {
			if strings.Contains(out.String(), f) {
				t.Errorf("lab %s --help offers %s, which does nothing there:\n%s", sub, f, out)
			}
		}
		if !strings.Contains(out.String(), "--prefix") {
			t.Errorf("lab %s --help lacks --prefix", sub)
		}
	}
	cmd := newLabCmd(iostreams.System())
	for _, c := range cmd.Commands() {
		if c.Name() == "down" && c.Flags().Lookup("subnet") == nil {
			t.Error("lab down no longer accepts --subnet")
		}
	}
	if labName("") != "lab" || labName("t1-") != `lab "t1-"` {
		t.Errorf("labName: %q %q", labName(""), labName("t1-"))
	}
}

// The demo's lab is its own: "demo-" names, apart from 'lab up's default.
func TestDemoPrefix(t *testing.T) {
	ios, _, _, _ := iostreams.Test()
	var got *demoOptions
	cmd := newDemoCmd(ios, func(_ context.Context, o *demoOptions) error { got = o; return nil })
	if err := execute(t, cmd); err != nil {
		t.Fatal(err)
	}
	if got.lab.Prefix != DemoPrefix || DemoPrefix == "" {
		t.Errorf("demo prefix %q, want %q", got.lab.Prefix, DemoPrefix)
	}
}
