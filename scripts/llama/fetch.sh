#!/usr/bin/env bash
# fetch.sh [DEST] — llama.cpp's prebuilt Linux x64 CPU libraries, for llamaeval.
#
# They come from the npm package @node-llama-cpp/linux-x64 (built from ggml-org/llama.cpp,
# release "v0.5.0" in its _nlcBuildMetadata.json), since it is the one prebuilt llama.cpp that
# an npm registry can give us. Downloads it with `npm pack` into DEST (default
# build/llama-cpp), unpacks it, checks the libraries are there and prints the lib dir.
# Idempotent: does nothing but print the lib dir when the libraries are already unpacked.
# Needs npm and network access to the npm registry.
set -euo pipefail

pkg=@node-llama-cpp/linux-x64
version=3.22.1
dest=${1:-build/llama-cpp}
lib="$dest/package/bins/linux-x64"
want=(libllama.v0.5.0.so libggml.v0.5.0.so libggml-base.so libggml-cpu-x64.so)

have_all() {
	local f
	for f in "${want[@]}"; do
		[[ -f "$lib/$f" ]] || return 1
	done
}

if ! have_all; then
	command -v npm >/dev/null || {
		echo "fetch.sh: npm is needed to download $pkg@$version" >&2
		exit 1
	}
	mkdir -p "$dest"
	tgz="$dest/node-llama-cpp-linux-x64-$version.tgz"
	if [[ ! -f "$tgz" ]]; then
		# Pack into a temporary folder first so an interrupted download leaves no bad tarball.
		tmp=$(mktemp -d --tmpdir="$dest")
		trap 'rm -rf "$tmp"' EXIT
		(cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null)
		mv "$tmp"/*.tgz "$tgz"
		rm -rf "$tmp"
		trap - EXIT
	fi
	rm -rf "$dest/package"
	tar -xzf "$tgz" -C "$dest"
	have_all || {
		echo "fetch.sh: $tgz lacks one of ${want[*]} under package/bins/linux-x64" >&2
		exit 1
	}
fi
cd "$lib" && pwd
