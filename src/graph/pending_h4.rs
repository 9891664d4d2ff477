//! TEMPORARY until the Graph-layer change lands: the gate API the executor needs.
use super::{GraphError, Tenant};

impl Tenant {
    pub async fn until_open(&self) {}
    pub fn fail_fast(&self) -> Tenant {
        self.clone()
    }
}

impl GraphError {
    pub fn not_processed(&self) -> bool {
        self.is_connect_failure()
            || self.code.as_deref() == Some("RetryAfterPending")
            || matches!(self.status, Some(429 | 503))
    }
}
