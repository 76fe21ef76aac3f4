package privs

import (
	"fmt"
	"strings"
)

// MissingError is a command refused for capabilities it lacks. Error() is
// one line naming each missing capability and the step it is for.
type MissingError struct {
	Command string
	Missing []Cap
	For     []Step // For[i] needs Missing[i]
	// Permitted lists the missing ones the process may raise but has not
	// made effective (file capabilities set without "+ep").
	Permitted []Cap
}

func (e *MissingError) Error() string {
	var parts []string
	for i, c := range e.Missing {
		parts = append(parts, fmt.Sprintf("%s (%s)", c, e.For[i]))
	}
	s := fmt.Sprintf("%s needs %s, which this process does not have", e.Command, strings.Join(parts, ", "))
	if len(e.Permitted) > 0 {
		s += fmt.Sprintf(" (%s permitted but not effective: set the file capabilities with +ep)", Of(e.Permitted...))
	}
	return s + `: run it as root (sudo), or grant them (README: "Running without root")`
}

// Require fails with a MissingError unless this process holds every
// capability the steps of command need. It changes nothing.
func Require(command string, steps ...Step) error {
	eff, perm, err := Current()
	if err != nil {
		return err
	}
	return require(command, eff, perm, steps)
}

func require(command string, eff, perm Set, steps []Step) error {
	e := &MissingError{Command: command}
	var seen Set
	for _, st := range steps {
		for _, c := range st.Caps() {
			if eff.Has(c) || seen.Has(c) {
				continue
			}
			seen |= Of(c)
			e.Missing = append(e.Missing, c)
			e.For = append(e.For, st)
			if perm.Has(c) {
				e.Permitted = append(e.Permitted, c)
			}
		}
	}
	if len(e.Missing) == 0 {
		return nil
	}
	return e
}
