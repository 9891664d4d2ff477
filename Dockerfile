# cloudsync-operator container image: a release build on Debian, then only the binary on a
# distroless base (glibc, CA certificates, tzdata; no shell, no package manager) as a non-root user.
#
#   docker build -t cloudsync-operator:0.1.0 .

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so that source changes reuse the cached dependency layer. The workspace
# member sim/ (the Graph simulator) must be there for cargo to read the manifest, but the image is
# built without it (--no-default-features), so its manifest and an empty lib are enough.
COPY Cargo.toml Cargo.lock ./
COPY sim/Cargo.toml ./sim/
RUN mkdir src sim/src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs sim/src/lib.rs \
    && cargo build --release --locked --no-default-features --bin cloudsync-operator \
    && rm -rf src
COPY src ./src
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
