package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/pathtrace/pathtrace/internal/iostreams"
)

// clusterRun parses args as the tracer does and runs the start of a trace
// that needs neither root nor a cluster: the checks before either.
func clusterRun(t *testing.T, args ...string) error {
	t.Helper()
	ios, _, _, _ := iostreams.Test()
	o := &traceOptions{IO: ios}
	cmd := &cobra.Command{Use: "pathtrace", RunE: func(cmd *cobra.Command, _ []string) error {
		o.noteProbeFlags(cmd)
		if o.cl.Cluster {
			return o.runCluster(context.Background())
		}
		return o.clusterFlagsAlone()
	}}
	o.addFlags(cmd)
	return execute(t, cmd, args...)
}

// Cluster mode's own flags are refused without --cluster, and --cluster
// refuses what its agents do not do, each in one line, before any API
// request.
func TestClusterFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--image", "x:1"}, "--image is for --cluster's agent pods: add --cluster, or drop it"},
		{[]string{"--agent-namespace", "ops"}, "--agent-namespace is for --cluster's agent pods"},
		{[]string{"--agent-privileged"}, "--agent-privileged is for --cluster's agent pods"},
		{[]string{"--cluster", "--passive"}, "--passive does not go with --cluster"},
		{[]string{"--cluster", "--tcp-port", "80"}, "--tcp-port does not go with --cluster"},
	} {
		err := clusterRun(t, append([]string{"--src", "a", "--dst", "b"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want one line with %q", tc.args, err, tc.want)
		}
	}
	err := clusterRun(t, "--cluster", "--src", "shop/web-1", "--dst", "svc/db")
	if err == nil || !strings.Contains(err.Error(), "--cluster traces between pods") {
		t.Errorf("--cluster --dst svc/db: %v", err)
	}
	if err := clusterRun(t, "--src", "a", "--dst", "b"); err != nil {
		t.Errorf("no cluster flag: %v", err)
	}
}
