package cluster_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// leftovers lists what of cluster `prefix` is still on the machine, looked
// up independently of cluster.sh: network namespaces, state directories,
// mounts, cgroup directories, root-namespace interfaces and processes.
func leftovers(prefix string) []string {
	var out []string
	trees := []string{"/run/" + prefix, "/var/lib/" + prefix}
	inTree := func(p string) bool {
		for _, t := range trees {
			if p == t || strings.HasPrefix(p, t+"/") {
				return true
			}
		}
		return false
	}
	netns, _ := filepath.Glob("/run/netns/" + prefix + "-*")
	for _, n := range netns {
		out = append(out, "network namespace "+n)
	}
	for _, t := range trees {
		if _, err := os.Stat(t); err == nil {
			out = append(out, "directory "+t)
		}
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(mi), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && (inTree(f[4]) || strings.HasPrefix(f[4], "/run/netns/"+prefix+"-")) {
				out = append(out, "mount "+f[4])
			}
		}
	}
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/" + prefix + "-node*")
	for _, c := range cgroups {
		out = append(out, "cgroup "+c)
	}
	if ifs, err := net.Interfaces(); err == nil {
		for _, i := range ifs {
			if strings.HasPrefix(i.Name, prefix) {
				out = append(out, "interface "+i.Name)
			}
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmd, err := os.ReadFile(p + "/cmdline")
		if err != nil || len(cmd) == 0 {
			continue
		}
		args := strings.Fields(string(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '})))
		hit := false
		for _, a := range args {
			if inTree(a) || strings.Contains(a, "="+trees[0]+"/") || strings.Contains(a, "="+trees[1]+"/") ||
				a == prefix+"-cp" || strings.HasPrefix(a, "--net=/run/netns/"+prefix+"-") {
				hit = true
			}
		}
		cg, _ := os.ReadFile(p + "/cgroup")
		if hit || bytes.Contains(cg, []byte(":/"+prefix+"-node")) {
			out = append(out, fmt.Sprintf("process %s: %s", filepath.Base(p), strings.Join(args, " ")))
		}
	}
	return out
}
