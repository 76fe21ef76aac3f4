package cluster

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"runtime"
	"strings"

	"github.com/pathtrace/pathtrace/internal/dockerarchive"
)

// Repository is where the project publishes its image; the tag is the
// version (DefaultImage).
const Repository = "ghcr.io/pathtrace/pathtrace"

// AgentBinary is the binary's path inside the image.
const AgentBinary = "/pathtrace"

// Binary is the running executable's contents, which the agent image
// carries: the agents run exactly the coordinator's build.
func Binary() ([]byte, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this executable: %w", err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		return nil, fmt.Errorf("read this executable: %w", err)
	}
	return b, nil
}

// DefaultImage is the image of this version: Repository:VERSION for a
// release or a clean commit's pseudo-version; a build no registry can hold
// (a modified checkout's "+dirty", "(devel)") is tagged with the binary's
// own digest as well, so an imported image of one build is never taken for
// another's.
func DefaultImage(version string, binary []byte) string {
	tag := tagChars.ReplaceAllString(strings.Trim(version, "()"), "-")
	if tag == "" || tag == "unknown" || tag == "devel" || strings.Contains(version, "+") {
		sum := sha256.Sum256(binary)
		tag = strings.TrimLeft(tag+"-"+hex.EncodeToString(sum[:6]), "-.")
	}
	if len(tag) > 128 {
		tag = tag[len(tag)-128:]
	}
	return Repository + ":" + tag
}

// tagChars is what an image tag may not hold ([A-Za-z0-9_.-] only).
var tagChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// WriteImage writes the agent image: a FROM-scratch image of the static
// binary at /pathtrace and an empty /tmp, tagged ref, as a docker-archive.
func WriteImage(w io.Writer, ref, version string, binary []byte) (dockerarchive.Digests, error) {
	if err := static(binary); err != nil {
		return dockerarchive.Digests{}, err
	}
	return dockerarchive.Write(w, dockerarchive.Image{
		Ref: ref, Arch: runtime.GOARCH, Entrypoint: []string{AgentBinary},
		Labels: map[string]string{
			"org.opencontainers.image.title":   "pathtrace",
			"org.opencontainers.image.version": version,
			"org.opencontainers.image.source":  "https://github.com/pathtrace/pathtrace",
		},
		Files: []dockerarchive.File{
			{Path: AgentBinary, Mode: 0o755, Data: binary},
			{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		},
	})
}

// static refuses a binary the scratch image could not run: one that needs
// a dynamic loader (built with cgo).
func static(binary []byte) error {
	f, err := elf.NewFile(bytes.NewReader(binary))
	if err != nil {
		return fmt.Errorf("the image needs a Linux ELF binary: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("this pathtrace is dynamically linked (built with cgo): the image has no libc; build it with CGO_ENABLED=0")
		}
	}
	if runtime.GOOS != "linux" {
		return fmt.Errorf("the image's binary must be a Linux build, this one is %s", runtime.GOOS)
	}
	return nil
}
