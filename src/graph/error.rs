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
    /// No answer: the exchange failed on the wire, or the client could not start it (`cause`
    /// says which).
    Transport,
}

/// What failed, in the client's own terms. `code` only ever holds what a service sent; whatever
/// the client observed itself is one of these, never an invented code string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The service named by `source` answered with an error status: `status`, `code` and
    /// `message` are its own.
    ErrorStatus,
    /// A success status with a body the call cannot use.
    UnusableAnswer,
    /// No connection could be made, so nothing was sent.
    Connect,
    /// No complete answer within the timeout: the service may have processed the request.
    Timeout,
    /// The exchange broke after connecting (reset, protocol error, truncated body): the service
    /// may have processed the request.
    Interrupted,
    /// Not sent: an earlier Retry-After for this tenant and application has not elapsed
    /// (`source` is Graph, whose wait it is).
    RetryAfterPending,
    /// Not sent: the workload identity token file cannot be read.
    TokenFileUnreadable,
    /// Not sent: the client is misconfigured (an endpoint URL that cannot take a path, an HTTP
    /// client that cannot be built).
    Setup,
}

/// A failed Graph or token call. Carries no secret: messages come from the service's error body
/// or from the transport, never from our requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphError {
    pub kind: ErrorKind,
    pub source: Source,
    /// What failed; decides whether the request may have been processed.
    pub cause: Cause,
    /// The typed call that failed, e.g. `jobs.create`.
    pub operation: &'static str,
    pub status: Option<u16>,
    /// Graph `error.code` or the identity platform's `error`, exactly as the service sent it.
    pub code: Option<String>,
    pub message: String,
    /// Graph's `request-id` (or the identity platform's `trace_id`), for support cases.
    pub request_id: Option<String>,
    /// How long the service asked us to wait (or, for `RetryAfterPending`, how long is left).
    pub retry_after: Option<Duration>,
}

impl GraphError {
    /// Retrying later can succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Throttled | ErrorKind::Transient)
    }

    /// No connection could be made: the request never reached the service.
    pub fn is_connect_failure(&self) -> bool {
        self.cause == Cause::Connect
    }

    /// The service certainly did not process the request, so even a non-idempotent write may be
    /// sent again: it never left (no connection, our own Retry-After gate, no token), or the
    /// service answered 429 or 503, which say it was not processed. Timeouts, broken connections
    /// and other errors leave it uncertain — also in the token step, where Graph was not called
    /// yet but the error does not record that.
    pub fn not_processed(&self) -> bool {
        match self.cause {
            Cause::Connect | Cause::RetryAfterPending | Cause::TokenFileUnreadable | Cause::Setup => true,
            // The identity platform answered, so the Graph request had no token and never left.
            Cause::ErrorStatus | Cause::UnusableAnswer if self.source == Source::Login => true,
            Cause::ErrorStatus => self.source == Source::Graph && matches!(self.status, Some(429 | 503)),
            Cause::UnusableAnswer | Cause::Timeout | Cause::Interrupted => false,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// The exchange failed on the wire (`Connect`, `Timeout`, `Interrupted`): transient.
    pub(crate) fn transport(operation: &'static str, cause: Cause, message: String) -> Self {
        Self {
            kind: ErrorKind::Transient,
            source: Source::Transport,
            cause,
            operation,
            status: None,
            code: None,
            message,
            request_id: None,
            retry_after: None,
        }
    }

    /// The client cannot send anything until the operator's configuration changes.
    pub(crate) fn setup(operation: &'static str, message: String) -> Self {
        Self { kind: ErrorKind::NeedsUserAction, ..Self::transport(operation, Cause::Setup, message) }
    }

    /// A request that got no (complete) answer. `timeout` is the per-request limit, named in the
    /// message because reqwest's own text does not say how long it waited.
    pub(crate) fn wire(operation: &'static str, e: reqwest::Error, timeout: Duration) -> Self {
        // Without the URL, which `operation` already identifies.
        let e = e.without_url();
        if e.is_connect() {
            Self::transport(operation, Cause::Connect, format!("cannot connect: {}", chain(&e)))
        } else if e.is_timeout() {
            Self::transport(operation, Cause::Timeout, format!("no complete answer within {timeout:?}"))
        } else {
            Self::transport(operation, Cause::Interrupted, format!("the exchange broke off: {}", chain(&e)))
        }
    }

    /// Refused before sending: the tenant's Retry-After gate stays closed for `remaining`.
    pub(crate) fn retry_after_pending(operation: &'static str, remaining: Duration) -> Self {
        Self {
            kind: ErrorKind::Throttled,
            source: Source::Graph,
            cause: Cause::RetryAfterPending,
            operation,
            status: None,
            code: None,
            message: "not sent: an earlier call for this tenant was throttled and its Retry-After has not elapsed"
                .into(),
            request_id: None,
            retry_after: Some(remaining),
        }
    }

    /// A success answer whose body the call cannot use.
    pub(crate) fn unusable_answer(
        operation: &'static str,
        source: Source,
        status: u16,
        request_id: Option<String>,
        message: String,
    ) -> Self {
        Self {
            kind: ErrorKind::Transient,
            source,
            cause: Cause::UnusableAnswer,
            operation,
            status: Some(status),
            code: None,
            message,
            request_id,
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

/// The causes below reqwest's generic top line ("error sending request"), which alone says
/// nothing; e.g. `client error (Connect): tcp connect error: Connection refused (os error 111)`.
fn chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        let text = cause.to_string();
        // hyper repeats an inner error's text in its own; keep each text once.
        if !parts.iter().any(|p| p == &text) {
            parts.push(text);
        }
        next = cause.source();
    }
    if parts.is_empty() { e.to_string() } else { parts.join(": ") }
}

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
            cause: Cause::ErrorStatus,
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

    fn answered(source: Source, status: u16) -> GraphError {
        GraphError {
            kind: classify_graph(status, None),
            source,
            cause: Cause::ErrorStatus,
            operation: "jobs.restart",
            status: Some(status),
            code: Some("SomeCode".into()),
            message: String::new(),
            request_id: None,
            retry_after: None,
        }
    }

    #[test]
    fn not_processed_only_when_the_service_certainly_did_not_act() {
        for status in [429, 503] {
            assert!(answered(Source::Graph, status).not_processed(), "{status}");
        }
        for status in [400, 404, 409, 500, 502, 504] {
            assert!(!answered(Source::Graph, status).not_processed(), "{status}");
        }
        // No token came, so the Graph request was never sent.
        assert!(answered(Source::Login, 400).not_processed());
        assert!(answered(Source::Login, 500).not_processed());

        let wire = |cause| GraphError::transport("jobs.restart", cause, String::new());
        assert!(wire(Cause::Connect).not_processed() && wire(Cause::Connect).is_connect_failure());
        for cause in [Cause::Timeout, Cause::Interrupted] {
            assert!(!wire(cause).not_processed(), "{cause:?}");
            assert!(!wire(cause).is_connect_failure(), "{cause:?}");
            assert!(wire(cause).is_transient());
        }
        let gate = GraphError::retry_after_pending("jobs.restart", Duration::from_secs(4));
        assert!(gate.not_processed() && gate.is_transient() && !gate.is_connect_failure());
        assert_eq!(
            (gate.kind, gate.retry_after, gate.code.as_deref()),
            (ErrorKind::Throttled, Some(Duration::from_secs(4)), None)
        );
        let unusable = GraphError::unusable_answer("jobs.create", Source::Graph, 201, None, "cannot read".into());
        assert!(!unusable.not_processed(), "a 201 means it was done");
        assert!(GraphError::setup("client", String::new()).not_processed());
        assert!(!GraphError::setup("client", String::new()).is_transient());
    }

    #[test]
    fn our_own_failures_invent_no_service_code() {
        let errors = [
            GraphError::transport("jobs.get", Cause::Timeout, "no complete answer within 5s".into()),
            GraphError::retry_after_pending("jobs.get", Duration::from_secs(4)),
            GraphError::unusable_answer(
                "jobs.get",
                Source::Graph,
                200,
                Some("r-1".into()),
                "cannot read the response: eof".into(),
            ),
            GraphError::setup("client", "endpoint URL mailto:x cannot take a request path".into()),
        ];
        for e in &errors {
            assert_eq!(e.code, None, "{e:?}");
        }
        let shown: Vec<_> = errors.iter().map(GraphError::summary).collect();
        assert_eq!(
            shown,
            [
                "jobs.get failed: no complete answer within 5s",
                "jobs.get failed: not sent: an earlier call for this tenant was throttled and its Retry-After has not elapsed",
                "jobs.get failed: HTTP 200: cannot read the response: eof",
                "client failed: endpoint URL mailto:x cannot take a request path",
            ]
        );
    }
}
