#!/usr/bin/env bash
# profile.sh [--dry-run] [--out DIR] [--kernels REGEX] [--bin PATH] [--launch-count N]
#            [--ncu-set NAME | --ncu-section ID ...] [--no-nsys] [-- GPUQUANT ARGS...]
#
# Profiles one gpuquant command on a machine with an NVIDIA GPU and leaves the reports in DIR
# (default profile-YYYY-MM-DD-HHMMSS/):
#   1. nvidia-smi: the card, driver, compute capability                → gpu.txt
#   2. Nsight Systems: nsys profile --trace=cuda,nvtx,osrt --cuda-graph-trace=node
#                                                                      → gpuquant.nsys-rep
#      then `nsys stats` summaries as text: NVTX ranges (load, upload, quantize, prefill, decode
#      step, per layer), kernels, CUDA API, memory copies, OS runtime   → nsys-<report>.txt
#   3. with --kernels REGEX (or KERNELS=REGEX), Nsight Compute on the kernels whose name matches,
#      e.g. 'gemv|gemm_w8a8|attention': at most --launch-count launches (default 20), section
#      set --ncu-set (default full) or the given --ncu-section IDs     → ncu.ncu-rep, ncu-*.txt
#   GPUs older than Volta (compute capability < 7.0), which nsys and ncu do not support, get
#   nvprof instead: a summary, the GPU trace and, with --kernels, per-kernel metrics → nvprof-*.txt
#   (gpuquant's kernels are compiled for compute capability 8.0, so on such a GPU expect gpuquant
#   itself to fail to load them; the profile then shows how far it got).
#
# GPUQUANT ARGS default to
#   run --model models/synth-gpt2 --device cuda:0 --max-new-tokens 64 --out DIR/run-report --force
# (make the model with `gpuquant synth --preset gpt2 --out models/synth-gpt2`); e.g. `-- bench
# --model models/synth-gpt2 --device cuda:0 --scheme absmax --json` profiles a benchmark instead.
# --bin defaults to ./gpuquant-cuda (from `make cuda`), else ./gpuquant (e.g. in device-bundle/).
#
# A missing tool is reported and its step skipped; every step gets a status, printed last and
# written to DIR/summary.txt. The exit status is 1 if a step failed or nothing could be profiled.
# --dry-run prints the commands without running anything (works on a machine without a GPU).
# Environment: KERNELS, LAUNCH_COUNT, NCU_SET, TIMEOUT (seconds a profiled run may take, default
# 1800), NSYS_FLAGS / NCU_FLAGS (extra flags, word-split), COMPUTE_CAP (skip detection, e.g. 6.1),
# NVPROF_METRICS (nvprof --metrics list with --kernels on a pre-Volta GPU).
set -euo pipefail

usage() {
	cat >&2 <<EOF
usage: $0 [--dry-run] [--out DIR] [--kernels REGEX] [--bin PATH] [--launch-count N]
          [--ncu-set NAME | --ncu-section ID ...] [--no-nsys] [-- GPUQUANT ARGS...]
  default GPUQUANT ARGS: run --model models/synth-gpt2 --device cuda:0 --max-new-tokens 64
                         --out DIR/run-report --force
  (the comment at the top of this script says what each step writes)
EOF
	exit 2
}

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh" # have, q

cd "$(dirname "$0")/.."
dry=0 out="" bin="" nsys_on=1
kernels=${KERNELS:-}
launch_count=${LAUNCH_COUNT:-20}
ncu_set=${NCU_SET:-full}
ncu_sections=()
timeout_s=${TIMEOUT:-1800}
while [ $# -gt 0 ]; do
	case "$1" in
	--dry-run) dry=1 ;;
	--no-nsys) nsys_on=0 ;;
	--out | --kernels | --bin | --launch-count | --ncu-set | --ncu-section)
		[ $# -ge 2 ] || { echo "$0: $1 needs a value" >&2; usage; }
		case "$1" in
		--out) out=$2 ;;
		--kernels) kernels=$2 ;;
		--bin) bin=$2 ;;
		--launch-count) launch_count=$2 ;;
		--ncu-set) ncu_set=$2 ;;
		--ncu-section) ncu_sections+=("$2") ;;
		esac
		shift
		;;
	--) shift; break ;;
	-h | --help) usage ;;
	*) echo "$0: unknown argument '$1' (gpuquant's own arguments go after --)" >&2; usage ;;
	esac
	shift
done
[[ "$launch_count" =~ ^[1-9][0-9]*$ ]] || { echo "$0: --launch-count must be a positive integer, not '$launch_count'" >&2; usage; }
[[ "$timeout_s" =~ ^[1-9][0-9]*$ ]] || { echo "$0: TIMEOUT must be a positive integer of seconds, not '$timeout_s'" >&2; exit 2; }
out=${out:-profile-$(date +%Y-%m-%d-%H%M%S)}
out=${out%/}

# The binary: a cuda build is the only one that can touch the GPU.
if [ -z "$bin" ]; then
	for b in ./gpuquant-cuda ./gpuquant; do
		[ -x "$b" ] && { bin=$b; break; }
	done
	bin=${bin:-./gpuquant-cuda}
fi
if [ ! -x "$bin" ]; then
	if [ "$dry" = 1 ]; then
		echo "note: $bin is not there (yet): build it with 'make cuda' (go build -tags cuda -o gpuquant-cuda .)"
	else
		echo "$0: $bin is not an executable; build it with 'make cuda' or pass --bin PATH" >&2
		exit 2
	fi
fi

# A build without the cuda tag stops at `--device cuda:N`; go (where there is one) says which it is.
if [ -x "$bin" ] && have go && buildinfo=$(go version -m "$bin" 2>/dev/null) && ! grep -q -- '-tags=.*cuda' <<<"$buildinfo"; then
	echo "note: $bin was built without the cuda tag, so it can only profile --device cpu ('make cuda' builds gpuquant-cuda)"
fi

# gpuquant's arguments: the ones given after --, else the default `run`. ncu runs the program a
# second time, so the default gives that run its own report folder.
custom=0
if [ $# -gt 0 ]; then
	custom=1
	args=("$@")
	ncu_args=("$@")
else
	args=(run --model models/synth-gpt2 --device cuda:0 --max-new-tokens 64 --out "$out/run-report" --force)
	ncu_args=(run --model models/synth-gpt2 --device cuda:0 --max-new-tokens 64 --out "$out/run-report-ncu" --force)
fi

# The model folder and the GPU index, read from gpuquant's arguments.
model="" gpu_index=0
for ((i = 0; i < ${#args[@]}; i++)); do
	case "${args[$i]}" in
	--model) model=${args[$((i + 1))]:-} ;;
	--model=*) model=${args[$i]#--model=} ;;
	--device | --device=*)
		d=${args[$i]#--device=}
		[ "$d" = --device ] && d=${args[$((i + 1))]:-}
		if [[ "$d" =~ ^cuda:([0-9]+)$ ]]; then gpu_index=${BASH_REMATCH[1]}; fi
		;;
	esac
done
if [ -n "$model" ] && [ ! -d "$model" ]; then
	msg="model folder $model does not exist: make one with '$bin synth --preset gpt2 --out $model' (or scripts/fetch-gpt2.sh)"
	if [ "$dry" = 1 ]; then echo "note: $msg"; else echo "$0: $msg" >&2; exit 2; fi
fi

# Where CUDA tools usually live when they are not on PATH.
for d in /usr/local/cuda/bin /opt/nvidia/nsight-systems/*/bin /opt/nvidia/nsight-compute/*; do
	[ -d "$d" ] && PATH=$PATH:$d
done

# The profiled program's environment: NVTX calls forced on (gpuquant makes them only under a
# profiler it recognises).
export GPUQUANT_NVTX=1 GOTRACEBACK=all

steps=()
failed=0 profiled=0 running=""
# An interrupt ends the profiled run too (timeout passes the signal on to its process group).
trap '[ -n "$running" ] && kill -TERM "$running" 2>/dev/null; echo "$0: interrupted" >&2; exit 130' INT TERM
record() { # name status detail
	steps+=("$(printf '%-28s %-12s %s' "$1" "$2" "$3")")
	case "$2" in FAIL* | timeout) failed=1 ;; esac
	printf '==> %-28s %-12s %s\n' "$1" "$2" "$3"
}


# step NAME FILE CMD...: runs CMD (timeout TIMEOUT) with stdout and stderr in FILE (stderr appended
# to $step_err instead where that is set).
step() {
	local name=$1 file=$2
	shift 2
	if [ "$dry" = 1 ]; then
		printf 'would run: %s > %s\n' "$(q "$@")" "$file"
		record "$name" dry-run "$file"
		return 0
	fi
	echo "### $name: $(q "$@")"
	local t0 rc=0 st
	t0=$(date +%s)
	# In the background so that an interrupt reaches it: timeout runs the command in a process
	# group of its own, which the terminal's Ctrl-C does not reach.
	if [ -n "${step_err:-}" ]; then
		timeout -k 10 "$timeout_s" "$@" >"$file" 2>>"$step_err" &
	else
		timeout -k 10 "$timeout_s" "$@" >"$file" 2>&1 &
	fi
	running=$!
	wait "$running" || rc=$?
	running=""
	case $rc in
	0) st=ok ;;
	124 | 137) st=timeout ;;
	*) st="FAIL rc=$rc" ;;
	esac
	record "$name" "$st" "$file ($(($(date +%s) - t0))s)"
	if [ "$rc" != 0 ]; then
		tail -n 15 "${step_err:-$file}" | sed 's/^/    /'
		grep -q 'ERR_NVGPUCTRPERM' "$file" 2>/dev/null &&
			echo "    hint: GPU performance counters are restricted to root: run as root, or load nvidia with NVreg_RestrictProfilingToAdminUsers=0"
	fi
	return "$rc"
}

if [ "$dry" = 1 ]; then
	echo "== DRY RUN: would write into $out/"
else
	mkdir -p "$out"
fi
echo "== profiling: $(q "$bin" "${args[@]}")"

# 1. The card and its compute capability (the profiler depends on it).
cc=${COMPUTE_CAP:-}
if ! have nvidia-smi; then
	record nvidia-smi missing "not on PATH: compute capability ${cc:-unknown}"
elif ! smi=$(nvidia-smi -i "$gpu_index" --query-gpu=name,driver_version --format=csv,noheader 2>&1); then
	# Installed but no driver or no such GPU: the profiled run will fail the same way.
	smi=$(head -n 1 <<<"$smi")
	if [ "$dry" = 1 ]; then record nvidia-smi unavailable "$smi"; else record nvidia-smi "FAIL" "$smi"; fi
else
	[ "$dry" = 0 ] && { nvidia-smi -i "$gpu_index" >"$out/gpu.txt" 2>&1 || true; }
	if [ -z "$cc" ]; then
		# compute_cap needs a driver from 2021 or later; without it cc stays unknown.
		cc=$(nvidia-smi -i "$gpu_index" --query-gpu=compute_cap --format=csv,noheader 2>/dev/null || true)
		cc=$(head -n 1 <<<"$cc" | tr -d ' ')
		[[ "$cc" =~ ^[0-9]+\.[0-9]+$ ]] || cc=""
	fi
	record nvidia-smi ok "GPU $gpu_index: $(head -n 1 <<<"$smi"), compute capability ${cc:-unknown}"
fi
old=0
if [ -n "$cc" ] && [ "${cc%%.*}" -lt 7 ]; then
	old=1
fi
[ -z "$cc" ] && echo "note: compute capability unknown: assuming 7.0 or newer (nsys, ncu); set COMPUTE_CAP=6.1 to force nvprof"

if [ "$old" = 0 ]; then
	# 2. Nsight Systems: the timeline, then text summaries of it.
	if [ "$nsys_on" = 0 ]; then
		record "nsys profile" skipped "--no-nsys"
	elif ! have nsys; then
		record "nsys profile" missing "nsys not on PATH (Nsight Systems; CUDA toolkit's nsight-systems package): no timeline"
	else
		graph=(--cuda-graph-trace=node)
		# An nsys older than 2022 has no --cuda-graph-trace: graphs then show as one range.
		# (help captured first: grep -q closing the pipe early would fail it under pipefail)
		help=$(nsys profile --help 2>&1 || true)
		if ! grep -q -- '--cuda-graph-trace' <<<"$help"; then
			echo "note: this nsys has no --cuda-graph-trace: CUDA graphs are traced as a whole"
			graph=()
		fi
		# shellcheck disable=SC2086 # NSYS_FLAGS is a list of flags
		if step "nsys profile" "$out/nsys-profile.log" nsys profile --trace=cuda,nvtx,osrt "${graph[@]}" \
			--force-overwrite=true --stats=false ${NSYS_FLAGS:-} -o "$out/gpuquant" "$bin" "${args[@]}"; then
			profiled=1
		fi
		if [ "$dry" = 0 ] && [ ! -f "$out/gpuquant.nsys-rep" ] && [ -f "$out/gpuquant.qdstrm" ]; then
			# Some installs (Debian's nsight-systems) cannot find their own importer and leave the raw
			# .qdstrm stream: convert it with the QdstrmImporter that ships beside nsys.
			imp=$(command -v QdstrmImporter || true)
			if [ -z "$imp" ]; then
				n=$(command -v nsys)
				dirs=("$(dirname "$n")/.." "$(dirname "$(readlink -f "$n")")/.." /usr/lib/nsight-systems /opt/nvidia/nsight-systems /usr/local/cuda/)
				imp=$(find "${dirs[@]}" -maxdepth 3 -name QdstrmImporter -type f -perm -u+x 2>/dev/null | head -n 1 || true)
			fi
			if [ -n "$imp" ]; then
				step "nsys import qdstrm" "$out/nsys-import.log" "$imp" -i "$out/gpuquant.qdstrm" -f &&
					[ -f "$out/gpuquant.nsys-rep" ] && rm -f "$out/gpuquant.qdstrm"
			else
				record "nsys import qdstrm" missing "nsys left only gpuquant.qdstrm and no QdstrmImporter was found: convert it with 'QdstrmImporter -i gpuquant.qdstrm' where Nsight Systems is installed"
			fi
		fi
		if [ "$dry" = 1 ] || [ -f "$out/gpuquant.nsys-rep" ]; then
			# Report names changed in nsys 2023 (gpukernsum → cuda_gpu_kern_sum): take whichever this
			# nsys knows. Each entry: new name, old name.
			known=$(nsys stats --help-reports 2>/dev/null || true)
			for pair in nvtx_sum:nvtxsum nvtx_kern_sum:nvtxkernsum nvtx_gpu_proj_sum:nvtxgpuproj \
				cuda_gpu_kern_sum:gpukernsum cuda_api_sum:cudaapisum cuda_gpu_mem_time_sum:gpumemtimesum \
				cuda_gpu_mem_size_sum:gpumemsizesum osrt_sum:osrtsum; do
				r=""
				for n in ${pair%%:*} ${pair#*:}; do
					grep -qE "^ *$n( |\[|$)" <<<"$known" && { r=$n; break; }
				done
				if [ -z "$r" ]; then
					record "nsys stats ${pair%%:*}" skipped "this nsys has no such report"
					continue
				fi
				step_err=$out/nsys-stats.log step "nsys stats $r" "$out/nsys-$r.txt" nsys stats --report "$r" --format column \
					"$out/gpuquant.nsys-rep" || true
			done
		fi
	fi

	# 3. Nsight Compute on the chosen kernels only: every launch is replayed once per metric pass,
	# so the whole program under ncu would take hours.
	if [ -z "$kernels" ]; then
		record "ncu" skipped "no --kernels REGEX (e.g. 'gemv|gemm_w8a8|attention')"
	elif ! have ncu; then
		record "ncu" missing "ncu not on PATH (Nsight Compute): no kernel metrics"
	else
		if [ ${#ncu_sections[@]} -gt 0 ]; then
			what=()
			for s in "${ncu_sections[@]}"; do what+=(--section "$s"); done
		else
			what=(--set "$ncu_set")
		fi
		[ "$custom" = 1 ] && echo "note: ncu runs the same gpuquant command a second time (an --out folder needs --force)"
		# shellcheck disable=SC2086 # NCU_FLAGS is a list of flags
		if step "ncu profile" "$out/ncu-profile.log" ncu --nvtx --kernel-name "regex:$kernels" \
			--launch-count "$launch_count" "${what[@]}" --force-overwrite ${NCU_FLAGS:-} -o "$out/ncu" \
			"$bin" "${ncu_args[@]}"; then
			profiled=1
		fi
		if [ "$dry" = 0 ] && [ ! -f "$out/ncu.ncu-rep" ]; then
			# ncu exits 0 when the regex matched no launch.
			record "ncu report" missing "no kernel matched '$kernels': $(grep -m 1 -E '==(WARNING|ERROR)==' "$out/ncu-profile.log" || echo "see ncu-profile.log")"
			failed=1
		fi
		if [ "$dry" = 1 ] || [ -f "$out/ncu.ncu-rep" ]; then
			step "ncu summary" "$out/ncu-summary.txt" ncu --import "$out/ncu.ncu-rep" --print-summary per-kernel || true
			step "ncu details" "$out/ncu-details.txt" ncu --import "$out/ncu.ncu-rep" --page details || true
		fi
	fi
else
	# Pre-Volta: nvprof, which nsys and ncu replaced from Volta on (nvprof does not run on ≥ 8.0).
	record "nsys, ncu" skipped "compute capability $cc < 7.0: not supported there, nvprof instead"
	if ! have nvprof; then
		record "nvprof" missing "nvprof not on PATH (CUDA toolkit ≤ 12): nothing to profile with"
	else
		if step "nvprof profile" "$out/nvprof-profile.log" nvprof --profile-from-start on \
			--export-profile "$out/gpuquant.nvvp" -f "$bin" "${args[@]}"; then
			profiled=1
		fi
		if [ "$dry" = 1 ] || [ -f "$out/gpuquant.nvvp" ]; then
			step "nvprof summary" "$out/nvprof-summary.txt" nvprof --import-profile "$out/gpuquant.nvvp" --print-summary || true
			step "nvprof gpu trace" "$out/nvprof-gpu-trace.txt" nvprof --import-profile "$out/gpuquant.nvvp" --print-gpu-trace || true
		fi
		if [ -n "$kernels" ]; then
			# --kernels context:stream:name:invocation, each part a regex. nvprof has no launch limit:
			# every matching launch is replayed once per metric pass, so the metrics are few.
			step "nvprof metrics" "$out/nvprof-metrics.txt" nvprof --kernels "::$kernels:" \
				--metrics "${NVPROF_METRICS:-achieved_occupancy,sm_efficiency,dram_read_throughput,dram_write_throughput}" \
				--print-gpu-trace "$bin" "${ncu_args[@]}" || true
		fi
	fi
fi

summary() {
	echo "## profile of: $(q "$bin" "${args[@]}")"
	echo "## $(date -u +%Y-%m-%dT%H:%M:%SZ), host $(hostname), compute capability ${cc:-unknown}"
	printf '%s\n' "${steps[@]}"
}
echo
echo "SUMMARY"
if [ "$dry" = 1 ]; then
	summary
	exit 0
fi
summary | tee "$out/summary.txt"
for f in "$out"/nsys-nvtx_sum.txt "$out"/nsys-nvtxsum.txt "$out"/nsys-cuda_gpu_kern_sum.txt "$out"/nsys-gpukernsum.txt; do
	[ -s "$f" ] && { echo; echo "--- $(basename "$f") (top)"; head -n 25 "$f"; }
done
echo
echo "reports in $out/:"
find "$out" -maxdepth 1 -type f -printf '  %f (%s bytes)\n' | sort
[ -f "$out/gpuquant.nsys-rep" ] && echo "open the timeline with: nsys-ui $out/gpuquant.nsys-rep"
if [ "$profiled" = 0 ]; then
	echo "$0: nothing was profiled (see the statuses above)" >&2
	exit 1
fi
exit $failed
