//! The one secret scanner of the end-to-end tests. Every operator a test starts has its log and
//! its /metrics scanned when it stops, and every profile `wait_for` returns has its status and its
//! namespace's Events scanned, for the client secrets the tests handed out and for anything shaped
//! like a token. A finding fails the test with where it was and what kind, never the value.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use regex::Regex;

fn registered() -> &'static Mutex<Vec<String>> {
    static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| Mutex::new(vec![super::operator::CLIENT_SECRET.to_string()]))
}

/// Adds a secret value a test handed to the operator (a Secret it created).
pub fn register(secret: &str) {
    let mut s = registered().lock().unwrap_or_else(|p| p.into_inner());
    if !s.iter().any(|x| x == secret) {
        s.push(secret.to_string());
    }
}

/// Token shapes: a JWT (three base64url parts), an OAuth response's `access_token`, a bearer
/// header, a client secret as a form field.
fn token_shapes() -> &'static [(&'static str, Regex)] {
    static SHAPES: OnceLock<Vec<(&'static str, Regex)>> = OnceLock::new();
    SHAPES.get_or_init(|| {
        [
            ("a JWT", r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
            ("an access_token field", r#"access_token"?\s*[:=]"#),
            ("a bearer token", r"(?i)bearer\s+[A-Za-z0-9._~+/-]{16,}"),
            ("a client_secret form field", r"client_secret=[^&\s]+"),
        ]
        .into_iter()
        .map(|(what, re)| (what, Regex::new(re).expect("secret scanner pattern")))
        .collect()
    })
}

/// What is wrong with `text`, by kind (never the secret itself).
pub fn findings(text: &str) -> Vec<String> {
    let mut out: Vec<String> = registered()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|s| text.contains(s.as_str()))
        .map(|s| format!("a client secret the tests handed out ({} characters)", s.len()))
        .collect();
    out.extend(token_shapes().iter().filter(|(_, re)| re.is_match(text)).map(|(what, _)| what.to_string()));
    out
}

pub fn assert_clean(where_: &str, text: &str) {
    let found = findings(text);
    assert!(found.is_empty(), "secret material leaked into {where_}: {found:?}");
}

/// GET `url` (plain http on loopback) with the standard library, so it can run in a `Drop`.
pub fn http_get_blocking(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut stream = TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn the_scanner_finds_secrets_and_token_shapes_and_passes_ordinary_text() {
    register("s3cr3t-value-for-the-scanner-test");
    for leak in [
        "client secret s3cr3t-value-for-the-scanner-test in a log",
        "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123",
        r#"{"token_type":"Bearer","access_token":"x"}"#,
        "grant_type=client_credentials&client_secret=abc",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl",
    ] {
        assert!(!findings(leak).is_empty(), "missed: {leak}");
    }
    for fine in [
        r#"Graph call op="jobs.list" status=200 request_id="1e5e…" client_request_id="a7…""#,
        "the operator got a Microsoft Graph token for the tenant",
        "cloudsync_graph_requests_total{operation=\"token\",status=\"200\"} 3",
    ] {
        assert!(findings(fine).is_empty(), "false positive: {fine}: {:?}", findings(fine));
    }
}
