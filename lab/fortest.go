package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

// TB is what UpNodesT needs of a test (testing.TB has it).
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
}

// UpNodesT builds a two-node lab for a test under a prefix of its own (tag
// and 6 random hex digits, so parallel tests and other engineers' labs do
// not meet) and removes it when the test ends, also on failure.
func UpNodesT(t TB, tag string, cfg NodesConfig) *Lab {
	t.Helper()
	var b [3]byte
	rand.Read(b[:])
	cfg.Prefix = tag + hex.EncodeToString(b[:]) + "-"
	t.Cleanup(func() {
		if err := Down(Config{Prefix: cfg.Prefix}); err != nil {
			t.Errorf("lab down %q: %v", cfg.Prefix, err)
		}
	})
	l, err := UpNodes(context.Background(), cfg)
	if err != nil {
		t.Fatalf("lab up %q: %v", cfg.Prefix, err)
	}
	return l
}

// HideT hides the named namespaces for the rest of a test (see Hide) and
// puts them back when it ends, before the lab's own cleanup removes them.
func HideT(t TB, names ...string) {
	t.Helper()
	for _, name := range names {
		unhide, err := Hide(name)
		if err != nil {
			t.Fatalf("%v", err)
		}
		t.Cleanup(func() {
			if err := unhide(); err != nil {
				t.Errorf("%v", err)
			}
		})
	}
}
