package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pathtrace/pathtrace/internal/testenv"
)

// TestEvidenceReanalysed: a live run with --out, then `analyze` of its
// path.pcapng, gives back the same traces, hop_latency, anomalies and
// summary — the pcapng carries the path order, each point's capture window
// (statistics block) and direction flags, and frames are numbered per point
// as in the per-point .cap files.
func TestEvidenceReanalysed(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := e2eConfig(t)
	l := e2eUp(t, cfg)
	dir := filepath.Join(t.TempDir(), "case")
	live := runTrace(t, context.Background(), "--src", l.Pods[0].Name, "--dst", l.Pods[1].IP.String(),
		"-c", "3", "-i", "50ms", "--timeout", "300ms", "-o", dir, "-f", "json")
	if live.Code != 0 {
		t.Fatalf("live run: exit %d\n%s", live.Code, live.describe())
	}
	// report.html draws the run: a lane per point, a line per trace.
	page, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatalf("report.html: %v", err)
	}
	lanes, lines := strings.Count(string(page), `<line class="lane"`), strings.Count(string(page), `<g class="tr `)
	if lanes != len(live.Doc.Points) || lines != len(live.Doc.Traces) {
		t.Errorf("report.html: %d lanes and %d trace lines, want %d points and %d traces",
			lanes, lines, len(live.Doc.Points), len(live.Doc.Traces))
	}
	code, out, errb := runCLI(t, "analyze", "-f", "json", filepath.Join(dir, "path.pcapng"))
	if code != 0 {
		t.Fatalf("analyze path.pcapng: exit %d: %s", code, errb)
	}
	var a, b map[string]json.RawMessage
	if err := json.Unmarshal([]byte(live.Stdout), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"traces", "hop_latency", "anomalies", "summary"} {
		if !bytes.Equal(a[k], b[k]) {
			t.Errorf("%s differs between the live run and the analysis of its pcapng:\nlive:     %.600s\nanalysis: %.600s", k, a[k], b[k])
		}
	}
	// The evidence folder itself analyses as its pcapng.
	code, dirOut, errb := runCLI(t, "analyze", "-f", "json", dir)
	if code != 0 {
		t.Fatalf("analyze the evidence folder: exit %d: %s", code, errb)
	}
	var d map[string]json.RawMessage
	if err := json.Unmarshal([]byte(dirOut), &d); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a["traces"], d["traces"]) {
		t.Errorf("analyze %s gives other traces than the live run", dir)
	}
	// The per-point .cap files are the seed's files: analysing them in path
	// order gives the same traces too.
	var files []string
	for _, p := range live.Doc.pointNames() {
		files = append(files, filepath.Join(dir, p+".cap"))
	}
	code, out, errb = runCLI(t, append([]string{"analyze", "-f", "json"}, files...)...)
	if code != 0 {
		t.Fatalf("analyze the .cap files: exit %d: %s", code, errb)
	}
	var c map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatal(err)
	}
	var lt, ct []map[string]any
	json.Unmarshal(a["traces"], &lt)
	json.Unmarshal(c["traces"], &ct)
	if len(lt) != len(ct) {
		t.Fatalf("%d traces live, %d from the .cap files", len(lt), len(ct))
	}
	for i := range lt {
		// a pcap records no direction: everything else must match
		for _, h := range lt[i]["hops"].([]any) {
			delete(h.(map[string]any), "dir")
		}
		lh, _ := json.Marshal(lt[i]["hops"])
		ch, _ := json.Marshal(ct[i]["hops"])
		if !bytes.Equal(lh, ch) {
			t.Errorf("trace %d hops differ:\nlive: %s\n.cap: %s", i+1, lh, ch)
		}
	}
}
