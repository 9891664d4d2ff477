//! Redaction for `kubectl cloudsync report`: the bundle goes into support tickets, so anything that
//! could be a credential is masked even though the operator never writes one (belt and braces: a
//! log line from a future bug, a token pasted into an annotation).

use std::sync::LazyLock;

use regex::Regex;

static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        // JWTs: access tokens and federated assertions.
        (r"eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*", "[redacted token]"),
        // Authorization headers.
        (r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}", "${1}[redacted]"),
        // key=value or "key": "value" pairs whose key names a secret.
        (
            r#"(?i)("?(?:client_?secret|password|access_?token|refresh_?token|client_assertion|secret)"?\s*[:=]\s*"?)[^"\s,}]+"#,
            "${1}[redacted]",
        ),
        // Entra client secrets have a recognizable shape: 3 chars, 'Q', a digit, '~', 31+ chars.
        (r"[A-Za-z0-9_~.-]{3}Q~[A-Za-z0-9_~.-]{31,}", "[redacted client secret]"),
    ]
    .into_iter()
    .filter_map(|(p, r)| Regex::new(p).ok().map(|re| (re, r)))
    .collect()
});

pub fn redact(text: &str) -> String {
    PATTERNS.iter().fold(text.to_string(), |t, (re, with)| re.replace_all(&t, *with).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_secrets_and_authorization_headers_are_masked() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiIxMjM0NTY3OCJ9.c2lnbmF0dXJl";
        let secret = "abcQ~0123456789abcdefghijklmnopqrstuvwxyz";
        let text = format!(
            "token {jwt}\nAuthorization: Bearer abcdefghijkl\nclient_secret=hunter2hunter2 \"clientSecret\": \"s3cr3t\"\n{secret}"
        );
        let out = redact(&text);
        for leaked in [jwt, "abcdefghijkl", "hunter2hunter2", "s3cr3t", secret] {
            assert!(!out.contains(leaked), "{leaked} in {out}");
        }
        assert!(out.contains("[redacted token]") && out.contains("Bearer [redacted]"), "{out}");
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let t = "AD2AADProvisioning Active; secretsHash a1b2; domain contoso.com";
        assert_eq!(redact(t), t);
    }
}
