package k8s

import (
	"fmt"

	"github.com/pathtrace/pathtrace/discover"
)

// matchError is a one-line explanation that still answers errors.Is with
// discover.ErrNoMatch or ErrAmbiguous, without their generic text.
type matchError struct {
	msg  string
	kind error
}

func (e *matchError) Error() string { return e.msg }
func (e *matchError) Unwrap() error { return e.kind }

func noMatch(format string, args ...any) error {
	return &matchError{fmt.Sprintf(format, args...), discover.ErrNoMatch}
}

func ambiguous(format string, args ...any) error {
	return &matchError{fmt.Sprintf(format, args...), discover.ErrAmbiguous}
}
