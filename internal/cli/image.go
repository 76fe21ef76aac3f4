package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/pathtrace/pathtrace/cluster"
	"github.com/pathtrace/pathtrace/internal/iostreams"
)

type imageOptions struct {
	IO  *iostreams.IOStreams
	Out string
	Ref string
}

// newImageCmd is `pathtrace image`: the agent image of this very binary as
// a docker-archive, for clusters without a registry.
func newImageCmd(ios *iostreams.IOStreams) *cobra.Command {
	o := &imageOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "image --out FILE.tar",
		Short: "Write the agent image of --cluster (this binary, FROM scratch) as a docker-archive",
		Long: `Write the image --cluster starts its agent pods from, as a docker-archive
(the format of 'docker save'): a FROM-scratch image holding this static
binary as /pathtrace and an empty /tmp, tagged with the image name --cluster
uses by default (` + cluster.Repository + `:VERSION), so a cluster without a
registry runs its agents once the archive is imported on every node.`,
		Example: `  pathtrace image --out pathtrace.tar
  # containerd (kubeadm, k3s: k3s ctr ...), on every node
  ctr -n k8s.io images import pathtrace.tar
  # kind
  kind load image-archive pathtrace.tar
  # docker, then push to your registry and give --image
  docker load -i pathtrace.tar`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run() },
	}
	cmd.Flags().StringVarP(&o.Out, "out", "o", "", "the archive to write ('-': stdout)")
	cmd.Flags().StringVar(&o.Ref, "ref", "", "the image's name (default: the one --cluster uses, "+cluster.Repository+":VERSION)")
	return cmd
}

func (o *imageOptions) run() error {
	if o.Out == "" {
		return usageError(errors.New("give --out FILE.tar (or --out - for stdout)"))
	}
	bin, err := cluster.Binary()
	if err != nil {
		return usageError(err)
	}
	version := buildTool().Version
	ref := o.Ref
	if ref == "" {
		ref = cluster.DefaultImage(version, bin)
	}
	if o.Out == "-" {
		if _, err := cluster.WriteImage(o.IO.Out, ref, version, bin); err != nil {
			return outputError(err)
		}
		return nil
	}
	// Written beside the target, then renamed: a failed write leaves no
	// half archive under the name.
	tmp, err := os.CreateTemp(filepath.Dir(o.Out), ".pathtrace-image-*")
	if err != nil {
		return outputError(fmt.Errorf("write %s: %w", o.Out, err))
	}
	defer os.Remove(tmp.Name())
	d, err := cluster.WriteImage(tmp, ref, version, bin)
	if err == nil {
		err = tmp.Close()
	} else {
		tmp.Close()
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), o.Out)
	}
	if err != nil {
		return outputError(fmt.Errorf("write %s: %w", o.Out, err))
	}
	fmt.Fprintf(o.IO.ErrOut, "wrote %s: image %s (%s)\n", o.Out, ref, d.Config)
	return nil
}
