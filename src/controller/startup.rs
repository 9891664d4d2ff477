//! Waiting for the kube-apiserver at start. A control plane that is down, restarting or still
//! loading (an upgrade, a node reboot) is waited for with a capped, jittered backoff: exiting
//! would only put the pod into CrashLoopBackOff, whose waits grow to five minutes. Problems that
//! waiting cannot fix (the CRD is missing, RBAC forbids the list) still fail at once, but only
//! once the apiserver says it is ready: while it starts, CRDs and RBAC are not loaded yet, and it
//! answers 404, 403 or 401 for a moment to requests that will succeed.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::ListParams;
use kube::{Api, Client};
use tracing::{info, warn};

use super::{RunError, WatchedProfile};

/// First wait after a failed attempt; doubles up to `MAX_DELAY`.
const FIRST_DELAY: Duration = Duration::from_millis(500);
/// Short enough that the operator is back within seconds of the apiserver.
const MAX_DELAY: Duration = Duration::from_secs(15);

/// The wait before retry `attempt` (1-based); `jitter` in [0, 1) spreads it by ±25 % so that
/// replicas do not retry in step.
pub fn delay(attempt: u32, jitter: f64) -> Duration {
    let base = FIRST_DELAY.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(10)));
    base.min(MAX_DELAY).mul_f64(0.75 + jitter.clamp(0.0, 1.0) * 0.5)
}

/// What one failed list of profiles means.
#[derive(Debug)]
pub enum Failure {
    /// Try again later; the text says why, for the log.
    Transient(String),
    /// Stop with this error.
    Permanent(RunError),
}

/// Classifies a failed list of profiles in `scope`; `apiserver_ready` is whether the apiserver's
/// /readyz answered 200 right after it (a 403 or 404 from a starting apiserver means nothing).
pub fn classify(error: kube::Error, scope: &str, apiserver_ready: bool) -> Failure {
    match error {
        kube::Error::Api(s) if matches!(s.code, 401 | 403 | 404) && !apiserver_ready => {
            Failure::Transient(format!("the apiserver answered {} while not ready yet", s.code))
        }
        kube::Error::Api(s) if s.code == 403 => {
            Failure::Permanent(RunError::Forbidden { scope: scope.to_string(), source: kube::Error::Api(s) })
        }
        kube::Error::Api(s) if s.code == 404 => Failure::Permanent(RunError::CrdMissing(kube::Error::Api(s))),
        // Overloaded, throttled, timed out or still starting.
        kube::Error::Api(s) if s.code >= 500 || matches!(s.code, 408 | 429) => {
            Failure::Transient(format!("the apiserver answered {}: {}", s.code, s.message))
        }
        e @ kube::Error::Api(_) => Failure::Permanent(RunError::Kube(e)),
        // Configuration the operator was given, not the network: waiting cannot change it.
        e @ (kube::Error::InferConfig(_)
        | kube::Error::BuildRequest(_)
        | kube::Error::ProxyProtocolUnsupported { .. }
        | kube::Error::ProxyProtocolDisabled { .. }) => Failure::Permanent(RunError::Kube(e)),
        // Connection refused or reset, TLS handshake, timeouts, a token that cannot be refreshed
        // right now, a body cut short: all of them what an outage looks like.
        e => Failure::Transient(e.to_string()),
    }
}

/// The scopes the watches will list, with how an error names them.
fn scopes(client: &Client, namespaces: &[String]) -> Vec<(Api<WatchedProfile>, String)> {
    if namespaces.is_empty() {
        vec![(Api::all(client.clone()), "in all namespaces".to_string())]
    } else {
        namespaces.iter().map(|ns| (Api::namespaced(client.clone(), ns), format!("in namespace {ns}"))).collect()
    }
}

/// Whether the apiserver reports itself ready (its CRDs and RBAC loaded). /readyz is readable by
/// every client (the system:public-info-viewer role), so the operator's RBAC needs nothing more.
async fn apiserver_ready(client: &Client) -> bool {
    match http::Request::get("/readyz").body(Vec::new()) {
        Ok(request) => client.request_text(request).await.is_ok(),
        Err(_) => false,
    }
}

/// One list per watched scope, exactly what the watches will do; the first failure decides.
async fn attempt(client: &Client, namespaces: &[String]) -> Result<(), Failure> {
    for (api, scope) in scopes(client, namespaces) {
        // Listed like the watch lists them: an unreadable profile must not stop the start.
        if let Err(e) = api.list(&ListParams::default().limit(1)).await {
            let ready =
                matches!(&e, kube::Error::Api(s) if matches!(s.code, 401 | 403 | 404)) && apiserver_ready(client).await;
            return Err(classify(e, &scope, ready));
        }
    }
    Ok(())
}

/// Reads of the kube-system namespace for the cluster id before the fallback is used.
const CLUSTER_ID_ATTEMPTS: u32 = 8;

/// The cluster id in the owner tags: the flag's value, or else the uid of the `kube-system`
/// namespace (the same for the life of a cluster, different in every cluster). When the operator
/// may not read it (RBAC, or no such namespace), `default`: installs in one cluster still differ
/// by namespace and name, and `--cluster-id` tells clusters apart.
pub async fn cluster_id(client: &Client, flag: Option<&str>) -> String {
    if let Some(id) = flag.map(str::trim).filter(|s| !s.is_empty()) {
        return id.to_string();
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut attempt: u32 = 0;
    loop {
        attempt = attempt.saturating_add(1);
        match namespaces.get_metadata("kube-system").await {
            Ok(ns) => match ns.metadata.uid.filter(|u| !u.is_empty()) {
                Some(uid) => return uid,
                None => break,
            },
            Err(kube::Error::Api(s)) if matches!(s.code, 401 | 403 | 404) => {
                info!(
                    code = s.code,
                    "cannot read the kube-system namespace for the cluster id; using \"default\" (set --cluster-id to name this cluster)"
                );
                return DEFAULT_CLUSTER_ID.to_string();
            }
            Err(e) if attempt < CLUSTER_ID_ATTEMPTS => {
                let wait = delay(attempt, rand::random::<f64>());
                warn!(attempt, error = %e, "reading the kube-system namespace for the cluster id failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                warn!(error = %e, "cannot read the kube-system namespace for the cluster id; using \"default\"");
                return DEFAULT_CLUSTER_ID.to_string();
            }
        }
    }
    info!("the kube-system namespace has no uid; using \"default\" as the cluster id");
    DEFAULT_CLUSTER_ID.to_string()
}

pub const DEFAULT_CLUSTER_ID: &str = "default";

/// Returns once every scope can be listed, retrying transient failures for as long as they last;
/// fails at once on a permanent one.
pub async fn wait_for_access(client: &Client, namespaces: &[String]) -> Result<(), RunError> {
    let mut failures: u32 = 0;
    loop {
        match attempt(client, namespaces).await {
            Ok(()) => {
                if failures > 0 {
                    info!(attempts = failures + 1, "the Kubernetes API answers; starting");
                }
                return Ok(());
            }
            Err(Failure::Permanent(e)) => return Err(e),
            Err(Failure::Transient(why)) => {
                failures = failures.saturating_add(1);
                let wait = delay(failures, rand::random::<f64>());
                warn!(
                    attempt = failures,
                    retry_in_ms = wait.as_millis() as u64,
                    error = %why,
                    "cannot reach the Kubernetes API; waiting for it (live, not ready)"
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status::failure("injected", "Injected").with_code(code)))
    }

    #[test]
    fn the_delay_doubles_is_capped_and_jittered() {
        assert_eq!(delay(1, 0.5), Duration::from_millis(500));
        assert_eq!(delay(2, 0.5), Duration::from_secs(1));
        assert_eq!(delay(6, 0.5), MAX_DELAY);
        assert_eq!(delay(u32::MAX, 0.5), MAX_DELAY);
        assert_eq!(delay(1, 0.0), Duration::from_millis(375));
        assert!(delay(40, 0.999_999) <= MAX_DELAY.mul_f64(1.25));
        assert_ne!(delay(3, 0.1), delay(3, 0.9), "jitter spreads replicas");
    }

    #[test]
    fn a_ready_apiserver_that_refuses_is_permanent_a_starting_one_is_not() {
        assert!(matches!(
            classify(api_error(404), "in all namespaces", true),
            Failure::Permanent(RunError::CrdMissing(_))
        ));
        match classify(api_error(403), "in namespace team-a", true) {
            Failure::Permanent(e @ RunError::Forbidden { .. }) => {
                assert!(e.to_string().contains("in namespace team-a"), "{e}");
                assert!(e.to_string().contains("check the operator's RBAC"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(classify(api_error(404), "s", false), Failure::Transient(_)));
        assert!(matches!(classify(api_error(403), "s", false), Failure::Transient(_)));
        assert!(matches!(classify(api_error(401), "s", false), Failure::Transient(_)));
    }

    #[test]
    fn overload_and_outage_are_transient_other_refusals_permanent() {
        for code in [500, 502, 503, 504, 408, 429] {
            assert!(matches!(classify(api_error(code), "s", true), Failure::Transient(_)), "{code}");
        }
        for code in [400, 401, 422] {
            assert!(matches!(classify(api_error(code), "s", true), Failure::Permanent(RunError::Kube(_))), "{code}");
        }
        let refused = kube::Error::Service(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)));
        assert!(matches!(classify(refused, "s", false), Failure::Transient(_)));
    }
}
