package cluster

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultImage(t *testing.T) {
	bin := []byte("binary")
	for version, want := range map[string]string{
		"v1.2.0":                             Repository + ":v1.2.0",
		"v0.0.0-20261130054858-6c65c23bbe17": Repository + ":v0.0.0-20261130054858-6c65c23bbe17",
		"(devel)":                            Repository + ":devel-",
		"v0.0.0-20261130054858-6c65c23bbe17+dirty": Repository + ":v0.0.0-20261130054858-6c65c23bbe17-dirty-",
	} {
		got := DefaultImage(version, bin)
		if strings.HasSuffix(want, "-") {
			if !strings.HasPrefix(got, want) || len(got) != len(want)+12 {
				t.Errorf("DefaultImage(%q) = %q, want %s + 12 hex digits", version, got, want)
			}
			continue
		}
		if got != want {
			t.Errorf("DefaultImage(%q) = %q, want %q", version, got, want)
		}
	}
	if DefaultImage("(devel)", []byte("a")) == DefaultImage("(devel)", []byte("b")) {
		t.Error("two development builds share a tag")
	}
}

// TestStatic: only a binary without a dynamic loader goes into the
// scratch image.
func TestStatic(t *testing.T) {
	if err := static([]byte("#!/bin/sh\n")); err == nil {
		t.Error("a script passed")
	}
	dyn, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skip("no /bin/true")
	}
	if err := static(dyn); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("/bin/true (dynamic): %v", err)
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go to build a static binary")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	os.WriteFile(src, []byte("package main\nfunc main() {}\n"), 0o644)
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "m"), src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "m"))
	if err := static(b); err != nil {
		t.Errorf("a CGO_ENABLED=0 build: %v", err)
	}
}
