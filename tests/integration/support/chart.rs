//! The Helm chart under test: `helm` and `kubectl` (built by hack/testenv.sh), rendering and
//! parsing, server-side dry runs on the test control plane, installs, ServiceAccount kubeconfigs,
//! and the operator binary run as the chart's Deployment would run it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::config::Kubeconfig;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::kube_env::{bin_dir, kubeconfig_path, repo_root};

pub const CHART: &str = "charts/cloudsync-operator";

pub fn chart_dir() -> PathBuf {
    repo_root().join(CHART)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs helm with its state in a scratch directory (no repositories are needed) against the test
/// control plane.
pub fn helm(args: &[&str]) -> Output {
    let home = std::env::temp_dir().join("cloudsync-chart-tests-helm");
    Command::new(bin_dir().join("helm"))
        .args(args)
        .env("KUBECONFIG", kubeconfig_path())
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("HELM_NAMESPACE")
        .env_remove("HELM_KUBECONTEXT")
        .output()
        .expect("run helm")
}

/// `helm template <release> <chart> -n <namespace> <args>`: the manifests, or helm's error.
pub fn template(release: &str, namespace: &str, args: &[&str]) -> Result<String, String> {
    let chart = chart_dir();
    let mut all = vec!["template", release, chart.to_str().expect("utf-8 path"), "--namespace", namespace];
    all.extend_from_slice(args);
    let out = helm(&all);
    if out.status.success() { Ok(text(&out.stdout)) } else { Err(text(&out.stderr)) }
}

/// The documents of a multi-document YAML stream, as JSON values (empty documents skipped).
pub fn parse(manifests: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(manifests)
        .map(|doc| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(doc).expect("rendered YAML parses");
            serde_json::to_value(v).expect("YAML as JSON")
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// Renders and parses; panics with helm's message when rendering fails.
pub fn render(release: &str, namespace: &str, args: &[&str]) -> Vec<Value> {
    match template(release, namespace, args) {
        Ok(out) => parse(&out),
        Err(e) => panic!("helm template {args:?} failed:\n{e}"),
    }
}

pub fn of_kind<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| o["kind"] == kind).collect()
}

/// The one object of `kind`; panics if there is not exactly one.
pub fn one<'a>(objs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(objs, kind);
    assert_eq!(found.len(), 1, "exactly one {kind} in {:?}", kinds(objs));
    found[0]
}

/// "Kind namespace/name" of every object, sorted.
pub fn kinds(objs: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = objs
        .iter()
        .map(|o| {
            let ns = o["metadata"]["namespace"].as_str().map(|n| format!("{n}/")).unwrap_or_default();
            format!("{} {ns}{}", o["kind"].as_str().unwrap_or("?"), o["metadata"]["name"].as_str().unwrap_or("?"))
        })
        .collect();
    v.sort();
    v
}

/// The operator container of a rendered Deployment.
pub fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

/// The container's literal environment as (name, value); `valueFrom` entries have value None.
pub fn env(deployment: &Value) -> Vec<(String, Option<String>)> {
    container(deployment)["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| (e["name"].as_str().unwrap_or_default().to_string(), e["value"].as_str().map(str::to_string)))
                .collect()
        })
        .unwrap_or_default()
}

/// The literal value of one environment variable (the last one of that name, as Kubernetes does).
pub fn env_value(deployment: &Value, name: &str) -> Option<String> {
    env(deployment).into_iter().rev().find(|(n, _)| n == name).and_then(|(_, v)| v)
}

/// Pipes `stdin` into kubectl (admin) and returns its output.
pub fn kubectl_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(bin_dir().join("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write manifests");
    child.wait_with_output().expect("kubectl output")
}

/// `kubectl apply --server-side --dry-run=server`: the real apiserver validates and admits every
/// object (schema, strict field validation, RBAC escalation checks, Pod Security) without storing it.
/// Returns kubectl's stderr (its warnings) on success; panics with it on failure.
pub fn server_dry_run(manifests: &str) -> String {
    let out = kubectl_stdin(
        &["apply", "--server-side", "--dry-run=server", "--field-manager=cloudsync-chart-tests", "-f", "-"],
        manifests,
    );
    assert!(out.status.success(), "server dry run rejected the render:\n{}\n{}", text(&out.stderr), manifests);
    text(&out.stderr)
}

/// Labels a namespace (admin kubectl).
pub fn label_namespace(ns: &str, labels: &[&str]) {
    let mut args = vec!["label", "namespace", ns, "--overwrite"];
    args.extend_from_slice(labels);
    let out = super::kube_env::kubectl(&args);
    assert!(out.status.success(), "label namespace: {}", text(&out.stderr));
}

/// Enforces (and warns on) the `restricted` Pod Security Standard in `ns`.
pub fn restrict_namespace(ns: &str) {
    label_namespace(
        ns,
        &["pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/warn=restricted"],
    );
}

/// A stand-in for the Prometheus Operator's ServiceMonitor CRD, installed only when the cluster has
/// none: the fields the chart renders, with their upstream names and types, and no
/// preserve-unknown-fields, so strict field validation catches a misspelt field.
const SERVICE_MONITOR_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
  labels: {cloudsync.io/test-stand-in: "true"}
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor, categories: [prometheus-operator], shortNames: [smon]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        required: [spec]
        properties:
          apiVersion: {type: string}
          kind: {type: string}
          metadata: {type: object}
          spec:
            type: object
            required: [selector]
            properties:
              jobLabel: {type: string}
              targetLabels: {type: array, items: {type: string}}
              podTargetLabels: {type: array, items: {type: string}}
              selector:
                type: object
                x-kubernetes-map-type: atomic
                properties:
                  matchLabels: {type: object, additionalProperties: {type: string}}
                  matchExpressions:
                    type: array
                    items:
                      type: object
                      required: [key, operator]
                      properties:
                        key: {type: string}
                        operator: {type: string}
                        values: {type: array, items: {type: string}}
              namespaceSelector:
                type: object
                properties:
                  any: {type: boolean}
                  matchNames: {type: array, items: {type: string}}
              endpoints:
                type: array
                items:
                  type: object
                  properties:
                    port: {type: string}
                    targetPort: {x-kubernetes-int-or-string: true}
                    path: {type: string}
                    scheme: {type: string, enum: [http, https, HTTP, HTTPS]}
                    interval: {type: string, pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'}
                    scrapeTimeout: {type: string, pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'}
                    honorLabels: {type: boolean}
"#;

/// Makes `monitoring.coreos.com/v1` ServiceMonitor servable: a real CRD if one is installed,
/// otherwise the stand-in above. Waits until the apiserver serves the kind.
pub async fn ensure_service_monitor_crd() {
    static DONE: OnceCell<()> = OnceCell::const_new();
    DONE.get_or_init(|| async {
        let present = super::kube_env::kubectl(&["get", "crd", "servicemonitors.monitoring.coreos.com"]);
        if !present.status.success() {
            let out = kubectl_stdin(&["create", "-f", "-"], SERVICE_MONITOR_CRD);
            let err = text(&out.stderr);
            assert!(out.status.success() || err.contains("AlreadyExists"), "create ServiceMonitor CRD: {err}");
        }
        let out = super::kube_env::kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd/servicemonitors.monitoring.coreos.com",
            "--timeout=30s",
        ]);
        assert!(out.status.success(), "ServiceMonitor CRD established: {}", text(&out.stderr));
        // Discovery can lag the Established condition by a moment.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !super::kube_env::kubectl(&["get", "servicemonitors", "-A"]).status.success() {
            assert!(Instant::now() < deadline, "ServiceMonitors not served after 30s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

/// A Helm release on the test control plane, uninstalled on drop (so cluster-scoped objects do
/// not pile up across runs; namespaces are never deleted here anyway).
pub struct Release {
    pub name: String,
    pub namespace: String,
}

impl Release {
    pub fn install(name: &str, namespace: &str, args: &[&str]) -> Self {
        let chart = chart_dir();
        let mut all = vec!["install", name, chart.to_str().expect("utf-8 path"), "--namespace", namespace];
        all.extend_from_slice(args);
        let out = helm(&all);
        assert!(out.status.success(), "helm install failed:\n{}{}", text(&out.stdout), text(&out.stderr));
        Self { name: name.to_string(), namespace: namespace.to_string() }
    }

    /// Every object of the release, as `helm get manifest` reports it.
    pub fn manifest(&self) -> Vec<Value> {
        let out = helm(&["get", "manifest", &self.name, "--namespace", &self.namespace]);
        assert!(out.status.success(), "helm get manifest: {}", text(&out.stderr));
        parse(&text(&out.stdout))
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = helm(&["uninstall", &self.name, "--namespace", &self.namespace, "--wait=false"]);
    }
}

/// A kubeconfig that authenticates as `namespace/service_account` with a TokenRequest token, for
/// the admin kubeconfig's server and CA. Written into `dir`.
pub fn service_account_kubeconfig(service_account: &str, namespace: &str, dir: &Path) -> PathBuf {
    let out = super::kube_env::kubectl(&["create", "token", service_account, "-n", namespace, "--duration=3600s"]);
    assert!(out.status.success(), "kubectl create token: {}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_string();
    assert!(!token.is_empty(), "empty token");

    let admin = Kubeconfig::read_from(kubeconfig_path()).expect("read admin kubeconfig");
    let context = admin.current_context.clone().expect("current context");
    let cluster_name = admin
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .expect("context's cluster");
    let cluster =
        admin.clusters.iter().find(|c| c.name == cluster_name).and_then(|c| c.cluster.as_ref()).expect("cluster entry");
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testenv", "cluster": {
            "server": cluster.server.clone().expect("server"),
            "certificate-authority-data": cluster.certificate_authority_data.clone().expect("CA data"),
        }}],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "testenv", "user": service_account, "namespace": namespace}}],
        "current-context": "sa",
    });
    let path = dir.join(format!("{service_account}.kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&config).expect("kubeconfig YAML")).expect("write kubeconfig");
    path
}

/// `kubectl auth can-i` with another kubeconfig: true for "yes".
pub fn can_i(kubeconfig: &Path, args: &[&str]) -> bool {
    let out = Command::new(bin_dir().join("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["auth", "can-i"])
        .args(args)
        .output()
        .expect("run kubectl auth can-i");
    let answer = text(&out.stdout).trim().to_string();
    assert!(answer == "yes" || answer == "no", "kubectl auth can-i {args:?}: {answer} {}", text(&out.stderr));
    answer == "yes"
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

/// The operator binary run as the chart's Deployment runs it: the container's args and its
/// environment (downward API fields resolved as the kubelet would), with only a clean environment
/// and the given kubeconfig. The metrics address moves to a free loopback port.
pub struct PodProcess {
    child: Option<Child>,
    log: PathBuf,
    /// http://127.0.0.1:<port>, serving what the container serves on its metrics port.
    pub base_url: String,
    _dir: tempfile::TempDir,
}

impl PodProcess {
    pub fn start(deployment: &Deployment, pod_name: &str, kubeconfig: &Path) -> Self {
        let namespace = deployment.metadata.namespace.clone().expect("Deployment namespace");
        let spec = deployment.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod spec");
        let c = &spec.containers[0];
        assert!(c.command.is_none(), "the image's entrypoint is the binary");
        let mut vars: Vec<(String, String)> = Vec::new();
        for e in c.env.iter().flatten() {
            let value = match (&e.value, &e.value_from) {
                (Some(v), None) => v.clone(),
                (None, Some(from)) => match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                    Some("metadata.name") => pod_name.to_string(),
                    Some("metadata.namespace") => namespace.clone(),
                    other => panic!("env {} from {other:?} is not resolved by this test", e.name),
                },
                _ => String::new(),
            };
            vars.push((e.name.clone(), value));
        }
        let port = free_port();
        vars.push(("CLOUDSYNC_METRICS_ADDR".into(), format!("127.0.0.1:{port}")));

        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("operator.log");
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_cloudsync-operator"))
            .args(c.args.iter().flatten())
            .env_clear()
            .envs(vars)
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start the operator");
        Self { child: Some(child), log, base_url: format!("http://127.0.0.1:{port}"), _dir: dir }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            panic!("the operator exited ({status}):\n{}", self.logs());
        }
    }

    /// GET `path` on the metrics port, retrying until the server answers (30 s).
    pub async fn get(&mut self, path: &str) -> (u16, String) {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("http client");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.assert_running();
            match http.get(format!("{}{path}", self.base_url)).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    return (status, r.text().await.unwrap_or_default());
                }
                Err(e) => assert!(Instant::now() < deadline, "GET {path}: {e}\n{}", self.logs()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for PodProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
