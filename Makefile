# Everything a developer or CI runs. `make test` is the README's test command.
CARGO ?= cargo
# The tests need the stand-ins for the outside world: the HealthLake emulator and the in-memory
# Kubernetes API (with the admission validator). The production build has neither.
FEATURES := --features trial

.PHONY: test fmt-check clippy unit crds crds-check production-check trial

test: fmt-check clippy unit crds-check production-check

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets $(FEATURES) -- -D warnings
	$(CARGO) clippy --bins --lib -- -D warnings

unit:
	$(CARGO) test $(FEATURES) --lib --bins --tests

# Regenerate crds/ from the Rust types. Never edit crds/ by hand.
crds:
	$(CARGO) run --quiet -- crd --output-dir crds

# Fails when the committed crds/ differ from what the Rust types generate.
crds-check:
	@tmp=$$(mktemp -d) && $(CARGO) run --quiet -- crd --output-dir $$tmp && \
	  diff -ru crds $$tmp && rm -rf $$tmp && echo "crds/ matches the generated output"

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
