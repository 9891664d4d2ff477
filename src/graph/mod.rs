//! Microsoft Graph client: auth (client secret, workload identity, token cache, national clouds),
//! HTTP (retries, Retry-After, error envelope, request ids), and the typed calls the reconciler
//! makes. The only place the operator talks to Graph.
//!
//! Module graph (no cycles, nothing from the rest of the crate): `error`, `cloud`, `observer`,
//! `gate` and `model` are leaves; `retry` and `answer` use `error`; `auth` uses `answer`, `cloud`,
//! `error` and `observer`; `http` uses all of those; `directory`, `sync` and `audit` add typed calls
//! to `http::Tenant`.

pub mod answer;
pub mod audit;
pub mod auth;
pub mod cloud;
mod directory;
pub mod error;
mod gate;
pub mod http;
pub mod model;
pub mod observer;
pub mod retry;
pub mod schema;
mod sync;

pub use auth::Credential;
pub use cloud::{Endpoints, NationalCloud, Overrides};
pub use error::{Cause, ErrorKind, GraphError, Source};
pub use http::{ClientConfig, GraphClient, Tenant};
pub use observer::Observer;
pub use retry::RetryPolicy;
pub use sync::json_secret;

#[cfg(test)]
mod props;
