#!/usr/bin/env bash
# bench-cloud.sh [--dry-run] [--no-build] [--bin PATH] [--no-hf] [--text FILE]
#
# Takes a fresh GPU box (Go and the CUDA toolkit installed, this repository cloned) to a results
# table:
#   1. checks the tools: go, nvcc and nvidia-smi (go only when DEVICES has no cuda device);
#   2. builds: `make cuda` → ./gpuquant-cuda (`go build -o gpuquant .` for a CPU-only DEVICES);
#      --no-build uses the binary already there, --bin PATH a given one;
#   3. models: `gpuquant synth --preset P --out models/synth-P` for each P in MODELS (made once,
#      reused after), or with FETCH=1 the real weights by scripts/fetch-gpt2.sh into models/P;
#   4. `gpuquant bench --json` on every model × device × scheme (fp16 only on cuda devices); a
#      model whose context is shorter than PROMPT + NEW is benchmarked with both scaled to fit;
#   5. scripts/hf_baseline.py (Hugging Face transformers, fp32 and on cuda fp16) on every model ×
#      device, when a python3 with torch and transformers is found (HF=auto) or required (HF=1);
#   6. writes bench/results/<gpu-name-slug>-<YYYY-MM-DD>.json (an array: a header object, then
#      every result object) and the same name .md (a table), each atomically (temp file + mv). On
#      a CPU-only run the name is cpu-<CPU model or host>. bench/results/README.md has the schema.
# A failed benchmark is recorded in the header's "failures" and the table, and the run goes on;
# the exit status is then 1. --dry-run prints the plan and runs nothing.
#
# Environment (defaults): MODELS ("gpt2 gpt2-xl"; presets tiny gpt2 gpt2-medium gpt2-large
# gpt2-xl), SCHEMES ("fp32 fp16 absmax absmax-w8a8 zeropoint absmax-int4"), DEVICES ("cuda:0";
# e.g. "cuda:0 cpu"), PROMPT (128), NEW (128), REPEAT (3), FETCH (0), HF (auto, 0 or 1), PYTHON
# (a python3 for the baseline; else python3, then /usr/bin/python3, whichever has torch and
# transformers), TEXT (perplexity text for the baseline; default random token ids), RESULTS
# (bench/results), BENCH_TIMEOUT (seconds per benchmark, 1800), JSON_TOOL (jq or python3; default
# jq when installed).
#
# The schemes, as gpuquant bench flags:
#   fp32          --scheme fp32
#   fp16          --scheme fp16                                       (cuda only)
#   absmax        --scheme absmax --bits 8 --granularity channel --kernel weight-only
#   absmax-w8a8   --scheme absmax --bits 8 --granularity channel --kernel w8a8
#   zeropoint     --scheme zeropoint --bits 8 --granularity channel --kernel weight-only
#   absmax-int4   --scheme absmax --bits 4 --granularity group:32 --kernel weight-only
set -euo pipefail

usage() {
	cat >&2 <<EOF
usage: $0 [--dry-run] [--no-build] [--bin PATH] [--no-hf] [--text FILE]
  env: MODELS="gpt2 gpt2-xl" SCHEMES="fp32 fp16 absmax absmax-w8a8 zeropoint absmax-int4"
       DEVICES="cuda:0" PROMPT=128 NEW=128 REPEAT=3 FETCH=0 HF=auto PYTHON= TEXT= RESULTS=bench/results
  e.g. (no GPU needed): DEVICES=cpu MODELS=tiny SCHEMES="fp32 absmax" $0 --no-build
  (the comment at the top of this script says what each step does)
EOF
	exit 2
}
die() { echo "$0: $*" >&2; exit 2; }
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh" # have, q

cd "$(dirname "$0")/.."
dry=0 build=1 bin="" hf=${HF:-auto} text=${TEXT:-}
while [ $# -gt 0 ]; do
	case "$1" in
	--dry-run) dry=1 ;;
	--no-build) build=0 ;;
	--no-hf) hf=0 ;;
	--bin | --text)
		[ $# -ge 2 ] || { echo "$0: $1 needs a value" >&2; usage; }
		if [ "$1" = --bin ]; then bin=$2 build=0; else text=$2; fi
		shift
		;;
	-h | --help) usage ;;
	*) echo "$0: unknown argument '$1'" >&2; usage ;;
	esac
	shift
done

read -r -a models <<<"${MODELS:-gpt2 gpt2-xl}"
read -r -a schemes <<<"${SCHEMES:-fp32 fp16 absmax absmax-w8a8 zeropoint absmax-int4}"
read -r -a devices <<<"${DEVICES:-cuda:0}"
prompt=${PROMPT:-128} new=${NEW:-128} repeat=${REPEAT:-3} fetch=${FETCH:-0}
results=${RESULTS:-bench/results} bench_timeout=${BENCH_TIMEOUT:-1800}
for v in prompt new repeat bench_timeout; do
	[[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, not '${!v}'"
done
if [ ${#models[@]} -eq 0 ] || [ ${#schemes[@]} -eq 0 ] || [ ${#devices[@]} -eq 0 ]; then
	die "MODELS, SCHEMES and DEVICES must not be empty"
fi
case "$hf" in auto | 0 | 1) ;; *) die "HF must be auto, 0 or 1, not '$hf'" ;; esac
case "$fetch" in 0 | 1) ;; *) die "FETCH must be 0 or 1, not '$fetch'" ;; esac
[ -z "$text" ] || [ -f "$text" ] || die "--text $text: no such file"

# scheme_flags LABEL: the bench flags of a scheme label (see the table above).
scheme_flags() {
	case "$1" in
	fp32) echo "--scheme fp32" ;;
	fp16) echo "--scheme fp16" ;;
	absmax) echo "--scheme absmax --bits 8 --granularity channel --kernel weight-only" ;;
	absmax-w8a8) echo "--scheme absmax --bits 8 --granularity channel --kernel w8a8" ;;
	zeropoint) echo "--scheme zeropoint --bits 8 --granularity channel --kernel weight-only" ;;
	absmax-int4) echo "--scheme absmax --bits 4 --granularity group:32 --kernel weight-only" ;;
	*) return 1 ;;
	esac
}
for s in "${schemes[@]}"; do
	scheme_flags "$s" >/dev/null || die "unknown scheme '$s' in SCHEMES (want fp32 fp16 absmax absmax-w8a8 zeropoint absmax-int4)"
done
for m in "${models[@]}"; do
	case "$m" in
	tiny) [ "$fetch" = 1 ] && die "FETCH=1: there are no real weights of the 'tiny' preset" ;;
	gpt2 | gpt2-medium | gpt2-large | gpt2-xl) ;;
	*) die "unknown model preset '$m' in MODELS (want tiny gpt2 gpt2-medium gpt2-large gpt2-xl)" ;;
	esac
done
cuda=0 gpu_index=""
for d in "${devices[@]}"; do
	case "$d" in
	cpu) ;;
	cuda:[0-9]*)
		cuda=1
		[ -n "$gpu_index" ] || gpu_index=${d#cuda:}
		;;
	*) die "unknown device '$d' in DEVICES (want cpu or cuda:N)" ;;
	esac
done

# --- JSON helpers: jq where it is installed, else python3 ------------------------------------------
json_tool=${JSON_TOOL:-}
if [ -z "$json_tool" ]; then
	if have jq; then json_tool=jq; elif have python3; then json_tool=python3; else die "needs jq or python3 to read JSON"; fi
fi
case "$json_tool" in jq | python3) have "$json_tool" || die "JSON_TOOL=$json_tool is not installed" ;; *) die "JSON_TOOL must be jq or python3" ;; esac

# json_obj KEY=STRING | KEY:=JSON ...: one JSON object.
json_obj() {
	if [ "$json_tool" = jq ]; then
		local a=()
		for kv in "$@"; do
			case "$kv" in
			*:=*) a+=(--argjson "${kv%%:=*}" "${kv#*:=}") ;;
			*) a+=(--arg "${kv%%=*}" "${kv#*=}") ;;
			esac
		done
		jq -cn '$ARGS.named' "${a[@]}"
	else
		python3 -c 'import json, sys
o = {}
for kv in sys.argv[1:]:
    k, sep, v = kv.partition("=")
    if k.endswith(":"):
        o[k[:-1]] = json.loads(v)
    else:
        o[k] = v
print(json.dumps(o, separators=(",", ":")))' "$@"
	fi
}

# json_merge FILE EXTRA_JSON: each JSON object in FILE (one, or one a line) with EXTRA's keys added,
# one a line; fails if FILE holds anything but objects.
json_merge() {
	if [ "$json_tool" = jq ]; then
		jq -ce --argjson x "$2" 'if type == "object" then . + $x else error("not a JSON object") end' "$1"
	else
		python3 -c 'import json, sys
x = json.loads(sys.argv[2])
text = open(sys.argv[1]).read()
dec, i, n = json.JSONDecoder(), 0, 0
while True:
    while i < len(text) and text[i].isspace():
        i += 1
    if i == len(text):
        break
    o, i = dec.raw_decode(text, i)
    if not isinstance(o, dict):
        sys.exit("not a JSON object")
    o.update(x)
    print(json.dumps(o, separators=(",", ":")))
    n += 1
sys.exit(0 if n else "no JSON object")' "$1" "$2"
	fi
}

# json_get FILE KEY: the value of KEY of the object in FILE, or — when it is missing or null.
json_get() {
	local v
	if [ "$json_tool" = jq ]; then
		v=$(jq -r --arg k "$2" '.[$k] // "—" | tostring' "$1" 2>/dev/null) || v="—"
	else
		v=$(python3 -c 'import json, sys
v = json.load(open(sys.argv[1])).get(sys.argv[2])
print("—" if v is None else v)' "$1" "$2" 2>/dev/null) || v="—"
	fi
	echo "${v:-—}"
}

# json_write HEADER ROWS OUT_JSON: [HEADER, each line of ROWS] as one JSON array.
json_write() {
	if [ "$json_tool" = jq ]; then
		jq -s --argjson h "$1" '[$h] + .' "$2" >"$3"
	else
		python3 -c 'import json, sys
rows = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
with open(sys.argv[3], "w") as f:
    json.dump([json.loads(sys.argv[1])] + rows, f, indent=2)
    f.write("\n")' "$1" "$2" "$3"
	fi
}

# md_rows ROWS: one table row per result line. Bytes in MB (10^6), tokens/s with no decimals from
# 100 up, else one; a missing field prints —.
md_rows() {
	if [ "$json_tool" = jq ]; then
		jq -r 'def mb: if type == "number" then ((. / 1e5 | round) / 10 | tostring | if test("\\.") then . else . + ".0" end) + " MB" else "—" end;
			def tps: if type != "number" then "—" elif . >= 100 then (round | tostring)
				else ((. * 10 | round) / 10 | tostring | if test("\\.") then . else . + ".0" end) end;
			def scheme: if .record == "hf-baseline" then "HF transformers \(.dtype)"
				elif (.scheme == "fp32" or .scheme == "fp16") then .scheme
				else "\(.scheme) int\(.bits) \(.granularity) \(.kernel)" end;
			"| \(.model_name // .model) | \(scheme) | \(.device) | \(.model_bytes | mb) | \(.device_weight_bytes | mb) | \(.prefill_tokens_per_s | tps) | \(.decode_tokens_per_s | tps) |"' "$1"
	else
		python3 -c 'import json, math, sys
def up(v):  # halves away from zero, as jq rounds
    return int(math.floor(v + 0.5))
def mb(v):
    return "%.1f MB" % (up(v / 1e5) / 10) if isinstance(v, (int, float)) else "—"
def tps(v):
    if not isinstance(v, (int, float)):
        return "—"
    return "%d" % up(v) if v >= 100 else "%.1f" % (up(v * 10) / 10)
for l in open(sys.argv[1]):
    if not l.strip():
        continue
    r = json.loads(l)
    if r.get("record") == "hf-baseline":
        s = "HF transformers %s" % r.get("dtype")
    elif r.get("scheme") in ("fp32", "fp16"):
        s = r["scheme"]
    else:
        s = "%s int%s %s %s" % (r.get("scheme"), r.get("bits"), r.get("granularity"), r.get("kernel"))
    print("| %s | %s | %s | %s | %s | %s | %s |" % (r.get("model_name") or r.get("model"), s, r.get("device"),
        mb(r.get("model_bytes")), mb(r.get("device_weight_bytes")), tps(r.get("prefill_tokens_per_s")), tps(r.get("decode_tokens_per_s"))))' "$1"
	fi
}

# json_field FILE KEY: a top-level number or string of a JSON file (config.json), or nothing.
json_field() {
	if [ "$json_tool" = jq ]; then
		jq -r --arg k "$2" '.[$k] // empty' "$1" 2>/dev/null || true
	else
		python3 -c 'import json, sys
v = json.load(open(sys.argv[1])).get(sys.argv[2])
print("" if v is None else v)' "$1" "$2" 2>/dev/null || true
	fi
}

# num VALUE: a number with no decimals, or VALUE as it is (—).
num() {
	if [[ "$1" =~ ^-?[0-9.]+([eE][-+]?[0-9]+)?$ ]]; then printf '%.0f' "$1"; else printf '%s' "$1"; fi
}

# run CMD...: runs CMD, or only prints it with --dry-run.
run() {
	if [ "$dry" = 1 ]; then
		echo "would run: $(q "$@")"
	else
		echo "+ $(q "$@")"
		"$@"
	fi
}

[ "$dry" = 1 ] && echo "== DRY RUN: nothing is built, made, benchmarked or written"
echo "== models: ${models[*]}; schemes: ${schemes[*]}; devices: ${devices[*]}; prompt $prompt, new $new, repeat $repeat; JSON via $json_tool"

# --- 1. Tools -------------------------------------------------------------------------------------
[ -d /usr/local/cuda/bin ] && PATH=$PATH:/usr/local/cuda/bin
missing=()
need=()
[ "$build" = 1 ] && need+=(go)
[ "$cuda" = 1 ] && need+=(nvidia-smi)
[ "$build" = 1 ] && [ "$cuda" = 1 ] && need+=(nvcc)
for t in "${need[@]}"; do
	have "$t" || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
	msg="missing: ${missing[*]} (go: https://go.dev/dl, Go 1.26; nvcc: the CUDA toolkit, often in /usr/local/cuda/bin; nvidia-smi: the NVIDIA driver)"
	if [ "$dry" = 1 ]; then echo "note: $msg"; else die "$msg"; fi
fi
have go && echo "go: $(go version)"
nvcc_version=""
have nvcc && nvcc_version=$(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p' | head -n 1) && echo "nvcc: ${nvcc_version:-unknown}"
gpu_name="" driver="" gpu_count=0
if [ "$cuda" = 1 ]; then
	if have nvidia-smi && smi=$(nvidia-smi -i "$gpu_index" --query-gpu=name,driver_version --format=csv,noheader 2>&1); then
		smi=$(head -n 1 <<<"$smi")
		gpu_name=${smi%%,*}
		driver=${smi#*,}
		driver=${driver# }
		gpu_count=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
		echo "gpu $gpu_index: $gpu_name, driver $driver ($gpu_count GPUs)"
	elif [ "$dry" = 1 ]; then
		echo "note: nvidia-smi cannot read GPU $gpu_index here: ${smi:-not installed}"
		gpu_name="unknown-gpu"
	else
		die "nvidia-smi cannot read GPU $gpu_index: ${smi:-}"
	fi
fi
cpu_model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1 || true)
host=$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname 2>/dev/null || echo unknown-host)
[ -n "$gpu_name" ] || gpu_name="cpu-${cpu_model:-$host}"
slug=$(tr '[:upper:]' '[:lower:]' <<<"$gpu_name" | sed 's/[^a-z0-9]\{1,\}/-/g; s/^-//; s/-$//')

# --- 2. Build -------------------------------------------------------------------------------------
if [ "$build" = 1 ]; then
	if [ "$cuda" = 1 ]; then
		bin=./gpuquant-cuda
		# make cuda = go build -tags cuda (cgo over the driver API; needs cuda.h and libcuda).
		if have make; then build_cmd=(make cuda); else build_cmd=(go build -tags cuda -o gpuquant-cuda .); fi
	else
		bin=./gpuquant
		build_cmd=(go build -o gpuquant .)
	fi
	if ! run "${build_cmd[@]}"; then
		die "build failed; if cuda.h or libcuda is not found, try CGO_CFLAGS=-I/usr/local/cuda/include CGO_LDFLAGS=-L/usr/local/cuda/lib64/stubs"
	fi
else
	if [ -z "$bin" ]; then
		if [ "$cuda" = 1 ]; then bin=./gpuquant-cuda; else bin=./gpuquant; fi
	fi
	if [ ! -x "$bin" ]; then
		msg="$bin is not an executable: build it ('make cuda', or 'go build -o gpuquant .' for the CPU) or pass --bin PATH"
		if [ "$dry" = 1 ]; then echo "note: $msg"; else die "$msg"; fi
	fi
fi

# --- 5 (checked first). The Hugging Face baseline's Python ---------------------------------------
py=""
if [ "$hf" != 0 ]; then
	for p in "${PYTHON:-}" python3 /usr/bin/python3; do
		if [ -z "$p" ] || ! have "$p"; then continue; fi
		if "$p" -c 'import torch, transformers' >/dev/null 2>&1; then
			py=$p
			break
		fi
	done
	if [ -n "$py" ]; then
		echo "hf baseline: $py ($("$py" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' 2>/dev/null))"
	elif [ "$hf" = 1 ]; then
		die "HF=1 but no python (PYTHON=${PYTHON:-unset}, python3, /usr/bin/python3) imports both torch and transformers"
	else
		echo "hf baseline: skipped (no python3 here imports both torch and transformers; set PYTHON=... or HF=0 to silence)"
	fi
fi

# --- 3. Models ------------------------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-cloud.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dirs=()
for m in "${models[@]}"; do
	if [ "$fetch" = 1 ]; then
		dir=models/$m
		# fetch-gpt2.sh resumes and verifies, and skips the files already complete.
		run scripts/fetch-gpt2.sh "$m" "$dir" || die "fetching $m failed (needs network access to huggingface.co)"
	else
		dir=models/synth-$m
		if [ -f "$dir/config.json" ] && [ -f "$dir/model.safetensors" ]; then
			echo "model $m: $dir (already there)"
		else
			run "$bin" synth --preset "$m" --out "$dir" --force || die "synth --preset $m failed"
		fi
	fi
	dirs+=("$dir")
done

# fit DIR: "PROMPT NEW" for DIR, scaled down when its context is shorter than PROMPT + NEW.
fit() {
	local n
	n=$([ -f "$1/config.json" ] && json_field "$1/config.json" n_positions)
	if [[ "$n" =~ ^[0-9]+$ ]] && [ $((prompt + new)) -gt "$n" ]; then
		local p=$((prompt < n / 2 ? prompt : n / 2))
		local w=$((new < n - p ? new : n - p))
		echo "note: $1 has a context of $n < $prompt + $new tokens: using $p prompt + $w new tokens for it" >&2
		echo "$p $w"
	else
		echo "$prompt $new"
	fi
}

# --- 4. gpuquant bench ----------------------------------------------------------------------------
rows=$tmp/rows.jsonl
: >"$rows"
failures=()
fail_row() { # model label device error
	failures+=("$(json_obj model="$1" label="$2" device="$3" error="$4")")
	echo "FAILED: $1 $2 $3: $4" >&2
}
for i in "${!models[@]}"; do
	m=${models[$i]} dir=${dirs[$i]}
	read -r p n <<<"$(fit "$dir")"
	for dev in "${devices[@]}"; do
		for s in "${schemes[@]}"; do
			if [ "$s" = fp16 ] && [ "$dev" = cpu ]; then
				echo "skip: $m fp16 cpu (fp16 runs only on cuda devices)"
				continue
			fi
			read -r -a flags <<<"$(scheme_flags "$s")"
			cmd=("$bin" bench --model "$dir" --device "$dev" "${flags[@]}" --prompt-tokens "$p" --new-tokens "$n" --repeat "$repeat" --json)
			if [ "$dry" = 1 ]; then
				echo "would run: $(q "${cmd[@]}")"
				continue
			fi
			rc=0
			timeout -k 10 "$bench_timeout" "${cmd[@]}" >"$tmp/out.json" 2>"$tmp/err.txt" || rc=$?
			if [ "$rc" = 0 ] && json_merge "$tmp/out.json" "$(json_obj record=gpuquant-bench label="$s" model_name="$m" args="${cmd[*]:1}")" >>"$rows" 2>"$tmp/jerr.txt"; then
				echo "ok: $m $s $dev: model $(num "$(json_get "$tmp/out.json" model_bytes)") bytes, prefill $(num "$(json_get "$tmp/out.json" prefill_tokens_per_s)") tok/s, decode $(num "$(json_get "$tmp/out.json" decode_tokens_per_s)") tok/s"
			elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
				fail_row "$m" "$s" "$dev" "timeout after ${bench_timeout}s"
			elif [ "$rc" != 0 ]; then
				fail_row "$m" "$s" "$dev" "rc=$rc: $(grep . "$tmp/err.txt" | tail -n 1 | cut -c1-300)"
			else
				fail_row "$m" "$s" "$dev" "bench printed no JSON object: $(head -c 200 "$tmp/out.json" | tr '\n' ' ')"
			fi
		done
	done
done

# --- 5. The Hugging Face baseline -----------------------------------------------------------------
if [ -n "$py" ] || { [ "$dry" = 1 ] && [ "$hf" != 0 ]; }; then
	for i in "${!models[@]}"; do
		m=${models[$i]} dir=${dirs[$i]}
		read -r p n <<<"$(fit "$dir" 2>/dev/null)"
		for dev in "${devices[@]}"; do
			dtypes=fp32,fp16
			[ "$dev" = cpu ] && dtypes=fp32
			cmd=("${py:-python3}" scripts/hf_baseline.py --model "$dir" --device "$dev" --dtypes "$dtypes"
				--prompt-tokens "$p" --new-tokens "$n" --repeat "$repeat")
			[ -n "$text" ] && cmd+=(--text "$text")
			if [ "$dry" = 1 ]; then
				echo "would run: $(q "${cmd[@]}")$([ -z "$py" ] && echo "   (only if a python3 with torch and transformers is found)")"
				continue
			fi
			rc=0
			timeout -k 10 "$bench_timeout" "${cmd[@]}" >"$tmp/out.json" 2>"$tmp/err.txt" || rc=$?
			if [ "$rc" = 0 ] && json_merge "$tmp/out.json" "$(json_obj record=hf-baseline label=hf model_name="$m")" >"$tmp/hf.jsonl" 2>"$tmp/jerr.txt"; then
				cat "$tmp/hf.jsonl" >>"$rows"
				echo "ok: $m hf $dev: $(wc -l <"$tmp/hf.jsonl") dtype(s)"
			else
				fail_row "$m" hf "$dev" "rc=$rc: $(grep . "$tmp/err.txt" | tail -n 1 | cut -c1-300)"
			fi
		done
	done
fi

# --- 6. Results -----------------------------------------------------------------------------------
day=$(date +%Y-%m-%d)
base=$results/$slug-$day
# Never overwrite an earlier run of the same day: the later one gets the time too.
if [ -e "$base.json" ] || [ -e "$base.md" ]; then
	base=$results/$slug-$day-$(date +%H%M%S)
fi
if [ "$dry" = 1 ]; then
	echo "would write: $base.json and $base.md (gpu name '$gpu_name')"
	exit 0
fi

commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
dirty=false
[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null || true)" ] && dirty=true
fail_json="[$(
	IFS=,
	echo "${failures[*]:-}"
)]"
# list WORDS...: a JSON array of strings that need no escaping (presets, labels and devices were
# checked above).
list() {
	local out="" w
	for w in "$@"; do out+="${out:+,}\"$w\""; done
	echo "[$out]"
}
h=(record=header gpu_name="$gpu_name" gpu_count:="$gpu_count" git_commit="$commit" git_dirty:="$dirty"
	date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" host="$host" gpuquant="$bin" models:="$(list "${models[@]}")"
	schemes:="$(list "${schemes[@]}")" devices:="$(list "${devices[@]}")" prompt_tokens:="$prompt" new_tokens:="$new"
	repeat:="$repeat" fetch:="$fetch" failures:="$fail_json")
# Unknown (empty) ones are null.
gover=$(go version 2>/dev/null || true)
for kv in driver="$driver" nvcc="$nvcc_version" cpu="$cpu_model" go="$gover" hf_python="$py"; do
	if [ -n "${kv#*=}" ]; then h+=("$kv"); else h+=("${kv%%=*}:=null"); fi
done
if [ -n "$gpu_index" ]; then h+=(gpu_index:="$gpu_index"); else h+=(gpu_index:=null); fi
header=$(json_obj "${h[@]}")

mkdir -p "$results"
tj=$(mktemp "$results/.tmp.XXXXXX")
tm=$(mktemp "$results/.tmp.XXXXXX")
trap 'rm -rf "$tmp" "$tj" "$tm"' EXIT
json_write "$header" "$rows" "$tj"
{
	echo "# gpuquant benchmarks: $gpu_name"
	echo
	echo "$(date -u +%Y-%m-%d), host \`$host\`, commit \`${commit:0:12}\`$([ "$dirty" = true ] && echo ' (with uncommitted changes)'),"
	echo "driver ${driver:-—}, nvcc ${nvcc_version:-—}, CPU ${cpu_model:-—}. Batch 1; $prompt-token prompt, $new new"
	echo "tokens (less where a model's context is shorter: see each result's prompt_tokens and new_tokens in"
	echo "the JSON), medians of $repeat runs after a warm-up. These numbers hold only together with this"
	echo "hardware (\`$gpu_name\`)."
	echo
	echo "| model | scheme | device | model bytes | device weight bytes | prefill tok/s | decode tok/s |"
	echo "|---|---|---|---:|---:|---:|---:|"
	md_rows "$rows"
	if grep -q '"record":"hf-baseline"' "$rows"; then
		echo
		echo "HF transformers rows: scripts/hf_baseline.py; its prefill is the perplexity pass (1024-token windows, or the"
		echo "model's context), its decode the KV-cached steps of \`generate\` after the first new token."
	fi
	if [ ${#failures[@]} -gt 0 ]; then
		echo
		echo "Failed:"
		for f in "${failures[@]}"; do
			printf '%s\n' "$f" >"$tmp/f.json"
			echo "- $(json_get "$tmp/f.json" model) $(json_get "$tmp/f.json" label) $(json_get "$tmp/f.json" device): $(json_get "$tmp/f.json" error)"
		done
	fi
} >"$tm"
chmod 644 "$tj" "$tm"
mv "$tj" "$base.json"
mv "$tm" "$base.md"
echo
cat "$base.md"
echo
echo "wrote $base.json and $base.md"
[ ${#failures[@]} -eq 0 ] || exit 1
