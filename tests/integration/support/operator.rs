//! The operator as a real process (the built binary) watching one test namespace, talking to the
//! test control plane and to a Graph simulator over HTTP, with its logs captured to a file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cloudsync_operator::api::CloudSyncProfile;
use cloudsync_sim::{SimHandle, Simulator};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::kube_env::kubeconfig_path;

pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT: &str = "0a1b2c3d-0000-4000-8000-000000000001";
pub const CLIENT_SECRET: &str = "test-client-secret-7f3a9c-do-not-log";

/// A simulator with the test tenant; service time runs 60 times faster.
pub async fn simulator() -> SimHandle {
    Simulator::builder().tenant(TENANT, CLIENT, CLIENT_SECRET).speed(60.0).start().await.expect("simulator")
}

pub struct Operator {
    child: Option<Child>,
    log: PathBuf,
    env: Vec<(String, String)>,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Operator {
    /// Starts `cloudsync-operator run` for `namespace` against the simulator.
    pub fn start(namespace: &str, sim: &SimHandle, extra: &[&str]) -> Self {
        Self::start_with_env(namespace, sim, extra, &[])
    }

    /// Like `start`, with extra environment variables (e.g. POD_NAME).
    pub fn start_with_env(namespace: &str, sim: &SimHandle, extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on(&kubeconfig_path(), namespace, sim, extra, env)
    }

    /// Like `start_with_env`, against the control plane of `kubeconfig` (not the shared one).
    pub fn start_on(kubeconfig: &Path, namespace: &str, sim: &SimHandle, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("operator.log");
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut op = Self { child: None, log, env, kubeconfig: kubeconfig.to_path_buf(), _dir: dir };
        op.spawn(namespace, &sim.url(), extra);
        op
    }

    fn spawn(&mut self, namespace: &str, sim_url: &str, extra: &[&str]) {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_cloudsync-operator"))
            .args(["run", "--graph-url", sim_url, "--login-url", sim_url, "--namespace", namespace])
            .args(["--resync-seconds", "2", "--log-level", "cloudsync_operator=debug,info"])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .args(extra)
            .env("KUBECONFIG", &self.kubeconfig)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start the operator");
        self.child = Some(child);
    }

    /// Starts it again after `kill` or `terminate`, appending to the same log.
    pub fn restart(&mut self, namespace: &str, sim: &SimHandle, extra: &[&str]) {
        assert!(self.child.is_none(), "still running");
        self.spawn(namespace, &sim.url(), extra);
    }

    #[allow(dead_code, reason = "benches/scale.rs reads the operator's memory by pid; no test needs it")]
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    /// Whether the process still runs (it has not exited on its own).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let c = self.child.as_mut().expect("running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                self.child = None;
                return s;
            }
            assert!(Instant::now() < deadline, "the operator did not exit in {timeout:?}:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no cleanup, no last status write.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                return s;
            }
            assert!(Instant::now() < deadline, "operator did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The base URL of /metrics, /healthz and /readyz, from the startup log line (the last one,
    /// after a restart).
    pub async fn metrics_url(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(url) = self
                .logs()
                .lines()
                .rev()
                .find_map(|l| l.split("serving metrics and health on ").nth(1))
                .map(|rest| rest.split_whitespace().next().unwrap_or_default().to_string())
            {
                return url;
            }
            assert!(Instant::now() < deadline, "no metrics address in the log:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// How much of the log a failed test prints.
const LOG_TAIL: usize = 80;

impl Drop for Operator {
    /// Stops the process. First, when the test fails, prints the tail of its log; otherwise its
    /// log and /metrics go through the secret scanner.
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A failed test shows what the operator was doing; only a log the scanner passes.
            let logs = self.logs();
            if super::secrets::findings(&logs).is_empty() {
                let lines: Vec<&str> = logs.lines().collect();
                let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
                eprintln!(
                    "--- the operator's log, last {LOG_TAIL} lines ---\n{tail}\n--- end of the operator's log ---"
                );
            } else {
                eprintln!("the operator's log is not shown: the secret scanner flags it");
            }
        } else {
            let logs = self.logs();
            super::secrets::assert_clean("the operator's log", &logs);
            let running = self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)));
            let url = logs
                .lines()
                .rev()
                .find_map(|l| l.split("serving metrics and health on ").nth(1))
                .and_then(|rest| rest.split_whitespace().next().map(str::to_string));
            if let (true, Some(url)) = (running, url)
                && let Some(metrics) = super::secrets::http_get_blocking(&format!("{url}/metrics"))
            {
                super::secrets::assert_clean("the operator's metrics", &metrics);
            }
        }
        self.kill();
    }
}

pub async fn create_secret(client: &kube::Client, ns: &str) {
    let secret = Secret {
        metadata: ObjectMeta { name: Some("graph-credentials".into()), ..Default::default() },
        string_data: Some(
            [("clientId".to_string(), CLIENT.to_string()), ("clientSecret".to_string(), CLIENT_SECRET.to_string())]
                .into(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns).create(&PostParams::default(), &secret).await.expect("create Secret");
}

/// A profile manifest; `spec` entries override the defaults.
pub fn profile(name: &str, spec: Value) -> Value {
    let mut base = json!({
        "tenantId": TENANT,
        "credentials": {"secretRef": {"name": "graph-credentials"}},
        "domain": "contoso.com",
        "passwordHashSync": true
    });
    if let (Some(b), Some(o)) = (base.as_object_mut(), spec.as_object()) {
        for (k, v) in o {
            b.insert(k.clone(), v.clone());
        }
    }
    json!({"apiVersion": "cloudsync.io/v1alpha1", "kind": "CloudSyncProfile", "metadata": {"name": name}, "spec": base})
}

pub async fn apply(api: &Api<CloudSyncProfile>, manifest: &Value) -> CloudSyncProfile {
    let name = manifest["metadata"]["name"].as_str().expect("name");
    api.patch(name, &PatchParams::apply("cloudsync-tests").force(), &Patch::Apply(manifest))
        .await
        .expect("apply profile")
}

/// Merge-patches the spec.
pub async fn patch_spec(api: &Api<CloudSyncProfile>, name: &str, spec: Value) -> CloudSyncProfile {
    api.patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": spec}))).await.expect("patch spec")
}

pub fn condition<'a>(
    p: &'a CloudSyncProfile,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    p.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)
}

pub fn is_ready(p: &CloudSyncProfile) -> bool {
    condition(p, "Ready").is_some_and(|c| c.status == "True")
        && p.status.as_ref().and_then(|s| s.observed_generation) == p.metadata.generation
}

/// Polls the profile until `done` holds; panics with its last status after `timeout`.
pub async fn wait_for(
    api: &Api<CloudSyncProfile>,
    name: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&CloudSyncProfile) -> bool,
) -> CloudSyncProfile {
    let deadline = Instant::now() + timeout;
    loop {
        let last = api.get_opt(name).await.expect("get profile");
        if let Some(p) = &last
            && done(p)
        {
            scan(api, p).await;
            return p.clone();
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}; last seen: {}",
                serde_json::to_string_pretty(&last.map(|p| p.status)).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The profile's status and its namespace's Events go through the secret scanner.
async fn scan(api: &Api<CloudSyncProfile>, p: &CloudSyncProfile) {
    super::secrets::assert_clean("a profile's status", &serde_json::to_string(&p.status).unwrap_or_default());
    if let Some(ns) = p.metadata.namespace.as_deref() {
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(api.clone().into_client(), ns);
        if let Ok(list) = events.list(&Default::default()).await {
            super::secrets::assert_clean("Events", &serde_json::to_string(&list.items).unwrap_or_default());
        }
    }
}

/// Waits until the profile no longer exists.
pub async fn wait_gone(api: &Api<CloudSyncProfile>, name: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while api.get_opt(name).await.expect("get profile").is_some() {
        assert!(Instant::now() < deadline, "profile {name} still exists after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls a condition on anything until it holds.
pub async fn eventually<F: Fn() -> bool>(timeout: Duration, what: &str, f: F) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The operator's Graph client on its own, against `sim` with the test tenant's credentials: the
/// test's hand on Graph, as the portal or a script would be.
pub fn graph_client(sim: &SimHandle) -> cloudsync_operator::graph::Tenant {
    use cloudsync_operator::graph::{ClientConfig, Credential, GraphClient, Overrides, RetryPolicy};
    let url = url::Url::parse(&sim.url()).expect("simulator URL");
    let config = ClientConfig {
        overrides: Overrides { graph: Some(url.clone()), login: Some(url) },
        timeout: Duration::from_secs(5),
        retry: RetryPolicy::default(),
    };
    let credential =
        Credential::ClientSecret { client_id: CLIENT.into(), secret: secrecy::SecretString::from(CLIENT_SECRET) };
    GraphClient::new(config).expect("Graph client").tenant(cloudsync_operator::api::Cloud::Global, TENANT, credential)
}
