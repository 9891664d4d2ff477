//! A real kube-apiserver + etcd for integration tests, started by `hack/testenv.sh` (the same
//! script the demo and CI use). `CLOUDSYNC_TEST_KUBECONFIG` names an already running control plane
//! instead; otherwise the first test of a run brings one up (idempotent, locked) and later runs
//! reuse it. Each test gets its own namespace; the CRD is installed once per process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};
use tokio::sync::OnceCell;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of an admin kubeconfig for a running control plane.
pub fn kubeconfig_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Ok(p) = std::env::var("CLOUDSYNC_TEST_KUBECONFIG") {
            return PathBuf::from(p);
        }
        let script = repo_root().join("hack/testenv.sh");
        let status = Command::new(&script).arg("up").status().expect("run hack/testenv.sh up");
        assert!(status.success(), "hack/testenv.sh up failed");
        repo_root().join(".testenv/admin.kubeconfig")
    })
    .clone()
}

/// Directory holding kubectl and helm built by hack/testenv.sh.
pub fn bin_dir() -> PathBuf {
    std::env::var("CLOUDSYNC_TEST_BIN").map(PathBuf::from).unwrap_or_else(|_| repo_root().join(".testenv/bin"))
}

pub async fn client_from(path: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("kube config");
    Client::try_from(config).expect("kube client")
}

/// An admin client of the test control plane, with the CRD installed and Established.
pub async fn client() -> Client {
    let client = client_from(&kubeconfig_path()).await;
    static CRD: OnceCell<()> = OnceCell::const_new();
    CRD.get_or_init(|| install_crd(client.clone())).await;
    client
}

async fn install_crd(client: Client) {
    let version = client.apiserver_version().await.expect("apiserver /version");
    eprintln!("integration tests run against kube-apiserver {} ({})", version.git_version, kubeconfig_path().display());
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    for file in ["cloudsyncprofiles.cloudsync.io.yaml", "provisionrequests.cloudsync.io.yaml"] {
        let text = std::fs::read_to_string(repo_root().join("crds").join(file)).expect("read CRD");
        let crd: CustomResourceDefinition = serde_yaml::from_str(&text).expect("parse CRD");
        let name = crd.metadata.name.clone().expect("CRD name");
        crds.patch(&name, &PatchParams::apply("cloudsync-tests").force(), &Patch::Apply(&crd))
            .await
            .expect("apply CRD");
        let established = await_condition(crds.clone(), &name, conditions::is_crd_established());
        tokio::time::timeout(Duration::from_secs(30), established)
            .await
            .expect("CRD established in 30s")
            .expect("watch");
    }
}

/// Creates a fresh namespace named after the test. No namespace controller runs here, so
/// namespaces are never deleted; `hack/testenv.sh down` wipes etcd.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let suffix: u32 = rand::random();
    let name = format!("{prefix}-{suffix:08x}");
    let ns =
        Namespace { metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() }, ..Default::default() };
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("create namespace");
    name
}

/// Runs kubectl (built by testenv) against the test control plane.
pub fn kubectl(args: &[&str]) -> std::process::Output {
    Command::new(bin_dir().join("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(args)
        .output()
        .expect("run kubectl")
}
