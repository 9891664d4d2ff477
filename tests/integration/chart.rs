//! The Helm chart (charts/cloudsync-operator): lint, the values schema, what each value set
//! renders, and every render admitted by the real kube-apiserver in a server-side dry run (in
//! namespaces that enforce the `restricted` Pod Security Standard).

use std::collections::BTreeSet;
use std::process::Command;

use crate::support::chart::*;
use crate::support::kube_env::{client, namespace, repo_root};
use serde_json::{Value, json};

const RELEASE: &str = "cso";
const FULLNAME: &str = "cso-cloudsync-operator";

/// Value sets exercised by lint and by the renders below.
const VALUE_SETS: &[&[&str]] = &[
    &[],
    &["--set", "watchNamespaces={team-a,team-b}"],
    &["--set", "replicaCount=2"],
    &[
        "--set",
        "workloadIdentity.enabled=true",
        "--set",
        "workloadIdentity.clientId=00000000-0000-0000-0000-0000000000aa",
    ],
    &["--set", "logFormat=json", "--set", "labelSelector=shard=a", "--set", "graphUrl=https://graph.example.test"],
    &["--set", "grafanaDashboard.enabled=true", "--set", "grafanaDashboard.annotations.folder=Identity"],
];

/// A fresh namespace that enforces and warns on the `restricted` Pod Security Standard.
async fn restricted_namespace(prefix: &str) -> String {
    let client = client().await;
    let ns = namespace(&client, prefix).await;
    restrict_namespace(&ns);
    ns
}

/// Server dry run of the render; asserts the apiserver had no warning at all (Pod Security
/// included).
fn admitted(manifests: &str) {
    let warnings = server_dry_run(manifests);
    assert!(!warnings.contains("Warning"), "the apiserver warned:\n{warnings}");
}

/// A rule normalized for comparison: (apiGroups, resources, sorted verbs, resourceNames).
type Rule = (Vec<String>, Vec<String>, Vec<String>, Vec<String>);

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

fn rules(role: &Value) -> BTreeSet<Rule> {
    role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            let mut verbs = strings(&r["verbs"]);
            verbs.sort();
            (strings(&r["apiGroups"]), strings(&r["resources"]), verbs, strings(&r["resourceNames"]))
        })
        .collect()
}

fn rule(group: &str, resource: &str, verbs: &[&str], names: &[&str]) -> Rule {
    let mut verbs: Vec<String> = verbs.iter().map(|s| s.to_string()).collect();
    verbs.sort();
    (vec![group.into()], vec![resource.into()], verbs, names.iter().map(|s| s.to_string()).collect())
}

/// Exactly what the operator needs where it watches profiles.
fn watch_rules() -> BTreeSet<Rule> {
    [
        rule("cloudsync.io", "cloudsyncprofiles", &["get", "list", "watch", "patch", "update"], &[]),
        rule("cloudsync.io", "cloudsyncprofiles/status", &["get", "patch", "update"], &[]),
        rule("cloudsync.io", "cloudsyncprofiles/finalizers", &["update"], &[]),
        rule("cloudsync.io", "provisionrequests", &["get", "list", "watch", "delete"], &[]),
        rule("cloudsync.io", "provisionrequests/status", &["get", "patch", "update"], &[]),
        rule("", "secrets", &["get", "list", "watch"], &[]),
        rule("events.k8s.io", "events", &["create", "patch"], &[]),
    ]
    .into()
}

/// The cluster-wide role: the watch rules and the read of the kube-system namespace's uid (the
/// cluster id in the owner tags), limited to that one namespace.
fn cluster_rules() -> BTreeSet<Rule> {
    let mut r = watch_rules();
    r.insert(rule("", "namespaces", &["get"], &["kube-system"]));
    r
}

fn lease_rules(lease: &str) -> BTreeSet<Rule> {
    [
        rule("coordination.k8s.io", "leases", &["create"], &[]),
        rule("coordination.k8s.io", "leases", &["get", "patch", "list", "watch"], &[lease]),
    ]
    .into()
}

/// No wildcard anywhere in any rule, no non-resource URL, no CRD access, no write to Secrets.
fn assert_rbac_tight(objs: &[Value]) {
    for role in objs.iter().filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole") {
        let name = &role["metadata"]["name"];
        for r in role["rules"].as_array().expect("rules") {
            for field in ["apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"] {
                assert!(!strings(&r[field]).iter().any(|s| s.contains('*')), "wildcard in {field} of {name}: {r}");
            }
            assert!(r.get("nonResourceURLs").is_none(), "nonResourceURLs in {name}");
            assert!(!strings(&r["resources"]).iter().any(|s| s == "customresourcedefinitions"), "CRD access in {name}");
            if strings(&r["resources"]).contains(&"secrets".to_string()) {
                assert_eq!(strings(&r["verbs"]), ["get", "list", "watch"], "Secrets are read-only in {name}");
            }
        }
        assert!(role.get("aggregationRule").is_none(), "no aggregation in {name}");
    }
}

fn assert_binds_to_service_account(binding: &Value, role_kind: &str, role_name: &str, release_ns: &str) {
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name})
    );
    assert_eq!(binding["subjects"], json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": release_ns}]));
}

/// The hardened pod the chart renders by default.
fn assert_hardened(deployment: &Value) {
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
               "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(pod["automountServiceAccountToken"], json!(true));
    assert_eq!(pod["serviceAccountName"], json!(FULLNAME));
    let c = container(deployment);
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], json!(true));
    assert_eq!(sc["allowPrivilegeEscalation"], json!(false));
    assert_eq!(sc["privileged"], json!(false));
    assert_eq!(sc["capabilities"], json!({"drop": ["ALL"]}));
    assert_eq!(c["args"], json!(["run"]));
    assert_eq!(c["ports"], json!([{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]));
    assert_eq!(c["livenessProbe"]["httpGet"], json!({"path": "/healthz", "port": "metrics"}));
    assert_eq!(c["readinessProbe"]["httpGet"], json!({"path": "/readyz", "port": "metrics"}));
    for kind in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(c["resources"][kind][r].is_string(), "resources.{kind}.{r} set: {}", c["resources"]);
        }
    }
    assert_eq!(env_value(deployment, "CLOUDSYNC_METRICS_ADDR").as_deref(), Some("0.0.0.0:8080"));
    let from = |name: &str| {
        container(deployment)["env"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["name"] == name))
            .map(|e| e["valueFrom"]["fieldRef"]["fieldPath"].clone())
    };
    assert_eq!(from("POD_NAME"), Some(json!("metadata.name")));
    assert_eq!(from("POD_NAMESPACE"), Some(json!("metadata.namespace")));
}

#[test]
fn helm_lint_strict_is_clean_for_every_value_set() {
    let chart = chart_dir();
    for set in VALUE_SETS {
        let mut args = vec!["lint", "--strict", chart.to_str().unwrap()];
        args.extend_from_slice(set);
        let out = helm(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "helm lint {set:?}:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("1 chart(s) linted, 0 chart(s) failed"), "{stdout}");
        assert!(!stdout.contains("[WARNING]") && !stdout.contains("[ERROR]"), "{set:?}:\n{stdout}");
    }
}

#[test]
fn the_chart_ships_the_generated_crds_byte_for_byte() {
    let mut generated: Vec<_> =
        std::fs::read_dir(repo_root().join("crds")).unwrap().map(|e| e.unwrap().file_name()).collect();
    let mut shipped: Vec<_> =
        std::fs::read_dir(chart_dir().join("crds")).unwrap().map(|e| e.unwrap().file_name()).collect();
    generated.sort();
    shipped.sort();
    assert_eq!(generated, shipped, "the chart ships exactly the CRDs of crds/");
    assert_eq!(generated.len(), 2, "CloudSyncProfile and ProvisionRequest: {generated:?}");
    for file in generated {
        let a = std::fs::read(repo_root().join("crds").join(&file)).unwrap();
        let b = std::fs::read(chart_dir().join("crds").join(&file)).unwrap();
        assert!(a == b, "{CHART}/crds/{file:?} differs from crds/; run: make crd");
    }
}

#[test]
fn chart_metadata_and_default_image() {
    let chart: Value = serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap()).unwrap();
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "cloudsync-operator");
    assert_eq!(chart["appVersion"], "0.1.0");
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"), "appVersion follows the crate");
    assert_eq!(chart["kubeVersion"], ">=1.29.0-0");

    let objs = render(RELEASE, "ops", &[]);
    let d = one(&objs, "Deployment");
    assert_eq!(container(d)["image"], "cloudsync-operator:0.1.0", "tag defaults to appVersion");
    assert_eq!(container(d)["imagePullPolicy"], "IfNotPresent");
    let objs = render(RELEASE, "ops", &["--set", "image.repository=registry.example/cso", "--set", "image.tag=1.2.3"]);
    assert_eq!(container(one(&objs, "Deployment"))["image"], "registry.example/cso:1.2.3");
    let digest = format!("sha256:{}", "ab".repeat(32));
    let objs = render(RELEASE, "ops", &["--set", &format!("image.digest={digest}")]);
    assert_eq!(container(one(&objs, "Deployment"))["image"], json!(format!("cloudsync-operator@{digest}")));

    // An old cluster is refused by kubeVersion.
    let err = template(RELEASE, "ops", &["--kube-version", "1.28.0"]).unwrap_err();
    assert!(err.contains("kubeVersion") || err.contains("1.29"), "{err}");
}

#[tokio::test]
async fn default_render_is_hardened_cluster_wide_and_admitted() {
    let ns = restricted_namespace("chart-default").await;
    let text = template(RELEASE, &ns, &[]).unwrap();
    admitted(&text);
    let objs = parse(&text);
    let cluster_name = format!("{FULLNAME}-{ns}");
    assert_eq!(
        kinds(&objs),
        [
            format!("ClusterRole {cluster_name}"),
            format!("ClusterRoleBinding {cluster_name}"),
            format!("Deployment {ns}/{FULLNAME}"),
            format!("Service {ns}/{FULLNAME}-metrics"),
            format!("ServiceAccount {ns}/{FULLNAME}"),
        ],
        "no Role, no PDB, no lease RBAC, no ServiceMonitor by default"
    );
    let d = one(&objs, "Deployment");
    assert_hardened(d);
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}), "never two unelected pods, even in a rollout");
    let sa = one(&objs, "ServiceAccount");
    assert_eq!(sa["automountServiceAccountToken"], json!(true));
    assert!(sa["metadata"]["annotations"].is_null(), "no workload identity by default");

    assert_rbac_tight(&objs);
    assert_eq!(rules(one(&objs, "ClusterRole")), cluster_rules());
    assert_binds_to_service_account(one(&objs, "ClusterRoleBinding"), "ClusterRole", &cluster_name, &ns);

    let env = env(d);
    let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
    for absent in [
        "CLOUDSYNC_NAMESPACES",
        "CLOUDSYNC_GRAPH_URL",
        "CLOUDSYNC_LOGIN_URL",
        "CLOUDSYNC_LABEL_SELECTOR",
        "CLOUDSYNC_LEASE_NAME",
        "CLOUDSYNC_CLUSTER_ID",
    ] {
        assert!(!names.contains(&absent), "{absent} unset by default: {names:?}");
    }
    for (name, value) in [
        ("CLOUDSYNC_RESYNC_SECONDS", "300"),
        ("CLOUDSYNC_USER_ACTION_RETRY_SECONDS", "600"),
        ("CLOUDSYNC_CONCURRENCY", "64"),
        ("CLOUDSYNC_TENANT_CONCURRENCY", "2"),
        ("CLOUDSYNC_GRAPH_TIMEOUT_SECONDS", "30"),
        ("CLOUDSYNC_ALLOW_WORKLOAD_IDENTITY", "false"),
        ("CLOUDSYNC_LOG_FORMAT", "text"),
        ("CLOUDSYNC_LOG_LEVEL", "info"),
        ("CLOUDSYNC_LEADER_ELECTION", "false"),
    ] {
        assert_eq!(env_value(d, name).as_deref(), Some(value), "{name}");
    }

    let svc = one(&objs, "Service");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}])
    );
    assert_eq!(svc["spec"]["selector"], d["spec"]["selector"]["matchLabels"]);
    assert_eq!(
        d["spec"]["selector"]["matchLabels"],
        json!({"app.kubernetes.io/name": "cloudsync-operator", "app.kubernetes.io/instance": RELEASE})
    );
    for o in &objs {
        let kind = o["kind"].as_str().unwrap();
        if !kind.starts_with("Cluster") {
            assert_eq!(o["metadata"]["namespace"], json!(ns), "{kind} in the release namespace");
        }
        assert_eq!(o["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm");
    }
}

#[tokio::test]
async fn watch_namespaces_get_a_role_in_each_and_no_cluster_role() {
    let release_ns = restricted_namespace("chart-ns-rel").await;
    let client = client().await;
    let a = namespace(&client, "chart-ns-a").await;
    let b = namespace(&client, "chart-ns-b").await;
    let text = template(RELEASE, &release_ns, &["--set", &format!("watchNamespaces={{{a},{b}}}")]).unwrap();
    admitted(&text);
    let objs = parse(&text);
    assert!(
        of_kind(&objs, "ClusterRole").is_empty() && of_kind(&objs, "ClusterRoleBinding").is_empty(),
        "{:?}",
        kinds(&objs)
    );
    assert_rbac_tight(&objs);
    let roles = of_kind(&objs, "Role");
    let bindings = of_kind(&objs, "RoleBinding");
    assert_eq!(roles.len(), 2, "one Role per watched namespace, no lease Role: {:?}", kinds(&objs));
    assert_eq!(bindings.len(), 2);
    for (ns, role) in [&a, &b].iter().zip(&roles) {
        assert_eq!(role["metadata"]["namespace"], json!(ns));
        assert_eq!(role["metadata"]["name"], FULLNAME);
        assert_eq!(rules(role), watch_rules());
    }
    for (ns, binding) in [&a, &b].iter().zip(&bindings) {
        assert_eq!(binding["metadata"]["namespace"], json!(ns));
        assert_binds_to_service_account(binding, "Role", FULLNAME, &release_ns);
    }
    let d = one(&objs, "Deployment");
    assert_hardened(d);
    assert_eq!(env_value(d, "CLOUDSYNC_NAMESPACES"), Some(format!("{a},{b}")));
}

#[tokio::test]
async fn several_replicas_get_leader_election_and_a_pdb() {
    let ns = restricted_namespace("chart-ha").await;
    let text = template(RELEASE, &ns, &["--set", "replicaCount=2"]).unwrap();
    admitted(&text);
    let objs = parse(&text);
    assert_rbac_tight(&objs);
    let d = one(&objs, "Deployment");
    assert_hardened(d);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    let pdb = one(&objs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert!(pdb["spec"]["minAvailable"].is_null());
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], d["spec"]["selector"]["matchLabels"]);

    // The lease Role: in the release namespace only, limited to the one Lease where RBAC can.
    let role = one(&objs, "Role");
    assert_eq!(role["metadata"]["namespace"], json!(ns));
    assert_eq!(role["metadata"]["name"], format!("{FULLNAME}-leader-election"));
    assert_eq!(rules(role), lease_rules("cloudsync-operator"));
    assert_binds_to_service_account(one(&objs, "RoleBinding"), "Role", &format!("{FULLNAME}-leader-election"), &ns);
    assert_eq!(rules(one(&objs, "ClusterRole")), cluster_rules(), "leases stay out of the ClusterRole");
    for (name, value) in [
        ("CLOUDSYNC_LEADER_ELECTION", "true"),
        ("CLOUDSYNC_LEASE_NAME", "cloudsync-operator"),
        ("CLOUDSYNC_LEASE_NAMESPACE", ns.as_str()),
        ("CLOUDSYNC_LEASE_DURATION_SECONDS", "15"),
    ] {
        assert_eq!(env_value(d, name).as_deref(), Some(value), "{name}");
    }

    // A cluster id given: it reaches the operator, which then reads no namespace.
    let objs = render(RELEASE, &ns, &["--set", "clusterId=prod-eu"]);
    assert_eq!(env_value(one(&objs, "Deployment"), "CLOUDSYNC_CLUSTER_ID").as_deref(), Some("prod-eu"));
    assert_eq!(rules(one(&objs, "ClusterRole")), watch_rules());

    // Leader election asked for with one replica: the lease RBAC, no PDB.
    let objs =
        render(RELEASE, &ns, &["--set", "leaderElection.enabled=true", "--set", "leaderElection.leaseName=my-lease"]);
    assert!(of_kind(&objs, "PodDisruptionBudget").is_empty(), "no PDB with one replica");
    assert_eq!(rules(one(&objs, "Role")), lease_rules("my-lease"));
    assert_eq!(env_value(one(&objs, "Deployment"), "CLOUDSYNC_LEASE_NAME").as_deref(), Some("my-lease"));

    // Leader election cannot be turned off with two replicas; the PDB can.
    let objs = render(
        RELEASE,
        &ns,
        &[
            "--set",
            "replicaCount=2",
            "--set",
            "leaderElection.enabled=false",
            "--set",
            "podDisruptionBudget.enabled=false",
        ],
    );
    assert!(of_kind(&objs, "PodDisruptionBudget").is_empty());
    assert_eq!(env_value(one(&objs, "Deployment"), "CLOUDSYNC_LEADER_ELECTION").as_deref(), Some("true"));
    assert_eq!(of_kind(&objs, "Role").len(), 1);
}

#[tokio::test]
async fn workload_identity_annotates_the_service_account_and_labels_the_pod() {
    let ns = restricted_namespace("chart-wi").await;
    let client_id = "00000000-0000-0000-0000-0000000000aa";
    let tenant_id = "11111111-2222-3333-4444-555555555555";
    let text = template(
        RELEASE,
        &ns,
        &[
            "--set",
            "workloadIdentity.enabled=true",
            "--set",
            &format!("workloadIdentity.clientId={client_id}"),
            "--set",
            &format!("workloadIdentity.tenantId={tenant_id}"),
        ],
    )
    .unwrap();
    admitted(&text);
    let objs = parse(&text);
    let sa = one(&objs, "ServiceAccount");
    assert_eq!(
        sa["metadata"]["annotations"],
        json!({"azure.workload.identity/client-id": client_id, "azure.workload.identity/tenant-id": tenant_id})
    );
    let d = one(&objs, "Deployment");
    assert_hardened(d);
    assert_eq!(d["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"], "true");
    assert!(
        d["spec"]["selector"]["matchLabels"]["azure.workload.identity/use"].is_null(),
        "not in the immutable selector"
    );
    assert_eq!(env_value(d, "CLOUDSYNC_ALLOW_WORKLOAD_IDENTITY").as_deref(), Some("true"));

    let objs = render(
        RELEASE,
        &ns,
        &["--set", "workloadIdentity.enabled=true", "--set", &format!("workloadIdentity.clientId={client_id}")],
    );
    assert_eq!(
        one(&objs, "ServiceAccount")["metadata"]["annotations"],
        json!({"azure.workload.identity/client-id": client_id})
    );
    let objs = render(RELEASE, &ns, &[]);
    assert!(
        one(&objs, "Deployment")["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"].is_null()
    );
}

#[tokio::test]
async fn service_monitor_needs_the_api_and_scrapes_the_metrics_service() {
    let ns = restricted_namespace("chart-smon").await;
    let err = template(RELEASE, &ns, &["--set", "serviceMonitor.enabled=true"]).unwrap_err();
    assert!(err.contains("monitoring.coreos.com/v1") && err.contains("serviceMonitor.enabled"), "{err}");

    let args = [
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "serviceMonitor.labels.release=prometheus",
        "--set",
        "serviceMonitor.scrapeTimeout=10s",
        "--api-versions",
        "monitoring.coreos.com/v1",
    ];
    let text = template(RELEASE, &ns, &args).unwrap();
    ensure_service_monitor_crd().await;
    admitted(&text);
    let objs = parse(&text);
    let sm = one(&objs, "ServiceMonitor");
    let svc = one(&objs, "Service");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["metadata"]["namespace"], json!(ns));
    assert_eq!(sm["metadata"]["labels"]["release"], "prometheus");
    let selector = sm["spec"]["selector"]["matchLabels"].as_object().unwrap();
    for (k, v) in selector {
        assert_eq!(&svc["metadata"]["labels"][k], v, "the ServiceMonitor selects the metrics Service by {k}");
    }
    assert_eq!(sm["spec"]["namespaceSelector"], json!({"matchNames": [ns]}));
    assert_eq!(
        sm["spec"]["endpoints"],
        json!([{"port": svc["spec"]["ports"][0]["name"], "path": "/metrics", "interval": "30s", "honorLabels": true, "scrapeTimeout": "10s"}])
    );
}

#[test]
fn the_values_schema_rejects_wrong_values_naming_the_field() {
    let cases: &[(&[&str], &str)] = &[
        (&["--set-string", "replicaCount=two"], "/replicaCount"),
        (&["--set", "replicaCount=-1"], "/replicaCount"),
        (&["--set", "logFormat=xml"], "/logFormat"),
        (&["--set", "bogus=1"], "'bogus' not allowed"),
        (&["--set", "image.bogus=1"], "'bogus' not allowed"),
        (&["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (&["--set", "concurrency=0"], "/concurrency"),
        (&["--set", "concurrency=70000"], "/concurrency"),
        (&["--set-string", "resyncSeconds=fast"], "/resyncSeconds"),
        (&["--set", "tenantConcurrency=0"], "/tenantConcurrency"),
        (&["--set", "graphTimeoutSeconds=0"], "/graphTimeoutSeconds"),
        (&["--set", "graphUrl=graph.example"], "/graphUrl"),
        (&["--set", "loginUrl=ftp://login.example"], "/loginUrl"),
        (&["--set", "watchNamespaces={Team_A}"], "/watchNamespaces/0"),
        (&["--set", "watchNamespaces={a,a}"], "/watchNamespaces"),
        (&["--set", "watchNamespaces=a"], "/watchNamespaces"),
        (&["--set", "workloadIdentity.enabled=true"], "/workloadIdentity/clientId"),
        (&["--set-string", "workloadIdentity.enabled=yes"], "/workloadIdentity/enabled"),
        (&["--set", "leaderElection.leaseDurationSeconds=1"], "/leaderElection/leaseDurationSeconds"),
        (&["--set", "leaderElection.leaseName=Bad_Name"], "/leaderElection/leaseName"),
        (&["--set", "metrics.port=0"], "/metrics/port"),
        (&["--set", "serviceMonitor.interval=30"], "/serviceMonitor/interval"),
        (&["--set", "extraEnv[0].value=x"], "/extraEnv/0"),
        (&["--set", "extraEnv[0].name=N", "--set", "extraEnv[0].value=3"], "/extraEnv/0/value"),
        (&["--set", "resources.limits.memory=lots"], "/resources/limits/memory"),
        (&["--set", "clusterId=prod/eu"], "/clusterId"),
    ];
    for (args, field) in cases {
        let err = template(RELEASE, "ops", args).expect_err(&format!("{args:?} must be rejected"));
        assert!(
            err.contains("values don't meet the specifications of the schema"),
            "{args:?}: not a schema error: {err}"
        );
        assert!(err.contains(field), "{args:?}: the error names {field}:\n{err}");
    }
}

#[test]
fn values_reach_the_operator_environment() {
    let objs = render(
        RELEASE,
        "ops",
        &[
            "--set",
            "graphUrl=https://graph.example.test",
            "--set",
            "loginUrl=https://login.example.test",
            "--set",
            "resyncSeconds=1200",
            "--set",
            "userActionRetrySeconds=90",
            "--set",
            "concurrency=16",
            "--set",
            "tenantConcurrency=4",
            "--set",
            "graphTimeoutSeconds=10",
            "--set",
            "logLevel=cloudsync_operator=debug\\,info",
            "--set",
            "logFormat=json",
            "--set",
            "labelSelector=shard=a",
            "--set",
            "metrics.port=9090",
            "--set",
            "extraEnv[0].name=CLOUDSYNC_CONCURRENCY",
            "--set-string",
            "extraEnv[0].value=3",
            "--set",
            "extraEnv[1].name=HTTPS_PROXY",
            "--set",
            "extraEnv[1].value=http://proxy:3128",
        ],
    );
    let d = one(&objs, "Deployment");
    for (name, value) in [
        ("CLOUDSYNC_GRAPH_URL", "https://graph.example.test"),
        ("CLOUDSYNC_LOGIN_URL", "https://login.example.test"),
        ("CLOUDSYNC_RESYNC_SECONDS", "1200"),
        ("CLOUDSYNC_USER_ACTION_RETRY_SECONDS", "90"),
        ("CLOUDSYNC_TENANT_CONCURRENCY", "4"),
        ("CLOUDSYNC_GRAPH_TIMEOUT_SECONDS", "10"),
        ("CLOUDSYNC_LOG_LEVEL", "cloudsync_operator=debug,info"),
        ("CLOUDSYNC_LOG_FORMAT", "json"),
        ("CLOUDSYNC_LABEL_SELECTOR", "shard=a"),
        ("CLOUDSYNC_METRICS_ADDR", "0.0.0.0:9090"),
        ("CLOUDSYNC_CONCURRENCY", "3"),
        ("HTTPS_PROXY", "http://proxy:3128"),
    ] {
        assert_eq!(env_value(d, name).as_deref(), Some(value), "{name}");
    }
    let env = env(d);
    assert_eq!(env.last().map(|(n, _)| n.as_str()), Some("HTTPS_PROXY"), "extraEnv comes last and wins");
    assert_eq!(container(d)["ports"][0]["containerPort"], 9090);
    assert_eq!(one(&objs, "Service")["spec"]["ports"][0]["targetPort"], "metrics");
    // Large numbers stay integers (Helm reads values as floats).
    let objs = render(RELEASE, "ops", &["--set", "resyncSeconds=86400000"]);
    assert_eq!(env_value(one(&objs, "Deployment"), "CLOUDSYNC_RESYNC_SECONDS").as_deref(), Some("86400000"));
}

#[test]
fn every_environment_variable_the_chart_sets_is_one_the_binary_reads() {
    let help = Command::new(env!("CARGO_BIN_EXE_cloudsync-operator")).args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let mut seen = BTreeSet::new();
    for set in VALUE_SETS.iter().chain([&["--set", "replicaCount=2", "--set", "loginUrl=https://l.example"][..]].iter())
    {
        for (name, _) in env(one(&render(RELEASE, "ops", set), "Deployment")) {
            if name.starts_with("CLOUDSYNC_") {
                assert!(help.contains(&format!("[env: {name}=")), "the binary does not read {name}:\n{help}");
                seen.insert(name);
            }
        }
    }
    assert!(seen.len() >= 17, "{seen:?}");
}

#[test]
fn notes_tell_the_next_steps() {
    let chart = chart_dir();
    let out = helm(&["install", RELEASE, chart.to_str().unwrap(), "--namespace", "ops", "--dry-run=client"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let notes = text.split("NOTES:").nth(1).expect("NOTES in the output");
    for needle in [
        "create secret generic graph-credentials",
        "clientId=",
        "clientSecret=",
        "kind: CloudSyncProfile",
        "kubectl get csp -A -w",
    ] {
        assert!(notes.contains(needle), "NOTES mention {needle}:\n{notes}");
    }
    let out = helm(&[
        "install",
        RELEASE,
        chart.to_str().unwrap(),
        "--namespace",
        "ops",
        "--dry-run=client",
        "--set",
        "watchNamespaces={identity-a}",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("kubectl -n identity-a create secret"), "{text}");
}
