//! The Graph error envelope and the headers every Graph response carries (reference §4.1).
//!
//! Handlers return a [`GraphError`] without knowing the request ids; the response middleware in
//! `server.rs` renders the envelope, so every error, including axum's own 404/405 rejections,
//! ends up with the same shape and the same ids as the response headers.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::clock;

/// The content type Graph sends with JSON payloads.
pub const GRAPH_JSON: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

const AGS_DIAGNOSTIC: &str = r#"{"ServerInfo":{"DataCenter":"Simulator","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"GRAPH-SIM","ADSiteName":"SIM"}}"#;

const WWW_AUTHENTICATE: &str = r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000""#;

/// A Graph error, rendered later as `{"error":{"code","message","innerError":{...}}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub headers: Vec<(HeaderName, String)>,
    /// Extra members of `innerError` (e.g. nested throttling detail).
    pub inner: Option<Value>,
}

impl GraphError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { status, code: code.into(), message: message.into(), headers: Vec::new(), inner: None }
    }

    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Directory "no such object", with the message shape of reference §4.1.
    pub fn not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
        )
    }

    /// Malformed input to a directory (AAD Graph-backed) endpoint.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
    }

    /// Malformed input to the synchronization service, which uses plain OData codes.
    pub fn sync_bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn unsupported_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Request_UnsupportedQuery", message)
    }

    /// A bearer token problem. Graph adds `WWW-Authenticate` to these.
    pub fn invalid_token(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", message)
            .with_header(header::WWW_AUTHENTICATE, WWW_AUTHENTICATE)
    }

    /// What the synchronization service answers when the caller lacks its permission: 401 with
    /// an empty `UnknownError` (microsoft-graph-docs-contrib#8800), not 403.
    pub fn sync_unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UnknownError", "").with_header(header::WWW_AUTHENTICATE, WWW_AUTHENTICATE)
    }

    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    pub fn unknown_segment(segment: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", format!("Resource not found for the segment '{segment}'."))
    }

    pub fn method_not_allowed(allowed: &[Method]) -> Self {
        let allow = allowed.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        )
        .with_header(header::ALLOW, allow)
    }

    /// A 429 with `Retry-After` and the identity throttling headers of reference §4.2.
    pub fn throttled(code: Option<&str>, retry_after: Option<u64>, scope: &str) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            code.unwrap_or("TooManyRequests"),
            "Too many requests. Retry after the number of seconds in the Retry-After header.",
        )
        .with_header(HeaderName::from_static("x-ms-throttle-scope"), scope)
        .with_header(HeaderName::from_static("x-ms-throttle-information"), "ResourceUnitLimitExceeded");
        if let Some(secs) = retry_after {
            e = e.with_header(header::RETRY_AFTER, secs.to_string());
        }
        e
    }

    /// The default code and message for an injected or otherwise unexplained status.
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status.as_u16() {
            400 => ("BadRequest", "The request is malformed or incorrect."),
            401 => return Self::invalid_token("Access token validation failure."),
            403 => return Self::forbidden(),
            404 => ("NotFound", "The requested resource does not exist."),
            405 => ("Request_BadRequest", "Specified HTTP method is not allowed for the request target."),
            409 => ("Conflict", "The request conflicts with the current state of the resource."),
            413 => ("Request_BadRequest", "The request body is too large."),
            415 => ("BadRequest", "The content type of the request is not supported."),
            429 => ("TooManyRequests", "Too many requests."),
            500 => ("generalException", "An unspecified error has occurred."),
            502 => ("BadGateway", "The service is unreachable."),
            503 => ("serviceNotAvailable", "The service is temporarily unavailable. Try again later."),
            504 => ("GatewayTimeout", "The gateway timed out."),
            507 => ("InsufficientStorage", "The maximum storage quota has been reached."),
            _ => ("UnknownError", ""),
        };
        Self::new(status, code, message)
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// The ids a response is stamped with.
#[derive(Debug, Clone)]
pub struct RequestIds {
    pub request_id: String,
    pub client_request_id: String,
}

impl RequestIds {
    /// Echo the caller's `client-request-id`; otherwise Graph uses the request id for both.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let request_id = super::ids::guid();
        let client_request_id = headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 200)
            .map(str::to_owned)
            .unwrap_or_else(|| request_id.clone());
        Self { request_id, client_request_id }
    }
}

/// Builds the envelope response for `err`.
pub fn render(err: &GraphError, ids: &RequestIds, now: Timestamp) -> Response {
    let mut inner = json!({
        "date": clock::inner_error_date(now),
        "request-id": ids.request_id,
        "client-request-id": ids.client_request_id,
    });
    if let (Some(Value::Object(extra)), Value::Object(map)) = (&err.inner, &mut inner) {
        for (k, v) in extra {
            map.insert(k.clone(), v.clone());
        }
    }
    let body = json!({"error": {"code": err.code, "message": err.message, "innerError": inner}});
    let mut response = (err.status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in &err.headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name.clone(), v);
        }
    }
    response
}

/// Adds the headers every Graph response carries.
pub fn stamp(headers: &mut HeaderMap, ids: &RequestIds, now: Timestamp) {
    let pairs = [
        ("request-id", ids.request_id.as_str()),
        ("client-request-id", ids.client_request_id.as_str()),
        ("x-ms-ags-diagnostic", AGS_DIAGNOSTIC),
        ("cache-control", "no-cache"),
    ];
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&clock::http_date(now)) {
        headers.insert(header::DATE, v);
    }
}

/// A JSON success response with Graph's content type.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(GRAPH_JSON));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_by_status() {
        assert_eq!(GraphError::for_status(StatusCode::SERVICE_UNAVAILABLE).code, "serviceNotAvailable");
        assert_eq!(GraphError::for_status(StatusCode::UNAUTHORIZED).code, "InvalidAuthenticationToken");
        let t = GraphError::throttled(None, Some(3), "Tenant_Application/ReadWrite/a/t");
        assert!(t.headers.iter().any(|(n, v)| n == header::RETRY_AFTER && v == "3"));
    }

    #[test]
    fn client_request_id_echo() {
        let mut h = HeaderMap::new();
        let ids = RequestIds::from_headers(&h);
        assert_eq!(ids.request_id, ids.client_request_id);
        h.insert("client-request-id", HeaderValue::from_static("abc"));
        assert_eq!(RequestIds::from_headers(&h).client_request_id, "abc");
    }
}
