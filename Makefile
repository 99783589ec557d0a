# hotpath: top-level convenience targets. The real build is CMake.
#   make demo   install missing Debian packages, build, serve the default model
#   make test   install missing packages, build, run every test through ctest
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: all deps build test demo bench node-deps clean

all: build

deps:
	@bash scripts/deps.sh

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

node-deps:
	@bash scripts/node-deps.sh

# Tests run one at a time: several servers and thread pools at once on a
# 2-core machine measure the scheduler, not the code.
test: deps build node-deps
	@cd $(BUILD) && ctest --output-on-failure

demo: deps build
	@bash scripts/demo.sh $(BUILD)/hotpath $(HOST) $(PORT)

bench: deps build
	@BENCH_ARGS="$(BENCH_ARGS)" bash scripts/bench.sh $(BUILD)/hotpath

clean:
	rm -rf $(BUILD)
