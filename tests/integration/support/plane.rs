//! A control plane of a test's own (`hack/testenv.sh` with its own state directory and ports, the
//! same cached binaries), for tests that stop and start its kube-apiserver without disturbing the
//! shared one. Torn down when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kube::Client;

use super::kube_env::{client_from, kubeconfig_path, repo_root};

pub struct Plane {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

impl Plane {
    /// Brings up a new plane, without the CRD.
    pub fn bare() -> Self {
        kubeconfig_path(); // the shared plane is up, so the binaries are built and cached
        let tmp = tempfile::tempdir().expect("tempdir");
        let plane = Self { dir: tmp.path().join("plane"), _tmp: tmp };
        plane.ok("up");
        plane
    }

    /// Brings up a new plane and installs the CRD on it.
    pub fn up() -> Self {
        let plane = Self::bare();
        let crd = repo_root().join("crds");
        let crd = crd.to_str().expect("utf-8 path");
        let applied = plane.kubectl(&["apply", "--server-side", "-f", crd]);
        assert!(applied.status.success(), "{}", text(&applied));
        let established = plane.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/cloudsyncprofiles.cloudsync.io",
            "crd/provisionrequests.cloudsync.io",
        ]);
        assert!(established.status.success(), "{}", text(&established));
        plane
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }

    pub async fn client(&self) -> Client {
        client_from(&self.kubeconfig()).await
    }

    /// A kubeconfig for a new ServiceAccount that was granted nothing.
    pub fn unprivileged_kubeconfig(&self) -> PathBuf {
        let created = self.kubectl(&["create", "serviceaccount", "nobody", "-n", "default"]);
        assert!(created.status.success(), "{}", text(&created));
        let token = self.kubectl(&["create", "token", "nobody", "-n", "default"]);
        assert!(token.status.success(), "{}", text(&token));
        let admin_token = std::fs::read_to_string(self.dir.join("pki/admin.token")).expect("admin token");
        let admin = std::fs::read_to_string(self.kubeconfig()).expect("kubeconfig");
        let path = self.dir.join("nobody.kubeconfig");
        let token = String::from_utf8_lossy(&token.stdout);
        std::fs::write(&path, admin.replace(admin_token.trim(), token.trim())).expect("write kubeconfig");
        path
    }

    pub fn testenv(&self, arg: &str) -> Output {
        Command::new(repo_root().join("hack/testenv.sh"))
            .arg(arg)
            .env("CLOUDSYNC_TESTENV_DIR", &self.dir)
            .output()
            .expect("run hack/testenv.sh")
    }

    /// Runs a subcommand that must succeed; returns its output.
    pub fn ok(&self, arg: &str) -> String {
        let out = self.testenv(arg);
        assert!(out.status.success(), "hack/testenv.sh {arg}: {}", text(&out));
        text(&out)
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(self.dir.join("bin/kubectl"))
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(["--request-timeout", "5s"])
            .args(args)
            .output()
            .expect("run kubectl")
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        let _ = self.testenv("down");
    }
}
