# Switchboard's front door: `make run` and `make test` (CMake does the building).
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
ARGS ?=
FUZZ_SECONDS ?= 300
# The node image that `make image` builds, and the Kubernetes manifests run (deploy/kubernetes/).
IMAGE ?= switchboard:dev

.PHONY: all build run test test-build fuzz format clean cluster

all: build

# Release build at build/switchboard, installing missing packages first.
build:
	@bash deploy/deps.sh build
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build -j $(JOBS)

# One node on 0.0.0.0:8080 (override with ARGS="--listen 127.0.0.1:9000" or SWITCHBOARD_* variables).
run: build
	./build/switchboard $(ARGS)

# Everything: the Release build, then a clang ASan+UBSan build with the unit tests, the
# integration tests (against both builds), the Chromium tests and short fuzz runs, all via ctest.
test: test-build
	@cd build-test && ctest --output-on-failure -j $(JOBS)

test-build:
	@bash deploy/deps.sh test
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build -j $(JOBS)
	@cmake -S . -B build-test -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DSB_TESTS=ON -DSB_SANITIZE=ON -DSB_FUZZ=ON \
		-DSB_RELEASE_BINARY=$(CURDIR)/build/switchboard >/dev/null
	@cmake --build build-test -j $(JOBS)
	@bash tests/browser/setup.sh

# Long fuzz runs (FUZZ_SECONDS each), keeping the corpus in build-test/tests/corpus/.
fuzz: test-build
	@for f in ws http utf8 message envelope token source proxy slot resp peerjs; do \
		mkdir -p build-test/tests/corpus/$$f && \
		./build-test/tests/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -timeout=5 \
			build-test/tests/corpus/$$f tests/fuzz/seeds/$$f || exit 1; \
	done

format:
	clang-format -i proto/*.[ch] node/*.c node/*/*.[ch] bench/*.[ch] tests/unit/*.[ch] tests/fuzz/*.[ch]

clean:
	rm -rf build build-test

# The benchmark suite, a few minutes: the Release build, then bench/run.sh starts redis-server and
# nodes on loopback with their limits lifted, runs build/switchboard-bench in each mode, and writes
# bench/results/latest.md with PNG plots (gnuplot).
.PHONY: bench
bench:
	@bash deploy/deps.sh bench
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build -j $(JOBS)
	@bash bench/run.sh build

# A local cluster in the foreground: Redis, N nodes (default 3) and HAProxy balancing them on
# BIND:PORT (default 0.0.0.0:8080), all in a temp dir; Ctrl-C stops it all and removes the dir.
# REDIS=single (the default) runs one redis-server; REDIS=cluster a Redis Cluster of 3 masters and
# 3 replicas, the nodes on redis+cluster://. ARGS="--log-level debug" goes to every node. See
# deploy/local/README.md.
cluster:
	@bash deploy/deps.sh test
	@$(MAKE) --no-print-directory build
	@exec env N='$(N)' PORT='$(PORT)' BIND='$(BIND)' REDIS='$(REDIS)' bash deploy/local/cluster.sh $(ARGS)

# The node image (Dockerfile) as $(IMAGE): with podman, in the build tree's own store (build-image/,
# on a Debian base made there once with debootstrap; see deploy/container/podman.sh to run or push
# it), or with docker where docker works and podman is not installed.
.PHONY: image
image:
	@bash deploy/container/image.sh '$(IMAGE)'
