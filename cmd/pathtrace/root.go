package main

import (
	"io"

	"github.com/spf13/cobra"
)

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:           "pathtrace",
		Short:         "Show where a packet goes, and how long each step takes, between two pods on a node",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.AddCommand(newAnalyzeCmd(stdout, stderr), newLabCmd(stdout), newDemoCmd(stdout, stderr))
	return cmd
}
