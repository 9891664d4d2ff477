//! The answers of `body` faults: what a gateway, a proxy or a broken server sends a Graph client
//! instead of Graph's JSON.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::faults::BadBody;

/// A front door's error page, as Azure's and many proxies' look.
const HTML: &str = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><h1>Bad Gateway</h1>\
<p>The upstream server returned an invalid response.</p></body></html>\n";

/// A job list cut off inside a string.
const TRUNCATED: &str =
    r#"{"@odata.context":"https://graph.microsoft.com/beta/$metadata#jobs","value":[{"id":"AD2AADProvisioning.aa"#;

/// One chunk of a huge body's padding (JSON whitespace, so the whole is still valid JSON).
static PADDING: [u8; 64 * 1024] = [b' '; 64 * 1024];

const HUGE_OPEN: &[u8] = br#"{"value":["#;
const HUGE_CLOSE: &[u8] = b"]}";

/// Marks a response the simulator must send as it is, not render into Graph's error envelope.
#[derive(Clone, Copy, Debug)]
pub struct Raw;

pub fn response(status: u16, body: BadBody) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = match body {
        BadBody::Html => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], HTML).into_response(),
        BadBody::Empty => (status, [(header::CONTENT_TYPE, "application/json")], "").into_response(),
        BadBody::Truncated => (status, [(header::CONTENT_TYPE, "application/json")], TRUNCATED).into_response(),
        BadBody::Huge { bytes } => (status, [(header::CONTENT_TYPE, "application/json")], huge(bytes)).into_response(),
    };
    response.extensions_mut().insert(Raw);
    response
}

/// A streamed body of about `bytes` bytes with no Content-Length: produced as the client reads,
/// so the simulator never holds it either.
fn huge(bytes: u64) -> Body {
    let chunks = bytes.saturating_sub((HUGE_OPEN.len() + HUGE_CLOSE.len()) as u64).div_ceil(PADDING.len() as u64);
    let parts = std::iter::once(Bytes::from_static(HUGE_OPEN))
        .chain((0..chunks).map(|_| Bytes::from_static(&PADDING)))
        .chain(std::iter::once(Bytes::from_static(HUGE_CLOSE)))
        .map(Ok::<Bytes, Infallible>);
    Body::from_stream(futures_util::stream::iter(parts))
}
