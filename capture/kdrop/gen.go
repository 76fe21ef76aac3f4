package kdrop

// The eBPF object is generated from kdrop.bpf.c and committed, so building
// pathtrace needs no clang. Regenerate (Debian 12: clang-14, llvm-14,
// libbpf-dev) with `go generate ./capture/kdrop/`; gen-check.sh verifies
// that the committed files are current.
//
//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror" -target bpfel -type event kdrop kdrop.bpf.c
