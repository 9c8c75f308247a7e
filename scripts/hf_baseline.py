#!/usr/bin/python3
"""Hugging Face transformers baseline for `gpuquant bench`: the same GPT-2 folder run by
transformers' GPT2LMHeadModel on this machine's PyTorch, batch 1, offline.

usage: hf_baseline.py --model DIR [--device cuda:0|cpu] [--dtypes fp32,fp16] [--prompt-tokens 128]
                      [--new-tokens 128] [--repeat 3] [--text FILE] [--ppl-tokens 8192]
                      [--window 1024] [--seed 0] [--threads N]

For each dtype (fp16 only on CUDA; it is skipped on the CPU) it prints one JSON object a line:
- decode: `generate` with its KV cache, greedy, from a seeded random prompt of --prompt-tokens ids,
  exactly --new-tokens new tokens (min_new_tokens = max_new_tokens and no EOS, so it never stops
  early), one warm-up run, then the median of --repeat timed runs. A streamer takes the time at
  every new token (after a device synchronize), so `decode_tokens_per_s` counts only the
  KV-cached steps after the first new token (new_tokens - 1 of them), as gpuquant bench counts
  its decode steps; `generate_prefill_tokens_per_s` is the prompt's forward inside generate.
- `prefill_tokens_per_s` and `perplexity`: a forward over non-overlapping windows of --window
  tokens (capped at n_positions) of the first --ppl-tokens ids of --text, tokenized with the
  folder's tokenizer (GPT2TokenizerFast), or of seeded random ids without --text (then the
  perplexity only shows that the numerics are sane, not model quality).
fp32 is real fp32: TF32 is disabled for matmuls and cuDNN. Exit status 2 when torch or transformers
is missing or an argument is bad, 1 when a run fails.
"""
import argparse
import copy
import json
import math
import os
import platform
import statistics
import sys
import time

# Never reach for the hub: the folder is all there is.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def fail(code, msg):
    print(f"hf_baseline.py: {msg}", file=sys.stderr)
    sys.exit(code)


try:
    import torch
except ImportError as e:
    fail(2, f"PyTorch is not installed for {sys.executable} ({e}); run this with a Python that has torch and transformers")
try:
    import transformers
    from transformers import GPT2LMHeadModel, GPT2TokenizerFast
except ImportError as e:
    fail(2, f"transformers is not installed for {sys.executable} ({e}): `pip install transformers` "
         "(or run this with a Python that has it); gpuquant itself does not need it")

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def device_name(dev):
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class StepClock:
    """A generate() streamer that only takes the time: put() gets the prompt once, then each new
    token (already copied to the host, which waits for the step; the synchronize makes sure)."""

    def __init__(self, dev):
        self.dev, self.times = dev, []

    def put(self, value):
        sync(self.dev)
        self.times.append(time.perf_counter())

    def end(self):
        pass


def timed_generate(model, dev, ids, new_tokens, gen_config):
    clock = StepClock(dev)
    mask = torch.ones_like(ids)
    sync(dev)
    start = time.perf_counter()
    out = model.generate(ids, attention_mask=mask, generation_config=gen_config, streamer=clock)
    sync(dev)
    total = time.perf_counter() - start
    got = out.shape[1] - ids.shape[1]
    if got != new_tokens:
        raise RuntimeError(f"generate made {got} new tokens, not {new_tokens}")
    # times[0]: the prompt, before any forward; times[1]: the first new token (prompt forward);
    # times[-1]: the last new token.
    if len(clock.times) == new_tokens + 1:
        return total, clock.times[1] - start, clock.times[-1] - clock.times[1]
    return total, None, None


def perplexity_pass(model, dev, ids, window):
    """Non-overlapping windows; NLL of every token after a window's first, summed in float64."""
    windows = [ids[i:i + window] for i in range(0, len(ids), window)]
    windows = [w for w in windows if len(w) >= 2]
    if not windows:
        raise RuntimeError("perplexity pass: fewer than 2 tokens")
    with torch.inference_mode():
        model(windows[0].unsqueeze(0).to(dev))  # warm-up
        sync(dev)
        nll = torch.zeros((), dtype=torch.float64, device=dev)  # summed on the device: no sync per window
        count, seen = 0, 0
        start = time.perf_counter()
        for w in windows:
            x = w.unsqueeze(0).to(dev)
            logits = model(x).logits[0, :-1].float()
            nll += torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum").double()
            count += len(w) - 1
            seen += len(w)
        sync(dev)
        secs = time.perf_counter() - start
    return math.exp(nll.item() / count), seen, secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="Hugging Face GPT-2 folder (config.json, model.safetensors, vocab.json, merges.txt)")
    ap.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtypes", default="fp32,fp16", help="comma-separated: fp32, fp16 (fp16 is skipped on the CPU)")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3, help="timed generate runs after one warm-up; medians are reported")
    ap.add_argument("--text", help="text file for the perplexity pass (default: seeded random token ids)")
    ap.add_argument("--ppl-tokens", type=int, default=8192, help="tokens of the perplexity pass (0: the whole --text)")
    ap.add_argument("--window", type=int, default=1024, help="perplexity window and stride (capped at n_positions)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    a = ap.parse_args()

    if not os.path.isfile(os.path.join(a.model, "config.json")):
        fail(2, f"{a.model} is not a model folder (no config.json)")
    dtypes = [d.strip() for d in a.dtypes.split(",") if d.strip()]
    for d in dtypes:
        if d not in DTYPES:
            fail(2, f"unknown dtype {d!r} (want {', '.join(DTYPES)})")
    if a.prompt_tokens < 1 or a.new_tokens < 2 or a.repeat < 1 or a.window < 2 or a.ppl_tokens < 0:
        fail(2, "need --prompt-tokens >= 1, --new-tokens >= 2, --repeat >= 1, --window >= 2, --ppl-tokens >= 0")
    if a.text and not os.path.isfile(a.text):
        fail(2, f"--text {a.text}: no such file")
    try:
        dev = torch.device(a.device)
    except RuntimeError as e:
        fail(2, f"--device {a.device}: {e}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        fail(1, f"--device {a.device}: this PyTorch ({torch.__version__}) sees no CUDA device")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    # Real fp32: no TF32 tensor-core rounding in matmuls or convolutions.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if hasattr(torch, "set_float32_matmul_precision"):
        torch.set_float32_matmul_precision("highest")

    # Loaded once in the checkpoint's float32, converted per dtype (from_pretrained's dtype
    # argument changed names across transformers versions; an ignored one would silently give fp32).
    base = GPT2LMHeadModel.from_pretrained(a.model, local_files_only=True).eval()
    cfg = base.config
    if a.prompt_tokens + a.new_tokens > cfg.n_positions:
        fail(2, f"{a.prompt_tokens} prompt + {a.new_tokens} new tokens must fit the context of {cfg.n_positions}")
    window = min(a.window, cfg.n_positions)

    g = torch.Generator().manual_seed(a.seed)
    prompt = torch.randint(0, cfg.vocab_size, (1, a.prompt_tokens), generator=g)
    if a.text:
        tok = GPT2TokenizerFast.from_pretrained(a.model, local_files_only=True)
        with open(a.text, encoding="utf-8") as f:
            text = f.read().replace("\r\n", "\n")
        ppl_ids = torch.tensor(tok(text)["input_ids"], dtype=torch.long)
        source = f"text:{a.text}"
    else:
        ppl_ids = torch.randint(0, cfg.vocab_size, (a.ppl_tokens or 8192,), generator=g)
        source = "random"
    if a.ppl_tokens:
        ppl_ids = ppl_ids[: a.ppl_tokens]

    gen = copy.deepcopy(base.generation_config)
    gen.max_new_tokens = gen.min_new_tokens = a.new_tokens
    gen.max_length = None
    gen.do_sample, gen.num_beams, gen.use_cache = False, 1, True
    gen.eos_token_id = None  # never stop early
    gen.pad_token_id = cfg.eos_token_id if cfg.eos_token_id is not None else 0  # silences a warning
    for k in ("temperature", "top_k", "top_p"):  # sampling settings a greedy config warns about
        if hasattr(gen, k):
            setattr(gen, k, None)

    run = []
    for name in dtypes:
        if name == "fp16" and dev.type != "cuda":
            print(f"hf_baseline.py: fp16 skipped on {dev.type} (CPU half-precision matmuls are not a baseline)", file=sys.stderr)
        else:
            run.append(name)
    for i, name in enumerate(run):
        dtype = DTYPES[name]
        if dev.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(dev)
            before = torch.cuda.memory_allocated(dev)
        model = base if i == len(run) - 1 else copy.deepcopy(base)  # the last one converts the original
        model = model.to(device=dev, dtype=dtype)
        if next(model.parameters()).dtype != dtype:
            fail(1, f"model is {next(model.parameters()).dtype} after conversion to {dtype}")
        weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        device_weight_bytes = torch.cuda.memory_allocated(dev) - before if dev.type == "cuda" else None

        with torch.inference_mode():
            ids = prompt.to(dev)
            timed_generate(model, dev, ids, a.new_tokens, gen)  # warm-up
            totals, prefills, decodes = [], [], []
            for _ in range(a.repeat):
                total, pre, dec = timed_generate(model, dev, ids, a.new_tokens, gen)
                totals.append(total)
                if pre is not None:
                    prefills.append(pre)
                    decodes.append(dec)
        ppl, ppl_seen, ppl_secs = perplexity_pass(model, dev, ppl_ids, window)

        r = {
            "engine": "hf-transformers",
            "torch_version": torch.__version__,
            "transformers_version": transformers.__version__,
            "device": str(dev),
            "device_name": device_name(dev),
            "dtype": name,
            "model": a.model,
            "decode_tokens_per_s": None,
            "prefill_tokens_per_s": ppl_seen / ppl_secs,
            "perplexity": ppl,
            "prompt_tokens": a.prompt_tokens,
            "new_tokens": a.new_tokens,
            "repeat": a.repeat,
            "model_bytes": weight_bytes,
            "generate_seconds": totals,
            "generate_tokens_per_s": a.new_tokens / statistics.median(totals),
            "ppl_source": source,
            "ppl_tokens": ppl_seen,
            "ppl_window": window,
            "ppl_seconds": ppl_secs,
            "attn_implementation": getattr(model.config, "_attn_implementation", None),
            "tf32": False,
            "seed": a.seed,
            "threads": torch.get_num_threads(),
        }
        if decodes:
            r["decode_seconds"] = decodes
            r["decode_tokens_per_s"] = (a.new_tokens - 1) / statistics.median(decodes)
            r["generate_prefill_seconds"] = prefills
            r["generate_prefill_tokens_per_s"] = a.prompt_tokens / statistics.median(prefills)
            r["decode_timing"] = "streamer: new_tokens - 1 KV-cached steps after the first new token"
        else:
            r["decode_timing"] = "unavailable: the streamer saw too few tokens; see generate_tokens_per_s"
        if dev.type == "cuda":
            r["device_weight_bytes"] = device_weight_bytes
            r["device_peak_bytes"] = torch.cuda.max_memory_allocated(dev)
        print(json.dumps(r), flush=True)
        del model
        if dev.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, OSError, ValueError) as e:
        fail(1, f"{type(e).__name__}: {e}")
