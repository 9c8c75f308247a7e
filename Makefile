# gpuquant — common tasks. `make test` is what CI runs.
GO      ?= go
PYTHON  ?= /usr/bin/python3
MODELS  ?= models

.PHONY: build test test-llama vet bench bench-torch golden golden-check fuzz demo cuda device-bundle clean

build:
	$(GO) build -o gpuquant .

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

test: vet
	$(GO) test ./...
	$(MAKE) --no-print-directory test-emu
	$(MAKE) --no-print-directory test-cuda-emu
	$(MAKE) --no-print-directory test-llama

# Our GGUF export against llama.cpp itself: its prebuilt CPU library (npm @node-llama-cpp/linux-x64,
# fetched into build/llama-cpp once) loads F32, Q8_0 and Q4_0 files we wrote, and must give our
# token ids and, on the same windows, our perplexity (gguf/llama_test.go).
LLAMA_DIR := build/llama-cpp
test-llama:
	@scripts/llama/build.sh $(LLAMA_DIR) > /dev/null
	@LLAMAEVAL=$(CURDIR)/$(LLAMA_DIR)/llamaeval $(GO) test -count=1 -run '^TestLlamaCpp' -v ./gguf/ 2>&1 | \
	  tee build/test-llama.log | grep -E '^(--- |ok|FAIL|panic)|perplexity ours'; \
	  grep -q '^--- PASS: TestLlamaCppAgrees' build/test-llama.log && grep -q '^--- PASS: TestLlamaCppFilesLoad' build/test-llama.log

# CPU benchmarks on the synthetic GPT-2 124M shape (writes $(MODELS)/synth-gpt2 once).
bench: build
	$(GO) test ./bench/ ./cpu/ -run '^$$' -bench . -benchtime 3x

# Our eval next to the PyTorch reference (2 threads) on the same checkpoint and text.
bench-torch: build
	scripts/bench-vs-torch.sh

# Regenerate the PyTorch goldens (needs Debian's python3-torch) and verify them.
golden:
	$(PYTHON) scripts/reference_gpt2.py fixtures testdata/golden
	$(PYTHON) scripts/reference_gpt2.py quant testdata/golden/quant testdata/golden/f16-tied testdata/golden/f32-prefix testdata/golden/bf16-tied

golden-check:
	$(PYTHON) scripts/reference_gpt2.py check testdata/golden/f32-prefix testdata/golden/f16-tied testdata/golden/bf16-tied

fuzz:
	$(GO) test ./model/ -run '^$$' -fuzz FuzzParseSafetensors -fuzztime 60s
	$(GO) test ./gguf/ -run '^$$' -fuzz FuzzParse -fuzztime 60s

# The whole comparison, offline, on a synthetic GPT-2 124M made here.
demo: build
	test -d $(MODELS)/synth-gpt2 || ./gpuquant synth --preset gpt2 --out $(MODELS)/synth-gpt2
	./gpuquant run --model $(MODELS)/synth-gpt2 --max-new-tokens 20 --out $(MODELS)/report --force

# The GPU build (needs the CUDA toolkit's cuda.h and libcuda; the binary runs only where a GPU is).
cuda:
	$(GO) build -tags cuda -o gpuquant-cuda .

# What scripts/device-check.sh needs on a GPU machine that has no Go, in one ignored folder: the
# cuda-tagged test binaries of the packages in CUDA_TEST_PKGS that have tests, a stripped
# cuda-tagged gpuquant, and the script (well under the 64 MiB a lent machine takes).
BUNDLE         ?= device-bundle
CUDA_TEST_PKGS ?= cuda kernels kernels/kerneltest gpu

device-bundle:
	rm -rf $(BUNDLE) && mkdir -p $(BUNDLE)
	@set -e; for p in $(CUDA_TEST_PKGS); do \
		if [ -n "$$($(GO) list -tags cuda -f '{{if or .TestGoFiles .XTestGoFiles}}yes{{end}}' ./$$p/ 2>/dev/null)" ]; then \
			echo "$(GO) test -c -tags cuda -ldflags='-s -w' -o $(BUNDLE)/$${p##*/}.test ./$$p/"; \
			$(GO) test -c -tags cuda -ldflags='-s -w' -o $(BUNDLE)/$${p##*/}.test ./$$p/; \
		else \
			echo "device-bundle: ./$$p has no tests: no $${p##*/}.test"; \
		fi; \
	done
	$(GO) build -tags cuda -ldflags='-s -w' -o $(BUNDLE)/gpuquant .
	cp scripts/device-check.sh scripts/hf_baseline.py $(BUNDLE)/
	@ls -l $(BUNDLE)
	@kib=$$(du -sk --apparent-size $(BUNDLE) | cut -f1); echo "device-bundle: $$kib KiB"; \
		test $$kib -lt 65536 || { echo "device-bundle: over 64 MiB"; exit 1; }

clean:
	rm -f gpuquant

# --- CUDA kernels (kernels/*.cu) -------------------------------------------------------------------
# PTX for the GPU build: nvcc -arch=compute_80 (the driver JIT-compiles it for newer GPUs); the .ptx
# files are committed and embedded behind the cuda tag. `make kernels-check` also compiles for sm_90
# and prints ptxas register/shared-memory use, then fails if the committed PTX is stale.
.PHONY: kernels kernels-check kernels-emu test-emu test-emu-asan
NVCC      ?= nvcc
NVCCFLAGS ?= -std=c++17
KERNEL_CU := kernels/quant.cu kernels/gemv.cu kernels/gemm_f32.cu kernels/gemm_f16.cu kernels/gemm_int8.cu \
             kernels/norm.cu kernels/attention.cu

kernels: $(KERNEL_CU:.cu=.ptx)

kernels/%.ptx: kernels/%.cu kernels/common.cuh kernels/ptx.cuh
	$(NVCC) $(NVCCFLAGS) -arch=compute_80 -ptx $< -o $@

kernels-check: kernels
	@for f in $(KERNEL_CU); do $(NVCC) $(NVCCFLAGS) -arch=sm_90 -cubin -Xptxas -v $$f -o /dev/null 2>&1 | grep -E "entry|Used|spill" || exit 1; done
	git diff --exit-code -- kernels/*.ptx

# The kernels executed on the CPU (needs only g++ and cgo): every case vs the CPU twins in 3 schedule
# orders, broken-kernel checks, and an "N passed, N failed" line. Part of `make test`. Go's build
# cache sees the .cu/.cuh files emu.cc includes through their committed symlink twins in
# kernels/emu (NAME.h -> ../NAME), so a kernel edit rebuilds the emulator: no make step needed.
# kernels/kerneltest: every kernel vs its CPU twin (the same tests run on a GPU with tag cuda);
# kernels/emu: the harness's own checks (broken kernels caught); gpu: on-device quantization and the
# GPU backend's forward pass against the CPU backend; cli: `run` and `bench` on --device cudaemu.
EMU_TEST_PKGS := ./kernels/ ./kernels/emu/ ./kernels/kerneltest/ ./gpu/
# What emu.cc (and driver.cc) include from outside kernels/emu, and broken.cu.
EMU_SRCS := kernels/common.cuh kernels/ptx.cuh $(KERNEL_CU) kernels/emu/broken.cu
kernels-emu test-emu:
	@mkdir -p build
	@$(GO) test -tags cudaemu -count=1 -v $(EMU_TEST_PKGS) > build/test-emu.log 2>&1; rc=$$?; \
	  $(GO) test -tags cudaemu -count=1 -v -run 'OnEmulatedGPU' ./cli/ >> build/test-emu.log 2>&1 || rc=1; \
	  grep -E '^(ok|FAIL|cudaemu (kernels|harness):)' build/test-emu.log; \
	  if [ $$rc != 0 ]; then grep -B3 -A8 -E -- '--- FAIL|panic|cannot|error' build/test-emu.log | head -80; fi; \
	  grep -q 'cudaemu kernels:' build/test-emu.log || rc=1; exit $$rc

# --- The CUDA driver on the CPU (kernels/emu/driver) ------------------------------------------------
# build/cudaemu-driver/libcuda.so.1: the driver API over the kernel emulator, so the cuda-tagged
# binaries run without a GPU (LD_LIBRARY_PATH=build/cudaemu-driver). It exports every symbol of the
# toolkit's stub libcuda.so (a superset of what any binary linked against it imports): those
# driver.cc does not implement are generated stubs that return CUDA_ERROR_NOT_SUPPORTED and print
# their name once.
.PHONY: cudaemu-driver test-cuda-emu
CUDA_STUB   ?= $(firstword $(wildcard /usr/lib/x86_64-linux-gnu/stubs/libcuda.so /usr/local/cuda/lib64/stubs/libcuda.so))
CUDA_INC    ?= $(firstword $(wildcard /usr/include/cuda.h /usr/local/cuda/include/cuda.h))
DRIVER_DIR  := build/cudaemu-driver
DRIVER_SRCS := kernels/emu/driver/driver.cc kernels/emu/registry.h kernels/emu/cudaemu.h $(EMU_SRCS) cuda/testdata/testkernels.cu
DRIVER_CXX  := $(CXX) -std=c++17 -O2 -g -fPIC -DCUDAEMU -Wall -Wno-unknown-pragmas -I$(dir $(CUDA_INC))

cudaemu-driver: $(DRIVER_DIR)/libcuda.so.1

$(DRIVER_DIR)/driver.o: $(DRIVER_SRCS)
	@test -n "$(CUDA_INC)" || { echo "cudaemu-driver: cuda.h not found (install nvidia-cuda-dev)"; exit 1; }
	@mkdir -p $(DRIVER_DIR)
	$(DRIVER_CXX) -c $< -o $@

$(DRIVER_DIR)/unsupported.cc: $(DRIVER_DIR)/driver.o
	@test -n "$(CUDA_STUB)" || { echo "cudaemu-driver: the toolkit's stubs/libcuda.so not found"; exit 1; }
	@nm --defined-only -g $< | awk '$$3 ~ /^cu/ {print $$3}' | sort -u > $(DRIVER_DIR)/implemented.txt
	@nm -D --defined-only $(CUDA_STUB) | awk '$$3 ~ /^cu/ {print $$3}' | sort -u > $(DRIVER_DIR)/exported.txt
	@{ echo '// Generated by make cudaemu-driver: the driver symbols driver.cc does not implement.'; \
	   echo 'extern "C" int cudaemu_unsupported(const char*);'; \
	   comm -23 $(DRIVER_DIR)/exported.txt $(DRIVER_DIR)/implemented.txt | \
	     awk '{printf "extern \"C\" int %s() { return cudaemu_unsupported(\"%s\"); }\n", $$1, $$1}'; } > $@
	@echo "cudaemu-driver: $$(wc -l < $(DRIVER_DIR)/implemented.txt) entry points emulated, $$(comm -23 $(DRIVER_DIR)/exported.txt $(DRIVER_DIR)/implemented.txt | wc -l) stubs"

$(DRIVER_DIR)/libcuda.so.1: $(DRIVER_DIR)/driver.o $(DRIVER_DIR)/unsupported.cc
	$(CXX) -shared -fPIC -Wl,-soname,libcuda.so.1 -Wl,--no-undefined -o $@ $^ -lpthread

# The cuda-tagged binaries on the emulated driver: the test binaries `make device-bundle` packs
# (-test.short: GPT-2 XL sizes are minutes on the CPU), gpuquant-cuda's commands against the CPU
# (cli), the statement coverage of package cuda, and scripts/device-check.sh --emulated from the
# same bundle, ending with its summary table. Needs the CUDA toolkit's cuda.h and stub libcuda
# (as `make cuda` does); log in build/test-cuda-emu.log.
EMU_BUNDLE := build/emu-bundle
test-cuda-emu: cudaemu-driver
	@$(MAKE) --no-print-directory device-bundle BUNDLE=$(EMU_BUNDLE) > build/test-cuda-emu.log 2>&1 || { tail -20 build/test-cuda-emu.log; exit 1; }
	@export LD_LIBRARY_PATH=$(CURDIR)/$(DRIVER_DIR) LD_BIND_NOW=1; rc=0; log=$(CURDIR)/build/test-cuda-emu.log; \
	  for t in cuda kernels kerneltest gpu; do \
	    if (cd $(EMU_BUNDLE) && ./$$t.test -test.short -test.v -test.timeout 300s) >> $$log 2>&1; then echo "ok   $$t.test on the emulated driver"; \
	    else echo "FAIL $$t.test on the emulated driver"; rc=1; fi; \
	  done; \
	  grep -h '^gpu kernels:' $$log; \
	  GPUQUANT_CUDA_BIN=$(CURDIR)/$(EMU_BUNDLE)/gpuquant $(GO) test -count=1 -v -run '^TestCUDABinary' ./cli/ >> $$log 2>&1 \
	    && echo "ok   gpuquant-cuda commands vs the CPU (cli)" || { echo "FAIL gpuquant-cuda commands vs the CPU (cli)"; rc=1; }; \
	  $(GO) test -tags cuda -count=1 -short -cover ./cuda/ 2>&1 | tee -a $$log | grep -E '^(ok|FAIL|---)' || rc=1; \
	  rm -rf build/device-check-emu; mkdir -p build/device-check-emu; \
	  OUT=$(CURDIR)/build/device-check-emu $(EMU_BUNDLE)/device-check.sh --emulated > build/device-check-emu/console.log 2>&1 \
	    && echo "ok   device-check.sh --emulated" || { echo "FAIL device-check.sh --emulated, its last lines:"; tail -40 build/device-check-emu/console.log; rc=1; }; \
	  sed -n '/^| step/,$$p' build/device-check-emu/summary.md 2>/dev/null | head -60; \
	  if [ $$rc != 0 ]; then grep -B3 -A8 -E -- '--- FAIL|panic|FAIL rc' $$log | head -80; fi; exit $$rc

# The same harness under AddressSanitizer + UBSan: one worker thread, __shared__ as plain statics and
# guard zones poisoned, so out-of-bounds global and shared accesses stop the run (-short skips the
# 50257-wide W8A8 rows, minutes under ASan).
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
test-emu-asan:
	@mkdir -p build
	@CGO_CXXFLAGS="-O1 -g $(ASAN_FLAGS)" CGO_LDFLAGS="$(ASAN_FLAGS)" \
	  $(GO) test -asan -short -tags cudaemu -count=1 -v ./kernels/emu/ ./kernels/kerneltest/ ./gpu/ > build/test-emu-asan.log 2>&1; rc=$$?; \
	  grep -E '^(ok|FAIL|cudaemu (kernels|harness):)' build/test-emu-asan.log; \
	  if [ $$rc != 0 ]; then grep -B3 -A8 -E -- '--- FAIL|ERROR: AddressSanitizer|runtime error' build/test-emu-asan.log | head -80; fi; exit $$rc
