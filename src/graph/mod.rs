//! Microsoft Graph client: auth (client secret, workload identity, token cache, national clouds),
//! HTTP (retries, Retry-After, error envelope, request ids), and the typed calls the reconciler
//! makes. The only place the operator talks to Graph.

pub mod auth;
pub mod cloud;
mod directory;
pub mod error;
pub mod http;
pub mod model;
mod sync;

pub use auth::Credential;
pub use cloud::{Endpoints, Overrides};
pub use error::{ErrorKind, GraphError, Source};
pub use http::{ClientConfig, GraphClient, Observer, RetryPolicy, Tenant};
pub use sync::json_secret;
