#!/usr/bin/python3
"""PyTorch fp32 baseline for `gpuquant eval`: the same GPT-2 checkpoint, the same token ids, the
same Hugging Face sliding-window perplexity, timed. It reuses the float64 reference's model code
(reference_gpt2.py) with the weights cast to float32, so it measures PyTorch's own kernels
(OpenBLAS with libopenblas0-pthread on Debian) on a plain GPT-2 forward.

usage: torch_eval.py MODEL_DIR IDS_JSON [--max-length N] [--stride N] [--threads 2]
IDS_JSON holds {"ids": [...]} as printed by `gpuquant tokenize --json`. Prints one JSON object.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference_gpt2 as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("ids")
    ap.add_argument("--max-length", type=int, default=0)
    ap.add_argument("--stride", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    params, cfg, _ = ref.load_folder(a.model)
    params = {k: v.to(torch.float32).contiguous() for k, v in params.items()}
    ids = json.loads(Path(a.ids).read_text())["ids"]
    if a.max_tokens:
        ids = ids[: a.max_tokens]
    max_length = a.max_length or cfg["n_positions"]
    stride = a.stride or max_length // 2
    with torch.no_grad():
        start = time.perf_counter()
        r = ref.sliding_perplexity(params, cfg, ids, max_length, stride)
        secs = time.perf_counter() - start
    print(json.dumps({
        "backend": f"torch {torch.__version__} fp32, {a.threads} threads",
        "perplexity": r["perplexity"], "tokens_scored": r["count"], "seconds": secs,
        "tokens_per_s": r["count"] / secs, "max_length": max_length, "stride": stride,
    }))


if __name__ == "__main__":
    main()
