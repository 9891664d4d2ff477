//! Shared test support: a real control plane (`kube_env`), the operator binary against a Graph
//! simulator (`operator`), and the Helm chart (`chart`).

pub mod chart;
pub mod kube_env;
pub mod operator;
