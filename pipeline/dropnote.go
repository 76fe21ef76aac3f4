package pipeline

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/pathtrace/pathtrace/capture/decode"
	"github.com/pathtrace/pathtrace/correlate"
)

// A live run's drops and the probes no point saw go into path.pcapng as
// section comments (Wireshark shows them under Capture File Properties),
// one JSON object each, so `analyze` of the evidence folder shows what the
// kernel said although it has no kernel to ask. A drop carries the dropped
// packet's headers: analyze keys it by them, as the live run did.
const (
	dropNotePrefix = "pathtrace drop: "
	lostNotePrefix = "pathtrace lost probe: "
)

// dropNote is one drop as path.pcapng records it.
type dropNote struct {
	Reason    string `json:"reason"`
	Location  string `json:"location"`
	Netns     string `json:"netns"`
	Interface string `json:"interface,omitempty"`
	Time      int64  `json:"time_ns"`
	Rule      string `json:"rule,omitempty"`
	L3Proto   uint16 `json:"ethertype"`
	Packet    []byte `json:"packet"` // headers from the network header on (base64)
	Inner     int    `json:"inner_offset,omitempty"`
}

// lostNote is a probe sent that no point saw.
type lostNote struct {
	ID  uint16     `json:"id"`
	Seq uint16     `json:"seq"`
	Src netip.Addr `json:"src"`
	Dst netip.Addr `json:"dst"`
}

// dropNotes are the section comments for drops and lost probes.
func dropNotes(drops []dropRecord, lost []lostNote) []string {
	var notes []string
	for i := range drops {
		d := &drops[i]
		b, _ := json.Marshal(dropNote{Reason: d.Reason, Location: d.Location, Netns: d.Netns, Interface: d.Interface,
			Time: d.Time, Rule: d.Rule, L3Proto: d.l3proto, Packet: d.packet, Inner: d.inner})
		notes = append(notes, dropNotePrefix+string(b))
	}
	for _, l := range lost {
		b, _ := json.Marshal(l)
		notes = append(notes, lostNotePrefix+string(b))
	}
	return notes
}

// parseDropNotes reads drops and lost probes back from section comments
// (other comments are skipped); a malformed one is a warning.
func parseDropNotes(comments []string) (drops []dropRecord, lost []lostNote, warnings []string) {
	dec := decode.New()
	for _, c := range comments {
		switch {
		case strings.HasPrefix(c, dropNotePrefix):
			var n dropNote
			if err := json.Unmarshal([]byte(c[len(dropNotePrefix):]), &n); err != nil {
				warnings = append(warnings, fmt.Sprintf("a recorded drop could not be read: %v", err))
				continue
			}
			d := dropRecord{Drop: correlate.Drop{Reason: n.Reason, Location: n.Location, Netns: n.Netns,
				Interface: n.Interface, Time: n.Time, Rule: n.Rule}, l3proto: n.L3Proto, packet: n.Packet, inner: n.Inner}
			if d.key(dec, nil) {
				drops = append(drops, d)
			}
		case strings.HasPrefix(c, lostNotePrefix):
			var n lostNote
			if err := json.Unmarshal([]byte(c[len(lostNotePrefix):]), &n); err != nil || !n.Dst.IsValid() {
				warnings = append(warnings, fmt.Sprintf("a recorded lost probe could not be read: %q", c))
				continue
			}
			lost = append(lost, n)
		}
	}
	return drops, lost, warnings
}

// joinDrops gives the held traces their drops and the verdict its reason.
func joinDrops(r *correlate.Result, traces []correlate.Trace, recs []dropRecord) {
	drops := make([]correlate.Drop, len(recs))
	for i := range recs {
		drops[i] = recs[i].Drop
	}
	correlate.AttachDrops(traces, drops, int64(neighGrace))
	if v := correlate.DropVerdict(traces); v != "" {
		r.Summary.Verdict += "; " + v
	}
}

// setDrops keeps the run's drops and lost probes for path.pcapng.
func (e *Evidence) setDrops(drops []dropRecord, lost []lostNote) {
	if e == nil {
		return
	}
	e.mu.Lock()
	e.ngNotes = dropNotes(drops, lost)
	e.mu.Unlock()
}
