package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/internal/safefile"
)

// StateDir holds one state file per lab so Down can undo what Up made even
// after the process that ran Up was killed.
const StateDir = "/run/pathtrace"

// state is written before anything is created and rewritten as pods appear.
type state struct {
	Kind          string   `json:"kind"` // "lab", "cni" or "nodes"
	Config        Config   `json:"config"`
	Namespaces    []string `json:"namespaces"` // every named namespace Up may create
	NodeInCurrent bool     `json:"node_in_current"`
	NodeInode     uint64   `json:"node_inode,omitempty"` // the calling namespace, with NodeInCurrent
	Bridges       []string `json:"bridges"`
	Pods          []Pod    `json:"pods"`

	// A two-node lab (kind "nodes"): its config, and its nodes with their
	// tunnel processes as they are started.
	NodesConfig *NodesConfig `json:"nodes_config,omitempty"`
	Nodes       []nodeState  `json:"nodes,omitempty"`
}

const kindNodes = "nodes"

func statePath(prefix string) string {
	return filepath.Join(StateDir, "lab-"+prefix+".json")
}

// stateDir opens StateDir, creating it 0700: root's (or the effective
// user's), never through a link, never one others can write.
func stateDir() (*safefile.Dir, error) {
	d, err := safefile.MkdirAll(StateDir, safefile.SystemPolicy())
	if err != nil {
		return nil, fmt.Errorf("lab state folder: %w", err)
	}
	return d, nil
}

func stateName(prefix string) string { return "lab-" + prefix + ".json" }

func readState(prefix string) (*state, error) {
	d, err := safefile.OpenDir(StateDir, safefile.SystemPolicy())
	if err != nil {
		return nil, err
	}
	defer d.Close()
	b, err := d.ReadFile(stateName(prefix))
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("parse %s: %w", statePath(prefix), err)
	}
	return &st, nil
}

// writeState replaces the state file atomically (temporary file, fsync,
// rename) so a crash never leaves a half-written file that Down cannot read.
func writeState(prefix string, st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lab state: %w", err)
	}
	d, err := stateDir()
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.WriteFile(stateName(prefix), b, true); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	return nil
}

func removeState(prefix string) error {
	d, err := safefile.OpenDir(StateDir, safefile.SystemPolicy())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove lab state: %w", err)
	}
	defer d.Close()
	if err := d.Remove(stateName(prefix)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove lab state: %w", err)
	}
	return nil
}

// lock serialises Up/Down of one lab across processes.
func lock(prefix string) (func(), error) {
	d, err := stateDir()
	if err != nil {
		return nil, err
	}
	defer d.Close()
	f, err := d.OpenLock("lab-" + prefix + ".lock")
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}
