# One build for the shared library, the three services, the tools and the tests.
#   make            optimised build into build/
#   make SAN=1      AddressSanitizer + UBSan build into build-san/
#   make FUZZ=1     the libFuzzer harnesses of fuzz/ (clang) into build-fuzz/fuzz/
#   make services   only what the stack runs (the services and the legacy API simulator)
#   make up / down  local stack (README);  make test  everything;  make bench  benchmarks
#   make fuzz       builds the harnesses and runs each for FUZZ_SECONDS (scripts/fuzz)
#   make COV=1      gcov-instrumented build into build-cov/ (-O0 --coverage)
#   make coverage   that build through unit, e2e and API-fuzz tests; line and branch coverage
#   V=1             print the full compiler and linker command lines (default: "CC file.c")
SHELL := /bin/bash
SAN ?= 0
FUZZ ?= 0
COV ?= 0
ifeq ($(FUZZ),1)
# Every object is instrumented for coverage (fuzzer-no-link); only the harnesses link libFuzzer.
B ?= build-fuzz
FUZZ_CC ?= clang
CC := $(FUZZ_CC)
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
LDSAN := -fsanitize=fuzzer,address,undefined
.DEFAULT_GOAL := fuzz-build
else ifeq ($(COV),1)
# -O0 so that lines and branches map one to one to the source; each process adds its counts to the
# .gcda files next to the objects when it exits (services: on their graceful SIGTERM stop). The
# services are multi-threaded: counters are updated atomically, else lost updates make
# gcov report negative branch counts.
B ?= build-cov
OPT := -O0 -g --coverage -fprofile-update=atomic
LDSAN := --coverage
else ifeq ($(SAN),1)
B ?= build-san
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN := -fsanitize=address,undefined
else
B ?= build
OPT := -O2 -g
LDSAN :=
endif

PKGS := libulfius jansson libpq hiredis libcurl openssl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lmicrohttpd -largon2 -lpthread -lm
CC ?= cc
CFLAGS := -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wformat=2 \
          $(OPT) -Ishared/include $(PKG_CFLAGS) -MMD -MP
LDFLAGS := $(LDSAN)

SHARED_SRC := $(wildcard shared/src/*.c)
SHARED_OBJ := $(SHARED_SRC:%.c=$(B)/obj/%.o)
LIBSHARED := $(B)/libshared.a

SERVICES := customers-service transactions-service sync-service
SERVICE_BINS := $(SERVICES:%=$(B)/%)
TOOL_DIRS := $(wildcard tools/*/src)
TOOL_BINS := $(patsubst tools/%/src,$(B)/%,$(TOOL_DIRS))
# What the simulators share (responses, fault RNG, the daemon): tools/simlib, no src/ so not a
# tool itself; every tool links it and its objects see sim.h.
SIMLIB_OBJ := $(patsubst %.c,$(B)/obj/%.o,$(wildcard tools/simlib/*.c))
$(B)/obj/tools/%.o: CFLAGS += -Itools/simlib

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)

# Quiet by default: one "CC file.c" / "LD binary" line per step; V=1 shows the commands.
V ?= 0
ifeq ($(V),1)
Q :=
say := @true
else
Q := @
say := @printf '  %-3s %s\n'
endif

.PHONY: all services clean up down test test-unit test-san bench bench-health bench-users bench-tx bench-sync bench-events bench-erp fuzz fuzz-build coverage
all: $(LIBSHARED) $(SERVICE_BINS) $(TOOL_BINS) $(UNIT_BINS)
services: $(SERVICE_BINS) $(TOOL_BINS)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(say) CC $<
	$(Q)$(CC) $(CFLAGS) -I$(dir $<) -c $< -o $@

$(LIBSHARED): $(SHARED_OBJ)
	@mkdir -p $(dir $@)
	$(say) AR $@
	$(Q)ar rcs $@ $^

objs_of = $(patsubst %.c,$(B)/obj/%.o,$(wildcard $(1)/src/*.c))

# $(1) = source dir (customers-service, tools/legacy-api), $(2) = binary name, $(3) = more objects
define binary_rule
$(B)/$(2): $(call objs_of,$(1)) $(3) $(LIBSHARED)
	$$(say) LD $$@
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$(filter %.o,$$^) $(LIBSHARED) $$(PKG_LIBS)
endef
$(foreach s,$(SERVICES),$(eval $(call binary_rule,$(s),$(s))))
$(foreach t,$(TOOL_DIRS),$(eval $(call binary_rule,$(patsubst %/src,%,$(t)),$(patsubst tools/%/src,%,$(t)),$(SIMLIB_OBJ))))

# Unit tests link the shared library and, when named test_<service>_*.c, that service's
# non-main objects (logic is testable without HTTP). A test may define some of those objects'
# functions itself instead (a link-time fake, e.g. an in-memory repository, so use-case rules run
# without a database): fakes_<test> names the objects it leaves out.
fakes_test_customers_users := users_repo
fakes_test_transactions_rules := tx_repo customers_client txcache txlist_cache
svc_objs = $(foreach s,$(SERVICES),$(if $(findstring test_$(subst -service,,$(s))_,$(1)),$(patsubst %.c,$(B)/obj/%.o,$(filter-out %/main.c $(foreach f,$(fakes_$(1)),%/$(f).c),$(wildcard $(s)/src/*.c)))))

define test_rule
$(B)/tests/$(1): tests/unit/$(1).c $(LIBSHARED) $(call svc_objs,$(1))
	@mkdir -p $$(dir $$@)
	$$(say) CC $$<
	$$(Q)$$(CC) $$(CFLAGS) $(foreach s,$(SERVICES),-I$(s)/src) $$(LDFLAGS) -o $$@ $$< $(call svc_objs,$(1)) $(LIBSHARED) $$(PKG_LIBS) -lcmocka
endef
$(foreach t,$(UNIT_SRC:tests/unit/%.c=%),$(eval $(call test_rule,$(t))))

# Fuzz harnesses follow the same naming: fuzz/fuzz_<service>_*.c link that service's objects.
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRC:fuzz/%.c=$(B)/fuzz/%)
fuzz_svc_objs = $(foreach s,$(SERVICES),$(if $(findstring fuzz_$(subst -service,,$(s))_,$(1)),$(patsubst %.c,$(B)/obj/%.o,$(filter-out %/main.c,$(wildcard $(s)/src/*.c)))))

define fuzz_rule
$(B)/fuzz/$(1): fuzz/$(1).c fuzz/fuzz.h $(LIBSHARED) $(call fuzz_svc_objs,$(1))
	@mkdir -p $$(dir $$@)
	$$(say) CC $$<
	$$(Q)$$(CC) $$(CFLAGS) -Ifuzz $(foreach s,$(SERVICES),-I$(s)/src) $$(LDFLAGS) -o $$@ $$< $(call fuzz_svc_objs,$(1)) $(LIBSHARED) $$(PKG_LIBS)
endef
$(foreach t,$(FUZZ_SRC:fuzz/%.c=%),$(eval $(call fuzz_rule,$(t))))

fuzz-build: $(FUZZ_BINS)

-include $(shell find $(B) -name '*.d' 2>/dev/null)

test-unit: all
	@scripts/run-unit $(B)

test-san:
	$(MAKE) SAN=1 all
	@scripts/run-unit build-san

up:
	@scripts/install-deps
	@$(MAKE) --no-print-directory services
	@scripts/stack up

down:
	@scripts/stack down

test:
	@scripts/install-deps
	@scripts/test-all

bench:
	@scripts/install-deps
	@$(MAKE) --no-print-directory all
	@bench/run-all

bench-health bench-tx bench-sync bench-events bench-erp:
	@$(MAKE) --no-print-directory all
	@bench/run-all $(@:bench-%=%)

bench-users:
	@$(MAKE) --no-print-directory all
	@bench/run-all users bulk_upsert

fuzz:
	@scripts/install-deps
	@scripts/fuzz

coverage:
	@scripts/install-deps
	@scripts/coverage

clean:
	rm -rf build build-san build-fuzz build-cov
