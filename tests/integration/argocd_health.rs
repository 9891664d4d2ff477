//! The Argo CD health check for CloudSyncProfile (argocd/resource_customizations): its cases pass
//! on Argo CD's Lua VM (the Go harness in hack/argocd-health, gopher-lua as Argo CD uses it), its
//! testdata are real CloudSyncProfiles, and the script knows every reason the operator writes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cloudsync_operator::api::CloudSyncProfile;
use cloudsync_operator::reconcile::{Kind, Reason};
use serde::Deserialize;
use serde_json::Value;

const CHECK_DIR: &str = "argocd/resource_customizations/cloudsync.io/CloudSyncProfile";
const REQUEST_CHECK_DIR: &str = "argocd/resource_customizations/cloudsync.io/ProvisionRequest";

/// The cases health_test.yaml must have (one real manifest each).
const EXPECTED_CASES: usize = 14;
const EXPECTED_REQUEST_CASES: usize = 5;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthTests {
    tests: Vec<HealthTest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HealthTest {
    health_status: HealthStatus,
    input_path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthStatus {
    status: String,
    message: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check_dir() -> PathBuf {
    root().join(CHECK_DIR)
}

fn health_tests() -> HealthTests {
    health_tests_in(&check_dir())
}

fn health_tests_in(dir: &Path) -> HealthTests {
    let path = dir.join("health_test.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn cases_pass_on_argo_cds_lua_vm() {
    let harness = root().join("hack/argocd-health");
    let goflags = format!("{} -mod=readonly", std::env::var("GOFLAGS").unwrap_or_default());
    let started = Instant::now();
    let out = Command::new("go")
        .args(["run", ".", "../../argocd/resource_customizations"])
        .current_dir(&harness)
        .env("GOFLAGS", goflags.trim())
        .output()
        .expect("Go is needed to run the Argo CD health harness (hack/argocd-health)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("go run took {:?}\n{stdout}{stderr}", started.elapsed());
    assert!(out.status.success(), "the Argo CD health harness failed ({}):\n{stdout}\n{stderr}", out.status);

    let cases = health_tests().tests.len();
    assert_eq!(cases, EXPECTED_CASES, "health_test.yaml changed: update EXPECTED_CASES");
    let requests = health_tests_in(&root().join(REQUEST_CHECK_DIR)).tests.len();
    assert_eq!(
        requests, EXPECTED_REQUEST_CASES,
        "ProvisionRequest/health_test.yaml changed: update EXPECTED_REQUEST_CASES"
    );
    let cases = cases + requests;
    let summary = format!("argocd-health: {cases} passed, 0 failed");
    assert!(stdout.lines().any(|l| l == summary), "expected the line {summary:?} in:\n{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ok ")).count(), cases, "{stdout}");
}

#[test]
fn every_status_is_covered() {
    let tests = health_tests().tests;
    for status in ["Healthy", "Progressing", "Degraded", "Suspended"] {
        assert!(tests.iter().any(|t| t.health_status.status == status), "no case for {status}");
    }
    for t in &tests {
        assert!(!t.health_status.message.is_empty(), "{}: empty message", t.input_path);
        assert!(
            ["Healthy", "Progressing", "Degraded", "Suspended"].contains(&t.health_status.status.as_str()),
            "{}: {}",
            t.input_path,
            t.health_status.status
        );
    }
}

/// Every manifest is a real CloudSyncProfile: the operator's types read it without losing a field
/// (spec refuses unknown fields, as the CRD does), and it is one of the cases.
#[test]
fn testdata_are_cloudsync_profiles() {
    let tests = health_tests().tests;
    let used: BTreeSet<String> = tests.iter().map(|t| t.input_path.clone()).collect();
    assert_eq!(used.len(), tests.len(), "a manifest is used twice");
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir(check_dir().join("testdata")).expect("testdata/") {
        let path = entry.expect("dir entry").path();
        let rel = format!("testdata/{}", path.file_name().unwrap().to_string_lossy());
        assert!(used.contains(&rel), "{rel} is not used by health_test.yaml");
        seen.insert(rel.clone());

        let text = read(&path);
        let profile: CloudSyncProfile =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{rel} is not a CloudSyncProfile: {e}"));
        let original: Value = serde_yaml::from_str(&text).expect("YAML");
        assert_eq!(original["apiVersion"], "cloudsync.io/v1alpha1", "{rel}");
        assert_eq!(original["kind"], "CloudSyncProfile", "{rel}");
        let meta = &original["metadata"];
        assert!(meta["generation"].is_i64() && meta["uid"].is_string(), "{rel}: not taken from a cluster");
        assert!(meta.get("managedFields").is_none(), "{rel}: strip managedFields");

        let back = serde_json::to_value(&profile).expect("serialize");
        for part in ["metadata", "spec", "status"] {
            assert_eq!(
                back.get(part),
                original.get(part),
                "{rel}: {part} does not round-trip through the operator's types"
            );
        }
    }
    assert_eq!(seen, used, "health_test.yaml names a manifest that does not exist");
}

/// Reasons the operator writes into conditions, by kind, from the one enum that conditions and
/// Events take them from.
fn operator_reasons(kinds: &[Kind]) -> BTreeSet<String> {
    Reason::ALL.iter().filter(|r| kinds.contains(&r.kind())).map(|r| r.as_str().to_string()).collect()
}

/// The script's table of reasons that need the user: `  Name = true,` lines.
fn user_action_reasons(script: &str) -> BTreeSet<String> {
    let start = script.find("local USER_ACTION = {").expect("USER_ACTION table in health.lua");
    let end = start + script[start..].find('}').expect("end of USER_ACTION");
    script[start..end].lines().filter_map(|l| l.trim().strip_suffix("= true,").map(|r| r.trim().to_string())).collect()
}

#[test]
fn script_knows_every_operator_reason() {
    let script = read(&check_dir().join("health.lua"));
    let reasons = operator_reasons(&[Kind::NeedsUser, Kind::Progress]);
    eprintln!("operator reasons: {reasons:?}");
    let words: BTreeSet<&str> = script.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    let unknown: Vec<&String> = reasons.iter().filter(|r| !words.contains(r.as_str())).collect();
    assert!(
        unknown.is_empty(),
        "health.lua does not classify the operator's reasons {unknown:?}: add each to USER_ACTION (Degraded) or to the progress list in its header comment (Progressing)"
    );
    let table = user_action_reasons(&script);
    let needs_user = operator_reasons(&[Kind::NeedsUser]);
    assert_eq!(table, needs_user, "health.lua's USER_ACTION must be exactly the reasons that need the user");
}

/// The ProvisionRequest check: a case for each health it gives, and every manifest a real
/// ProvisionRequest that the operator's types read without losing a field.
#[test]
fn request_testdata_are_provision_requests_and_cover_every_health() {
    let dir = root().join(REQUEST_CHECK_DIR);
    let tests = health_tests_in(&dir).tests;
    for status in ["Healthy", "Progressing", "Degraded"] {
        assert!(tests.iter().any(|t| t.health_status.status == status), "no ProvisionRequest case for {status}");
    }
    for t in &tests {
        let text = read(&dir.join(&t.input_path));
        let request: cloudsync_operator::api::ProvisionRequest =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{} is not a ProvisionRequest: {e}", t.input_path));
        let original: Value = serde_yaml::from_str(&text).expect("YAML");
        assert!(original["metadata"]["uid"].is_string(), "{}: not taken from a cluster", t.input_path);
        let back = serde_json::to_value(&request).expect("serialize");
        for part in ["spec", "status"] {
            assert_eq!(back.get(part), original.get(part), "{}: {part} does not round-trip", t.input_path);
        }
    }
}
