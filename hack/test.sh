#!/usr/bin/env bash
# The project's one test command (README: `make test`; CI: .ci/run):
# format, lints, unit tests, then integration tests against a real kube-apiserver + etcd that this
# script starts (hack/testenv.sh) and the Graph simulator over HTTP. Everything covers the whole
# workspace: the operator (root crate) and the simulator (sim/, crate cloudsync-sim).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The production build (the Dockerfile's) leaves the simulator out; keep that configuration clean.
cargo clippy --locked -p cloudsync-operator --no-default-features -- -D warnings

step "unit tests"
cargo test --workspace --locked --lib --bins

step "control plane (hack/testenv.sh up)"
# A control plane this script started is stopped again on exit; one that was already running
# (a developer's) is left alone.
if hack/testenv.sh status >/dev/null 2>&1; then
  echo "reusing the running control plane"
else
  trap 'hack/testenv.sh down' EXIT
  hack/testenv.sh up
fi
hack/testenv.sh status
export CLOUDSYNC_TEST_KUBECONFIG=$ROOT/.testenv/admin.kubeconfig

step "integration tests"
# One test binary per crate: tests/integration (the operator) and sim/tests/sim (the simulator).
cargo test --workspace --locked --test '*' -- --test-threads="${TEST_THREADS:-4}"

printf '\nall checks passed in %ss\n' "$(($(date +%s) - started))"
