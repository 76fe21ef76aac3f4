// Package testenv is what tests need from the machine they run on: root,
// tools, the shared capture corpus and the project's golden captures. A test
// that lacks one skips with the reason on a developer's machine and fails
// under CI=true, where everything must be there.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// CI reports whether the tests run under CI (CI=true): nothing may skip.
func CI() bool { return os.Getenv("CI") == "true" }

// SkipOrFail skips t, or fails it under CI.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// RequireRoot: network namespaces, packet sockets and labs need root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "needs root (network namespaces, packet sockets)")
	}
}

// RequireTools checks the named programs are on PATH.
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			SkipOrFail(t, "%s not installed (.ci/run installs it): %v", tool, err)
		}
	}
}

// Corpus is the shared folder of public capture files, which is not part
// of the repository: PATHTRACE_CAPTURES, else shared/captures beside the
// checkout (where .ci/run looks too); its MANIFEST.tsv must be there.
func Corpus(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("PATHTRACE_CAPTURES")
	if dir == "" {
		dir = filepath.Join(moduleRoot(), "..", "shared", "captures")
		if _, err := os.Stat(dir); err != nil {
			SkipOrFail(t, "no public capture corpus: PATHTRACE_CAPTURES not set and no %s", filepath.Clean(dir))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST.tsv")); err != nil {
		SkipOrFail(t, "public capture corpus: %v (set PATHTRACE_CAPTURES)", err)
	}
	return dir
}

// Captures is the project's golden captures folder (testdata/captures),
// made on a real kernel by testdata/gen/make-captures.sh. They are part of
// the repository: missing ones fail the test everywhere.
func Captures(t testing.TB, scenario ...string) string {
	t.Helper()
	dir := filepath.Join(moduleRoot(), "testdata", "captures")
	dir = filepath.Join(append([]string{dir}, scenario...)...)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("golden captures: %v", err)
	}
	return dir
}

// moduleRoot is the checkout this file is in.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
