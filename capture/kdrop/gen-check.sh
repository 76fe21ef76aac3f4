#!/usr/bin/env bash
# Regenerates the committed eBPF object and its Go bindings from
# kdrop.bpf.c and fails if they differ from what is committed (CI runs it;
# needs Debian 12's clang-14, llvm-14 and libbpf-dev). The output is
# deterministic for one clang version: bpf2go maps the source path to a
# relative one and strips DWARF.
set -euo pipefail
cd "$(dirname "$0")"
go generate .
if ! git diff --exit-code -- kdrop_bpfel.go kdrop_bpfel.o; then
	echo "capture/kdrop: the committed eBPF object is stale: run 'go generate ./capture/kdrop/' and commit" >&2
	exit 1
fi
echo "capture/kdrop: eBPF object is current"
