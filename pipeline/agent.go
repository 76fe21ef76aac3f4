package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/pathtrace/pathtrace/discover"
	"github.com/pathtrace/pathtrace/report"
)

// Agent mode: `pathtrace capture` on each node a path crosses captures that
// node's own part (discover.NodeSide: from the endpoint on the node out to
// its underlay device), one node sending the probes, every node listening.
// Each node's path.pcapng records who wrote it and for which run
// (AgentRecord, a section comment), so `pathtrace analyze nodeA/ nodeB/`
// puts the nodes back together (agent_join.go).

// Side is which endpoint of a run is on the capturing node.
type Side uint8

const (
	SideNone Side = iota
	SideSrc       // the source: the node that sends the probes
	SideDst       // the destination
)

var sideNames = []string{"", "src", "dst"}

func (s Side) String() string {
	if int(s) < len(sideNames) {
		return sideNames[s]
	}
	return fmt.Sprintf("side(%d)", uint8(s))
}

// Other is the other end: src for dst, dst for src.
func (s Side) Other() Side {
	switch s {
	case SideSrc:
		return SideDst
	case SideDst:
		return SideSrc
	}
	return SideNone
}

func (s Side) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s *Side) UnmarshalText(b []byte) error {
	for i, n := range sideNames {
		if i > 0 && n == string(b) {
			*s = Side(i)
			return nil
		}
	}
	return fmt.Errorf("side %q: want src or dst", b)
}

// agentNotePrefix marks the section comment that carries an AgentRecord
// (one JSON object, as the drop notes are).
const agentNotePrefix = "pathtrace agent: "

// AgentRecordVersion is AgentRecord's Version.
const AgentRecordVersion = 1

// AgentRecord is what an agent's capture records about itself in its
// path.pcapng: the host and node it ran on, the run it belongs to (the
// source and destination, the probes' echo id where this node sent them),
// which endpoint is on this node, and its points in path order (from that
// endpoint out to the underlay device).
type AgentRecord struct {
	Version  int        `json:"version"`
	Host     string     `json:"host"`           // the machine's hostname
	Node     string     `json:"node,omitempty"` // the node's name (Kubernetes, or the namespace's)
	Local    Side       `json:"local"`
	Src      netip.Addr `json:"src"`
	Dst      netip.Addr `json:"dst"`
	SrcLabel string     `json:"src_label,omitempty"`
	DstLabel string     `json:"dst_label,omitempty"`
	EchoID   uint16     `json:"echo_id,omitempty"` // the probes' ICMP echo id, when this node sent them
	Probes   int        `json:"probes,omitempty"`
	Points   []string   `json:"points"`
	// Tunnel is how this node reaches the other (its underlay point's).
	Tunnel *discover.Tunnel `json:"tunnel,omitempty"`
}

// NewAgentRecord describes the capture of path, a discover.NodeSide path
// from the endpoint on this node (local) out to the underlay. node is the
// node's name where the caller knows it (Kubernetes); otherwise the name
// discovery gave the node's namespace, unless that names nothing (root,
// a PID), and then the hostname.
func NewAgentRecord(path *discover.Path, local Side, host, node string) AgentRecord {
	r := AgentRecord{Version: AgentRecordVersion, Host: host, Node: node, Local: local}
	here, there := path.Src, path.Dst
	if local == SideDst {
		here, there = there, here
	}
	r.Src, r.Dst, r.SrcLabel, r.DstLabel = here.IP, there.IP, here.Label, there.Label
	for _, p := range path.Points {
		r.Points = append(r.Points, p.Name)
	}
	if n := len(path.Points); n > 0 {
		last := path.Points[n-1]
		r.Tunnel = last.Tunnel
		if r.Node == "" && !genericNode(last.Node) {
			r.Node = last.Node
		}
	}
	if r.Node == "" {
		r.Node = host
	}
	return r
}

// genericNode: a namespace label that names no node.
func genericNode(label string) bool {
	return label == "" || label == "root" || label == "host" || strings.HasPrefix(label, "pid ")
}

// LocalLabel is the name of the endpoint on the recording node.
func (r AgentRecord) LocalLabel() string {
	if r.Local == SideDst {
		return r.DstLabel
	}
	return r.SrcLabel
}

// LocalIP is the address of the endpoint on the recording node.
func (r AgentRecord) LocalIP() netip.Addr {
	if r.Local == SideDst {
		return r.Dst
	}
	return r.Src
}

// note is the record as a section comment.
func (r AgentRecord) note() string {
	b, _ := json.Marshal(r)
	return agentNotePrefix + string(b)
}

// agentRecordIn reads the record among a section's comments: nil when
// there is none, an error when it cannot be read.
func agentRecordIn(comments []string) (*AgentRecord, error) {
	for _, c := range comments {
		if !strings.HasPrefix(c, agentNotePrefix) {
			continue
		}
		var r AgentRecord
		if err := json.Unmarshal([]byte(c[len(agentNotePrefix):]), &r); err != nil {
			return nil, fmt.Errorf("the agent record could not be read: %w", err)
		}
		if r.Local == SideNone || len(r.Points) == 0 {
			return nil, fmt.Errorf("the agent record names no local endpoint or points: %q", c)
		}
		return &r, nil
	}
	return nil, nil
}

// AgentOptions describe one agent capture: a live trace of this node's
// part (TraceOptions.Path from discover.NodeSide, Passive unless this node
// sends the probes), recorded for analyze.
type AgentOptions struct {
	TraceOptions
	Local      Side   // which endpoint of the run is on this node
	Host, Node string // see NewAgentRecord
	// Stream, if set, receives the capture as one pcapng while it runs
	// (agent_stream.go): its header once every point is armed, then the
	// frames in stamp order, a lag behind; the statistics at the end.
	Stream io.Writer
}

// Capture runs the agent's capture. The evidence (TraceOptions.Evidence)
// gets the record in its path.pcapng; the caller finishes it as after
// Trace. A stream that could not be written stops the capture: the error
// says so, after the document.
func Capture(ctx context.Context, o AgentOptions) (report.Document, AgentRecord, error) {
	rec := NewAgentRecord(o.Path, o.Local, o.Host, o.Node)
	if !o.Passive {
		rec.Probes = o.Count
	}
	var st *stream
	armed := o.Armed
	if o.Stream != nil {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		var err error
		if st, err = newStream(o.Stream, o.Path, o.SpoolBytes, cancel); err != nil {
			return report.Document{}, rec, err
		}
		defer st.stop()
		o.Frame = st.frame
	}
	o.Armed = func(echoID uint16) {
		rec.EchoID = echoID
		if st != nil {
			st.start(rec.note())
		}
		if armed != nil {
			armed(echoID)
		}
	}
	doc, err := Trace(ctx, o.TraceOptions)
	if err != nil {
		return doc, rec, err
	}
	if o.Evidence != nil {
		o.Evidence.mu.Lock()
		o.Evidence.ngHead = []string{rec.note()}
		o.Evidence.mu.Unlock()
	}
	if st != nil {
		if err := st.finish(doc.Result); err != nil {
			return doc, rec, err
		}
	}
	return doc, rec, nil
}
