#!/usr/bin/env bash
# build.sh [DEST] — compiles llamaeval.c against the libraries scripts/llama/fetch.sh unpacked
# into DEST (default build/llama-cpp, fetched first if missing) and writes DEST/llamaeval.
# The rpath points at the lib dir, so the binary runs with no LD_LIBRARY_PATH and finds the
# libggml-cpu-*.so variants next to libggml (see llamaeval.c). Equivalent one-liner:
#   gcc -O2 -Wall -o DEST/llamaeval scripts/llama/llamaeval.c -LLIB -l:libllama.v0.5.0.so \
#       -l:libggml.v0.5.0.so -lm -ldl -Wl,-rpath,LIB
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-build/llama-cpp}
lib=$("$here/fetch.sh" "$dest")
# The libraries have versioned names with no libllama.so symlink, hence -l:NAME.
gcc -O2 -Wall -Wextra -o "$dest/llamaeval" "$here/llamaeval.c" \
	-L"$lib" -l:libllama.v0.5.0.so -l:libggml.v0.5.0.so -lm -ldl -Wl,-rpath,"$lib"
echo "$dest/llamaeval"
