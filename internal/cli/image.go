package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/pathtrace/pathtrace/cluster"
	"github.com/pathtrace/pathtrace/internal/iostreams"
	"github.com/pathtrace/pathtrace/internal/safefile"
)

type imageOptions struct {
	IO        *iostreams.IOStreams
	Out       string
	Ref       string
	Force     bool
	SharedOut bool
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
	cmd.Flags().BoolVar(&o.Force, "force", false, "replace an existing archive")
	cmd.Flags().BoolVar(&o.SharedOut, "allow-shared-out", false, "write into a folder others can write or another user owns")
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
	// As evidence is written (safefile): no link followed, a folder others
	// can write refused, the archive named only once complete (a failed
	// write leaves nothing), an existing one replaced only with --force.
	dir, err := safefile.MkdirAll(filepath.Dir(o.Out), safefile.UserPolicy(o.SharedOut, "--allow-shared-out"))
	if err != nil {
		return outputError(fmt.Errorf("write %s: %w", o.Out, err))
	}
	defer dir.Close()
	f, err := dir.Create(filepath.Base(o.Out))
	if err != nil {
		return outputError(fmt.Errorf("write %s: %w", o.Out, err))
	}
	d, err := cluster.WriteImage(f, ref, version, bin)
	if err != nil {
		f.Close()
		return outputError(fmt.Errorf("write %s: %w", o.Out, err))
	}
	if err := f.Commit(o.Force); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return outputError(fmt.Errorf("%s exists (--force replaces it)", o.Out))
		}
		return outputError(fmt.Errorf("write %s: %w", o.Out, err))
	}
	fmt.Fprintf(o.IO.ErrOut, "wrote %s: image %s (%s)\n", o.Out, ref, d.Config)
	return nil
}
