package report

import "strings"

// Tool is the pathtrace that made the report, for the footer and the JSON
// "pathtrace" object: the module version and the VCS revision where the
// build recorded them ("" when unknown).
type Tool struct {
	Version, Revision string
}

// String is "pathtrace v1.2.0", with the revision when the version does
// not already carry it (a pseudo-version does).
func (t Tool) String() string {
	s := "pathtrace " + t.Version
	if t.Revision != "" && !strings.Contains(t.Version, t.Revision[:min(len(t.Revision), 12)]) {
		s += " (revision " + t.Revision + ")"
	}
	return s
}
