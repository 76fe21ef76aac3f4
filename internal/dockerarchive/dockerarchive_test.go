package dockerarchive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"slices"
	"testing"
)

// readTar is every regular file and directory of an archive, by name.
func readTar(t *testing.T, b []byte) (map[string][]byte, map[string]*tar.Header) {
	t.Helper()
	files, hdrs := map[string][]byte{}, map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, hdrs
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], hdrs[h.Name] = data, h
	}
}

func TestWrite(t *testing.T) {
	img := Image{
		Ref: "example.test/agent:v1", Arch: "amd64", Entrypoint: []string{"/agent"},
		Labels: map[string]string{"org.opencontainers.image.version": "v1"},
		Files: []File{
			{Path: "/agent", Mode: 0o755, Data: []byte("\x7fELF...")},
			{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		},
	}
	var a, b bytes.Buffer
	da, err := Write(&a, img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Write(&b, img); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two archives of the same image differ")
	}
	files, _ := readTar(t, a.Bytes())
	var man []manifestEntry
	if err := json.Unmarshal(files["manifest.json"], &man); err != nil || len(man) != 1 {
		t.Fatalf("manifest.json %s: %v", files["manifest.json"], err)
	}
	if !slices.Equal(man[0].RepoTags, []string{img.Ref}) {
		t.Errorf("RepoTags %v", man[0].RepoTags)
	}
	cfgBytes := files[man[0].Config]
	if sum := sha256.Sum256(cfgBytes); "sha256:"+hex.EncodeToString(sum[:]) != da.Config {
		t.Errorf("config digest %s is not its bytes' sha256", da.Config)
	}
	var cfg config
	if err := json.Unmarshal(cfgBytes, &cfg); err != nil {
		t.Fatal(err)
	}
	layer := files[man[0].Layers[0]]
	sum := sha256.Sum256(layer)
	if d := "sha256:" + hex.EncodeToString(sum[:]); !slices.Equal(cfg.RootFS.DiffIDs, []string{d}) || d != da.Layer {
		t.Errorf("diff_ids %v, layer %s, sha256 of layer.tar %s", cfg.RootFS.DiffIDs, da.Layer, d)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" || !slices.Equal(cfg.Config.Entrypoint, img.Entrypoint) {
		t.Errorf("config %+v", cfg)
	}
	lf, lh := readTar(t, layer)
	if string(lf["agent"]) != "\x7fELF..." || lh["agent"].Mode != 0o755 || lh["agent"].Uid != 0 {
		t.Errorf("agent in the layer: %q %+v", lf["agent"], lh["agent"])
	}
	if h := lh["tmp/"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != 0o1777 {
		t.Errorf("tmp/ in the layer: %+v", h)
	}
}

func TestWriteRefused(t *testing.T) {
	for _, img := range []Image{
		{Ref: "no-tag"},
		{Ref: "localhost:5000/no-tag"},
		{Ref: "a:b", Files: []File{{Path: "relative", Mode: 0o644}}},
		{Ref: "a:b", Files: []File{{Path: "/../etc/passwd", Mode: 0o644}}},
	} {
		if _, err := Write(io.Discard, img); err == nil {
			t.Errorf("%+v written", img)
		}
	}
}
