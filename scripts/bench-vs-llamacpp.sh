#!/usr/bin/env bash
# bench-vs-llamacpp.sh [MODEL_DIR] — gpuquant next to llama.cpp on the CPU, same weights, same
# thread count, interleaved rounds: the side-by-side table of issue 15 (README "Performance").
#
# MODEL_DIR is an fp32 GPT-2 folder (default: models/synth-gpt2, synthesized once with
# `gpuquant synth --preset gpt2`). From it: absmax int8 group:32 and int4 group:32 checkpoints
# (the grids of Q8_0 and Q4_0), exported with `gpuquant export` as F32, Q8_0 and Q4_0 GGUFs, so
# both tools run the same codes. llama.cpp is its prebuilt CPU library from npm, driven by
# scripts/llama/llamaeval.c --bench (built by scripts/llama/build.sh). Pairs:
#   fp32 vs F32, int8 weight-only vs Q8_0, W8A8 vs Q8_0, int4 group:32 weight-only vs Q4_0
# Cases: prefill of 256 and 512 tokens, decode of 128 tokens after a 128-token prompt; each
# process times REPEAT runs after a warm-up (medians); ROUNDS rounds alternate the tools and the
# reported figure is the median over rounds. Peak RSS comes from /usr/bin/time. Prints a
# Markdown table (ratio = gpuquant / llama.cpp: > 1 means gpuquant is faster) and writes every
# measurement to $OUT/bench-vs-llamacpp.jsonl.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
MODEL=${1:-models/synth-gpt2}
THREADS=${THREADS:-$(nproc)}
ROUNDS=${ROUNDS:-3}
REPEAT=${REPEAT:-3}
OUT=${OUT:-build/bench-vs-llamacpp}
mkdir -p "$OUT"
gq=$root/gpuquant
go build -o "$gq" .
llama=$(scripts/llama/build.sh build/llama-cpp | tail -1)
if [ ! -f "$MODEL/model.safetensors" ]; then
	"$gq" synth --preset gpt2 --out "$MODEL"
fi
for b in 8 4; do
	[ -d "$OUT/int$b-g32" ] || "$gq" quantize --model "$MODEL" --out "$OUT/int$b-g32" --scheme absmax --bits $b --granularity group:32
done
[ -f "$OUT/f32.gguf" ] || "$gq" export --model "$MODEL" --out "$OUT/f32.gguf"
[ -f "$OUT/q8_0.gguf" ] || "$gq" export --model "$OUT/int8-g32" --out "$OUT/q8_0.gguf"
[ -f "$OUT/q4_0.gguf" ] || "$gq" export --model "$OUT/int4-g32" --out "$OUT/q4_0.gguf"

# pair label | our model and kernel | their GGUF
pairs() {
	cat <<EOF
fp32 vs F32|$MODEL auto|$OUT/f32.gguf
int8 weight-only vs Q8_0|$OUT/int8-g32 weight-only|$OUT/q8_0.gguf
W8A8 vs Q8_0|$OUT/int8-g32 w8a8|$OUT/q8_0.gguf
int4 group:32 vs Q4_0|$OUT/int4-g32 weight-only|$OUT/q4_0.gguf
EOF
}
cases="prefill256:256:0 prefill512:512:0 decode128:128:128"
log=$OUT/bench-vs-llamacpp.jsonl
: >"$log"
# rss_json CMD...: runs CMD, prints its JSON stdout with "rss_bytes" added (peak RSS).
rss_json() {
	local t out
	t=$(mktemp)
	out=$(/usr/bin/time -f '%M' -o "$t" "$@" 2>/dev/null | tr -d '\n')
	echo "${out%\}}, \"rss_bytes\": $(($(tail -1 "$t") * 1024))}"
	rm -f "$t"
}
for round in $(seq "$ROUNDS"); do
	while IFS='|' read -r label ours theirs; do
		read -r dir kernel <<<"$ours"
		for c in $cases; do
			IFS=: read -r name p n <<<"$c"
			echo "round $round: $label, $name" >&2
			r=$(GOMAXPROCS=$THREADS rss_json "$gq" bench --model "$dir" --kernel "$kernel" --prompt-tokens "$p" --new-tokens "$n" --repeat "$REPEAT" --json)
			echo "{\"round\": $round, \"pair\": \"$label\", \"case\": \"$name\", \"tool\": \"gpuquant\", \"result\": $r}" >>"$log"
			r=$(rss_json "$llama" --bench "$theirs" "$p" "$n" "$REPEAT" "$THREADS")
			echo "{\"round\": $round, \"pair\": \"$label\", \"case\": \"$name\", \"tool\": \"llama.cpp\", \"result\": $r}" >>"$log"
		done
	done < <(pairs)
done

/usr/bin/python3 - "$log" "$THREADS" "$ROUNDS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(pair, case, tool, key):
    v = [r["result"][key] for r in rows if (r["pair"], r["case"], r["tool"]) == (pair, case, tool)]
    return statistics.median(v) if v else float("nan")
pairs = list(dict.fromkeys(r["pair"] for r in rows))
print(f"gpuquant / llama.cpp, {sys.argv[2]} threads, medians of {sys.argv[3]} interleaved rounds (> 1: gpuquant faster)\n")
print("| pair | prefill 256 | prefill 512 | decode 128 after 128 | peak RSS MiB (ours / llama.cpp, decode) |")
print("|---|---|---|---|---|")
for p in pairs:
    cells = []
    for case, key in (("prefill256", "prefill_tokens_per_s"), ("prefill512", "prefill_tokens_per_s"), ("decode128", "decode_tokens_per_s")):
        a, b = med(p, case, "gpuquant", key), med(p, case, "llama.cpp", key)
        cells.append(f"**{a / b:.2f}** ({a:.0f} vs {b:.0f} tok/s)")
    ra, rb = med(p, "decode128", "gpuquant", "rss_bytes") / 2**20, med(p, "decode128", "llama.cpp", "rss_bytes") / 2**20
    print(f"| {p} | " + " | ".join(cells) + f" | {ra:.0f} / {rb:.0f} |")
PY
