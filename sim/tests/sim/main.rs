//! The simulator over real HTTP, as one test binary: every route's paths, payloads, status codes
//! and errors, against the Graph reference rather than against the operator's client.

mod auth;
mod directory;
mod faults;
mod on_demand;
mod provisioning_logs;
mod schema;
mod support;
mod sync;
