//! `kubectl cloudsync` as a user runs it: kubectl finds the built `kubectl-cloudsync` on PATH and
//! runs it with the user's kubeconfig, against the real apiserver, the operator process and the
//! simulator. The plugin never talks to Graph.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use cloudsync_operator::api::{CloudSyncProfile, ProvisionRequest};
use kube::Api;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::support::kube_env::{bin_dir, client, kubeconfig_path, namespace};
use crate::support::operator::*;
use crate::support::secrets::assert_clean;

const CONVERGE: Duration = Duration::from_secs(90);

/// A PATH with kubectl and only the plugin binary (as `kubectl-cloudsync`) beside it.
fn plugin_path() -> String {
    let dir = std::env::temp_dir().join(format!("kubectl-cloudsync-path-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("kubectl-cloudsync");
    if !link.exists() {
        std::os::unix::fs::symlink(PathBuf::from(env!("CARGO_BIN_EXE_kubectl-cloudsync")), &link).unwrap();
    }
    format!("{}:{}:/usr/bin:/bin", dir.display(), bin_dir().display())
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// `kubectl cloudsync ARGS` (async: the simulator runs on this test's runtime).
async fn kubectl_cloudsync(args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = tokio::process::Command::new(bin_dir().join("kubectl"))
        .arg("cloudsync")
        .args(args)
        .env("PATH", plugin_path())
        .env("KUBECONFIG", kubeconfig_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl cloudsync");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).await.unwrap();
    }
    drop(input);
    let out =
        tokio::time::timeout(Duration::from_secs(150), child.wait_with_output()).await.expect("finishes").unwrap();
    let run = Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("$ kubectl cloudsync {}\n{}{}", args.join(" "), run.stdout, run.stderr);
    run
}

#[tokio::test]
async fn the_weekly_work_through_kubectl_cloudsync() {
    let client = client().await;
    let ns = namespace(&client, "plugin").await;
    create_secret(&client, &ns).await;
    let sim = simulator().await;
    let _op = Operator::start(&ns, &sim, &[]);
    let api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    apply(&api, &profile("contoso", json!({"accidentalDeletes": {"threshold": 5}}))).await;
    let p = wait_for(&api, "contoso", CONVERGE, "Ready", is_ready).await;
    let sp = p.status.as_ref().unwrap().service_principal.as_ref().unwrap().id.clone();

    // kubectl discovers the plugin.
    let list = tokio::process::Command::new(bin_dir().join("kubectl"))
        .args(["plugin", "list"])
        .env("PATH", plugin_path())
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("kubectl-cloudsync"), "{list:?}");

    // status: the namespace's profiles, one profile in full, and JSON.
    let all = kubectl_cloudsync(&["status", "-n", &ns], None).await;
    assert!(all.ok && all.stdout.contains("contoso") && all.stdout.contains("PROVISIONING"), "{}", all.stderr);
    let one = kubectl_cloudsync(&["status", "contoso", "-n", &ns], None).await;
    assert!(one.ok, "{}", one.stderr);
    for want in
        ["Profile:    ", "Ready:      True", &sp, "AD2AADProvisioning", "AD2AADPasswordHash", "NEXT RUN", "Conditions:"]
    {
        assert!(one.stdout.contains(want), "{want} not in:\n{}", one.stdout);
    }
    let json_out = kubectl_cloudsync(&["status", "contoso", "-n", &ns, "-o", "json"], None).await;
    let doc: Value = serde_json::from_str(&json_out.stdout).expect("JSON");
    assert_eq!(doc["profile"]["status"]["servicePrincipal"]["id"], sp.as_str());
    assert!(doc["profile"]["metadata"].get("managedFields").is_none());
    let missing = kubectl_cloudsync(&["status", "nope", "-n", &ns], None).await;
    assert!(!missing.ok && missing.stderr.contains("CloudSyncProfile nope not found"), "{}", missing.stderr);

    // restart: a new requestId, carried out once by the operator.
    let restarts_before = sim.counters().job_restarts;
    let r = kubectl_cloudsync(&["restart", "contoso", "-n", &ns, "--reset-scope", "Escrows"], None).await;
    assert!(r.ok, "{}", r.stderr);
    let id = api.get("contoso").await.unwrap().spec.restart.expect("restart set").request_id;
    assert!(id.starts_with("kubectl-cloudsync-"), "{id}");
    wait_for(&api, "contoso", CONVERGE, "the restart carried out", |p| {
        p.status.as_ref().and_then(|s| s.last_restart_request_id.as_deref()) == Some(id.as_str())
    })
    .await;
    assert!(sim.counters().job_restarts > restarts_before);
    let bad = kubectl_cloudsync(&["restart", "contoso", "-n", &ns, "--reset-scope", "ConnectorDataStore"], None).await;
    assert!(!bad.ok && bad.stderr.contains("is not one of"), "{}", bad.stderr);

    // suspend and resume.
    assert!(kubectl_cloudsync(&["suspend", "contoso", "-n", &ns], None).await.ok);
    wait_for(&api, "contoso", CONVERGE, "suspended", |p| condition(p, "Suspended").is_some_and(|c| c.status == "True"))
        .await;
    let s = kubectl_cloudsync(&["status", "contoso", "-n", &ns], None).await;
    assert!(s.stdout.contains("Suspended:  yes"), "{}", s.stdout);
    assert!(kubectl_cloudsync(&["resume", "contoso", "-n", &ns], None).await.ok);
    wait_for(&api, "contoso", CONVERGE, "running again", is_ready).await;

    // provision: creates a ProvisionRequest, waits, prints the steps.
    let dn = "CN=Adele Vance,OU=Sales,DC=contoso,DC=com";
    let prov = kubectl_cloudsync(&["provision", "contoso", "-n", &ns, "--user", dn], None).await;
    assert!(prov.ok, "{}", prov.stderr);
    for want in ["created", "Success: 1 of 1 provisioned", "EntryImport", "EntryExportAdd", dn] {
        assert!(prov.stdout.contains(want), "{want} not in:\n{}", prov.stdout);
    }
    let requests: Api<ProvisionRequest> = Api::namespaced(client.clone(), &ns);
    let made = requests.list(&Default::default()).await.unwrap().items;
    assert_eq!(made.len(), 1);
    assert!(made[0].metadata.name.as_deref().unwrap().starts_with("contoso-"));
    let none = kubectl_cloudsync(&["provision", "contoso", "-n", &ns], None).await;
    assert!(!none.ok && none.stderr.contains("give 1 to 5 subjects"), "{}", none.stderr);

    // approve-deletes: refused while nothing is held; asks, and only "y" approves.
    let nothing = kubectl_cloudsync(&["approve-deletes", "contoso", "-n", &ns, "--yes"], None).await;
    assert!(!nothing.ok && nothing.stderr.contains("holds no deletes"), "{}", nothing.stderr);
    let p = api.get("contoso").await.unwrap();
    let job =
        p.status.as_ref().unwrap().jobs.iter().find(|j| j.template_id == "AD2AADProvisioning").unwrap().id.clone();
    sim.want_deletes(TENANT, &sp, &job, 7).unwrap();
    wait_for(&api, "contoso", CONVERGE, "deletes held", |p| {
        condition(p, "Degraded").is_some_and(|c| c.reason == "DeletesHeld")
    })
    .await;
    let refused = kubectl_cloudsync(&["approve-deletes", "contoso", "-n", &ns], Some("n\n")).await;
    assert!(
        !refused.ok && refused.stdout.contains("[y/N]") && refused.stderr.contains("not approved"),
        "{}",
        refused.stderr
    );
    let before = api.get("contoso").await.unwrap().spec.restart.map(|r| r.request_id);
    assert_eq!(before.as_deref(), Some(id.as_str()), "a refusal changes nothing");
    let approved = kubectl_cloudsync(&["approve-deletes", "contoso", "-n", &ns], Some("y\n")).await;
    assert!(approved.ok && approved.stdout.contains("threshold is 5"), "{}", approved.stderr);
    let restart = api.get("contoso").await.unwrap().spec.restart.unwrap();
    assert_eq!(restart.reset_scope.as_deref(), Some("ForceDeletes"));
    wait_for(&api, "contoso", CONVERGE, "the deletes released", |p| {
        is_ready(p) && condition(p, "Degraded").is_some_and(|c| c.status == "False")
    })
    .await;

    // report: the profile, its request, Events; no operator pods on this plane (the operator runs
    // as a process), which the report says.
    let report = kubectl_cloudsync(&["report", "contoso", "-n", &ns], None).await;
    assert!(report.ok, "{}", report.stderr);
    let doc: Value = serde_yaml::from_str(&report.stdout).expect("YAML report");
    assert_eq!(doc["profile"]["metadata"]["name"], "contoso");
    assert_eq!(doc["provisionRequests"].as_array().map(Vec::len), Some(1));
    let reasons: Vec<&str> = doc["events"].as_array().unwrap().iter().filter_map(|e| e["reason"].as_str()).collect();
    assert!(reasons.contains(&"Success"), "the request's Event: {reasons:?}");
    assert!(reasons.len() > 1, "the profile's Events: {reasons:?}");
    assert!(doc["operatorLogs"]["note"].as_str().unwrap().contains("no operator pod"), "{}", doc["operatorLogs"]);
    assert_clean("kubectl cloudsync report", &report.stdout);
    assert!(!report.stdout.contains(CLIENT_SECRET));
}
