# cloudsync-operator container image: a release build on Debian, then only the binary on a
# distroless base (glibc, CA certificates, tzdata; no shell, no package manager) as a non-root user.
#
#   docker build -t cloudsync-operator:0.1.0 .
#
# tests/dockerfile.rs replays the build stage offline (no engine here) and checks the binary.

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so that source changes reuse the cached dependency layer. Cargo loads every
# target and workspace member of a manifest, so this layer copies EVERY Cargo.toml of the workspace
# (add a COPY line per member, and a `!member/Cargo.toml` line to .dockerignore) and stubs all
# targets they name. No default features: the Graph simulator stays out of the production image.
COPY Cargo.toml Cargo.lock ./
COPY sim/Cargo.toml sim/
COPY docker/stub-cargo-targets.sh docker/
RUN sh docker/stub-cargo-targets.sh \
    && cargo build --release --locked --no-default-features --bin cloudsync-operator \
    && rm -rf src
COPY src ./src
# The copied sources may be older than the stub build; touching the crate roots rebuilds the crate.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --no-default-features --bin cloudsync-operator \
    && strip target/release/cloudsync-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/cloudsync-operator /cloudsync-operator
# 65532 is distroless' nonroot user; the Helm chart runs the pod with the same uid and
# runAsNonRoot, a read-only root filesystem and no capabilities.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/cloudsync-operator"]
CMD ["run"]
