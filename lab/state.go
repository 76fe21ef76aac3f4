package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// StateDir holds one state file per lab so Down can undo what Up made even
// after the process that ran Up was killed.
const StateDir = "/run/pathtrace"

// state is written before anything is created and rewritten as pods appear.
type state struct {
	Kind          string   `json:"kind"` // "lab" or "cni"
	Config        Config   `json:"config"`
	Namespaces    []string `json:"namespaces"` // every named namespace Up may create
	NodeInCurrent bool     `json:"node_in_current"`
	NodeInode     uint64   `json:"node_inode,omitempty"` // the calling namespace, with NodeInCurrent
	Bridges       []string `json:"bridges"`
	Pods          []Pod    `json:"pods"`
}

func statePath(prefix string) string {
	return filepath.Join(StateDir, "lab-"+prefix+".json")
}

func readState(prefix string) (*state, error) {
	b, err := os.ReadFile(statePath(prefix))
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("parse %s: %w", statePath(prefix), err)
	}
	return &st, nil
}

// writeState replaces the state file atomically (rename) so a crash never
// leaves a half-written file that Down cannot read.
func writeState(prefix string, st *state) error {
	if err := os.MkdirAll(StateDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", StateDir, err)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lab state: %w", err)
	}
	tmp := statePath(prefix) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, statePath(prefix)); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}

func removeState(prefix string) error {
	if err := os.Remove(statePath(prefix)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove lab state: %w", err)
	}
	return nil
}

// lock serialises Up/Down of one lab across processes.
func lock(prefix string) (func(), error) {
	if err := os.MkdirAll(StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", StateDir, err)
	}
	path := filepath.Join(StateDir, "lab-"+prefix+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
