//! The chart's alerting rules and Grafana dashboard: `promtool check rules` and `promtool test
//! rules` (promtool built by hack/testenv.sh) on the rendered PrometheusRule; the dashboard
//! ConfigMap; and, against the operator and the simulator, that every metric the rules and the
//! dashboard use is one the operator exports, and that the per-profile gauges follow the jobs.

mod promql;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::chart::*;
use crate::support::kube_env::{bin_dir, client, kubeconfig_path, namespace, repo_root};
use crate::support::operator::*;
use cloudsync_operator::api::CloudSyncProfile;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

const RELEASE: &str = "cso";
const NAMESPACE: &str = "mon";
const ON: &[&str] = &["--set", "prometheusRule.enabled=true", "--api-versions", "monitoring.coreos.com/v1"];

fn rule_groups() -> Value {
    let objs = render(RELEASE, NAMESPACE, ON);
    let rule = one(&objs, "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["namespace"], NAMESPACE);
    rule["spec"]["groups"].clone()
}

fn expressions(groups: &Value) -> Vec<String> {
    groups
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["expr"].as_str().map(str::to_string))
        .collect()
}

fn dashboard() -> Value {
    let objs = render(RELEASE, NAMESPACE, &["--set", "grafanaDashboard.enabled=true"]);
    let cm = one(&objs, "ConfigMap");
    serde_json::from_str(cm["data"]["cloudsync-operator.json"].as_str().expect("dashboard data")).expect("valid JSON")
}

fn dashboard_expressions(d: &Value) -> Vec<String> {
    d["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect()
}

fn promtool(args: &[&str], dir: &std::path::Path) -> (bool, String) {
    kubeconfig_path(); // builds and links the tools when it starts the control plane
    if !bin_dir().join("promtool").exists() {
        // A control plane started before promtool was added: `build` only links what is cached.
        let built =
            Command::new(repo_root().join("hack/testenv.sh")).arg("build").status().expect("hack/testenv.sh build");
        assert!(built.success(), "hack/testenv.sh build failed");
    }
    let out = Command::new(bin_dir().join("promtool")).args(args).current_dir(dir).output().expect("run promtool");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn the_rules_pass_promtool_check_and_their_unit_tests() {
    let err = template(RELEASE, NAMESPACE, &["--set", "prometheusRule.enabled=true"]).unwrap_err();
    assert!(err.contains("monitoring.coreos.com/v1") && err.contains("prometheusRule.enabled"), "{err}");
    assert!(of_kind(&render(RELEASE, NAMESPACE, &[]), "PrometheusRule").is_empty(), "off by default");

    let groups = rule_groups();
    let alerts: BTreeSet<&str> =
        groups[0]["rules"].as_array().unwrap().iter().filter_map(|r| r["alert"].as_str()).collect();
    assert_eq!(
        alerts,
        BTreeSet::from([
            "CloudSyncGraphThrottled",
            "CloudSyncJobNoSuccessfulRun",
            "CloudSyncJobQuarantined",
            "CloudSyncOperatorDown",
            "CloudSyncProfileNotReady"
        ])
    );
    let dir = tempfile::tempdir().unwrap();
    let rules = serde_yaml::to_string(&json!({ "groups": groups })).unwrap();
    std::fs::write(dir.path().join("rules.yaml"), rules).unwrap();
    let (ok, out) = promtool(&["check", "rules", "rules.yaml"], dir.path());
    assert!(ok && out.contains("SUCCESS: 5 rules found"), "{out}");
    std::fs::copy(repo_root().join("tests/integration/alerts/rules.test.yaml"), dir.path().join("rules.test.yaml"))
        .unwrap();
    let (ok, out) = promtool(&["test", "rules", "rules.test.yaml"], dir.path());
    assert!(ok && out.contains("SUCCESS"), "{out}");

    // A broken threshold fails the check (the check is not vacuous).
    std::fs::write(dir.path().join("bad.yaml"), "groups: [{name: g, rules: [{alert: A, expr: 'sum(('}]}]\n").unwrap();
    let (ok, out) = promtool(&["check", "rules", "bad.yaml"], dir.path());
    assert!(!ok, "{out}");
}

#[test]
fn thresholds_and_labels_come_from_the_values() {
    let mut args = ON.to_vec();
    args.extend_from_slice(&[
        "--set",
        "prometheusRule.noSuccessfulRunFor=2d",
        "--set",
        "prometheusRule.notReadyFor=30m",
        "--set",
        "prometheusRule.job=custom",
        "--set",
        "prometheusRule.labels.release=prometheus",
        "--set",
        "prometheusRule.alertLabels.team=identity",
    ]);
    let objs = render(RELEASE, NAMESPACE, &args);
    let rule = one(&objs, "PrometheusRule");
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    let rules = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    let by = |name: &str| rules.iter().find(|r| r["alert"] == name).unwrap().clone();
    assert!(by("CloudSyncJobNoSuccessfulRun")["expr"].as_str().unwrap().ends_with("> 172800"));
    assert_eq!(by("CloudSyncProfileNotReady")["for"], "30m");
    assert!(rules.iter().all(|r| r["expr"].as_str().unwrap().contains(r#"job="custom""#)));
    assert!(rules.iter().all(|r| r["labels"]["team"] == "identity" && r["labels"]["severity"].is_string()));
    let err = template(RELEASE, NAMESPACE, &[ON, &["--set", "prometheusRule.noSuccessfulRunFor=6 hours"]].concat())
        .unwrap_err();
    assert!(err.contains("noSuccessfulRunFor"), "{err}");
}

#[test]
fn the_dashboard_config_map_has_the_sidecar_label_and_valid_json() {
    assert!(of_kind(&render(RELEASE, NAMESPACE, &[]), "ConfigMap").is_empty(), "off by default");
    let objs = render(
        RELEASE,
        NAMESPACE,
        &["--set", "grafanaDashboard.enabled=true", "--set", "grafanaDashboard.namespace=grafana"],
    );
    let cm = one(&objs, "ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(cm["metadata"]["namespace"], "grafana");
    let d = dashboard();
    assert_eq!(d["uid"], "cloudsync-operator");
    let exprs = dashboard_expressions(&d);
    assert!(exprs.len() >= 10, "{exprs:?}");
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| promql::metric_names(e)).collect();
    for gauge in
        ["cloudsync_profile_ready", "cloudsync_job_status", "cloudsync_job_quarantined", "cloudsync_job_escrowed"]
    {
        assert!(used.contains(gauge), "the dashboard shows {gauge}: {used:?}");
    }
}

/// Sample and family names on /metrics.
fn exported(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            out.extend(rest.split_whitespace().next().map(str::to_string));
        } else if !line.starts_with('#') {
            out.extend(line.split(['{', ' ']).next().filter(|n| !n.is_empty()).map(str::to_string));
        }
    }
    out
}

async fn scrape(base: &str) -> String {
    reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap()
}

/// Polls /metrics until `done` holds for the text.
async fn scrape_until(base: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = scrape(base).await;
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what} in\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

#[tokio::test]
async fn every_metric_used_is_exported_and_the_job_gauges_follow_the_jobs() {
    let client = client().await;
    let ns = namespace(&client, "alerts").await;
    let sim = simulator().await;
    create_secret(&client, &ns).await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    // One throttled answer, so that the throttling counter has a series.
    sim.add_fault(
        cloudsync_sim::FaultSpec::parse_cli("kind=status,status=429,retryAfter=1,path=/beta/servicePrincipals,times=1")
            .unwrap(),
    )
    .unwrap();
    let op = Operator::start(&ns, &sim, &["--label-selector", "shard=a"]);
    let base = op.metrics_url().await;
    for (name, domain) in [("alpha", "contoso.com"), ("beta", "fabrikam.com")] {
        let mut m = profile(name, json!({"domain": domain}));
        m["metadata"]["labels"] = json!({"shard": "a"});
        apply(&api, &m).await;
    }
    let has_run = |p: &CloudSyncProfile| {
        is_ready(p)
            && p.status
                .as_ref()
                .is_some_and(|s| s.jobs.len() == 2 && s.jobs.iter().all(|j| j.last_successful_run.is_some()))
    };
    let alpha = wait_for(&api, "alpha", Duration::from_secs(60), "Ready after a successful run", has_run).await;
    wait_for(&api, "beta", Duration::from_secs(60), "Ready after a successful run", has_run).await;

    let job =
        |profile: &str, template: &str| format!(r#"{{namespace="{ns}",profile="{profile}",template="{template}"}}"#);
    let prov = job("alpha", "AD2AADProvisioning");
    let text = scrape_until(&base, "a last successful run", |t| {
        value(t, &format!("cloudsync_job_last_successful_run_timestamp_seconds{prov}")).is_some_and(|v| v > 0.0)
    })
    .await;

    // Every metric the rules and the dashboard select is exported (up is Prometheus' own).
    let names = exported(&text);
    let used: BTreeSet<String> = expressions(&rule_groups())
        .iter()
        .chain(dashboard_expressions(&dashboard()).iter())
        .flat_map(|e| promql::metric_names(e))
        .filter(|n| n != "up")
        .collect();
    assert!(used.len() >= 10, "{used:?}");
    let missing: Vec<&String> =
        used.iter().filter(|n| !promql::families(n).iter().any(|f| names.contains(f))).collect();
    assert!(missing.is_empty(), "used but not exported: {missing:?}\n{text}");

    // The gauges carry the jobs' state.
    assert_eq!(value(&text, &format!(r#"cloudsync_profile_ready{{namespace="{ns}",profile="alpha"}}"#)), Some(1.0));
    assert_eq!(value(&text, &format!("cloudsync_job_quarantined{prov}")), Some(0.0));
    assert_eq!(value(&text, &format!("cloudsync_job_escrowed{prov}")), Some(0.0));
    let code = |t: &str, c: &str| {
        value(
            t,
            &format!(
                r#"cloudsync_job_status{{namespace="{ns}",profile="alpha",template="AD2AADProvisioning",code="{c}"}}"#
            ),
        )
    };
    assert_eq!(code(&text, "Active"), Some(1.0));
    assert_eq!(code(&text, "Quarantine"), Some(0.0));

    // The simulator quarantines the provisioning job (TooManyDeletes: the operator leaves it for a person).
    let status = alpha.status.clone().unwrap();
    let sp = status.service_principal.as_ref().unwrap().id.clone();
    let job_id = status.jobs.iter().find(|j| j.template_id == "AD2AADProvisioning").unwrap().id.clone();
    sim.quarantine_job(TENANT, &sp, &job_id, "TooManyDeletes", "TooManyDeletes").unwrap();
    let text =
        scrape_until(&base, "the quarantine", |t| value(t, &format!("cloudsync_job_quarantined{prov}")) == Some(1.0))
            .await;
    assert_eq!(code(&text, "Quarantine"), Some(1.0));
    assert_eq!(code(&text, "Active"), Some(0.0));
    assert_eq!(value(&text, &format!("cloudsync_job_quarantined{}", job("alpha", "AD2AADPasswordHash"))), Some(0.0));

    // A profile that leaves the operator's selector loses its series (a watch delete, no cleanup).
    api.patch("beta", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"shard": "b"}}})))
        .await
        .unwrap();
    scrape_until(&base, "beta's series to go", |t| !t.contains(r#"profile="beta""#)).await;
    // A deleted profile loses them too.
    api.delete("alpha", &DeleteParams::default()).await.unwrap();
    wait_gone(&api, "alpha", Duration::from_secs(60)).await;
    let text = scrape_until(&base, "alpha's series to go", |t| !t.contains(r#"profile="alpha""#)).await;
    assert!(!text.contains(&format!(r#"namespace="{ns}""#)), "{text}");
    drop(op);
}

#[tokio::test]
async fn only_the_leader_reports_the_profile_gauges() {
    use k8s_openapi::api::coordination::v1::Lease;
    let client = client().await;
    let ns = namespace(&client, "alerts-leader").await;
    let sim = simulator().await;
    create_secret(&client, &ns).await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let elected = |name: &str| {
        Operator::start_with_env(
            &ns,
            &sim,
            &["--leader-election", "--lease-namespace", &ns, "--lease-duration-seconds", "15"],
            &[("POD_NAME", name)],
        )
    };
    let holder =
        || async { leases.get_opt("cloudsync-operator").await.ok().flatten().and_then(|l| l.spec?.holder_identity) };
    let mut a = elected("op-a");
    let deadline = Instant::now() + Duration::from_secs(30);
    while holder().await.as_deref() != Some("op-a") {
        assert!(Instant::now() < deadline, "op-a never led");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b = elected("op-b");
    let (a_url, b_url) = (a.metrics_url().await, b.metrics_url().await);
    apply(&api, &profile("contoso", json!({}))).await;
    wait_for(&api, "contoso", Duration::from_secs(60), "Ready", is_ready).await;
    let series = format!(r#"cloudsync_profile_ready{{namespace="{ns}",profile="contoso"}} 1"#);
    scrape_until(&a_url, "the leader's gauges", |t| t.contains(&series)).await;
    let standby = scrape(&b_url).await;
    assert!(!standby.contains("profile="), "the standby reports no profile:\n{standby}");

    a.terminate();
    scrape_until(&b_url, "the new leader's gauges", |t| t.contains(&series)).await;
    drop(b);
}
