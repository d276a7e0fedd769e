# syntax=docker/dockerfile:1
# The operator's production image: the release build with default features only (no HealthLake
# emulator, no in-memory Kubernetes API), on a distroless base without shell or package manager,
# running as the unprivileged user 65532.
#
#   docker build -t registry.example.com/healthlake-operator:0.1.0 .

# Debian bookworm, as the runtime image below: the binary links the same glibc.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
# The manifest declares the test targets, so cargo needs tests/ to exist; .dockerignore keeps out
# everything else (target/, charts, deploy, ...).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY tests ./tests
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin healthlake-operator \
    && install -D -m 0755 target/release/healthlake-operator /out/healthlake-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/healthlake-operator /usr/local/bin/healthlake-operator
# The uid and gid of distroless's "nonroot" user; numeric so that runAsNonRoot can check it.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/healthlake-operator"]
CMD ["run"]
