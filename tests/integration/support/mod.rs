//! Shared test support: a real control plane (`kube_env`), one of a test's own that it may stop
//! (`plane`), the operator binary against a Graph simulator (`operator`), and the Helm chart (`chart`).

pub mod chart;
pub mod kube_env;
pub mod operator;
pub mod plane;
