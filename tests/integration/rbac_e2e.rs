//! The chart's RBAC is enough, and no more: `helm install` on the test control plane (the
//! Deployment is stored; no kubelet runs it), then the operator binary runs locally exactly as the
//! Deployment configures it (its args and environment), authenticated as the chart's
//! ServiceAccount with a TokenRequest token, against the Graph simulator. A profile converges to
//! Ready and is deleted with cleanup, in both RBAC shapes; `kubectl auth can-i` with the same token
//! says no to what the operator must not do.

use std::path::Path;
use std::time::Duration;

use crate::support::chart::*;
use crate::support::kube_env::{client, namespace};
use crate::support::operator::*;
use cloudsync_operator::api::CloudSyncProfile;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(60);
const POD: &str = "cloudsync-operator-7d9f8c6b5-x2x4q";

fn release_name() -> String {
    format!("cso{:06x}", rand::random::<u32>() & 0xff_ffff)
}

fn labelled(mut manifest: Value, labels: Value) -> Value {
    manifest["metadata"]["labels"] = labels;
    manifest
}

/// The installed Deployment, as the apiserver stores it.
async fn deployment(client: &kube::Client, release: &Release) -> Deployment {
    let name = format!("{}-cloudsync-operator", release.name);
    Api::<Deployment>::namespaced(client.clone(), &release.namespace).get(&name).await.expect("the chart's Deployment")
}

/// Waits for Ready with the operator's log in the panic message when it does not come.
async fn ready(op: &mut PodProcess, api: &Api<CloudSyncProfile>, name: &str) -> CloudSyncProfile {
    let deadline = std::time::Instant::now() + CONVERGE;
    loop {
        op.assert_running();
        if let Some(p) = api.get_opt(name).await.expect("get profile")
            && is_ready(&p)
        {
            return p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} not Ready in {CONVERGE:?}; status: {:?}\noperator log:\n{}",
            api.get_opt(name).await.ok().flatten().and_then(|p| p.status),
            op.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The Deployment's probe paths and the metrics path answer 200 on the metrics port.
async fn probes_answer(op: &mut PodProcess, d: &Deployment) {
    let c = &d.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref().and_then(|p| p.http_get.as_ref()).and_then(|h| h.path.clone()).expect("an httpGet probe")
    };
    for p in [path(&c.liveness_probe), path(&c.readiness_probe), "/metrics".to_string()] {
        // Readiness turns 200 once the watches run; give it the kubelet's patience.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = op.get(&p).await;
            if status == 200 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "GET {p}: {status} {body}\n{}", op.logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Deleting the profile runs the Graph cleanup and drops the finalizer, with the chart's RBAC.
async fn delete_and_wait(api: &Api<CloudSyncProfile>, name: &str, op: &mut PodProcess) {
    api.delete(name, &DeleteParams::default()).await.expect("delete profile");
    let deadline = std::time::Instant::now() + CONVERGE;
    while api.get_opt(name).await.expect("get profile").is_some() {
        op.assert_running();
        assert!(std::time::Instant::now() < deadline, "{name} not deleted:\n{}", op.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn events_by_operator(client: &kube::Client, ns: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("cloudsync-operator"))
        .collect()
}

fn assert_no_forbidden(op: &PodProcess) {
    let logs = op.logs();
    assert!(!logs.contains("forbidden") && !logs.contains("Forbidden"), "the operator was denied something:\n{logs}");
}

fn denied(kubeconfig: &Path, checks: &[&[&str]]) {
    for args in checks {
        assert!(!can_i(kubeconfig, args), "the ServiceAccount must not: {args:?}");
    }
}

fn allowed(kubeconfig: &Path, checks: &[&[&str]]) {
    for args in checks {
        assert!(can_i(kubeconfig, args), "the ServiceAccount may: {args:?}");
    }
}

#[tokio::test]
async fn cluster_wide_install_converges_with_only_the_chart_rbac() {
    let client = client().await;
    let release_ns = namespace(&client, "helm-all").await;
    let profiles_ns = namespace(&client, "helm-all-p").await;
    let other_ns = namespace(&client, "helm-all-o").await;
    let sim = simulator().await;
    let name = release_name();
    // Watching all namespaces of a shared control plane: a label selector (a chart value) keeps
    // this operator to its own profile.
    let shard = format!("cloudsync.io/test-shard={name}");
    let release = Release::install(
        &name,
        &release_ns,
        &[
            "--set",
            &format!("graphUrl={}", sim.url()),
            "--set",
            &format!("loginUrl={}", sim.url()),
            "--set",
            &format!("labelSelector={shard}"),
            "--set",
            "leaderElection.enabled=true",
        ],
    );
    let kinds = kinds(&release.manifest());
    assert!(kinds.iter().any(|k| k.starts_with("ClusterRole ")), "{kinds:?}");
    assert!(kinds.iter().any(|k| k.starts_with("Role ") && k.contains("leader-election")), "{kinds:?}");

    let sa = format!("{name}-cloudsync-operator");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = service_account_kubeconfig(&sa, &release_ns, dir.path());

    let d = deployment(&client, &release).await;
    let mut op = PodProcess::start(&d, POD, &kubeconfig);
    probes_answer(&mut op, &d).await;

    create_secret(&client, &profiles_ns).await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &profiles_ns);
    let (key, value) = shard.split_once('=').unwrap();
    apply(&api, &labelled(profile("contoso", json!({})), json!({key: value}))).await;
    ready(&mut op, &api, "contoso").await;
    assert_eq!(sim.counters().instantiates, 1);
    // The owner tag names the cluster by the kube-system namespace's uid, which the ClusterRole
    // lets it read (and no other namespace).
    let uid = Api::<Namespace>::all(client.clone()).get("kube-system").await.unwrap().metadata.uid.unwrap();
    let tag = format!("cloudsync.io/owner=cloudsync-operator:{uid}/{profiles_ns}/contoso");
    assert!(sim.state(TENANT).unwrap().to_string().contains(&tag), "{tag} on the service principal");

    // It led through the Lease the chart's Role allows, named as the chart configures it.
    let lease = Api::<Lease>::namespaced(client.clone(), &release_ns).get("cloudsync-operator").await.expect("lease");
    assert_eq!(lease.spec.and_then(|s| s.holder_identity).as_deref(), Some(POD));
    // It posted events.k8s.io Events in the profile's namespace.
    let events = events_by_operator(&client, &profiles_ns).await;
    assert!(events.iter().any(|e| e.reason.as_deref() == Some("ServicePrincipalCreated")), "{events:?}");

    let ns = profiles_ns.as_str();
    allowed(
        &kubeconfig,
        &[
            &["list", "cloudsyncprofiles.cloudsync.io", "--all-namespaces"],
            &["patch", "cloudsyncprofiles.cloudsync.io/status", "-n", ns],
            &["get", "secrets", "-n", &other_ns],
            &["create", "events.events.k8s.io", "-n", ns],
            &["patch", "leases.coordination.k8s.io/cloudsync-operator", "-n", &release_ns],
            &["get", "namespaces/kube-system"],
        ],
    );
    denied(
        &kubeconfig,
        &[
            &["create", "secrets", "-n", ns],
            &["update", "secrets", "-n", ns],
            &["delete", "secrets", "-n", ns],
            &["create", "cloudsyncprofiles.cloudsync.io", "-n", ns],
            &["delete", "cloudsyncprofiles.cloudsync.io", "-n", ns],
            &["update", "customresourcedefinitions.apiextensions.k8s.io"],
            &["create", "events", "-n", ns], // core/v1 Events: the operator posts events.k8s.io ones
            &["delete", "events.events.k8s.io", "-n", ns],
            &["patch", "leases.coordination.k8s.io/another-lease", "-n", &release_ns],
            &["create", "leases.coordination.k8s.io", "-n", ns],
            &["list", "pods", "-n", &release_ns],
            &["get", "namespaces/default"],
            &["list", "namespaces"],
            &["*", "*"],
        ],
    );

    delete_and_wait(&api, "contoso", &mut op).await;
    assert_no_forbidden(&op);
}

#[tokio::test]
async fn namespaced_install_converges_with_roles_only() {
    let client = client().await;
    let release_ns = namespace(&client, "helm-ns").await;
    let a = namespace(&client, "helm-ns-a").await;
    let b = namespace(&client, "helm-ns-b").await;
    let other = namespace(&client, "helm-ns-o").await;
    let sim = simulator().await;
    let name = release_name();
    let release = Release::install(
        &name,
        &release_ns,
        &[
            "--set",
            &format!("graphUrl={}", sim.url()),
            "--set",
            &format!("loginUrl={}", sim.url()),
            "--set",
            &format!("watchNamespaces={{{a},{b}}}"),
        ],
    );
    let kinds = kinds(&release.manifest());
    assert!(!kinds.iter().any(|k| k.starts_with("Cluster")), "no cluster-wide RBAC: {kinds:?}");
    let roles: Vec<&String> = kinds.iter().filter(|k| k.starts_with("Role ")).collect();
    assert_eq!(
        roles,
        [&format!("Role {a}/{name}-cloudsync-operator"), &format!("Role {b}/{name}-cloudsync-operator")],
        "a Role per watched namespace and no lease Role"
    );

    let sa = format!("{name}-cloudsync-operator");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = service_account_kubeconfig(&sa, &release_ns, dir.path());

    let d = deployment(&client, &release).await;
    let mut op = PodProcess::start(&d, POD, &kubeconfig);
    probes_answer(&mut op, &d).await;

    let api_a: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &a);
    let api_b: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &b);
    create_secret(&client, &a).await;
    create_secret(&client, &b).await;
    apply(&api_a, &profile("contoso", json!({}))).await;
    apply(&api_b, &profile("fabrikam", json!({"domain": "fabrikam.com"}))).await;
    ready(&mut op, &api_a, "contoso").await;
    ready(&mut op, &api_b, "fabrikam").await;
    assert_eq!(sim.counters().instantiates, 2);
    assert!(!events_by_operator(&client, &a).await.is_empty(), "events in {a}");
    // No ClusterRole, so no kube-system uid: the owner tag names the cluster "default".
    let tag = format!("cloudsync.io/owner=cloudsync-operator:default/{a}/contoso");
    assert!(sim.state(TENANT).unwrap().to_string().contains(&tag), "{tag} on the service principal");

    // A profile outside the watched namespaces is not looked at.
    create_secret(&client, &other).await;
    let api_other: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &other);
    apply(&api_other, &profile("ignored", json!({}))).await;

    allowed(
        &kubeconfig,
        &[
            &["get", "secrets", "-n", &a],
            &["watch", "secrets", "-n", &b],
            &["patch", "cloudsyncprofiles.cloudsync.io", "-n", &b],
            &["create", "events.events.k8s.io", "-n", &a],
        ],
    );
    denied(
        &kubeconfig,
        &[
            &["get", "secrets", "-n", &other],
            &["list", "secrets", "--all-namespaces"],
            &["get", "secrets", "-n", &release_ns],
            &["list", "cloudsyncprofiles.cloudsync.io", "--all-namespaces"],
            &["list", "cloudsyncprofiles.cloudsync.io", "-n", &other],
            &["create", "secrets", "-n", &a],
            &["delete", "cloudsyncprofiles.cloudsync.io", "-n", &a],
            &["create", "cloudsyncprofiles.cloudsync.io", "-n", &a],
            &["create", "events.events.k8s.io", "-n", &other],
            &["get", "leases.coordination.k8s.io", "-n", &release_ns],
            &["create", "leases.coordination.k8s.io", "-n", &release_ns],
            &["*", "*", "-n", &a],
        ],
    );

    delete_and_wait(&api_a, "contoso", &mut op).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ignored = api_other.get("ignored").await.unwrap();
    assert!(ignored.status.is_none() && ignored.metadata.finalizers.is_none(), "{ignored:?}");
    assert_no_forbidden(&op);
}
