# Everything a developer or CI runs. `make test` is the README's test command.
CARGO ?= cargo
FEATURES := --features test-apiserver
PYTHON ?= python3
# The Python tools of the packaging tests (Helm as a library, a Lua interpreter, pytest).
VENV := .venv-packaging
PACKAGING_REQUIREMENTS := tests/packaging/requirements.txt
# Every copy of the generated CRDs: the canonical one, the Helm chart's and the kustomize base's.
CRD_COPIES := charts/healthlake-operator/crds deploy/base/crds

.PHONY: test fmt-check clippy unit crds crds-check packaging-test run

test: fmt-check clippy unit crds-check packaging-test

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets $(FEATURES) -- -D warnings

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
