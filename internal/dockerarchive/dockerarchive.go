// Package dockerarchive writes a one-layer container image as a
// docker-archive (`docker save`'s format: manifest.json, the config and the
// layer tar), which `docker load`, `ctr images import`, `podman load`,
// `kind load image-archive` and `k3s ctr` all read. It is how pathtrace's
// agent image reaches a cluster without a registry. The archive is
// deterministic: the same files give the same digests.
package dockerarchive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"time"
)

// File is one entry of the image's filesystem.
type File struct {
	Path string      // absolute in the image, e.g. /pathtrace
	Mode fs.FileMode // permission bits, plus fs.ModeDir for a directory (fs.ModeSticky kept)
	Data []byte      // a regular file's contents
}

// Image is what the archive holds.
type Image struct {
	Ref        string            // repository:tag, e.g. ghcr.io/pathtrace/pathtrace:v1.2.0
	Arch       string            // GOARCH: amd64, arm64, …
	Entrypoint []string          // the image's ENTRYPOINT
	Labels     map[string]string // OCI annotations as image labels
	Files      []File
}

// Digests are what the written archive's image is known by.
type Digests struct {
	Config string // sha256:… of the config: the image ID docker and containerd show
	Layer  string // sha256:… of the uncompressed layer (its diff ID)
}

// Write writes img as a docker-archive to w.
func Write(w io.Writer, img Image) (Digests, error) {
	if i := strings.LastIndex(img.Ref, "/"); !strings.Contains(img.Ref[i+1:], ":") {
		return Digests{}, fmt.Errorf("image reference %q: want repository:tag", img.Ref)
	}
	layer, err := layerTar(img.Files)
	if err != nil {
		return Digests{}, err
	}
	layerSum := sha256.Sum256(layer)
	layerHex := hex.EncodeToString(layerSum[:])
	cfg, err := json.Marshal(config{
		Architecture: img.Arch, OS: "linux", Created: epoch,
		Config: runConfig{Entrypoint: img.Entrypoint, Labels: img.Labels, WorkingDir: "/"},
		RootFS: rootFS{Type: "layers", DiffIDs: []string{"sha256:" + layerHex}},
	})
	if err != nil {
		return Digests{}, fmt.Errorf("image config: %w", err)
	}
	cfgSum := sha256.Sum256(cfg)
	cfgHex := hex.EncodeToString(cfgSum[:])
	manifest, err := json.Marshal([]manifestEntry{{
		Config: cfgHex + ".json", RepoTags: []string{img.Ref}, Layers: []string{layerHex + "/layer.tar"},
	}})
	if err != nil {
		return Digests{}, fmt.Errorf("image manifest: %w", err)
	}
	tw := tar.NewWriter(w)
	entries := []struct {
		name string
		data []byte
	}{
		{layerHex + "/layer.tar", layer},
		{cfgHex + ".json", cfg},
		{"manifest.json", manifest},
	}
	if err := addDir(tw, layerHex+"/", 0o755); err != nil {
		return Digests{}, err
	}
	for _, e := range entries {
		if err := addFile(tw, e.name, 0o644, e.data); err != nil {
			return Digests{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return Digests{}, fmt.Errorf("write archive: %w", err)
	}
	return Digests{Config: "sha256:" + cfgHex, Layer: "sha256:" + layerHex}, nil
}

// layerTar is the image's filesystem as one tar, parents before children,
// sorted, owned by root, stamped with the epoch.
func layerTar(files []File) ([]byte, error) {
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range sorted {
		name := strings.TrimPrefix(f.Path, "/")
		if name == "" || !strings.HasPrefix(f.Path, "/") || strings.Contains(name, "..") {
			return nil, fmt.Errorf("image file %q: want an absolute path inside the image", f.Path)
		}
		var err error
		if f.Mode.IsDir() {
			err = addDir(tw, name+"/", f.Mode)
		} else {
			err = addFile(tw, name, f.Mode, f.Data)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
	}
	return buf.Bytes(), nil
}

func addDir(tw *tar.Writer, name string, mode fs.FileMode) error {
	h := &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: tarMode(mode), ModTime: epoch, Format: tar.FormatPAX}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	return nil
}

func addFile(tw *tar.Writer, name string, mode fs.FileMode, data []byte) error {
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: tarMode(mode), Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	return nil
}

// tarMode keeps the permission bits and the sticky bit (/tmp).
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// epoch stamps every entry: the archive's bytes depend on the files only.
var epoch = time.Unix(0, 0).UTC()

// The docker-archive's JSON documents (image-spec's config, docker's
// manifest.json), only the fields pathtrace writes.
type config struct {
	Architecture string    `json:"architecture"`
	OS           string    `json:"os"`
	Created      time.Time `json:"created"`
	Config       runConfig `json:"config"`
	RootFS       rootFS    `json:"rootfs"`
}

type runConfig struct {
	Entrypoint []string          `json:"Entrypoint,omitempty"`
	Labels     map[string]string `json:"Labels,omitempty"`
	WorkingDir string            `json:"WorkingDir,omitempty"`
}

type rootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

type manifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}
