package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/pathtrace/pathtrace/netns"
	"github.com/vishvananda/netlink"
)

// Down removes the lab recorded for cfg.Prefix and any namespace named like
// one of its namespaces that carries its mark, so it also cleans up after a
// process that was killed in the middle of Up.
func Down(cfg Config) error {
	if !prefixRE.MatchString(cfg.Prefix) {
		return fmt.Errorf("lab prefix %q: only letters, digits, '_', '.', '-' allowed", cfg.Prefix)
	}
	unlock, err := lock(cfg.Prefix)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := readState(cfg.Prefix)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	err = down(cfg.Prefix, st)
	if err == nil {
		os.Remove(filepath.Join(StateDir, "lab-"+cfg.Prefix+".lock"))
	}
	return err
}

func down(prefix string, st *state) error {
	var errs []error
	names := map[string]bool{} // name → listed in the state file
	if st != nil {
		for _, n := range st.Namespaces {
			names[n] = true
		}
		if st.NodeInCurrent {
			errs = append(errs, downCurrentNode(st)...)
		}
	}
	// A two-node lab's tunnel processes hold its node namespaces: kill
	// them first, the recorded ones and any other found inside a node.
	if st != nil {
		for _, n := range st.Nodes {
			if err := n.Proc.stop(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	nameRE := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `(node1|nodeA|nodeB|wire|ext|pod[0-9]+)$`)
	errs = append(errs, unhideAll(nameRE)...)
	entries, err := os.ReadDir(RunDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("list %s: %w", RunDir, err))
	}
	for _, e := range entries {
		if nameRE.MatchString(e.Name()) && !names[e.Name()] {
			names[e.Name()] = false
		}
	}
	for name, listed := range names {
		path := filepath.Join(RunDir, name)
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if !isNsfs(path) {
			// The empty placeholder of an interrupted createNamed.
			if listed {
				if err := os.Remove(path); err != nil {
					errs = append(errs, fmt.Errorf("remove %s: %w", path, err))
				}
			}
			continue
		}
		m, err := readMark(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if m != mark(prefix) {
			continue // someone else's namespace of the same name
		}
		if err := killTunnelsIn(path); err != nil {
			errs = append(errs, err)
		}
		if err := removeNamed(name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(ipamDir(prefix)); err != nil {
		errs = append(errs, fmt.Errorf("remove CNI leases: %w", err))
	}
	if len(errs) == 0 {
		errs = append(errs, removeState(prefix))
	}
	return errors.Join(errs...)
}

// downCurrentNode deletes the bridges and host veths made in the calling
// namespace, if this is the namespace the lab was built in.
func downCurrentNode(st *state) []error {
	cur, err := netns.Current()
	if err != nil {
		return []error{err}
	}
	defer cur.Close()
	if cur.Inode != st.NodeInode {
		return nil // that namespace is gone (or elsewhere) and took the links with it
	}
	h, err := handleAt(cur)
	if err != nil {
		return []error{err}
	}
	defer h.Close()
	var errs []error
	var links []string
	for _, p := range st.Pods {
		links = append(links, p.HostVeth)
	}
	links = append(links, st.Bridges...)
	for _, name := range links {
		l, err := h.LinkByName(name)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if !errors.As(err, &nf) {
				errs = append(errs, fmt.Errorf("find %s: %w", name, err))
			}
			continue
		}
		if err := h.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", name, err))
		}
	}
	return errs
}
