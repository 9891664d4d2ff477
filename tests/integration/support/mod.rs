//! Shared test support: a real control plane (`kube_env`), one of a test's own that it may stop
//! (`plane`), the operator binary against a Graph simulator (`operator`), the Helm chart
//! (`chart`), and the secret scanner every end-to-end test goes through (`secrets`).

pub mod chart;
pub mod kube_env;
pub mod operator;
pub mod plane;
pub mod secrets;
