package kdrop

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/pathtrace/pathtrace/capture/internal/nstest"
)

// TestMain doubles as a child that only calls Open (PTD_KDROP_OPEN=1) and
// prints the error, so a test can run it with fewer capabilities.
func TestMain(m *testing.M) {
	if os.Getenv("PTD_KDROP_OPEN") == "1" {
		w, err := Open(Match{EchoID: 1, HasEchoID: true})
		var ue *UnavailableError
		switch {
		case errors.As(err, &ue):
			fmt.Println("unavailable:", ue.Error())
		case err != nil:
			fmt.Println("error:", err)
		default:
			w.Close()
			fmt.Println("ok")
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Without CAP_BPF/CAP_PERFMON/CAP_SYS_ADMIN, Open says in one line what is
// missing, as a typed error the caller prints as a note.
func TestOpenWithoutCapabilities(t *testing.T) {
	nstest.RequireRoot(t)
	cmd := exec.Command("setpriv", "--bounding-set", "-bpf,-perfmon,-sys_admin", "--", os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PTD_KDROP_OPEN=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	want := "unavailable: kernel drop reasons unavailable: missing CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)\n"
	if string(out) != want {
		t.Errorf("child said %q, want %q", out, want)
	}
	if strings.Count(string(out), "\n") != 1 {
		t.Errorf("note is not one line: %q", out)
	}
}
