#!/usr/bin/env bash
# bench-vs-torch.sh [MODEL_DIR] [TEXT] [TOKENS]
# Runs `gpuquant eval` and the PyTorch fp32 baseline (scripts/torch_eval.py, 2 threads) on the
# same checkpoint and the same first TOKENS tokens of TEXT, and prints both and the throughput
# ratio. By default: a synthetic GPT-2 124M (made once with `gpuquant synth`) and WikiText-2.
# Needs Debian's python3-torch and libopenblas0-pthread (without it torch uses the reference BLAS
# and is ~40x slower, which would make the comparison meaningless).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/synth-gpt2}
text=${2:-../shared/data/wikitext-2-raw/wiki.test.raw}
tokens=${3:-4096}
[ -x ./gpuquant ] || go build -o gpuquant .
[ -d "$model" ] || ./gpuquant synth --preset gpt2 --out "$model"
dpkg -s libopenblas0-pthread >/dev/null 2>&1 || echo "warning: libopenblas0-pthread is not installed: torch will be slow" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
./gpuquant tokenize --model "$model" --json <"$text" >"$tmp/ids.json"
GOMAXPROCS=2 ./gpuquant eval --model "$model" --text "$text" --max-tokens "$tokens" --json >"$tmp/go.json"
/usr/bin/python3 scripts/torch_eval.py "$model" "$tmp/ids.json" --max-tokens "$tokens" --threads 2 >"$tmp/torch.json"
/usr/bin/python3 - "$tmp/go.json" "$tmp/torch.json" <<'PY'
import json, sys
g, t = (json.load(open(p)) for p in sys.argv[1:])
gt = g["tokens_scored"] / g["seconds"]
print(f"gpuquant eval (cpu, fp32): perplexity {g['perplexity']:.6f}, {g['tokens_scored']} tokens, {gt:.1f} tokens/s")
print(f"{t['backend']}: perplexity {t['perplexity']:.6f}, {t['tokens_scored']} tokens, {t['tokens_per_s']:.1f} tokens/s")
print(f"throughput ratio gpuquant / torch: {gt / t['tokens_per_s']:.2f}x; perplexity relative difference {abs(g['perplexity'] - t['perplexity']) / t['perplexity']:.2e}")
PY
