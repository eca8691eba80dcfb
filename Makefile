# lengthbench — top-level entry points. Flags live in CMakeLists.txt, not here.
#   make deps    install missing Debian packages (root)
#   make         Release build in build/
#   make test    deps + build + every fast test (what .ci/run calls)
#   make slow    the slow end-to-end suite
#   make demo    deps + build + a small real experiment, printed as a table
BUILD ?= build
JOBS ?= $(shell nproc)
DEPS = cmake g++ make pkg-config libdnnl-dev ocl-icd-opencl-dev nlohmann-json3-dev \
       libboost-program-options-dev libsqlitecpp-dev libsqlite3-dev doctest-dev libbenchmark-dev \
       librsvg2-bin

SLOW_DEPS = slurm-wlm munge python3-torch python3-numpy chromium

.PHONY: all deps deps-slow build test slow demo clean format

all: build

# Installs the Debian packages of $(1) that are missing (root only when something is missing).
define install_missing
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "make deps: need root to install:$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

deps:
	$(call install_missing,$(DEPS))

# The slow suite also starts a single-node SLURM.
deps-slow: deps
	$(call install_missing,$(SLOW_DEPS))

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: deps
	$(MAKE) build
	cd $(BUILD) && ctest --output-on-failure -L fast

slow: deps-slow
	$(MAKE) build
	cd $(BUILD) && ctest --output-on-failure -L slow

demo: deps
	$(MAKE) build
	bash harness/demo.sh $(BUILD)/harness/lengthbench

clean:
	rm -rf $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')
