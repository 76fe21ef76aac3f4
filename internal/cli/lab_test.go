package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pathtrace/pathtrace/internal/iostreams"
	"github.com/pathtrace/pathtrace/internal/testenv"
	"github.com/pathtrace/pathtrace/lab"
)

func TestLabNodesFlags(t *testing.T) {
	for _, args := range [][]string{
		{"lab", "up", "--nodes", "3"},
		{"lab", "up", "--backend", "ipip"},
		{"lab", "up", "--nodes", "2", "--backend", "wireguard"},
		{"lab", "up", "--nodes", "2", "--subnet", "10.9.1.0/24"},
		{"lab", "up", "--nodes", "2", "--routed"},
	} {
		ios, _, _, errb := iostreams.Test()
		if got := Run(context.Background(), args, ios); got != exitUsage || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q", args, got, errb)
		}
	}
}

// lab up --nodes 2, status --json and down through the command line: both
// nodes shown, nothing left.
func TestLabNodesCommands(t *testing.T) {
	testenv.RequireRoot(t)
	var b [3]byte
	rand.Read(b[:])
	prefix := "ptt" + hex.EncodeToString(b[:]) + "-"
	t.Cleanup(func() { lab.Down(lab.Config{Prefix: prefix}) })
	run := func(want int, args ...string) string {
		t.Helper()
		ios, _, out, errb := iostreams.Test()
		if got := Run(context.Background(), append(args, "--prefix", prefix), ios); got != want {
			t.Fatalf("%q: exit %d, want %d; stderr %q", args, got, want, errb)
		}
		return out.String()
	}
	up := run(exitOK, "lab", "up", "--nodes", "2", "--backend", "vxlan")
	if !strings.Contains(up, "2 nodes, backend vxlan") || !strings.Contains(up, prefix+"nodeB") {
		t.Errorf("lab up said:\n%s", up)
	}
	var l lab.Lab
	if err := json.Unmarshal([]byte(run(exitOK, "lab", "status", "--json")), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Nodes) != 2 || l.Backend != lab.BackendVXLAN || l.Nodes[1].Tunnel != "flannel.1" || len(l.Pods) != 2 || l.Pods[1].Node != prefix+"nodeB" {
		t.Errorf("lab status --json: %+v", l)
	}
	run(exitOK, "lab", "down")
	run(exitFindings, "lab", "status")
	run(exitOK, "lab", "down")
}
