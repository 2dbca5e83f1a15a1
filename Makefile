# akidb-embed — one Makefile for the library, the CLI, tests and fuzzers.
#   make            build build/akidb-embed
#   make run        set up (packages, venv, default model), build, serve it on 127.0.0.1:8080
#   make run-all    the same with the plan's five models (scripts/models) and the admin API on :8081
#   make test       set up, build (also with ASan+UBSan), run every test
#   make SANITIZE=address,undefined   sanitized build into build-san/
#   make test-cluster  three replicas behind HAProxy and a real Prometheus (make test runs it)
#   make test-container  build and run the CPU container image with podman (opt-in)
#   make test-gpu   kernel and whole-engine tests on a CUDA GPU (see tests/gpu/)
#   make CUDA=0     leave the CUDA backend out even where nvcc exists
CC       ?= gcc
ARCH     ?= native
SANITIZE ?=
CUDA     ?= auto
WERROR   ?= $(if $(CI),-Werror,)

ifeq ($(SANITIZE),)
  BUILD  ?= build
  OPT    ?= -O3 -march=$(ARCH)
else
  BUILD  ?= build-san
  OPT    ?= -O1 -march=$(ARCH) -fno-omit-frame-pointer -fsanitize=$(SANITIZE) -fno-sanitize-recover=all
endif

# -ffp-contract=fast: ISO C mode would otherwise keep a*b+c as two roundings, not one FMA
CFLAGS   += -std=c11 -D_GNU_SOURCE -g -Wall -Wextra $(WERROR) $(OPT) -ffp-contract=fast -fopenmp -Isrc
LDFLAGS  += $(if $(SANITIZE),-fsanitize=$(SANITIZE),) -fopenmp
LDLIBS   += -ldnnl -ljson-c -lutf8proc -lmicrohttpd -lcrypto -lprotobuf-c -lm -lpthread

LIB_SRC  := $(wildcard src/base/*.c src/text/*.c src/model/*.c src/engine/*.c src/engine/cpu/*.c src/quant/*.c src/train/*.c src/serve/*.c src/onnx/*.c)
CLI_SRC  := $(wildcard src/cli/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)

# ONNX's protobuf subset (src/onnx/onnx_subset.proto) becomes C at build time with protoc-c, into
# <build folder>/gen/onnx/ (nothing generated is committed): $(BUILD)/gen for the library, and
# build-fuzz/gen for the fuzzers' instrumented copy of it.
PB_GEN    = $(1)/gen/onnx/onnx_subset.pb-c.c
LIB_OBJ  += $(BUILD)/gen/onnx/onnx_subset.pb-c.o
CFLAGS   += -I$(BUILD)/gen

# CUDA backend (src/engine/cuda/*.cu): built whenever nvcc is found (CUDA ?= auto), also on
# machines without a GPU (CI), as a fat binary for CUDA_ARCH; linked with cudart and cublasLt.
NVCC      ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
CUDA_ARCH ?= 80 86 89 90
ifeq ($(CUDA),auto)
  override CUDA := $(if $(NVCC),1,0)
endif
ifeq ($(CUDA),1)
  CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(realpath $(NVCC)))
  CU_SRC    := $(wildcard src/engine/cuda/*.cu src/train/cuda/*.cu)
  CU_OBJ    := $(CU_SRC:%.cu=$(BUILD)/%.o)
  NVCCFLAGS ?= -O3 -std=c++17 -g -lineinfo $(foreach a,$(CUDA_ARCH),-gencode=arch=compute_$(a),code=sm_$(a)) \
               -Xcompiler -Wall,-Wextra $(if $(WERROR),-Werror all-warnings,)
  CFLAGS    += -DAKE_HAVE_CUDA -I$(CUDA_HOME)/include
  LDLIBS    += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcudart -lstdc++
  LIB_OBJ   += $(CU_OBJ)
endif
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/unit/test_*.c)
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all setup run run-all test test-bins test-unit test-py test-http-san test-cluster test-container test-gpu fuzz clean
all: $(BUILD)/akidb-embed

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -Isrc -MMD -MP -c $< -o $@

%/gen/onnx/onnx_subset.pb-c.c %/gen/onnx/onnx_subset.pb-c.h: src/onnx/onnx_subset.proto
	@mkdir -p $*/gen/onnx
	protoc-c --proto_path=src/onnx --c_out=$*/gen/onnx $<

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/src/onnx/onnx_import.o: $(BUILD)/gen/onnx/onnx_subset.pb-c.h
# The server's static files are assembled into assets.o with .incbin (src/serve/assets.c).
SERVE_ASSETS := src/serve/openapi.json src/serve/docs.html
$(BUILD)/src/serve/assets.o build-fuzz/obj/src/serve/assets.o: $(SERVE_ASSETS)
.SECONDARY: $(call PB_GEN,$(BUILD)) $(call PB_GEN,build-fuzz) $(patsubst %.c,%.h,$(call PB_GEN,$(BUILD)) $(call PB_GEN,build-fuzz))

$(BUILD)/libake.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/akidb-embed: $(CLI_OBJ) $(BUILD)/libake.a
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libake.a tests/unit/test_util.h tests/golden/distill/golden_steps.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $< $(BUILD)/libake.a $(LDFLAGS) $(LDLIBS) -lcmocka -o $@

setup:
	bash scripts/setup

# Compiles on every core: a CPU build with the CUDA backend compiles 13 .cu files for four GPU
# generations, about 15 minutes one after another on 2 cores.
NPROC := $(shell nproc 2>/dev/null || echo 1)

# Serves the default model; AKE_HOST, AKE_PORT and every other AKE_* variable apply.
run: setup
	$(MAKE) -j$(NPROC) all
	AKE_HOST=$${AKE_HOST:-127.0.0.1} AKE_PORT=$${AKE_PORT:-8080} ./$(BUILD)/akidb-embed serve

# Serves the plan's five models from models/repository (scripts/models builds it) on one port,
# the admin API on 127.0.0.1:8081; AKE_DEVICE=cuda:0 puts them on a GPU.
run-all: setup
	$(MAKE) -j$(NPROC) all
	bash scripts/models
	AKE_HOST=$${AKE_HOST:-127.0.0.1} AKE_PORT=$${AKE_PORT:-8080} AKE_ADMIN_PORT=$${AKE_ADMIN_PORT:-8081} \
	  ./$(BUILD)/akidb-embed serve --model-repository models/repository --default-model all-MiniLM-L6-v2

# Unit tests run on the sanitized build; golden and differential tests on the optimized one. The
# sanitized build leaves the CUDA backend out (CUDA=0): it runs on the CPU only, the optimized build
# compiles every .cu file, and nvcc for both took minutes of make test.
test: setup
	$(MAKE) -j$(NPROC) all
	$(MAKE) -j$(NPROC) SANITIZE=address,undefined CUDA=0 all test-bins
	$(MAKE) SANITIZE=address,undefined CUDA=0 test-unit
	$(MAKE) fuzz
	$(MAKE) test-py
	$(MAKE) test-http-san
	$(MAKE) test-cluster

test-bins: $(TEST_BIN)
test-unit: test-bins
	@set -e; for t in $(TEST_BIN); do echo "== $$t"; AKE_MODEL_DIR=models/all-MiniLM-L6-v2 $$t; done

# GPU tests (tests/gpu/): kernels vs CPU references, whole engine vs the CPU engine on
# GPU_MODEL (the real all-MiniLM-L6-v2, F32 or F16) and on bert-base / bert-large synthesized
# into $(BUILD)/gpu-models. Needs a CUDA GPU; the log goes to $(BUILD)/test-gpu.log.
GPU_TEST_BIN := $(BUILD)/tests/gpu/test_kernels $(BUILD)/tests/gpu/test_engine_gpu $(BUILD)/tests/gpu/to_f16 \
                $(BUILD)/tests/gpu/test_train_gpu
GPU_MODEL    ?= models/all-MiniLM-L6-v2
$(BUILD)/tests/gpu/%: tests/gpu/%.c $(BUILD)/libake.a tests/gpu/gpu_util.h tests/golden/distill/golden_steps.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/gpu $< $(BUILD)/libake.a $(LDFLAGS) $(LDLIBS) -o $@

# Host-side benchmarks that link the library (bench/src/): parse_bench (µs per request of each
# API's parser), tokenizer_bench (tokenizer throughput).
$(BUILD)/bench/%: bench/src/%.c $(BUILD)/libake.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(BUILD)/libake.a $(LDFLAGS) $(LDLIBS) -o $@

# Kernel lab (dev/cuda/): each op timed alone against its floor; see dev/cuda/NOTES.md.
dev-cuda: $(BUILD)/dev/cuda/kernels_bench
$(BUILD)/dev/cuda/%: dev/cuda/%.c $(BUILD)/libake.a tests/gpu/gpu_util.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(BUILD)/libake.a $(LDFLAGS) $(LDLIBS) -o $@

test-gpu: all $(GPU_TEST_BIN)
	@test "$(CUDA)" = 1 || { echo "test-gpu: this build has no CUDA backend (nvcc not found or CUDA=0)"; exit 1; }
	BUILD=$(BUILD) GPU_MODEL=$(GPU_MODEL) bash tests/gpu/run.sh

test-py: all
	AKE_BIN=$(BUILD)/akidb-embed .venv/bin/python -m pytest -q tests/py tests/http

# Three replicas behind HAProxy with a real Prometheus (tests/cluster/test_cluster.py, issue 12):
# kill -9, SIGTERM and a restart under load with zero failed requests, every dashboard and alert
# expression evaluated live, the saturation alert made to fire. About 3 minutes; pytest keeps
# the temporary folders of failed runs only.
test-cluster: all
	AKE_BIN=$(BUILD)/akidb-embed .venv/bin/python -m pytest -q -p no:cacheprovider \
	  -o tmp_path_retention_policy=failed tests/cluster

# Opt-in (not in make test): deploy/container/Containerfile.cpu built and run with podman from a
# Debian root made by debootstrap (tests/container/test_container.py, issue 12); installs podman,
# runc and debootstrap. About 6 minutes on 2 cores the first time (debootstrap, apt, compile).
test-container: all
	bash scripts/setup --container
	AKE_BIN=$(BUILD)/akidb-embed .venv/bin/python -m pytest -q -p no:cacheprovider \
	  -o tmp_path_retention_policy=failed tests/container

# The HTTP smoke tests again on the ASan/UBSan build (leaks and races on the request path).
test-http-san:
	$(MAKE) SANITIZE=address,undefined CUDA=0 all
	AKE_BIN=build-san/akidb-embed .venv/bin/python -m pytest -q -m smoke tests/http

# libFuzzer targets, each run for FUZZ_SECONDS over its seed corpus (-Wno-pass-failed: at -O1
# clang does not vectorize, and says so for every `omp simd` loop). The library is compiled once
# into build-fuzz/obj (instrumented with fuzzer-no-link) and linked into every target.
FUZZ_SECONDS ?= 12
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 -march=$(ARCH) -Wno-pass-failed -Isrc -Ibuild-fuzz/gen -fopenmp
FUZZ_OBJ     := $(LIB_SRC:%.c=build-fuzz/obj/%.o) build-fuzz/obj/gen/onnx/onnx_subset.pb-c.o
build-fuzz/obj/%.o: %.c | build-fuzz/gen/onnx/onnx_subset.pb-c.h
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -MMD -MP -c $< -o $@
build-fuzz/obj/gen/%.o: build-fuzz/gen/%.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -MMD -MP -c $< -o $@
fuzz: $(FUZZ_OBJ)
	@set -e; mkdir -p build-fuzz; for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  echo "== $$n"; clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined \
	    $$f $(FUZZ_OBJ) $(LDLIBS) -o build-fuzz/$$n; \
	  mkdir -p build-fuzz/$$n.corpus; \
	  AKE_MODEL_DIR=models/all-MiniLM-L6-v2 build-fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -max_len=65536 build-fuzz/$$n.corpus \
	    tests/fuzz/$$n.seed >build-fuzz/$$n.log 2>&1 || { tail -n 40 build-fuzz/$$n.log; echo "$$n: FAILED (log build-fuzz/$$n.log)"; exit 1; }; \
	  tail -n 3 build-fuzz/$$n.log; done

clean:
	rm -rf build build-san build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(FUZZ_OBJ:.o=.d)
