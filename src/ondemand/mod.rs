//! Provision on demand: the `ProvisionRequest` controller. A request runs once through the
//! provisioning job of a profile in its namespace; see `run` for the crash-safety rules.

pub mod answer;
pub mod controller;
pub mod limiter;
pub mod plan;
pub mod run;
pub mod scope;

pub use run::OnDemandState;
