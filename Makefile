# gpuquant — common tasks. `make test` is what CI runs.
GO      ?= go
PYTHON  ?= /usr/bin/python3
MODELS  ?= models

.PHONY: build test vet bench bench-torch golden golden-check fuzz demo cuda clean

build:
	$(GO) build -o gpuquant .

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

test: vet
	$(GO) test ./...

# CPU benchmarks on the synthetic GPT-2 124M shape (writes $(MODELS)/synth-gpt2 once).
bench: build
	$(GO) test ./bench/ ./cpu/ -run XXX -bench . -benchtime 3x

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
	$(GO) test ./model/ -run XXX -fuzz FuzzParseSafetensors -fuzztime 60s

# The whole comparison, offline, on a synthetic GPT-2 124M made here.
demo: build
	test -d $(MODELS)/synth-gpt2 || ./gpuquant synth --preset gpt2 --out $(MODELS)/synth-gpt2
	./gpuquant run --model $(MODELS)/synth-gpt2 --max-new-tokens 20 --out $(MODELS)/report

cuda:
	@echo "The CUDA backend is not part of this build yet: see the CUDA issues. The default build is pure Go."

clean:
	rm -f gpuquant
