# Everything a developer or CI runs. `make test` is the README's test command.
CARGO ?= cargo
FEATURES := --features test-apiserver

.PHONY: test fmt-check clippy unit crds crds-check run

test: fmt-check clippy unit crds-check

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets $(FEATURES) -- -D warnings

unit:
	$(CARGO) test $(FEATURES) --lib --bins --tests

# Regenerate crds/ from the Rust types. Never edit crds/ by hand.
crds:
	$(CARGO) run --quiet -- crd --output-dir crds

# Fails when the committed crds/ differ from what the Rust types generate.
crds-check:
	@tmp=$$(mktemp -d) && $(CARGO) run --quiet -- crd --output-dir $$tmp && \
	  diff -ru crds $$tmp && rm -rf $$tmp && echo "crds/ matches the generated output"
