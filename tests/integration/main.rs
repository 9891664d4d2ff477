//! Every integration test of the operator, as one test binary so that CI links once. Each module
//! is one area (`cargo test --test integration operator::` runs one); all of them share one real
//! kube-apiserver (`support::kube_env`) and start their own Graph simulators.
//!
//! Tests of all modules run in parallel in one process (`--test-threads=4` in hack/test.sh), so
//! none may change what another relies on: each test works in namespaces of its own
//! (`kube_env::namespace`), cluster-scoped objects carry a per-test name (the chart's ClusterRoles
//! include the release namespace), an operator that watches all namespaces is held to its own
//! profiles by a label selector, and a test that changes the shared CRD must keep it a superset of
//! crds/ and restore it. Process-wide state in `support` (the kubeconfig, the CRD installed once)
//! is set once and never changed.
//!
//! A new test file: put it beside this one and add its `mod` line below.

mod support;

mod alerts;
mod api;
mod argocd_health;
mod chart;
mod crash;
mod crd_skew;
mod dockerfile;
mod failures;
mod graph_client;
mod leader;
mod observability;
mod ondemand;
mod operator;
mod outage;
mod ownership;
mod plugin;
mod rbac_e2e;
mod readme;
mod safety;
mod schema;
#[cfg(feature = "sim")]
mod sim_cli;
mod storm;
mod testenv;
