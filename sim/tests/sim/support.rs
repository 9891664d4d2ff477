//! Raw-HTTP helpers shared by the simulator's integration tests: a simulator with one test tenant,
//! a client, and the Graph calls and assertions the tests repeat.

use std::time::{Duration, Instant};

use cloudsync_sim::{SimHandle, Simulator, SimulatorBuilder};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT: &str = "aaaaaaaa-bbbb-cccc-dddd-000000000001";
pub const SECRET: &str = "s3cret~value.with:colon";
pub const TEMPLATE: &str = "1a4721b3-e57f-4451-ae87-ef078703ec94";
pub const SCOPE: &str = "https://graph.microsoft.com/.default";

pub struct Env {
    pub sim: SimHandle,
    pub http: reqwest::Client,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn builder() -> SimulatorBuilder {
    Simulator::builder().tenant(TENANT, CLIENT, SECRET)
}

pub async fn start() -> Env {
    start_with(builder()).await
}

pub async fn start_with(builder: SimulatorBuilder) -> Env {
    let sim = builder.start().await.expect("simulator starts");
    Env { sim, http: reqwest::Client::new() }
}

impl Env {
    pub async fn token_response(&self, tenant: &str, form: &[(&str, &str)]) -> Resp {
        let r = self.http.post(self.sim.token_url(tenant)).form(form).send().await.expect("token request");
        into_resp(r).await
    }

    pub async fn token_for(&self, tenant: &str, client: &str, secret: &str) -> String {
        let r = self
            .token_response(
                tenant,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", client),
                    ("client_secret", secret),
                    ("scope", SCOPE),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["access_token"].as_str().expect("access_token").to_owned()
    }

    pub async fn token(&self) -> String {
        self.token_for(TENANT, CLIENT, SECRET).await
    }

    pub async fn call(&self, method: Method, token: Option<&str>, path: &str, body: Option<Value>) -> Resp {
        let mut req = self.http.request(method, format!("{}{path}", self.sim.url()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        into_resp(req.send().await.expect("request")).await
    }

    pub async fn get(&self, token: &str, path: &str) -> Resp {
        self.call(Method::GET, Some(token), path, None).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Option<Value>) -> Resp {
        self.call(Method::POST, Some(token), path, body).await
    }

    /// Instantiates the cloud-sync template; returns the 201 body.
    pub async fn instantiate(&self, token: &str, name: &str) -> Value {
        let r = self
            .post(
                token,
                &format!("/beta/applicationTemplates/{TEMPLATE}/instantiate"),
                Some(serde_json::json!({"displayName": name})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body
    }

    /// Instantiates and returns the service principal id.
    pub async fn sp(&self, token: &str, name: &str) -> String {
        self.instantiate(token, name).await["servicePrincipal"]["id"].as_str().expect("sp id").to_owned()
    }

    pub async fn create_job(&self, token: &str, sp: &str, template: &str) -> Value {
        let r = self
            .post(
                token,
                &format!("/beta/servicePrincipals/{sp}/synchronization/jobs"),
                Some(serde_json::json!({"templateId": template})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body
    }

    pub async fn control(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.call(method, None, &format!("/_sim{path}"), body).await
    }
}

pub async fn into_resp(r: reqwest::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp { status, headers, body, text }
}

/// Asserts a Graph error: status, code, and the envelope with innerError ids matching headers.
pub fn assert_envelope(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    let e = &r.body["error"];
    assert_eq!(e["code"], code, "{}", r.text);
    assert!(e["message"].is_string(), "{}", r.text);
    let inner = &e["innerError"];
    let date = inner["date"].as_str().expect("innerError.date");
    assert_eq!(date.len(), 19, "date like 2026-07-14T00:17:15: {date}");
    assert_eq!(inner["request-id"].as_str(), r.header("request-id"), "{}", r.text);
    assert_eq!(inner["client-request-id"].as_str(), r.header("client-request-id"), "{}", r.text);
    assert!(r.header("date").is_some());
    assert!(r.header("x-ms-ags-diagnostic").is_some());
}

/// Polls `f` until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "condition not reached within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Percent-encodes every character outside the unreserved set except `.`, which is encoded too,
/// the way cautious clients encode opaque ids.
pub fn encode_id(id: &str) -> String {
    id.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '_' | '~' => c.to_string(),
            other => {
                let mut buf = [0u8; 4];
                other.encode_utf8(&mut buf).bytes().map(|b| format!("%{b:02X}")).collect()
            }
        })
        .collect()
}
