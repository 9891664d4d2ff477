//! Reading and judging a Graph answer: the body read with a cap, then status, headers and body
//! turned into the bytes a call decodes or a typed [`GraphError`]. Judging is pure, so any body
//! (HTML from a gateway, truncated JSON, binary) is tested without a server.

use bytes::{Bytes, BytesMut};
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::{Cause, GraphError, Source, classify_graph, parse_retry_after};

/// The largest Graph body the client reads. The biggest answers it asks for are a jobs list
/// (a handful of jobs, each a few KiB) and a synchronization schema (a few hundred KiB for the
/// cloud sync templates); 16 MiB is far above any of them, yet bounds what a broken proxy or a
/// hostile endpoint can make each of `--concurrency` workers hold in memory.
pub const MAX_GRAPH_BODY: usize = 16 * 1024 * 1024;

/// The largest token-endpoint body read: a token answer is a few KiB.
pub const MAX_LOGIN_BODY: usize = 1024 * 1024;

/// The longest service error message kept (condition messages stay readable).
const MAX_MESSAGE: usize = 1024;

/// A body as read from the wire.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Whole(Bytes),
    /// Longer than the cap (announced or read): the rest was not read.
    TooLarge {
        limit: usize,
    },
}

/// Reads a body, stopping at `limit` bytes: a declared length above it is refused before
/// anything is read, and a chunked body is refused as soon as it passes it.
pub async fn read_capped(response: &mut reqwest::Response, limit: usize) -> Result<Body, reqwest::Error> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Ok(Body::TooLarge { limit });
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        if buf.len() + chunk.len() > limit {
            return Ok(Body::TooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Body::Whole(buf.freeze()))
}

/// A success answer: what the call decodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Success {
    pub status: u16,
    pub request_id: Option<String>,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl Success {
    /// The body as `T`, or an unusable answer that says what came (never the body itself,
    /// which may be a gateway page or anything else).
    pub fn decode<T: DeserializeOwned>(&self, op: &'static str) -> Result<T, GraphError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            let what = describe(self.content_type.as_deref(), self.body.len());
            GraphError::unusable_answer(
                op,
                Source::Graph,
                self.status,
                self.request_id.clone(),
                format!("cannot read the response ({what}): {e}"),
            )
        })
    }
}

#[derive(Deserialize, Default)]
struct Envelope {
    #[serde(default)]
    error: EnvelopeError,
}

#[derive(Deserialize, Default)]
struct EnvelopeError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "innerError")]
    inner_error: Option<InnerError>,
}

#[derive(Deserialize, Default)]
struct InnerError {
    #[serde(default, rename = "request-id")]
    request_id: Option<String>,
}

/// Judges a Graph answer (reference §4.1): a 2xx with a whole body is a [`Success`]; a 2xx too
/// large to read is an unusable answer (Graph may have done the work); any other status is an
/// error classified by its status, with code and message from Graph's error envelope when the
/// body is one.
pub fn judge(
    op: &'static str,
    status: u16,
    headers: &HeaderMap,
    body: Body,
    now: jiff::Timestamp,
) -> Result<Success, GraphError> {
    let header = |name| headers.get(name).and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok());
    let request_id = header("request-id").map(str::to_string);
    let content_type = header(CONTENT_TYPE.as_str()).map(str::to_string);
    let success = (200..300).contains(&status);
    let body = match body {
        Body::Whole(body) => body,
        Body::TooLarge { limit } if success => {
            let message = format!("the response is larger than the {} MiB the client reads", limit >> 20);
            return Err(GraphError::unusable_answer(op, Source::Graph, status, request_id, message));
        }
        // A refusal is classified by its status; an oversized body would only add code and message.
        Body::TooLarge { .. } => Bytes::new(),
    };
    if success {
        return Ok(Success { status, request_id, content_type, body });
    }
    let retry_after = header(RETRY_AFTER.as_str()).and_then(|v| parse_retry_after(v, now));
    let (envelope, message) = match serde_json::from_slice::<Envelope>(&body) {
        Ok(envelope) => {
            let message = truncate(envelope.error.message.clone().unwrap_or_default());
            (envelope, message)
        }
        // A gateway's or proxy's page: say so, without repeating it.
        Err(_) if !body.is_empty() => (
            Envelope::default(),
            format!("the answer is not a Graph error ({})", describe(content_type.as_deref(), body.len())),
        ),
        Err(_) => (Envelope::default(), String::new()),
    };
    Err(GraphError {
        kind: classify_graph(status, retry_after),
        source: Source::Graph,
        cause: Cause::ErrorStatus,
        operation: op,
        status: Some(status),
        code: envelope.error.code,
        message,
        request_id: request_id.or(envelope.error.inner_error.and_then(|i| i.request_id)),
        retry_after,
    })
}

/// "text/html, 512 bytes": what a body was, for a message. The content type is cut at its
/// parameters and kept only when it looks like one, so a header cannot smuggle text in.
fn describe(content_type: Option<&str>, len: usize) -> String {
    let kind = content_type
        .and_then(|c| c.split(';').next())
        .map(str::trim)
        .filter(|c| c.len() <= 64 && c.contains('/') && c.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("no content type");
    format!("{kind}, {len} bytes")
}

fn truncate(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let cut = (0..=MAX_MESSAGE).rev().find(|i| message.is_char_boundary(*i)).unwrap_or(0);
        message.truncate(cut);
    }
    message
}
