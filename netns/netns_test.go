package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/pathtrace/pathtrace/internal/testenv"
)

// threadNamespaces lists the network namespace of every thread.
func threadNamespaces(t *testing.T) map[string]string {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, task := range tasks {
		if l, err := os.Readlink(task + "/ns/net"); err == nil {
			out[filepath.Base(task)] = l
		}
	}
	return out
}

// TestDoEntersAndReturns runs code inside the network namespace of a child
// started with CLONE_NEWNET, and checks that the code ran there, that its
// error comes back, and that afterwards no thread is left in the child's
// namespace.
func TestDoEntersAndReturns(t *testing.T) {
	testenv.RequireRoot(t)
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	target, err := Open(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	self, err := Current()
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	if target.Same(self) {
		t.Fatal("child shares our namespace")
	}
	want, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
	orig, _ := os.Readlink("/proc/thread-self/ns/net")
	sentinel := errors.New("from inside")
	for i := 0; i < 20; i++ {
		var inside string
		err := Do(target, func() error {
			inside, _ = os.Readlink("/proc/thread-self/ns/net")
			return sentinel
		})
		if !errors.Is(err, sentinel) {
			t.Fatalf("Do returned %v, want the function's error", err)
		}
		if inside != want {
			t.Fatalf("function ran in %s, want %s", inside, want)
		}
	}
	for tid, ns := range threadNamespaces(t) {
		if ns != orig {
			t.Errorf("thread %s left in %s (want %s)", tid, ns, orig)
		}
	}
}

func TestOpenMissing(t *testing.T) {
	if _, err := Open("/nonexistent/ns"); err == nil {
		t.Fatal("no error for a missing namespace file")
	}
}
