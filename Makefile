# akidb-embed — one Makefile for the library, the CLI, tests and fuzzers.
#   make            build build/akidb-embed
#   make run        set up (packages, venv, default model), build, serve it on 127.0.0.1:8080
#   make test       set up, build (also with ASan+UBSan), run every test
#   make SANITIZE=address,undefined   sanitized build into build-san/
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

CFLAGS   += -std=c11 -D_GNU_SOURCE -g -Wall -Wextra $(WERROR) $(OPT) -fopenmp -Isrc
LDFLAGS  += $(if $(SANITIZE),-fsanitize=$(SANITIZE),) -fopenmp
LDLIBS   += -ldnnl -lcjson -lutf8proc -lmicrohttpd -lcurl -lm -lpthread

LIB_SRC  := $(wildcard src/base/*.c src/text/*.c src/model/*.c src/engine/*.c src/engine/cpu/*.c src/serve/*.c)
CLI_SRC  := $(wildcard src/cli/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/unit/test_*.c)
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all setup run test test-unit test-py test-http-san fuzz clean
all: $(BUILD)/akidb-embed

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libake.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/akidb-embed: $(CLI_OBJ) $(BUILD)/libake.a
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libake.a tests/unit/test_util.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $< $(BUILD)/libake.a $(LDFLAGS) $(LDLIBS) -lcmocka -o $@

setup:
	bash scripts/setup

# Serves the default model; AKE_HOST, AKE_PORT and every other AKE_* variable apply.
run: setup all
	AKE_HOST=$${AKE_HOST:-127.0.0.1} AKE_PORT=$${AKE_PORT:-8080} ./$(BUILD)/akidb-embed serve

# Unit tests run on the sanitized build; golden and differential tests on the optimized one.
test: setup
	$(MAKE) all
	$(MAKE) SANITIZE=address,undefined all test-unit
	$(MAKE) fuzz
	$(MAKE) test-py
	$(MAKE) test-http-san

test-unit: $(TEST_BIN)
	@set -e; for t in $(TEST_BIN); do echo "== $$t"; AKE_MODEL_DIR=models/all-MiniLM-L6-v2 $$t; done

test-py: all
	AKE_BIN=$(BUILD)/akidb-embed .venv/bin/python -m pytest -q tests/py tests/http

# The HTTP smoke tests again on the ASan/UBSan build (leaks and races on the request path).
test-http-san:
	$(MAKE) SANITIZE=address,undefined all
	AKE_BIN=build-san/akidb-embed .venv/bin/python -m pytest -q -m smoke tests/http

# libFuzzer targets, each run for FUZZ_SECONDS over its seed corpus.
FUZZ_SECONDS ?= 30
fuzz:
	@set -e; mkdir -p build-fuzz; for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  echo "== $$n"; clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
	    $$f $(LIB_SRC) -fopenmp $(LDLIBS) -o build-fuzz/$$n; \
	  mkdir -p build-fuzz/$$n.corpus; \
	  build-fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -max_len=65536 build-fuzz/$$n.corpus tests/fuzz/$$n.seed 2>&1 | tail -3; done

clean:
	rm -rf build build-san build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
