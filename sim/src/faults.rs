//! Injectable faults: what a rule matches, what it does, and the `Retry-After` memory.
//!
//! The CLI (`--fault 'k=v,k=v'`), the control API (`POST /_sim/faults` JSON) and the Rust API all
//! go through [`FaultSpec`], so the three accept exactly the same rules.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The wire form of a rule (JSON, camelCase; the CLI uses the same keys).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSpec {
    /// Tenant id, or `*`/absent for any tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// HTTP method, or `*`/absent for any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path glob: `*` matches within one segment, `**` across segments; case-insensitive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Apply to the next N matching calls only; absent means every matching call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// Probability (0 to 1) that the rule hits a matching call; absent means always. Drawn from
    /// the rule's own seeded generator, so a run with the same calls in the same order repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<f64>,
    /// Seed of the rule's generator for `p` (default: the rule's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// `graph` (default) or `token`: the token endpoint (`POST /{tenant}/oauth2/v2.0/token`) is
    /// hit only by `api=token` rules, which may be `status` or `latency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// `status`, `body`, `latency`, `delay-response`, `performed-504`,
    /// `instantiate-404-after-create`, `not-found-after-create`, `forbidden-after-create` or
    /// `list-lag`.
    pub kind: String,
    /// HTTP status for `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `Retry-After` seconds for `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// Delay for `latency`, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
    /// Window in service-time seconds for `*-after-create` and `list-lag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Overrides the error code of `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Overrides the error message of `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The body of `body`: `html`, `empty`, `truncated` or `huge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Size of a `huge` body in bytes (default 32 MiB, at most 1 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// What a `body` fault answers with, in place of the call (which is not carried out): what
/// gateways, proxies and broken connections hand a client instead of Graph's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadBody {
    /// A `text/html` error page, as an Azure front door or a corporate proxy serves.
    Html,
    /// No body at all, with a JSON content type.
    Empty,
    /// A JSON body cut off in the middle, with a correct length.
    Truncated,
    /// A well-formed JSON list of `bytes` bytes, streamed without a length, so only a client
    /// that reads with a cap stops before holding it all.
    Huge { bytes: u64 },
}

/// The default size of a `huge` body: twice the operator's 16 MiB cap.
pub const HUGE_DEFAULT: u64 = 32 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultKind {
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    Latency {
        ms: u64,
    },
    /// The call is carried out, then its answer is held back: the "applied, but the client never
    /// heard" case behind timeouts (and what crash tests kill an operator in).
    DelayResponse {
        ms: u64,
    },
    /// The call is carried out, then answered 504 `GatewayTimeout` with Graph's envelope: a
    /// gateway that gave up on a backend that finished the write anyway.
    Performed504,
    Instantiate404AfterCreate,
    NotFoundAfterCreate {
        seconds: f64,
    },
    ForbiddenAfterCreate {
        seconds: f64,
    },
    ListLag {
        seconds: f64,
    },
    /// Answers `status` (2xx too) with a body that is not what Graph sends.
    Body {
        status: u16,
        body: BadBody,
    },
}

/// Kinds that are decided per object after routing rather than per request before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deferred {
    Instantiate404,
    NotFoundWindow,
    ForbiddenWindow,
    ListLag,
}

impl FaultKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Status { .. } => "status",
            Self::Latency { .. } => "latency",
            Self::DelayResponse { .. } => "delay-response",
            Self::Performed504 => "performed-504",
            Self::Instantiate404AfterCreate => "instantiate-404-after-create",
            Self::NotFoundAfterCreate { .. } => "not-found-after-create",
            Self::ForbiddenAfterCreate { .. } => "forbidden-after-create",
            Self::ListLag { .. } => "list-lag",
            Self::Body { .. } => "body",
        }
    }

    fn deferred(&self) -> Option<Deferred> {
        match self {
            Self::Status { .. }
            | Self::Body { .. }
            | Self::Latency { .. }
            | Self::DelayResponse { .. }
            | Self::Performed504 => None,
            Self::Instantiate404AfterCreate => Some(Deferred::Instantiate404),
            Self::NotFoundAfterCreate { .. } => Some(Deferred::NotFoundWindow),
            Self::ForbiddenAfterCreate { .. } => Some(Deferred::ForbiddenWindow),
            Self::ListLag { .. } => Some(Deferred::ListLag),
        }
    }

    /// The window length of a windowed kind.
    pub fn seconds(&self) -> f64 {
        match self {
            Self::NotFoundAfterCreate { seconds }
            | Self::ForbiddenAfterCreate { seconds }
            | Self::ListLag { seconds } => *seconds,
            _ => 0.0,
        }
    }
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    pub id: u64,
    pub tenant: Option<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub remaining: Option<u64>,
    pub kind: FaultKind,
    pub code: Option<String>,
    pub message: Option<String>,
    /// Hits the token endpoint (and only it).
    pub token_endpoint: bool,
    p: Option<f64>,
    rng: u64,
    spec: FaultSpec,
}

fn wildcard(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty() && s != "*")
}

impl FaultSpec {
    /// Parses the CLI syntax: comma-separated `key=value` pairs with the JSON field names
    /// (`retryAfter` may also be written `retry-after`).
    pub fn parse_cli(input: &str) -> Result<Self, String> {
        let mut map = Map::new();
        for pair in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| format!("'{pair}' is not key=value"))?;
            let key = match key.trim() {
                "retry-after" | "retry_after" => "retryAfter",
                k => k,
            };
            let value = value.trim();
            let json = match key {
                "times" | "status" | "retryAfter" | "ms" | "bytes" | "seed" => {
                    Value::from(value.parse::<u64>().map_err(|_| format!("{key}: '{value}' is not a whole number"))?)
                }
                "seconds" | "p" => {
                    Value::from(value.parse::<f64>().map_err(|_| format!("{key}: '{value}' is not a number"))?)
                }
                _ => Value::from(value),
            };
            if map.insert(key.to_owned(), json).is_some() {
                return Err(format!("'{key}' is given twice"));
            }
        }
        serde_json::from_value(Value::Object(map)).map_err(|e| e.to_string())
    }

    /// Validates the spec into a rule with id `id`.
    pub fn into_rule(self, id: u64) -> Result<FaultRule, String> {
        let seconds = || match self.seconds {
            Some(s) if s.is_finite() && s >= 0.0 => Ok(s),
            Some(_) => Err("seconds must be a non-negative number".to_owned()),
            None => Err(format!("kind {} needs seconds", self.kind)),
        };
        let kind = match self.kind.as_str() {
            "status" => {
                let status = self.status.ok_or("kind status needs status")?;
                if !(400..=599).contains(&status) {
                    return Err(format!("status {status} is not an error status (400-599)"));
                }
                FaultKind::Status { status, retry_after: self.retry_after }
            }
            "latency" => FaultKind::Latency { ms: self.ms.ok_or("kind latency needs ms")?.min(600_000) },
            "delay-response" => {
                FaultKind::DelayResponse { ms: self.ms.ok_or("kind delay-response needs ms")?.min(600_000) }
            }
            "performed-504" => FaultKind::Performed504,
            "instantiate-404-after-create" => FaultKind::Instantiate404AfterCreate,
            "not-found-after-create" => FaultKind::NotFoundAfterCreate { seconds: seconds()? },
            "forbidden-after-create" => FaultKind::ForbiddenAfterCreate { seconds: seconds()? },
            "list-lag" => FaultKind::ListLag { seconds: seconds()? },
            "body" => {
                let status = self.status.unwrap_or(200);
                if !(200..=599).contains(&status) {
                    return Err(format!("status {status} is not a final status (200-599)"));
                }
                let body = match self.body.as_deref() {
                    Some("html") => BadBody::Html,
                    Some("empty") => BadBody::Empty,
                    Some("truncated") => BadBody::Truncated,
                    Some("huge") => BadBody::Huge { bytes: self.bytes.unwrap_or(HUGE_DEFAULT).min(1 << 30) },
                    Some(other) => return Err(format!("unknown body '{other}' (html, empty, truncated or huge)")),
                    None => return Err("kind body needs body (html, empty, truncated or huge)".to_owned()),
                };
                FaultKind::Body { status, body }
            }
            other => return Err(format!("unknown fault kind '{other}'")),
        };
        if self.times == Some(0) {
            return Err("times must be at least 1".to_owned());
        }
        if let Some(p) = self.p
            && !(p.is_finite() && (0.0..=1.0).contains(&p))
        {
            return Err("p must be a probability between 0 and 1".to_owned());
        }
        let token_endpoint = match self.api.as_deref().map(str::trim) {
            None | Some("") | Some("graph") => false,
            Some("token") => true,
            Some(other) => return Err(format!("unknown api '{other}' (graph or token)")),
        };
        if token_endpoint && !matches!(kind, FaultKind::Status { .. } | FaultKind::Latency { .. }) {
            return Err(format!("kind {} does not apply to the token endpoint (status or latency)", kind.name()));
        }
        Ok(FaultRule {
            id,
            tenant: wildcard(self.tenant.clone()),
            method: wildcard(self.method.clone()).map(|m| m.to_ascii_uppercase()),
            path: wildcard(self.path.clone()),
            remaining: self.times,
            kind,
            code: self.code.clone(),
            message: self.message.clone(),
            token_endpoint,
            p: self.p,
            rng: self.seed.unwrap_or(id),
            spec: self,
        })
    }
}

impl FaultRule {
    pub fn matches(&self, tenant: Option<&str>, method: &str, path: &str) -> bool {
        let tenant_ok = match (&self.tenant, tenant) {
            (None, _) => true,
            (Some(want), Some(have)) => want.eq_ignore_ascii_case(have),
            (Some(_), None) => false,
        };
        tenant_ok
            && self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path.as_deref().is_none_or(|g| glob_match(g, path))
            && self.remaining != Some(0)
    }

    /// Whether the rule hits this matching call: always without `p`, else a draw from its own
    /// generator (splitmix64), so a run repeats from its seed.
    fn fires(&mut self) -> bool {
        let Some(p) = self.p else { return true };
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // The top 53 bits as a uniform number in [0, 1).
        ((z >> 11) as f64) / ((1u64 << 53) as f64) < p
    }

    /// The rule as JSON for `GET /_sim/faults`.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::to_value(&self.spec).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut v {
            map.insert("id".into(), Value::from(self.id));
            map.insert("remaining".into(), self.remaining.map(Value::from).unwrap_or(Value::Null));
        }
        v
    }
}

/// Glob over a URL path: `*` matches any run of characters except `/`, `**` matches anything.
/// Iterative (one row of a DP table per pattern token) so long paths cannot exhaust the stack.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    enum Tok {
        Lit(u8),
        Star,
        DoubleStar,
    }
    let p = pattern.as_bytes();
    let mut toks = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        if p[i] == b'*' {
            if p.get(i + 1) == Some(&b'*') {
                toks.push(Tok::DoubleStar);
                i += 2;
            } else {
                toks.push(Tok::Star);
                i += 1;
            }
        } else {
            toks.push(Tok::Lit(p[i]));
            i += 1;
        }
    }
    let s = path.as_bytes();
    // row[j]: the tokens so far match s[..j].
    let mut row = vec![false; s.len() + 1];
    row[0] = true;
    for tok in &toks {
        let mut next = vec![false; s.len() + 1];
        match tok {
            Tok::Lit(c) => {
                for j in 0..s.len() {
                    next[j + 1] = row[j] && c.eq_ignore_ascii_case(&s[j]);
                }
            }
            Tok::DoubleStar => {
                let mut any = false;
                for j in 0..=s.len() {
                    any |= row[j];
                    next[j] = any;
                }
            }
            Tok::Star => {
                next[0] = row[0];
                for j in 1..=s.len() {
                    next[j] = row[j] || (next[j - 1] && s[j - 1] != b'/');
                }
            }
        }
        row = next;
    }
    row[s.len()]
}

/// The active rules.
#[derive(Debug, Default)]
pub struct FaultSet {
    rules: Vec<FaultRule>,
    next_id: u64,
}

impl FaultSet {
    pub fn add(&mut self, spec: FaultSpec) -> Result<u64, String> {
        self.next_id += 1;
        let rule = spec.into_rule(self.next_id)?;
        self.rules.push(rule);
        Ok(self.next_id)
    }

    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.rules.len();
        self.rules.retain(|r| r.id != id);
        self.rules.len() != before
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn list(&self) -> Vec<Value> {
        self.rules.iter().map(FaultRule::to_json).collect()
    }

    fn consume(rule: &mut FaultRule) {
        if let Some(r) = &mut rule.remaining {
            *r = r.saturating_sub(1);
        }
    }

    /// Rules applied around routing of a Graph call: the first matching `status` or `body` rule
    /// that fires (which answers the call), every matching `latency` rule (summed, before the
    /// call), every matching `delay-response` rule (summed, after the call) and the first
    /// `performed-504` rule (unless a `status`/`body` rule answers first). Consumes `times` of
    /// what it returns.
    pub fn before_routing(&mut self, tenant: Option<&str>, method: &str, path: &str) -> Before {
        let mut out = Before::default();
        let mut performed = None;
        for (i, rule) in self.rules.iter_mut().enumerate() {
            if rule.token_endpoint || !rule.matches(tenant, method, path) {
                continue;
            }
            let candidate = match rule.kind {
                FaultKind::Latency { .. } | FaultKind::DelayResponse { .. } => true,
                FaultKind::Status { .. } | FaultKind::Body { .. } => out.answer.is_none(),
                FaultKind::Performed504 => performed.is_none(),
                _ => false,
            };
            if !candidate || !rule.fires() {
                continue;
            }
            match rule.kind {
                FaultKind::Latency { ms } => {
                    out.latency_ms = out.latency_ms.saturating_add(ms);
                    Self::consume(rule);
                }
                FaultKind::DelayResponse { ms } => {
                    out.delay_response_ms = out.delay_response_ms.saturating_add(ms);
                    Self::consume(rule);
                }
                FaultKind::Performed504 => performed = Some(i),
                _ => {
                    Self::consume(rule);
                    out.answer = Some(rule.clone());
                }
            }
        }
        if out.answer.is_none()
            && let Some(rule) = performed.and_then(|i| self.rules.get_mut(i))
        {
            Self::consume(rule);
            out.performed_504 = true;
        }
        out
    }

    /// Rules for a token request (`api=token`): the first matching `status` rule that fires and
    /// the summed `latency`. Consumes `times` of what it returns.
    pub fn token_endpoint(&mut self, tenant: &str, path: &str) -> (Option<FaultRule>, u64) {
        let mut status = None;
        let mut latency = 0u64;
        for rule in &mut self.rules {
            if !rule.token_endpoint || !rule.matches(Some(tenant), "POST", path) {
                continue;
            }
            let candidate = match rule.kind {
                FaultKind::Latency { .. } => true,
                FaultKind::Status { .. } => status.is_none(),
                _ => false,
            };
            if !candidate || !rule.fires() {
                continue;
            }
            if let FaultKind::Latency { ms } = rule.kind {
                latency = latency.saturating_add(ms);
                Self::consume(rule);
            } else {
                Self::consume(rule);
                status = Some(rule.clone());
            }
        }
        (status, latency)
    }

    /// The first matching rule of kind `which` for which `applies(rule)` holds; consumes it.
    pub fn deferred(
        &mut self,
        which: Deferred,
        tenant: Option<&str>,
        method: &str,
        path: &str,
        mut applies: impl FnMut(&FaultKind) -> bool,
    ) -> Option<FaultRule> {
        let rule = self
            .rules
            .iter_mut()
            .find(|r| r.kind.deferred() == Some(which) && r.matches(tenant, method, path) && applies(&r.kind))?;
        if !rule.fires() {
            return None;
        }
        Self::consume(rule);
        Some(rule.clone())
    }

    /// The longest matching window of kind `which`, without consuming (list-lag filters a whole list).
    pub fn longest_window(
        &self,
        which: Deferred,
        tenant: Option<&str>,
        method: &str,
        path: &str,
    ) -> Option<(u64, f64)> {
        self.rules
            .iter()
            .filter(|r| r.kind.deferred() == Some(which) && r.matches(tenant, method, path))
            .map(|r| (r.id, r.kind.seconds()))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    pub fn consume_id(&mut self, id: u64) {
        if let Some(rule) = self.rules.iter_mut().find(|r| r.id == id) {
            Self::consume(rule);
        }
    }
}

/// What [`FaultSet::before_routing`] found for one Graph call.
#[derive(Debug, Clone, Default)]
pub struct Before {
    /// A `status` or `body` rule that answers in place of the call.
    pub answer: Option<FaultRule>,
    pub latency_ms: u64,
    pub delay_response_ms: u64,
    /// Carry the call out, then answer 504.
    pub performed_504: bool,
}

/// Who got a `Retry-After` for what: (tenant, client, method, path).
pub type RetryKey = (String, String, String, String);

/// Dev Proxy's RetryAfterPlugin: a client that retries before its `Retry-After` elapsed is
/// throttled again and its window restarts.
#[derive(Debug, Default)]
pub struct RetryWindows {
    windows: HashMap<RetryKey, Window>,
}

#[derive(Debug, Clone)]
struct Window {
    issued: Instant,
    until: Instant,
    secs: u64,
    client_request_id: String,
}

/// A different request that reaches the same key this soon after a Retry-After was sent was
/// already on its way (concurrent calls); the client could not have known.
pub const IN_FLIGHT: Duration = Duration::from_millis(250);

impl RetryWindows {
    pub fn issue(&mut self, key: RetryKey, now: Instant, secs: u64, client_request_id: &str) {
        if self.windows.len() > 100_000 {
            self.windows.retain(|_, w| w.until > now);
        }
        let w = Window {
            issued: now,
            until: now + Duration::from_secs(secs),
            secs,
            client_request_id: client_request_id.to_owned(),
        };
        self.windows.insert(key, w);
    }

    /// `Some(secs)` when `key` is retrying early (the window is restarted for another `secs`): the
    /// same request (same client-request-id) before its Retry-After elapsed, or any later request
    /// to the same key that was not already in flight. A request without a client-request-id
    /// cannot be told apart, so it counts as the same request.
    pub fn check(&mut self, key: &RetryKey, now: Instant, client_request_id: &str) -> Option<u64> {
        let w = self.windows.get(key)?.clone();
        if now >= w.until {
            self.windows.remove(key);
            return None;
        }
        let same_request = client_request_id.is_empty() || client_request_id == w.client_request_id;
        if !same_request && now < w.issued + IN_FLIGHT {
            return None;
        }
        self.windows.insert(key.clone(), Window { until: now + Duration::from_secs(w.secs), ..w });
        Some(w.secs)
    }

    pub fn clear(&mut self) {
        self.windows.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let p = "/beta/servicePrincipals/*/synchronization/jobs";
        assert!(glob_match(p, "/beta/servicePrincipals/abc/synchronization/jobs"));
        assert!(glob_match(p, "/beta/SERVICEPRINCIPALS/abc/synchronization/jobs"));
        assert!(!glob_match(p, "/beta/servicePrincipals/a/b/synchronization/jobs"));
        assert!(!glob_match(p, "/beta/servicePrincipals/abc/synchronization/jobs/x"));
        assert!(glob_match("/*/servicePrincipals/**", "/v1.0/servicePrincipals/a/synchronization/jobs/x/start"));
        assert!(glob_match("**", "/anything/at/all"));
        assert!(glob_match("/beta/applicationTemplates/*/instantiate", "/beta/applicationTemplates/1a47/instantiate"));
        assert!(glob_match("/beta/x*", "/beta/xyz"));
        assert!(!glob_match("/beta/x*", "/beta/xyz/q"));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "/"));
        assert!(glob_match("/a/*/c", "/a//c"));
        assert!(glob_match("/a/**/c", "/a/b/x/c"));
        assert!(glob_match("*", ""));
        let long = "/x".repeat(50_000);
        assert!(glob_match("/**/y", &format!("{long}/y")));
        assert!(!glob_match("/*/y", &format!("{long}/y")));
    }

    #[test]
    fn cli_syntax_maps_to_json_spec() {
        let cli = FaultSpec::parse_cli(
            "tenant=*,method=POST,path=/beta/applicationTemplates/*/instantiate,kind=instantiate-404-after-create,times=1",
        )
        .unwrap();
        let json: FaultSpec = serde_json::from_value(serde_json::json!({
            "tenant": "*", "method": "POST", "path": "/beta/applicationTemplates/*/instantiate",
            "kind": "instantiate-404-after-create", "times": 1
        }))
        .unwrap();
        assert_eq!(cli, json);
        let s = FaultSpec::parse_cli("kind=status,status=429,retry-after=3").unwrap();
        assert_eq!(s.retry_after, Some(3));
        assert!(FaultSpec::parse_cli("kind=status,status=abc").is_err());
        assert!(FaultSpec::parse_cli("kind=status,bogus=1").is_err());
        assert!(FaultSpec::parse_cli("kind").is_err());
        assert!(FaultSpec::parse_cli("kind=status,kind=latency").is_err());
    }

    #[test]
    fn validation() {
        let spec = |s: &str| FaultSpec::parse_cli(s).unwrap().into_rule(1);
        assert!(spec("kind=status").is_err());
        assert!(spec("kind=status,status=200").is_err());
        assert!(spec("kind=latency").is_err());
        assert!(spec("kind=list-lag").is_err());
        assert!(spec("kind=nope").is_err());
        assert!(spec("kind=status,status=503,times=0").is_err());
        assert!(spec("kind=not-found-after-create,seconds=-1").is_err());
        let rule = spec("kind=forbidden-after-create,seconds=2.5,tenant=T1,method=get").unwrap();
        assert_eq!(rule.kind, FaultKind::ForbiddenAfterCreate { seconds: 2.5 });
        assert!(rule.matches(Some("t1"), "GET", "/x"));
        assert!(!rule.matches(Some("t2"), "GET", "/x"));
        assert!(!rule.matches(None, "GET", "/x"));
        assert!(!rule.matches(Some("t1"), "POST", "/x"));
    }

    #[test]
    fn body_faults() {
        let kind = |s: &str| FaultSpec::parse_cli(s).and_then(|f| f.into_rule(1)).map(|r| r.kind);
        assert_eq!(kind("kind=body,body=html"), Ok(FaultKind::Body { status: 200, body: BadBody::Html }));
        assert_eq!(kind("kind=body,body=empty,status=502"), Ok(FaultKind::Body { status: 502, body: BadBody::Empty }));
        assert_eq!(
            kind("kind=body,body=huge"),
            Ok(FaultKind::Body { status: 200, body: BadBody::Huge { bytes: HUGE_DEFAULT } })
        );
        assert_eq!(
            kind("kind=body,body=huge,bytes=99999999999"),
            Ok(FaultKind::Body { status: 200, body: BadBody::Huge { bytes: 1 << 30 } })
        );
        assert!(kind("kind=body").unwrap_err().contains("needs body"));
        assert!(kind("kind=body,body=xml").unwrap_err().contains("unknown body"));
        assert!(kind("kind=body,body=html,status=100").is_err());
        // A body fault answers the call, like a status fault, and only one of them does.
        let mut set = FaultSet::default();
        set.add(FaultSpec::parse_cli("kind=body,body=truncated,times=1").unwrap()).unwrap();
        set.add(FaultSpec::parse_cli("kind=status,status=500,times=1").unwrap()).unwrap();
        let first = set.before_routing(None, "GET", "/beta/x").answer;
        assert_eq!(first.map(|r| r.kind), Some(FaultKind::Body { status: 200, body: BadBody::Truncated }));
        let second = set.before_routing(None, "GET", "/beta/x").answer;
        assert_eq!(second.map(|r| r.kind.name()), Some("status"));
    }

    #[test]
    fn early_retries_are_the_same_request_or_a_later_one() {
        let key: RetryKey = ("t".into(), "c".into(), "POST".into(), "/beta/x".into());
        let t0 = Instant::now();
        let mut w = RetryWindows::default();
        w.issue(key.clone(), t0, 2, "req-1");
        assert_eq!(w.check(&key, t0 + Duration::from_millis(10), "req-2"), None, "another call already in flight");
        assert_eq!(w.check(&key, t0 + Duration::from_millis(10), "req-1"), Some(2), "the throttled call itself");
        assert_eq!(w.check(&key, t0 + Duration::from_millis(900), "req-3"), Some(2), "a new call during the window");
        assert_eq!(w.check(&key, t0 + Duration::from_millis(950), ""), Some(2), "no id: counted");
        assert_eq!(w.check(&key, t0 + Duration::from_secs(10), "req-1"), None, "after the window");
    }

    #[test]
    fn times_are_consumed() {
        let mut set = FaultSet::default();
        set.add(FaultSpec::parse_cli("kind=status,status=503,times=2,path=/beta/**").unwrap()).unwrap();
        set.add(FaultSpec::parse_cli("kind=latency,ms=5").unwrap()).unwrap();
        set.add(FaultSpec::parse_cli("kind=latency,ms=7,method=POST").unwrap()).unwrap();
        set.add(FaultSpec::parse_cli("kind=delay-response,ms=9,method=POST,times=1").unwrap()).unwrap();
        let b = set.before_routing(Some("t"), "POST", "/beta/a");
        assert_eq!(b.answer.map(|r| r.kind), Some(FaultKind::Status { status: 503, retry_after: None }));
        assert_eq!((b.latency_ms, b.delay_response_ms), (12, 9));
        assert!(set.before_routing(Some("t"), "GET", "/beta/a").answer.is_some());
        assert!(set.before_routing(Some("t"), "GET", "/beta/a").answer.is_none(), "times=2 exhausted");
        assert!(set.before_routing(Some("t"), "GET", "/v1.0/a").answer.is_none());
        assert_eq!(
            set.before_routing(Some("t"), "POST", "/beta/a").delay_response_ms,
            0,
            "delay-response times=1 exhausted"
        );
        assert_eq!(set.list().len(), 4);
        assert!(set.remove(1));
        assert!(!set.remove(1));
    }

    #[test]
    fn performed_504_yields_to_an_answering_rule_and_keeps_its_times() {
        let mut set = FaultSet::default();
        set.add(FaultSpec::parse_cli("kind=performed-504,method=POST,times=1").unwrap()).unwrap();
        let id = set.add(FaultSpec::parse_cli("kind=status,status=503,times=1").unwrap()).unwrap();
        let b = set.before_routing(Some("t"), "POST", "/beta/x");
        assert!(b.answer.is_some() && !b.performed_504, "a call answered before processing is not performed");
        assert!(set.remove(id));
        assert!(!set.before_routing(Some("t"), "GET", "/beta/x").performed_504, "method=POST");
        assert!(set.before_routing(Some("t"), "POST", "/beta/x").performed_504);
        assert!(!set.before_routing(Some("t"), "POST", "/beta/x").performed_504, "times=1 exhausted");
    }

    #[test]
    fn probability_is_seeded_and_roughly_p() {
        let hits = |seed: u64| {
            let mut set = FaultSet::default();
            set.add(FaultSpec::parse_cli(&format!("kind=status,status=503,p=0.2,seed={seed}")).unwrap()).unwrap();
            (0..2000).map(|_| set.before_routing(None, "GET", "/beta/x").answer.is_some()).collect::<Vec<_>>()
        };
        let a = hits(7);
        assert_eq!(a, hits(7), "same seed, same draws");
        assert_ne!(a, hits(8));
        let n = a.iter().filter(|h| **h).count();
        assert!((300..500).contains(&n), "about 20 % of 2000: {n}");
        let rule = |s: &str| FaultSpec::parse_cli(s).and_then(|f| f.into_rule(1));
        assert!(rule("kind=latency,ms=1,p=1.5").is_err());
        assert!(rule("kind=latency,ms=1,p=-0.1").is_err());
        assert!(rule("kind=latency,ms=1,p=x").is_err());
        let mut never = FaultSet::default();
        never.add(FaultSpec::parse_cli("kind=status,status=500,p=0,times=1").unwrap()).unwrap();
        assert!((0..100).all(|_| never.before_routing(None, "GET", "/x").answer.is_none()));
        assert_eq!(never.list()[0]["remaining"], 1, "a rule that does not fire keeps its times");
    }

    #[test]
    fn token_endpoint_rules_apply_there_only() {
        let rule = |s: &str| FaultSpec::parse_cli(s).and_then(|f| f.into_rule(1));
        assert!(rule("kind=performed-504,api=token").is_err());
        assert!(rule("kind=status,status=503,api=nope").is_err());
        let mut set = FaultSet::default();
        set.add(FaultSpec::parse_cli("kind=status,status=503,api=token,tenant=T1").unwrap()).unwrap();
        set.add(FaultSpec::parse_cli("kind=latency,ms=4").unwrap()).unwrap();
        assert!(set.before_routing(Some("t1"), "GET", "/beta/x").answer.is_none(), "not a Graph rule");
        let (status, latency) = set.token_endpoint("t1", "/t1/oauth2/v2.0/token");
        assert_eq!((status.map(|r| r.kind.name()), latency), (Some("status"), 0), "Graph latency not applied");
        assert!(set.token_endpoint("t2", "/t2/oauth2/v2.0/token").0.is_none());
    }

    #[test]
    fn deferred_rules() {
        let mut set = FaultSet::default();
        set.add(FaultSpec::parse_cli("kind=not-found-after-create,seconds=10,times=1").unwrap()).unwrap();
        set.add(FaultSpec::parse_cli("kind=list-lag,seconds=5").unwrap()).unwrap();
        set.add(FaultSpec::parse_cli("kind=list-lag,seconds=9").unwrap()).unwrap();
        assert!(set.deferred(Deferred::NotFoundWindow, Some("t"), "GET", "/p", |_| false).is_none());
        assert!(set.deferred(Deferred::NotFoundWindow, Some("t"), "GET", "/p", |k| k.seconds() > 1.0).is_some());
        assert!(set.deferred(Deferred::NotFoundWindow, Some("t"), "GET", "/p", |_| true).is_none());
        assert_eq!(set.longest_window(Deferred::ListLag, Some("t"), "GET", "/p"), Some((3, 9.0)));
        assert!(set.deferred(Deferred::Instantiate404, Some("t"), "POST", "/p", |_| true).is_none());
    }

    #[test]
    fn retry_windows() {
        let mut w = RetryWindows::default();
        let key: RetryKey = ("t".into(), "c".into(), "GET".into(), "/p".into());
        let t0 = Instant::now();
        assert_eq!(w.check(&key, t0, "r"), None);
        w.issue(key.clone(), t0, 2, "r");
        assert_eq!(w.check(&key, t0 + Duration::from_secs(1), "r"), Some(2));
        // The early retry restarted the window: t0+2.5 s is still inside it.
        assert_eq!(w.check(&key, t0 + Duration::from_millis(2500), "r"), Some(2));
        assert_eq!(w.check(&key, t0 + Duration::from_secs(10), "r"), None);
        assert_eq!(w.check(&key, t0 + Duration::from_secs(10), "r"), None);
    }
}
