package cli

import (
	"runtime/debug"

	"github.com/pathtrace/pathtrace/report"
)

// buildTool is which pathtrace this is, from the build info Go embeds: the
// module version (a release tag from `go install …@v1.2.0`, a pseudo-version
// with "+dirty" from `go build` in a modified checkout, "(devel)" without
// version control) and the VCS revision where the build recorded one.
func buildTool() report.Tool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return report.Tool{Version: "unknown"}
	}
	return toolOf(bi)
}

func toolOf(bi *debug.BuildInfo) report.Tool {
	t := report.Tool{Version: bi.Main.Version}
	if t.Version == "" {
		t.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			t.Revision = s.Value
		}
	}
	return t
}
