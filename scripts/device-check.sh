#!/usr/bin/env bash
# device-check.sh [--dry-run] [--phase 1|2] [--emulated]
#
# Runs gpuquant's GPU checks on a machine with an NVIDIA GPU, from the folder that
# `make device-bundle` builds (device-bundle/: the cuda-tagged *.test binaries, a cuda-tagged
# `gpuquant`, and this script). No Go is needed there. GPUs are lent for one ≤10-minute call with
# nothing to spare, so the steps run in the order of their value, and --phase splits them into two
# calls of about 540 s each (DEADLINE):
#
#   step                                      phase  expected s (H100)  timeout s
#   layout, nvidia-smi                        1, 2        2                 -
#   test kerneltest (every kernel vs its CPU
#     twin, GPT-2 XL sizes), gpu, cuda, kernels  1       60, 40, 15, 2     150 each
#   compute-sanitizer memcheck, -short subsets   1       60, 40, 20        120 each
#   124M end to end: synth, 6 bench cases,
#     HF baseline (fp32, fp16), run              1       15, 6x10, 60, 30  90/90/240/120
#   microbenchmarks: kerneltest's (5x), others   2       60, 20            240, 90
#   XL end to end: synth, 9 bench cases,
#     HF baseline (fp16)                         2       60, 9x20, 90      180/120/240
#   phase 1 ≈ 420 s, phase 2 ≈ 410 s; without --phase both run (the deadline cuts XL first).
#
# Outputs in $OUT: tests.log (the test binaries, -test.v), sanitizer.log, bench.log
# (microbenchmarks), gpuquant.log and gpuquant.jsonl (end to end, one JSON object a line), and
# summary.md. It never stops early: each step gets a timeout and a status (ok, FAIL rc=N, timeout,
# missing, skipped), and a SUMMARY TABLE is printed last and written to $OUT/summary.md: one row a
# step, then the key numbers of the microbenchmarks (W8A8 TOPS as % of cuBLAS at M ≥ 2048, target
# ≥ 70%; GEMV GB/s as % of copy bandwidth at the XL shapes, target ≥ 75%; XL quantization ms) and of
# the end-to-end targets (124M int8 decode, XL int8 decode vs roofline and fp16, XL W8A8 prefill vs
# fp16 and HF, XL int8 device weights; status "met", "below", or "phase 2" where the other phase
# measures it), then every microbenchmark's metrics. The exit status is 1 if any step failed or
# timed out, else 0 (a target not met is reported, not failed).
#
# --emulated runs the same steps on a machine without a GPU, on our emulated CUDA driver
# (kernels/emu/driver; the caller sets LD_LIBRARY_PATH, as `make test-cuda-emu` does): models are
# `synth --preset tiny` with a few small bench cases (PRESETS overrides the sizes: "gpt2 gpt2-xl"
# by default on a GPU, "tiny" emulated), the test binaries and microbenchmarks run with
# -test.short (and benchmarks 1x), and every target row reads "emulated: not judged" (the numbers
# measure the emulator). DEADLINE (seconds, default 540) bounds the whole run: a step gets at most
# the time left, and is skipped when under 20 s are left. --dry-run prints what would run and
# checks the bundle layout. python3 is needed only for the key rows and HF baseline.
set -u

here=$(cd "$(dirname "$0")" && pwd)
cd "$here" || exit 2
dry=0 phase=all emulated=0
while [ $# -gt 0 ]; do
	case "$1" in
	--dry-run) dry=1 ;;
	--emulated) emulated=1 ;;
	--phase)
		phase=${2:-}
		shift
		;;
	*) phase=bad ;;
	esac
	shift
done
case $phase in
1 | 2 | all) ;;
*) echo "usage: $0 [--dry-run] [--phase 1|2] [--emulated]" >&2; exit 2 ;;
esac
# in_phase N: whether this run does phase N's steps.
in_phase() { [ "$phase" = all ] || [ "$phase" = "$1" ]; }
if [ "$emulated" = 1 ]; then
	PRESETS=${PRESETS:-tiny}
	SHORT=(-test.short)
	BENCHTIME=1x
else
	PRESETS=${PRESETS:-gpt2 gpt2-xl}
	SHORT=()
	BENCHTIME=
fi
have_python=0
command -v python3 >/dev/null && have_python=1

OUT=${OUT:-$here/device-out}
mkdir -p "$OUT"
DEADLINE=${DEADLINE:-540}
start_all=$(date +%s)
names=() statuses=() secs=() keys=()
failed=0

elapsed() { echo $(($(date +%s) - start_all)); }

record() { # name status seconds key
	local st=$2
	# Targets measured on the emulator say nothing about a GPU.
	if [ "$emulated" = 1 ] && [[ $1 == key:* ]]; then st="emulated: not judged"; fi
	names+=("$1") statuses+=("$st") secs+=("$3") keys+=("$4")
	case "$2" in FAIL* | timeout) failed=1 ;; esac
	printf '==> %-36s %-12s %5ss  %s\n' "$1" "$st" "$3" "$4"
}

# step NAME TIMEOUT LOG KEYFUNC CMD...: runs CMD with a timeout, appending its output to LOG.
# KEYFUNC LOG prints the step's key number.
step() {
	local name=$1 limit=$2 log=$3 keyf=$4
	shift 4
	if [ "$dry" = 1 ]; then
		echo "would run [timeout ${limit}s, log $(basename "$log")]: $(printf "%q " "$@")"
		record "$name" dry-run 0 ""
		return
	fi
	local left=$((DEADLINE - $(elapsed)))
	if [ "$left" -lt 20 ]; then
		record "$name" skipped 0 "deadline ${DEADLINE}s reached"
		return
	fi
	[ "$limit" -gt $((left - 10)) ] && limit=$((left - 10))
	echo "### $name: $* (timeout ${limit}s)" | tee -a "$log"
	local t0 rc st
	t0=$(date +%s)
	timeout -k 10 "$limit" "$@" >>"$log" 2>&1
	rc=$?
	local dt=$(($(date +%s) - t0))
	case $rc in
	0) st=ok ;;
	124 | 137) st=timeout ;;
	*) st="FAIL rc=$rc" ;;
	esac
	echo "#== $name: $st after ${dt}s" >>"$log"
	record "$name" "$st" "$dt" "$($keyf "$log" 2>/dev/null | head -c 80)"
}

missing() { record "$1" missing 0 "$2"; }

# Key numbers.
key_tests() { # the last run's PASS/FAIL/SKIP counts
	local l
	l=$(awk '/^### /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$1")
	printf '%s pass, %s fail, %s skip' "$(grep -c -- '--- PASS' <<<"$l")" "$(grep -c -- '--- FAIL' <<<"$l")" "$(grep -c -- '--- SKIP' <<<"$l")"
}
key_sanitizer() { # its error summary, else the last line it printed
	local l
	l=$(awk '/^### /{buf=""} !/^#== /{buf=buf $0 "\n"} END{printf "%s", buf}' "$1")
	grep -o 'ERROR SUMMARY: [0-9]* error[s]*' <<<"$l" | tail -1 | grep . || grep -v '^###' <<<"$l" | grep . | tail -1
}
key_bench() { # the count of benchmark lines of the last run, and a TOPS or GB/s figure if any
	local l
	l=$(awk '/^### /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$1")
	printf '%s benchmarks' "$(grep -c '^Benchmark.*ns/op' <<<"$l")"
	grep -o '[0-9.]* TOPS' <<<"$l" | sort -g | tail -1 | sed 's/^/, best /'
}
key_none() { :; }

# bench_metric LOG REGEX UNIT: "name value" for each benchmark line whose name matches REGEX and
# that reports UNIT (the -N GOMAXPROCS suffix dropped).
bench_metric() {
	[ -f "$1" ] || return 0
	awk -v re="$2" -v unit="$3" '$1 ~ re { for (i = 4; i <= NF; i++) if ($i == unit) { n = $1; sub(/-[0-9]+$/, "", n); print n, $(i - 1) } }' "$1"
}

# perf_keys: one summary row per target of the microbenchmarks, from $OUT/bench.log.
perf_keys() {
	local log=$OUT/bench.log v st
	# W8A8 GEMM vs cuBLAS int8 at M ≥ 2048: the lowest and the median ratio over the shapes.
	v=$(bench_metric "$log" '^BenchmarkGemmW8A8/M(2048|8192)_' pct_of_cublas | awk '{print $2}' | sort -g |
		awk '{v[NR] = $1} END {if (NR) printf "%.1f %.1f %d", v[1], (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), NR}')
	if [ -n "$v" ]; then
		set -- $v
		st=$(awk -v m="$1" 'BEGIN {print (m >= 70) ? "met" : "below"}')
		record "key: W8A8 TOPS vs cuBLAS, M>=2048" "$st" 0 "min $1%, median $2% of cuBLAS int8 over $3 shapes (target >= 70%)"
	else
		record "key: W8A8 TOPS vs cuBLAS, M>=2048" missing 0 "no BenchmarkGemmW8A8 results in bench.log"
	fi
	# Weight-only int8 GEMV at T 1 vs copy bandwidth at the XL shapes.
	v=$(bench_metric "$log" '^BenchmarkGemvWeightOnly/(N6400_K1600|N1600_K6400)(-[0-9]+)?$' pct_of_copy | awk '{sub(/.*\//, "", $1); printf "%s %.1f%%, ", $1, $2}')
	if [ -n "$v" ]; then
		st=$(bench_metric "$log" '^BenchmarkGemvWeightOnly/(N6400_K1600|N1600_K6400)(-[0-9]+)?$' pct_of_copy | awk 'BEGIN {s = "met"} $2 < 75 {s = "below"} END {print s}')
		record "key: GEMV GB/s vs copy, XL shapes" "$st" 0 "${v}of $(bench_metric "$log" '^BenchmarkCopyDevice(-[0-9]+)?$' copy_GB/s | awk '{printf "%.0f", $2}') GB/s copy (target >= 75%)"
	else
		record "key: GEMV GB/s vs copy, XL shapes" missing 0 "no BenchmarkGemvWeightOnly results in bench.log"
	fi
	# Quantizing every matrix of GPT-2 XL on the device.
	v=$(paste -d' ' <(bench_metric "$log" '^BenchmarkQuantizeXL/' ms) <(bench_metric "$log" '^BenchmarkQuantizeXL/' pct_of_copy) \
		<(bench_metric "$log" '^BenchmarkQuantizeXL/' product_ms) | awk '{sub(/.*\//, "", $1); printf "%s%s %.1f ms (%.0f%% of copy; product path %.0f ms)", (NR > 1 ? "; " : ""), $1, $2, $4, $6}')
	if [ -n "$v" ]; then
		record "key: quantize GPT-2 XL on device" ok 0 "$v"
	else
		record "key: quantize GPT-2 XL on device" missing 0 "no BenchmarkQuantizeXL results in bench.log"
	fi
}

# e2e_keys: issue 5's targets from gpuquant.jsonl (and the copy bandwidth of bench.log for the
# decode roofline), one summary row each: "met", "below" or "missing".
e2e_keys() {
	local copy
	copy=$(bench_metric "$OUT/bench.log" '^BenchmarkCopyDevice(-[0-9]+)?$' copy_GB/s | awk '{print $2}' | head -1)
	[ -s "$OUT/gpuquant.jsonl" ] || { record "key: end-to-end targets" missing 0 "no gpuquant.jsonl"; return; }
	while IFS='|' read -r name st key; do
		record "$name" "$st" 0 "$key"
	done < <(python3 - "$OUT/gpuquant.jsonl" "${copy:-0}" "$phase" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
copy_gbps, phase = float(sys.argv[2]), sys.argv[3]
def ours(preset, phase, case):
    for r in rows:
        if r.get("engine") == "gpuquant" and (r.get("preset"), r.get("phase"), r.get("case")) == (preset, phase, case):
            return r
def hf(preset, dtype):
    for r in rows:
        if r.get("engine") == "hf-transformers" and r.get("preset") == preset and r.get("dtype") == dtype:
            return r
def out(name, ok, text, have_all=True):
    # "incomplete": what was measured meets its targets, but a comparison is missing.
    st = "missing" if ok is None else ("below" if not ok else ("met" if have_all else "incomplete"))
    if ok is None and (phase, "XL" in name) in (("1", True), ("2", False)):
        st = "phase %s" % ("2" if phase == "1" else "1")  # the other call measures it
    print("%s|%s|%s" % (name, st, text))
def val(r, k):
    return None if r is None else r.get(k)
i8, hf32 = ours("gpt2", "decode", "int8"), hf("gpt2", "fp32")
d, h = val(i8, "decode_tokens_per_s"), val(hf32, "decode_tokens_per_s")
out("key: 124M int8 decode", None if d is None else (d >= 3000 and (h is None or d >= 10 * h)),
    "%s tok/s (target >= 3000, stretch 5000); HF fp32 %s tok/s: %s (target >= 10x)" % (
        "%.0f" % d if d else "-", "%.0f" % h if h else "-", "%.1fx" % (d / h) if d and h else "-"), h is not None)
x8, x16 = ours("gpt2-xl", "decode", "int8"), ours("gpt2-xl", "decode", "fp16")
d, f = val(x8, "decode_tokens_per_s"), val(x16, "decode_tokens_per_s")
roof = copy_gbps * 1e9 / x8["model_bytes"] if x8 and copy_gbps > 0 else None
out("key: XL int8 decode", None if d is None else (d >= 1300 and (roof is None or d >= 0.6 * roof) and (f is None or d >= 1.6 * f)),
    "%s tok/s (target >= 1300); roofline %s tok/s (weights / %.0f GB/s copy): %s (target >= 60%%); our fp16 %s: %s (target >= 1.6x)" % (
        "%.0f" % d if d else "-", "%.0f" % roof if roof else "-", copy_gbps, "%.0f%%" % (100 * d / roof) if d and roof else "-",
        "%.0f" % f if f else "-", "%.2fx" % (d / f) if d and f else "-"), roof is not None and f is not None)
w, p16, h16 = ours("gpt2-xl", "prefill", "w8a8"), ours("gpt2-xl", "prefill", "fp16"), hf("gpt2-xl", "fp16")
a, b, c = val(w, "prefill_tokens_per_s"), val(p16, "prefill_tokens_per_s"), val(h16, "prefill_tokens_per_s")
out("key: XL W8A8 prefill (1024)", None if a is None or b is None else (a >= 1.4 * b and (c is None or a >= 1.5 * c)),
    "%s tok/s; our fp16 %s: %s (target >= 1.4x); HF fp16 %s: %s (target >= 1.5x)" % (
        "%.0f" % a if a else "-", "%.0f" % b if b else "-", "%.2fx" % (a / b) if a and b else "-",
        "%.0f" % c if c else "-", "%.2fx" % (a / c) if a and c else "-"), c is not None)
for r in rows:  # where the time goes (--op-times runs)
    t = r.get("op_times")
    if r.get("engine") == "gpuquant" and t:
        total = sum(v["seconds"] for v in t.values()) or 1
        top = sorted(t.items(), key=lambda kv: -kv[1]["seconds"])[:5]
        print("key: kernel time, %s %s %s|ok|%s" % (r["preset"], r["phase"][2:], r["case"], ", ".join(
            "%s %.0f%% (%.0f us x %d)" % (k, 100 * v["seconds"] / total, 1e6 * v["seconds"] / v["calls"], v["calls"]) for k, v in top)))
m8, m32 = val(x8, "model_bytes"), val(ours("gpt2-xl", "decode", "fp32"), "model_bytes")
out("key: XL int8 device weights", None if m8 is None else m8 <= 1.7e9,
    "%s GB int8 (target <= 1.7 GB); fp32 %s GB; device peak %s GB (our allocator)" % (
        "%.3f" % (m8 / 1e9) if m8 else "-", "%.3f" % (m32 / 1e9) if m32 else "-",
        "%.3f" % (x8["device_peak_bytes"] / 1e9) if x8 and x8.get("device_peak_bytes") else "-"))
PY
)
}

# perf_table: every kerneltest microbenchmark line as a row of its metrics.
perf_table() {
	[ -f "$OUT/bench.log" ] || return 0
	echo "| microbenchmark | metrics |"
	echo "|---|---|"
	awk '$1 ~ /^Benchmark(CopyDevice|GemmW8A8|GemvWeightOnly|QuantizeXL)/ && $3 != "" {
		n = $1; sub(/-[0-9]+$/, "", n); m = ""
		for (i = 3; i < NF; i += 2) if ($(i + 1) != "ns/op" && $(i + 1) != "B/op" && $(i + 1) != "allocs/op") m = m sprintf("%s %s, ", $i, $(i + 1))
		sub(/, $/, "", m); printf "| %s | %s |\n", n, m }' "$OUT/bench.log"
}
key_json() { # prefill and decode tokens/s of the bench step's JSON ($tmp/last.json), without python
	awk '{ gsub(/[ ",]/, ""); split($0, kv, ":"); v[kv[1]] = kv[2] }
		END { printf "prefill %.0f tok/s, decode %.1f tok/s, weights %.0f MB", v["prefill_tokens_per_s"], v["decode_tokens_per_s"], v["model_bytes"] / 1e6 }' "$tmp/last.json"
}
key_hf() { # the baseline's decode and prefill tokens/s per dtype
	python3 -c 'import json,sys; print(", ".join("%s decode %.0f prefill %.0f tok/s" % (r["dtype"], r["decode_tokens_per_s"], r["prefill_tokens_per_s"]) for r in map(json.loads, filter(lambda l: l.startswith("{"), open(sys.argv[1])))))' "$tmp/last.json"
}

# Tools and libraries of the GPU machine.
for d in /usr/local/cuda/bin /usr/local/cuda/compute-sanitizer; do
	[ -d "$d" ] && PATH=$PATH:$d
done
# Not emulated: the emulated driver must stay first on LD_LIBRARY_PATH (cuBLAS needs NVIDIA's).
if [ "$dry" = 0 ] && [ "$emulated" = 0 ] && [ -z "${GPUQUANT_CUBLAS:-}" ]; then
	# cuBLAS is opened with dlopen (package cuda); point it at the machine's libcublas.so.N.
	lib=$(find /usr/local/cuda*/ /usr/lib/x86_64-linux-gnu /opt -maxdepth 9 -name 'libcublas.so.[0-9]*' 2>/dev/null | sort -V | tail -1)
	if [ -n "$lib" ]; then
		export GPUQUANT_CUBLAS=$lib
		export LD_LIBRARY_PATH=$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	fi
fi
export GOTRACEBACK=all

echo "== device-check in $here, logs in $OUT, deadline ${DEADLINE}s$([ "$dry" = 1 ] && echo ', DRY RUN')"
echo "== cuBLAS: ${GPUQUANT_CUBLAS:-not searched (dry run) or not found}"

# 0. The bundle's layout.
tests=()
for f in *.test; do
	[ -e "$f" ] && tests+=("$f")
done
layout_ok=ok
for f in "${tests[@]}" gpuquant device-check.sh; do
	if [ ! -e "$f" ]; then
		echo "layout: $f missing"
		[ "$f" = device-check.sh ] && layout_ok="FAIL rc=1"
		continue
	fi
	if [ ! -x "$f" ]; then
		echo "layout: $f is not executable"
		layout_ok="FAIL rc=1"
	fi
	desc=$(file -b "$f" 2>/dev/null | cut -c1-60)
	printf 'layout: %-22s %8s KiB  %s\n' "$f" $(($(stat -c %s "$f") / 1024)) "$desc"
	case "$f" in *.sh) continue ;; esac
	if command -v file >/dev/null && ! file -b "$f" | grep -q 'ELF 64-bit.*x86-64'; then
		echo "layout: $f is not an x86-64 ELF binary"
		layout_ok="FAIL rc=1"
	fi
	if nf=$(ldd "$f" 2>/dev/null | grep 'not found' | grep -v libcuda); [ -n "$nf" ]; then
		echo "layout: $f has unresolved libraries: $nf"
		layout_ok="FAIL rc=1"
	fi
done
total_kib=$(du -sk --apparent-size . | cut -f1)
echo "layout: ${#tests[@]} test binaries: ${tests[*]:-none}; bundle ${total_kib} KiB (limit 65536 KiB)"
[ "$total_kib" -ge 65536 ] && layout_ok="FAIL rc=1"
record layout "$layout_ok" 0 "${#tests[@]} test binaries, $((total_kib / 1024)) MiB"

# 1. The card.
if [ "$dry" = 1 ]; then
	echo "would run: nvidia-smi; nvidia-smi --query-gpu=... --format=csv"
	record nvidia-smi dry-run 0 ""
elif command -v nvidia-smi >/dev/null; then
	nvidia-smi
	rc=$?
	q=$(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader 2>&1 | head -1)
	echo "$q"
	if [ $rc = 0 ]; then record nvidia-smi ok 0 "$q"; else record nvidia-smi "FAIL rc=$rc" 0 "${q:0:80}"; fi
else
	missing nvidia-smi "not on PATH"
fi

# The tests, each binary in full (kerneltest.test: every kernel against its CPU twin, with the
# GPT-2 XL sizes unless emulated; its last line reads "gpu kernels: N passed, N failed").
run_tests() {
	local t n
	for t in kerneltest.test gpu.test cuda.test kernels.test "${tests[@]}"; do
		n=${t%.test}
		case " ${done_tests:-} " in *" $t "*) continue ;; esac
		done_tests="${done_tests:-} $t"
		if [ -x "$t" ]; then
			step "test $n" 150 "$OUT/tests.log" key_tests "./$t" -test.v -test.timeout 140s "${SHORT[@]}"
		else
			missing "test $n" "$t not in bundle"
		fi
	done
}

# compute-sanitizer (memcheck) on short subsets: kerneltest's kernel-vs-twin tests without the XL
# sizes (-test.short), and cuda's launch and copy tests (a trap test runs in a child process and
# is excluded).
run_sanitizer() {
	local spec t run
	if [ "$emulated" = 1 ]; then
		record sanitizer skipped 0 "emulated: compute-sanitizer needs a GPU"
		return
	fi
	if ! command -v compute-sanitizer >/dev/null && [ "$dry" != 1 ]; then
		missing sanitizer "compute-sanitizer not on PATH"
		return
	fi
	for spec in "kerneltest.test:^Test(QuantizeMatchesCPU|QuantizeNonFinite|QuantizeActs|GemvWeightOnly|GemmW8A8|LinearFloatActivations|GemmF16|GemmF16RoundsActivations|Embed|LayerNorm|Add|GELU|Attention|NLL|GuardedDeviceCatchesOverrun)$" \
		"gpu.test:^Test(ForwardMatchesCPU|StepsSurviveBufferGrowth)$" \
		"cuda.test:LaunchAxpb|LaunchPacks|GraphCapture|CopyRoundTrip"; do
		t=${spec%%:*} run=${spec#*:}
		if [ -x "$t" ]; then
			step "sanitizer ${t%.test}" 120 "$OUT/sanitizer.log" key_sanitizer \
				compute-sanitizer --tool memcheck --error-exitcode 99 "./$t" -test.run "$run" -test.short -test.v
		else
			missing "sanitizer ${t%.test}" "$t not in bundle"
		fi
	done
}

# Microbenchmarks: kerneltest's (names in bench_cuda_test.go; each times every input set 5 times
# and reports medians, about a minute in all), then every other binary's with the default 1s.
run_microbench() {
	local t list
	local KT_BENCH='^Benchmark(CopyDevice|GemmW8A8|GemvWeightOnly|QuantizeXL)$'
	if [ -x kerneltest.test ]; then
		step "bench kerneltest" 240 "$OUT/bench.log" key_bench ./kerneltest.test -test.run '^$' -test.bench "$KT_BENCH" -test.benchtime "${BENCHTIME:-5x}" -test.timeout 230s "${SHORT[@]}"
	else
		missing "bench kerneltest" "kerneltest.test not in bundle"
	fi
	for t in "${tests[@]}"; do
		[ "$t" = kerneltest.test ] && continue
		# Listing runs the binary's init: if that fails, run the step anyway so the failure shows.
		if [ "$dry" = 1 ] || ! list=$(./"$t" -test.list '^Benchmark' 2>&1) || grep -q '^Benchmark' <<<"$list"; then
			step "bench ${t%.test}" 90 "$OUT/bench.log" key_bench "./$t" -test.run '^$' -test.bench . -test.benchtime "${BENCHTIME:-1s}" -test.benchmem "${SHORT[@]}"
		else
			record "bench ${t%.test}" skipped 0 "no benchmarks"
		fi
	done
}

# End to end (the GPU issues' targets): synthetic models made here by the bundled gpuquant, in
# Hugging Face layout. `gpuquant bench --device cuda:0 --json` per scheme: decoding (128-token
# prompt, 128 new tokens, medians of 3) and prefill (one 1024-token window); the Hugging Face
# transformers baseline on the same folders with this machine's PyTorch (hf_baseline.py: fp32 and
# fp16 `generate` with its KV cache, and a 1024-token perplexity pass); `gpuquant run --device
# cuda:0` once on 124M. Every result is one JSON line in gpuquant.jsonl with "case" added; the key
# rows of the summary are computed from it.
if [ "$emulated" = 1 ]; then # the emulator runs a tiny model at about a token a second
	DECODE_ARGS="--prompt-tokens 16 --new-tokens 4 --repeat 1"
	PREFILL_ARGS="--prompt-tokens 32 --new-tokens 0 --repeat 1"
	OPDECODE_ARGS="--prompt-tokens 16 --new-tokens 2 --repeat 1 --op-times"
	OPPREFILL_ARGS="--prompt-tokens 32 --new-tokens 0 --repeat 1 --op-times"
	RUN_ARGS="--max-new-tokens 4 --max-tokens 128"
else
	DECODE_ARGS="--prompt-tokens 128 --new-tokens 128 --repeat 3"
	PREFILL_ARGS="--prompt-tokens 1024 --new-tokens 0 --repeat 3"
	# --op-times: every kernel waited for and timed (no graphs): where the time goes, not speed.
	OPDECODE_ARGS="--prompt-tokens 128 --new-tokens 32 --repeat 1 --op-times"
	OPPREFILL_ARGS="--prompt-tokens 1024 --new-tokens 0 --repeat 1 --op-times"
	RUN_ARGS="--max-new-tokens 32 --max-tokens 2048"
fi
# case label → preset, phase, scheme flags
e2e_cases() {
	# Ordered by what the targets need, in case the deadline cuts the list.
	cat <<'CASES'
gpt2 decode int8 --scheme absmax --bits 8
gpt2 prefill w8a8 --scheme absmax --bits 8 --kernel w8a8
gpt2 decode int4-g32 --scheme absmax --bits 4 --granularity group:32
gpt2 decode fp16 --scheme fp16
gpt2 decode fp32 --scheme fp32
gpt2 opdecode int8 --scheme absmax --bits 8
gpt2-xl decode int8 --scheme absmax --bits 8
gpt2-xl decode fp16 --scheme fp16
gpt2-xl prefill w8a8 --scheme absmax --bits 8 --kernel w8a8
gpt2-xl prefill fp16 --scheme fp16
gpt2-xl decode fp32 --scheme fp32
gpt2-xl opdecode int8 --scheme absmax --bits 8
gpt2-xl opprefill w8a8 --scheme absmax --bits 8 --kernel w8a8
gpt2-xl opprefill fp16 --scheme fp16
gpt2-xl prefill int8 --scheme absmax --bits 8
tiny decode int8 --scheme absmax --bits 8
tiny prefill w8a8 --scheme absmax --bits 8 --kernel w8a8
tiny decode fp16 --scheme fp16
tiny decode fp32 --scheme fp32
tiny opdecode int8 --scheme absmax --bits 8
CASES
}
# append_json FILE KEY=VALUE...: FILE's JSON (one indented object, as `gpuquant bench --json`
# prints, or one object a line, as hf_baseline.py does) as lines of gpuquant.jsonl, KEY=VALUE
# added to each. No python: the lent machine and CI may lack it.
append_json() {
	local f=$1 extra="" kv
	shift
	[ -s "$f" ] || return 0
	# Added last: in JSON the last of two equal keys wins, and bench's own "preset" is the
	# quantization preset, not the model's.
	for kv in "$@"; do extra+=",\"${kv%%=*}\":\"${kv#*=}\""; done
	if [ "$(head -n 1 "$f")" = "{" ]; then
		tr -d '\n' <"$f"
		echo
	else
		grep '^{' "$f"
	fi | sed "s/}[[:space:]]*\$/$extra}/" >>"$OUT/gpuquant.jsonl"
}

# e2e_setup makes the scratch folder and checks on a tiny model that the CUDA forward pass works
# at all (seconds), before synthesizing GPT-2 XL would burn the device budget.
e2e_ok=0
e2e_setup() {
	[ -n "${tmp:-}" ] && return
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/gpuquant-check.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	if [ ! -x gpuquant ]; then
		missing "gpuquant" "gpuquant not in bundle"
		return
	fi
	if [ "$dry" != 1 ] && ! { ./gpuquant synth --preset tiny --out "$tmp/probe" >>"$OUT/gpuquant.log" 2>&1 &&
		./gpuquant bench --model "$tmp/probe" --device cuda:0 --prompt-tokens 8 --new-tokens 2 --repeat 1 >>"$OUT/gpuquant.log" 2>&1; }; then
		record "gpuquant on cuda:0" "FAIL rc=1" 0 "$(tail -n 1 "$OUT/gpuquant.log" | cut -c1-120)"
		return
	fi
	e2e_ok=1
	hf=0
	if [ -f hf_baseline.py ] && { [ "$dry" = 1 ] || python3 -c 'import torch, transformers' >/dev/null 2>&1; }; then hf=1; fi
}

# e2e_preset PRESET: synthesize it, run its bench cases, the HF baseline and (124M, tiny) `run`.
e2e_preset() {
	local preset=$1 p ph label flags args hf_dtypes
	e2e_setup
	[ "$e2e_ok" = 1 ] || { record "e2e $preset" skipped 0 "no working CUDA forward pass"; return; }
	step "synth $preset" 180 "$OUT/gpuquant.log" key_none ./gpuquant synth --preset "$preset" --out "$tmp/$preset"
	if [ "$dry" != 1 ] && [ ! -d "$tmp/$preset" ]; then
		record "e2e $preset" skipped 0 "no synthesized model"
		return
	fi
	while read -r p ph label flags; do
		[ "$p" = "$preset" ] || continue
		case $ph in
		prefill) args=$PREFILL_ARGS ;;
		opdecode) args=$OPDECODE_ARGS ;;
		opprefill) args=$OPPREFILL_ARGS ;;
		*) args=$DECODE_ARGS ;;
		esac
		rm -f "$tmp/last.json"
		step "bench $preset $ph $label" 90 "$OUT/gpuquant.log" key_json \
			sh -c "./gpuquant bench --model '$tmp/$preset' --device cuda:0 $flags $args --json >'$tmp/last.json' && cat '$tmp/last.json'"
		append_json "$tmp/last.json" engine=gpuquant preset="$preset" phase="$ph" case="$label"
	done < <(e2e_cases)
	if [ "$hf" = 1 ] && [ "$emulated" = 0 ]; then
		hf_dtypes=fp32,fp16 # the 124M target is against HF fp32, the XL ones against HF fp16
		[ "$preset" = gpt2-xl ] && hf_dtypes=fp16
		rm -f "$tmp/last.json"
		step "hf baseline $preset" 240 "$OUT/gpuquant.log" key_hf \
			sh -c "python3 hf_baseline.py --model '$tmp/$preset' --device cuda:0 --dtypes $hf_dtypes --prompt-tokens 128 --new-tokens 128 --repeat 3 --ppl-tokens 2048 >'$tmp/last.json' && cat '$tmp/last.json'"
		append_json "$tmp/last.json" engine=hf-transformers preset="$preset"
	else
		record "hf baseline $preset" missing 0 "$([ "$emulated" = 1 ] && echo "emulated: no GPU for PyTorch" || echo "hf_baseline.py or python3 torch+transformers missing")"
	fi
	if [ "$preset" != gpt2-xl ]; then
		step "run $preset cuda:0" 120 "$OUT/gpuquant.log" key_none \
			./gpuquant run --model "$tmp/$preset" --device cuda:0 $RUN_ARGS --out "$tmp/run-report"
	fi
	rm -rf "${tmp:?}/$preset"
}

# The steps, most valuable first: correctness, the sanitizer, 124M end to end (phase 1); the
# microbenchmarks and GPT-2 XL (phase 2).
if in_phase 1; then
	run_tests
	run_sanitizer
	for preset in $PRESETS; do
		[ "$preset" = gpt2-xl ] || e2e_preset "$preset"
	done
fi
if in_phase 2; then
	run_microbench
	for preset in $PRESETS; do
		[ "$preset" = gpt2-xl ] && e2e_preset "$preset"
	done
fi

# The key numbers of the microbenchmarks, and the summary, last.
if [ "$dry" = 1 ]; then
	echo "would add the key numbers of $OUT/bench.log: W8A8 % of cuBLAS at M>=2048, GEMV % of copy at XL, XL quantize ms"
else
	if in_phase 2; then
		perf_keys
	else
		record "key: microbenchmark targets" "phase 2" 0 "W8A8 vs cuBLAS, GEMV vs copy, XL quantize: run --phase 2"
	fi
	if [ "$have_python" = 1 ]; then
		e2e_keys
	else
		record "key: end-to-end targets" missing 0 "python3 not found"
	fi
fi
{
	echo "## device-check summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(elapsed)s, phase $phase$([ "$emulated" = 1 ] && echo ', emulated driver'))"
	echo
	echo "| step | status | seconds | key number |"
	echo "|---|---|---:|---|"
	for i in "${!names[@]}"; do
		echo "| ${names[$i]} | ${statuses[$i]} | ${secs[$i]} | ${keys[$i]} |"
	done
	if [ "$dry" = 0 ] && grep -q '^Benchmark' "$OUT/bench.log" 2>/dev/null; then
		echo
		perf_table
	fi
} >"$OUT/summary.md"
echo
echo "SUMMARY"
cat "$OUT/summary.md"
exit $failed
