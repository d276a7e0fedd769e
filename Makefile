# Everything a developer or CI runs. `make test` is the README's test command.
CARGO ?= cargo
# The tests need the stand-ins for the outside world: the HealthLake emulator and the in-memory
# Kubernetes API (with the admission validator). The production build has neither.
FEATURES := --features trial
PYTHON ?= python3
# The Python tools of the packaging tests (Helm as a library, a Lua interpreter, pytest).
VENV := .venv-packaging
PACKAGING_REQUIREMENTS := tests/packaging/requirements.txt
# Every copy of the generated CRDs: the canonical one, the Helm chart's and the kustomize base's.
CRD_COPIES := charts/healthlake-operator/crds deploy/base/crds

.PHONY: test fmt-check clippy unit crds crds-check production-check packaging-test trial bench

test: fmt-check clippy unit crds-check production-check packaging-test

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets $(FEATURES) -- -D warnings
	$(CARGO) clippy --bins --lib -- -D warnings

unit:
	$(CARGO) test $(FEATURES) --lib --bins --tests

# Regenerate crds/ (and its copies in the chart and the kustomize base) from the Rust types.
# Never edit any of them by hand.
crds:
	$(CARGO) run --quiet -- crd --output-dir crds
	@for copy in $(CRD_COPIES); do \
	  rm -f $$copy/*.yaml && cp crds/*.yaml $$copy/ || exit 1; \
	done

# Fails when the committed crds/ or one of its copies differ from what the Rust types generate.
crds-check:
	@tmp=$$(mktemp -d) && $(CARGO) run --quiet -- crd --output-dir $$tmp && \
	  for dir in crds $(CRD_COPIES); do diff -ru $$dir $$tmp || exit 1; done && \
	  rm -rf $$tmp && echo "crds/ and its copies match the generated output"

# The virtual environment of the packaging tests; pip runs again only when the requirements change.
$(VENV)/.installed: $(PACKAGING_REQUIREMENTS)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r $(PACKAGING_REQUIREMENTS)
	touch $@

# The Helm chart, the kustomize base, the Argo CD health checks, the IAM policy, the Dockerfile.
packaging-test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q tests/packaging

# Fails when the production build (default features, the binary crds-check built) could fake
# AWS or Kubernetes: it must hold no emulator, in-memory API or admission crates, and offer no
# flag or command that turns them on.
production-check:
	@deps=$$($(CARGO) tree --edges normal --prefix none --format '{p}' | cut -d' ' -f1 | sort -u) && \
	  for crate in jsonschema kube-cel cel; do \
	    if echo "$$deps" | grep -qx "$$crate"; then \
	      echo "the production build depends on $$crate"; exit 1; fi; done
	@commands=$$($(CARGO) run --quiet -- --help) && flags=$$($(CARGO) run --quiet -- run --help) && \
	  if echo "$$commands" | grep -E '^  (emulator|sandbox|trial) '; then \
	    echo "the production binary has a stand-in command"; exit 1; fi && \
	  if echo "$$flags" | grep -E -- '--(emulator|sandbox)'; then \
	    echo "the production binary has a stand-in flag"; exit 1; fi
	@echo "the production build holds no emulator, in-memory API or admission validator"

# The local trial: in-memory Kubernetes API, HealthLake emulator and operator in one process.
trial:
	$(CARGO) run --release --features trial -- trial

# The benchmarks of issue 11 (never part of `make test`): the production operator (release build,
# default features, as the image ships it) as its own process against the in-memory Kubernetes
# API and the HealthLake emulator of the trial build, each served in another process. Both builds
# write target/release/healthlake-operator, so the production one is copied aside first. Prints
# a table and writes target/bench/results.json; the README lists the BENCH_* knobs.
bench:
	$(CARGO) build --release --bin healthlake-operator
	mkdir -p target/bench
	cp target/release/healthlake-operator target/bench/healthlake-operator-production
	$(CARGO) build --release $(FEATURES)
	BENCH_RUN_BINARY=target/bench/healthlake-operator-production $(CARGO) run --release $(FEATURES) --example bench
