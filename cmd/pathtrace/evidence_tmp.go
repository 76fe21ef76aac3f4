//go:build !evidence

package main

// TEMPORARY until capture's writers land; removed before commit.

import (
	"errors"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/discover"
	"github.com/pathtrace/pathtrace/report"
)

type evidence struct{}

func newEvidence(string, bool) (*evidence, error)   { return nil, errors.New("evidence writers not built yet") }
func (e *evidence) plan(*discover.Path) error         { return nil }
func (e *evidence) frame(int, capture.RawFrame)       {}
func (e *evidence) finish(report.Document, []capture.PointStats, int64, int64) error { return nil }
