package pipeline

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/pathtrace/pathtrace/capture/pcapfile"
	"github.com/pathtrace/pathtrace/correlate"
)

// Putting agents' captures back together (`analyze nodeA/ nodeB/`): each
// node's path.pcapng records its run (AgentRecord). The source's node's
// points come first in their order, then the destination's node's
// reversed (each recorded from its endpoint outward); names both nodes
// have take the node's name in front, as a live run across nodes names
// them; each file is one clock (Specs: Clock is the file), so the offset
// between the nodes is estimated. Where the records do not tell which node
// is which, the traffic orders the points, and a warning says why.

// agentIn is the agent record of a file pathtrace wrote, if any; one that
// cannot be read is a warning, and the file an ordinary evidence file.
func (b *Bundle) agentIn(path string, sections []pcapfile.SectionInfo) *AgentRecord {
	for _, s := range sections {
		if s.UserAppl != "pathtrace" {
			continue
		}
		rec, err := agentRecordIn(s.Comments)
		if err != nil {
			b.Warnings = append(b.Warnings, fmt.Sprintf("%s: %v", path, err))
			return nil
		}
		if rec != nil {
			return rec
		}
	}
	return nil
}

// agentFiles are the files with an agent record, in input order.
func (b *Bundle) agentFiles() []int {
	var fs []int
	for i, f := range b.files {
		if f.agent != nil {
			fs = append(fs, i)
		}
	}
	return fs
}

// nodeNames gives points of agents' files whose names another point has
// too (cni0, eth0 on both nodes) their node's name in front.
func (b *Bundle) nodeNames() {
	count := map[string]int{}
	for _, p := range b.Points {
		count[p.Name]++
	}
	for i := range b.Points {
		p := &b.Points[i]
		if rec := b.files[p.file].agent; rec != nil && rec.Node != "" && count[p.Name] > 1 {
			p.Name = rec.Node + "-" + p.Name
		}
	}
}

// agentOrder places the points of agents' files (each a group of its own,
// as every file pathtrace wrote) where the first of them was: the
// source's node's, then the destination's reversed; or, when the records
// do not pair up, as one group the traffic orders.
func (b *Bundle) agentOrder(groups [][]int, names []string) ([][]int, []string) {
	files := b.agentFiles()
	if len(files) < 2 {
		return groups, names
	}
	seq, err := b.agentSequence(files)
	var paths []string
	for _, f := range files {
		paths = append(paths, b.files[f].path)
	}
	if err != nil {
		b.Warnings = append(b.Warnings, fmt.Sprintf("the agents' records in %s do not tell the nodes apart (%v): the traffic orders their points", strings.Join(paths, ", "), err))
	}
	var og [][]int
	var on []string
	placed := false
	for gi, g := range groups {
		if len(g) != 1 || b.files[b.Points[g[0]].file].agent == nil {
			og, on = append(og, g), append(on, names[gi])
			continue
		}
		if placed {
			continue
		}
		placed = true
		if err != nil {
			var all []int
			for _, f := range files {
				all = append(all, b.pointsOf(f)...)
			}
			og, on = append(og, all), append(on, strings.Join(paths, ", "))
			continue
		}
		for _, p := range seq {
			og, on = append(og, []int{p}), append(on, "")
		}
	}
	return og, on
}

// agentSequence is the points of two agents' files of one run in path
// order, with a warning saying how they were put together.
func (b *Bundle) agentSequence(files []int) ([]int, error) {
	if len(files) != 2 {
		return nil, fmt.Errorf("%d nodes' captures; two of one run are put together", len(files))
	}
	src, dst := files[0], files[1]
	rs, rd := b.files[src].agent, b.files[dst].agent
	if rs.Local == SideDst {
		src, dst, rs, rd = dst, src, rd, rs
	}
	switch {
	case rs.Local != SideSrc || rd.Local != SideDst:
		return nil, fmt.Errorf("both were captured on the %s's node", rs.Local)
	case rs.Src != rd.Src || rs.Dst != rd.Dst:
		return nil, fmt.Errorf("%s recorded %s → %s, %s %s → %s: not one run", rs.Node, rs.Src, rs.Dst, rd.Node, rd.Src, rd.Dst)
	}
	seq := b.pointsOf(src)
	back := b.pointsOf(dst)
	slices.Reverse(back)
	first, last := b.Points[seq[0]].Name, b.Points[seq[len(seq)-1]].Name
	b.Warnings = append(b.Warnings, fmt.Sprintf("nodes put together as their captures record them: %s (source %s: %s … %s), then %s (destination %s: %s … %s, reversed); each node's points on its own clock",
		rs.Node, rs.SrcLabel, first, last, rd.Node, rd.DstLabel, b.Points[back[0]].Name, b.Points[back[len(back)-1]].Name))
	if t, u := rs.Tunnel, rd.Tunnel; t != nil && u != nil && t.Remote.IsValid() && u.Local.IsValid() && t.Remote != u.Local {
		b.Warnings = append(b.Warnings, fmt.Sprintf("%s sends to %s, but %s's own end is %s: are these two nodes of one path?", rs.Node, t.Remote, rd.Node, u.Local))
	}
	b.agentPaired = true
	return append(seq, back...), nil
}

// pointsOf is file f's points in its interface order (its recorded path
// order).
func (b *Bundle) pointsOf(f int) []int {
	var ps []int
	for i, p := range b.Points {
		if p.file == f {
			ps = append(ps, i)
		}
	}
	slices.SortFunc(ps, func(x, y int) int { return b.Points[x].iface - b.Points[y].iface })
	return ps
}

// agentNode is the node of a file's points where the bundle holds agents'
// captures of more than one node ("": one node needs no name).
func (b *Bundle) agentNode(f int) string {
	rec := b.files[f].agent
	if rec == nil {
		return ""
	}
	for _, o := range b.files {
		if o.agent != nil && o.agent.Node != rec.Node {
			return rec.Node
		}
	}
	return ""
}

// agentConfig gives the correlator what agents recorded: the endpoint
// each captured as its own owns its address, at the file's first point;
// and when the files are the captures of one run (one node's, or two
// put together as recorded), the points are one discovered path, as in a
// live run (correlate.Config.OnePath).
func (b *Bundle) agentConfig(cfg *correlate.Config) {
	files := b.agentFiles()
	for _, f := range files {
		rec := b.files[f].agent
		ps := b.pointsOf(f)
		if !rec.LocalIP().IsValid() || len(ps) == 0 {
			continue
		}
		if cfg.IPOwners == nil {
			cfg.IPOwners = map[netip.Addr]correlate.Owner{}
		}
		cfg.IPOwners[rec.LocalIP()] = correlate.Owner{Point: ps[0], Label: rec.LocalLabel()}
	}
	cfg.OnePath = len(files) == len(b.files) && (len(files) == 1 || b.agentPaired)
}
