package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Exit statuses by cause, documented in the README.
const (
	exitOK          = 0 // analysed; every frame complete, no warning-level anomaly
	exitFindings    = 1 // analysed; loss or warning-level anomalies found
	exitUsage       = 2 // usage or input error: bad flags, unreadable captures, unknown endpoints, missing privileges
	exitInterrupted = 3 // interrupted; the report covers what was captured or read
	exitOutput      = 4 // the report or the evidence could not be written
)

// exitError carries an exit status through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

func usageError(err error) error  { return &exitError{exitUsage, err} }
func outputError(err error) error { return &exitError{exitOutput, err} }

// exitStatus turns a command's error into its status and writes the error,
// if any, to stderr as one line. An error without an exitError is a usage
// error (cobra's own: unknown flags, bad arguments).
func exitStatus(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	code := exitUsage
	var ee *exitError
	if errors.As(err, &ee) {
		code, err = ee.code, ee.err
	}
	if err != nil {
		// One line, always: joined errors (cleanups) become "; ".
		fmt.Fprintf(stderr, "pathtrace: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return code
}

// findings is the status of a run that produced a report: interrupted,
// problems found, or clean.
func findings(interrupted, clean bool) error {
	switch {
	case interrupted:
		return &exitError{code: exitInterrupted}
	case !clean:
		return &exitError{code: exitFindings}
	}
	return nil
}
