//! `hack/testenv.sh` itself, on a control plane of its own (another state directory, the same
//! cached binaries): `up` is idempotent, a stale pid (a killed kube-apiserver) is recovered from,
//! the plane issues ServiceAccount tokens and authorizes with RBAC, and `down` cleans up.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::kube_env::{kubeconfig_path, repo_root};

fn testenv(dir: &Path, arg: &str) -> Output {
    Command::new(repo_root().join("hack/testenv.sh"))
        .arg(arg)
        .env("CLOUDSYNC_TESTENV_DIR", dir)
        .output()
        .expect("run hack/testenv.sh")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn kubectl(dir: &Path, args: &[&str]) -> Output {
    Command::new(dir.join("bin/kubectl"))
        .arg("--kubeconfig")
        .arg(dir.join("admin.kubeconfig"))
        .args(args)
        .output()
        .expect("run kubectl")
}

#[test]
fn up_is_idempotent_recovers_from_a_stale_pid_and_down_cleans_up() {
    kubeconfig_path(); // the shared plane is up, so the binaries are built and cached
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plane");

    let first = testenv(&dir, "up");
    assert!(first.status.success(), "{}", text(&first));
    assert!(text(&first).contains("ready: kube-apiserver v1.35.8"), "{}", text(&first));
    let port = std::fs::read_to_string(dir.join("apiserver.port")).unwrap();

    let again = testenv(&dir, "up");
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("already running"), "{}", text(&again));
    assert_eq!(std::fs::read_to_string(dir.join("apiserver.port")).unwrap(), port, "the same plane");

    // RBAC is on and ServiceAccount tokens are issued: a fresh ServiceAccount can get a token and
    // is denied what it was not granted.
    assert!(kubectl(&dir, &["create", "serviceaccount", "probe", "-n", "default"]).status.success());
    let token = kubectl(&dir, &["create", "token", "probe", "-n", "default"]);
    assert!(token.status.success(), "{}", text(&token));
    assert!(String::from_utf8_lossy(&token.stdout).starts_with("eyJ"));
    let can = kubectl(&dir, &["auth", "can-i", "list", "secrets", "--as", "system:serviceaccount:default:probe"]);
    assert_eq!(String::from_utf8_lossy(&can.stdout).trim(), "no");

    // A kube-apiserver that died leaves a stale pid file; `up` notices and starts a new plane.
    let pid = std::fs::read_to_string(dir.join("kube-apiserver.pid")).unwrap();
    assert!(Command::new("kill").args(["-9", pid.trim()]).status().unwrap().success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status = testenv(&dir, "status");
    assert!(!status.status.success(), "status reports it down: {}", text(&status));
    let recovered = testenv(&dir, "up");
    assert!(recovered.status.success(), "{}", text(&recovered));
    assert!(text(&recovered).contains("ready: kube-apiserver"), "{}", text(&recovered));
    assert!(kubectl(&dir, &["get", "--raw", "/readyz"]).status.success());

    let down = testenv(&dir, "down");
    assert!(down.status.success(), "{}", text(&down));
    assert!(!dir.join("etcd-data").exists() && !dir.join("admin.kubeconfig").exists());
    assert!(!dir.join("kube-apiserver.pid").exists() && !dir.join("etcd.pid").exists());
    assert!(testenv(&dir, "down").status.success(), "down twice is fine");
}

#[test]
fn stop_apiserver_keeps_etcd_and_start_apiserver_brings_back_the_same_cluster() {
    use crate::support::plane::{Plane, text};
    let plane = Plane::up();
    let port = std::fs::read_to_string(plane.dir().join("apiserver.port")).unwrap();
    let kubeconfig = std::fs::read_to_string(plane.kubeconfig()).unwrap();
    let created = plane.kubectl(&["create", "configmap", "survivor", "-n", "default", "--from-literal=k=v"]);
    assert!(created.status.success(), "{}", text(&created));

    assert!(plane.ok("stop-apiserver").contains("kube-apiserver stopped"));
    assert!(!plane.testenv("status").status.success(), "status reports it down");
    assert!(!plane.kubectl(&["get", "--raw", "/readyz"]).status.success(), "nothing answers");
    assert!(
        std::net::TcpStream::connect(format!("127.0.0.1:{}", port.trim())).is_err(),
        "the port is closed while it is stopped"
    );
    assert!(plane.testenv("stop-apiserver").status.success(), "stopping it twice is fine");

    assert!(plane.ok("start-apiserver").contains("ready: kube-apiserver"));
    assert_eq!(std::fs::read_to_string(plane.dir().join("apiserver.port")).unwrap(), port, "the same port");
    assert_eq!(std::fs::read_to_string(plane.kubeconfig()).unwrap(), kubeconfig, "the same certificates and token");
    let got = plane.kubectl(&["get", "configmap", "survivor", "-n", "default", "-o", "jsonpath={.data.k}"]);
    assert_eq!(String::from_utf8_lossy(&got.stdout), "v", "etcd kept the data: {}", text(&got));
    assert!(plane.ok("start-apiserver").contains("already running"));
}
