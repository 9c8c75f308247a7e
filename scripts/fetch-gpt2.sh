#!/usr/bin/env bash
# fetch-gpt2.sh [gpt2|gpt2-medium|gpt2-large|gpt2-xl] [DEST]
#
# Downloads a real GPT-2 checkpoint from Hugging Face (openai-community/<name>) into
# models/<name>/ (or DEST): config.json, model.safetensors, vocab.json, merges.txt, tokenizer.json.
# Downloads resume (curl -C -) and are verified: every file against the size Hugging Face reports,
# and the LFS-stored model.safetensors against its SHA-256 (HF's X-Linked-Etag). A file is moved
# into place only once verified, so an interrupted run never leaves a bad model behind.
# Needs curl and sha256sum, and network access to huggingface.co (the development machines of
# this project have none, so this script is written for users and cloud boxes).
set -euo pipefail

name=${1:-gpt2}
case "$name" in
gpt2 | gpt2-medium | gpt2-large | gpt2-xl) ;;
*)
	echo "usage: $0 [gpt2|gpt2-medium|gpt2-large|gpt2-xl] [DEST]" >&2
	exit 2
	;;
esac
dest=${2:-models/$name}
base=${HF_ENDPOINT:-https://huggingface.co}/openai-community/$name/resolve/main
mkdir -p "$dest"

# header NAME FILE: the value of response header NAME for FILE (redirects not followed, so LFS
# files still show their X-Linked-* headers).
header() {
	curl -fsSI "$base/$2" | tr -d '\r' | awk -v h="$(echo "$1" | tr 'A-Z' 'a-z')" \
		'BEGIN{FS=": "} tolower($1)==h {v=$2} END{gsub(/"/,"",v); print v}'
}

for f in config.json vocab.json merges.txt tokenizer.json model.safetensors; do
	out=$dest/$f
	part=$out.part
	size=$(header X-Linked-Size "$f")
	[ -n "$size" ] || size=$(header Content-Length "$f")
	if [ -f "$out" ] && [ -n "$size" ] && [ "$(stat -c %s "$out")" = "$size" ]; then
		echo "$f: already complete ($size bytes)"
		continue
	fi
	echo "$f: downloading ($size bytes) ..."
	curl -fL --retry 5 --retry-delay 2 -C - -o "$part" "$base/$f"
	got=$(stat -c %s "$part")
	if [ -n "$size" ] && [ "$got" != "$size" ]; then
		echo "$f: size $got, expected $size; rerun to resume" >&2
		exit 1
	fi
	if [ "$f" = model.safetensors ]; then
		want=$(header X-Linked-Etag "$f")
		if [[ "$want" =~ ^[0-9a-f]{64}$ ]]; then
			have=$(sha256sum "$part" | cut -d' ' -f1)
			if [ "$have" != "$want" ]; then
				echo "$f: SHA-256 $have does not match $want; deleting it" >&2
				rm -f "$part"
				exit 1
			fi
			echo "$f: SHA-256 ok"
		else
			echo "$f: Hugging Face sent no SHA-256; size checked only" >&2
		fi
	fi
	mv "$part" "$out"
done
echo "GPT-2 '$name' is in $dest: try  gpuquant run --model $dest"
