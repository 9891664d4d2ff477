//! One error type for every Graph and identity-platform failure, classified so the reconciler can
//! decide between "retry later" and "tell the user" without looking at status codes.

use std::fmt;
use std::time::Duration;

/// What kind of failure it is, which decides who must act.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 429 (or 503 with Retry-After): wait `retry_after`, then try again.
    Throttled,
    /// 5xx, timeouts, connection errors, 409: try again with backoff.
    Transient,
    /// 401 from Graph (also how sync APIs answer a missing application permission), or the
    /// identity platform refused the credentials.
    Unauthorized,
    /// 403: a missing role or permission (or replication lag right after creation).
    Forbidden,
    /// 404: the object does not exist (or is not replicated yet).
    NotFound,
    /// 400 and other refusals that only a change by the user can fix.
    NeedsUserAction,
}

/// Which service answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The identity platform's token endpoint.
    Login,
    /// Microsoft Graph.
    Graph,
    /// No answer: connection error or timeout.
    Transport,
}

/// A failed Graph or token call. Carries no secret: messages come from the service's error body
/// or from the transport, never from our requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphError {
    pub kind: ErrorKind,
    pub source: Source,
    /// The typed call that failed, e.g. `jobs.create`.
    pub operation: &'static str,
    pub status: Option<u16>,
    /// Graph `error.code` or the identity platform's `error` (plus AADSTS code).
    pub code: Option<String>,
    pub message: String,
    /// Graph's `request-id` (or the identity platform's `trace_id`), for support cases.
    pub request_id: Option<String>,
    /// How long the service asked us to wait.
    pub retry_after: Option<Duration>,
}

impl GraphError {
    /// Retrying later can succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Throttled | ErrorKind::Transient)
    }

    /// The request never reached the service, so even a POST can be repeated.
    pub fn is_connect_failure(&self) -> bool {
        self.source == Source::Transport && self.code.as_deref() == Some("Connect")
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    pub fn transport(operation: &'static str, message: String) -> Self {
        Self {
            kind: ErrorKind::Transient,
            source: Source::Transport,
            operation,
            status: None,
            code: None,
            message,
            request_id: None,
            retry_after: None,
        }
    }

    /// A stable, bounded label for metrics and condition reasons.
    pub fn kind_label(&self) -> &'static str {
        match self.kind {
            ErrorKind::Throttled => "Throttled",
            ErrorKind::Transient => "Transient",
            ErrorKind::Unauthorized => "Unauthorized",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::NeedsUserAction => "NeedsUserAction",
        }
    }
}

impl GraphError {
    /// The Display text without the request id: stable across repeats of the same failure, for
    /// condition messages (which must not change on every retry).
    pub fn summary(&self) -> String {
        let mut s = Self { request_id: None, ..self.clone() }.to_string();
        if s.ends_with('.') {
            s.pop();
        }
        s
    }
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed", self.operation)?;
        if let Some(s) = self.status {
            write!(f, ": HTTP {s}")?;
        }
        if let Some(c) = self.code.as_deref().filter(|c| !c.is_empty()) {
            write!(f, " {c}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(r) = &self.request_id {
            write!(f, " (request-id {r})")?;
        }
        Ok(())
    }
}

impl std::error::Error for GraphError {}

/// Classifies a Graph HTTP answer (reference §4.1).
pub fn classify_graph(status: u16, retry_after: Option<Duration>) -> ErrorKind {
    match status {
        429 => ErrorKind::Throttled,
        503 if retry_after.is_some() => ErrorKind::Throttled,
        401 => ErrorKind::Unauthorized,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        // Terraform retries 409 on sync calls; 408/424 are retried by Microsoft's SDKs.
        408 | 409 | 424 => ErrorKind::Transient,
        501 => ErrorKind::NeedsUserAction,
        500..=599 => ErrorKind::Transient,
        _ => ErrorKind::NeedsUserAction,
    }
}

/// Classifies an identity-platform answer (reference §5.1): the client's credentials, the tenant
/// id or the federation are wrong, unless the service itself failed.
pub fn classify_login(status: u16) -> ErrorKind {
    match status {
        429 => ErrorKind::Throttled,
        408 | 500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Unauthorized,
    }
}

/// Parses `Retry-After`: delta-seconds (what Graph sends) or an HTTP date.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let delta = date.duration_since(now);
    Some(Duration::from_secs(u64::try_from(delta.as_secs()).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_statuses_are_classified() {
        assert_eq!(classify_graph(429, None), ErrorKind::Throttled);
        assert_eq!(classify_graph(503, Some(Duration::from_secs(3))), ErrorKind::Throttled);
        assert_eq!(classify_graph(503, None), ErrorKind::Transient);
        assert_eq!(classify_graph(504, None), ErrorKind::Transient);
        assert_eq!(classify_graph(409, None), ErrorKind::Transient);
        assert_eq!(classify_graph(401, None), ErrorKind::Unauthorized);
        assert_eq!(classify_graph(403, None), ErrorKind::Forbidden);
        assert_eq!(classify_graph(404, None), ErrorKind::NotFound);
        assert_eq!(classify_graph(400, None), ErrorKind::NeedsUserAction);
        assert_eq!(classify_graph(501, None), ErrorKind::NeedsUserAction);
    }

    #[test]
    fn login_refusals_need_the_user_but_outages_do_not() {
        assert_eq!(classify_login(400), ErrorKind::Unauthorized);
        assert_eq!(classify_login(401), ErrorKind::Unauthorized);
        assert_eq!(classify_login(503), ErrorKind::Transient);
        assert_eq!(classify_login(429), ErrorKind::Throttled);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = jiff::fmt::rfc2822::to_string(
            &(now + jiff::SignedDuration::from_secs(30)).to_zoned(jiff::tz::TimeZone::UTC),
        )
        .unwrap();
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(30)));
        let earlier = jiff::fmt::rfc2822::to_string(
            &(now - jiff::SignedDuration::from_secs(30)).to_zoned(jiff::tz::TimeZone::UTC),
        )
        .unwrap();
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn display_names_operation_status_code_and_request_id() {
        let e = GraphError {
            kind: ErrorKind::NotFound,
            source: Source::Graph,
            operation: "jobs.get",
            status: Some(404),
            code: Some("Request_ResourceNotFound".into()),
            message: "Resource 'x' does not exist".into(),
            request_id: Some("abc".into()),
            retry_after: None,
        };
        assert_eq!(
            e.to_string(),
            "jobs.get failed: HTTP 404 Request_ResourceNotFound: Resource 'x' does not exist (request-id abc)"
        );
        assert_eq!(e.summary(), "jobs.get failed: HTTP 404 Request_ResourceNotFound: Resource 'x' does not exist");
    }
}
