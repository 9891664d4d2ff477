//! cloudsync-operator: runs Microsoft Entra cloud sync declaratively from Kubernetes.
//!
//! `api` holds the CloudSyncProfile types, `cli` the command line; the binary in `main.rs` only
//! parses arguments and hands over.

pub mod api;
pub mod cli;
pub mod controller;
pub mod graph;
pub mod leader;
pub mod metrics;
pub mod ondemand;
pub mod plugin;
pub mod reconcile;
pub mod server;
pub mod telemetry;
