//! Every integration test of the operator, as one test binary so that CI links once. Each module
//! is one area (`cargo test --test integration operator::` runs one); all of them share one real
//! kube-apiserver (`support::kube_env`) and start their own Graph simulators.
//!
//! Tests run in parallel across modules, so none may change what others rely on: each works in
//! its own namespace, cluster-scoped objects get unique names, and the CRD stays a superset.

mod support;

mod api;
mod argocd_health;
mod chart;
mod crash;
mod dockerfile;
mod graph_client;
mod leader;
mod observability;
mod operator;
mod rbac_e2e;
mod safety;
#[cfg(feature = "sim")]
mod sim_cli;
mod testenv;
