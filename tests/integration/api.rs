//! The CloudSyncProfile API on a real kube-apiserver: the generated CRD, admission-time validation,
//! the status subresource, and what kubectl shows.

use std::time::Duration;

use crate::support::kube_env::{client, kubectl, namespace};
use cloudsync_operator::api::{CloudSyncProfile, CloudSyncProfileStatus};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams, ValidationDirective};
use serde_json::{Value, json};

fn full_profile(name: &str) -> Value {
    json!({
        "apiVersion": "cloudsync.io/v1alpha1",
        "kind": "CloudSyncProfile",
        "metadata": {"name": name},
        "spec": {
            "tenantId": "11111111-2222-3333-4444-555555555555",
            "cloud": "USGov",
            "credentials": {"secretRef": {"name": "graph-credentials"}},
            "domain": "contoso.com",
            "displayName": "Contoso cloud sync",
            "tenantSyncFlag": true,
            "passwordHashSync": true,
            "suspend": false,
            "restart": {"requestId": "2026-11-26-a", "resetScope": "Full"},
            "deletionPolicy": "Orphan"
        }
    })
}

fn minimal_profile(name: &str) -> Value {
    json!({
        "apiVersion": "cloudsync.io/v1alpha1",
        "kind": "CloudSyncProfile",
        "metadata": {"name": name},
        "spec": {
            "tenantId": "11111111-2222-3333-4444-555555555555",
            "credentials": {"secretRef": {"name": "graph-credentials"}},
            "domain": "contoso.com"
        }
    })
}

/// Server-side apply with strict field validation, as `kubectl apply --server-side` does.
async fn apply(api: &Api<CloudSyncProfile>, name: &str, manifest: &Value) -> Result<CloudSyncProfile, kube::Error> {
    let params = PatchParams::apply("cloudsync-tests").validation(ValidationDirective::Strict);
    api.patch(name, &params, &Patch::Apply(manifest)).await
}

fn api_message(err: kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.message,
        other => panic!("expected an apiserver rejection, got {other}"),
    }
}

#[tokio::test]
async fn crd_is_established_with_names_and_columns() {
    let client = client().await;
    let crd = Api::<CustomResourceDefinition>::all(client).get("cloudsyncprofiles.cloudsync.io").await.unwrap();
    let status = crd.status.expect("CRD status");
    let conditions = status.conditions.unwrap_or_default();
    for t in ["Established", "NamesAccepted"] {
        assert!(conditions.iter().any(|c| c.type_ == t && c.status == "True"), "{t} not True: {conditions:?}");
    }
    let names = status.accepted_names.expect("accepted names");
    assert_eq!(names.short_names.as_deref(), Some(&["csp".to_string()][..]));
    assert_eq!(names.categories.as_deref(), Some(&["cloudsync".to_string()][..]));
    let version = &crd.spec.versions[0];
    let columns: Vec<&str> =
        version.additional_printer_columns.as_ref().unwrap().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(columns, ["Ready", "Reason", "Domain", "Provisioning", "PasswordHash", "Age", "Message"]);
    assert!(version.subresources.as_ref().unwrap().status.is_some(), "status subresource");
}

#[tokio::test]
async fn valid_profiles_round_trip_unchanged() {
    let client = client().await;
    let ns = namespace(&client, "roundtrip").await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client, &ns);
    for manifest in [full_profile("full"), minimal_profile("minimal"), scoped_profile("scoped")] {
        let name = manifest["metadata"]["name"].as_str().unwrap().to_string();
        apply(&api, &name, &manifest).await.unwrap_or_else(|e| panic!("{name} rejected: {e}"));
        let stored = api.get(&name).await.unwrap();
        assert_eq!(serde_json::to_value(&stored.spec).unwrap(), manifest["spec"], "{name} changed on the way");
        // The raw object too: no defaults or pruning happened on the server.
        let raw: Value = serde_json::to_value(&stored).unwrap();
        assert_eq!(raw["spec"], manifest["spec"]);
    }
}

#[tokio::test]
async fn invalid_manifests_are_rejected_with_a_message_naming_the_field() {
    let client = client().await;
    let ns = namespace(&client, "invalid").await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client, &ns);

    // (what is wrong, JSON pointer into spec, new value (None removes it), field named in the
    // message, text the message must contain)
    let cases: Vec<(&str, &str, Option<Value>, &str, &str)> = vec![
        ("tenantId not a GUID", "/tenantId", Some(json!("contoso")), "spec.tenantId", "must be a GUID"),
        ("tenantId missing", "/tenantId", None, "spec.tenantId", "Required value"),
        ("domain with scheme", "/domain", Some(json!("https://contoso.com")), "spec.domain", "no scheme"),
        ("domain with space", "/domain", Some(json!("contoso .com")), "spec.domain", "no spaces"),
        ("domain single label", "/domain", Some(json!("contoso")), "spec.domain", "at least two labels"),
        ("domain too long", "/domain", Some(json!(format!("{}.com", "a".repeat(250)))), "spec.domain", "253"),
        ("domain empty", "/domain", Some(json!("")), "spec.domain", "at least 1 chars"),
        ("cloud not in enum", "/cloud", Some(json!("Mars")), "spec.cloud", "supported values"),
        (
            "deletionPolicy not in enum",
            "/deletionPolicy",
            Some(json!("Keep")),
            "spec.deletionPolicy",
            "supported values",
        ),
        ("no credential source", "/credentials", Some(json!({})), "spec.credentials", "exactly one of"),
        (
            "two credential sources",
            "/credentials",
            Some(json!({"secretRef": {"name": "a"}, "workloadIdentity": {}})),
            "spec.credentials",
            "exactly one of",
        ),
        (
            "empty Secret name",
            "/credentials/secretRef/name",
            Some(json!("")),
            "spec.credentials.secretRef.name",
            "at least 1",
        ),
        (
            "Secret name with capitals",
            "/credentials/secretRef/name",
            Some(json!("Graph_Creds")),
            "spec.credentials.secretRef.name",
            "Secret name",
        ),
        (
            "workload identity client id not a GUID",
            "/credentials",
            Some(json!({"workloadIdentity": {"clientId": "abc"}})),
            "spec.credentials.workloadIdentity.clientId",
            "must be a GUID",
        ),
        (
            "resetScope None",
            "/restart",
            Some(json!({"requestId": "a", "resetScope": "None"})),
            "spec.restart.resetScope",
            "must not contain None",
        ),
        (
            "resetScope with ConnectorDataStore",
            "/restart",
            Some(json!({"requestId": "a", "resetScope": "Watermark, ConnectorDataStore"})),
            "spec.restart.resetScope",
            "ConnectorDataStore",
        ),
        (
            "resetScope unknown flag",
            "/restart",
            Some(json!({"requestId": "a", "resetScope": "Everything"})),
            "spec.restart.resetScope",
            "comma-separated list of",
        ),
        (
            "restart without requestId",
            "/restart",
            Some(json!({"resetScope": "Full"})),
            "spec.restart.requestId",
            "Required",
        ),
        ("suspend not a boolean", "/suspend", Some(json!("yes")), "spec.suspend", "expected boolean"),
        ("passwordHashSync a number", "/passwordHashSync", Some(json!(1)), "spec.passwordHashSync", "boolean"),
        (
            "unknown spec field",
            "/syncEverything",
            Some(json!(true)),
            "spec.syncEverything",
            "field not declared in schema",
        ),
        (
            "unknown nested field",
            "/credentials/secretRef/key",
            Some(json!("x")),
            "spec.credentials.secretRef.key",
            "field not declared in schema",
        ),
        ("displayName with trailing space", "/displayName", Some(json!("contoso ")), "spec.displayName", "spaces"),
    ];
    assert!(cases.len() >= 12);

    assert_rejected(&api, "bad", minimal_profile, cases).await;
}

/// (what is wrong, JSON pointer into spec, new value (None removes it), field named in the
/// message, text the message must contain)
type Case<'a> = (&'a str, &'a str, Option<Value>, &'a str, &'a str);

/// Applies `base` with each case's change and checks that the apiserver refuses it with a message
/// naming the field, and that nothing was stored.
async fn assert_rejected(api: &Api<CloudSyncProfile>, prefix: &str, base: fn(&str) -> Value, cases: Vec<Case<'_>>) {
    for (i, (what, pointer, value, field, text)) in cases.into_iter().enumerate() {
        let name = format!("{prefix}-{i}");
        let mut manifest = base(&name);
        let spec = manifest.get_mut("spec").unwrap();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = if parent.is_empty() { spec } else { spec.pointer_mut(parent).unwrap() };
        match value {
            Some(v) => {
                target.as_object_mut().unwrap().insert(key.to_string(), v);
            }
            None => {
                target.as_object_mut().unwrap().remove(key);
            }
        }
        let err = apply(api, &name, &manifest).await.expect_err(&format!("{what}: accepted, should be rejected"));
        let message = api_message(err);
        assert!(message.contains(field), "{what}: message does not name {field}: {message}");
        assert!(message.contains(text), "{what}: message lacks {text:?}: {message}");
    }
    assert!(api.list(&Default::default()).await.unwrap().items.is_empty(), "nothing invalid was stored");
}

/// A profile that sets scope, attribute mappings (one of each source), deletion protection and
/// notifications.
fn scoped_profile(name: &str) -> Value {
    let mut manifest = minimal_profile(name);
    let spec = manifest["spec"].as_object_mut().unwrap();
    spec.insert(
        "scope".into(),
        json!({"organizationalUnits": ["OU=Sales,DC=contoso,DC=com", "OU=Smith\\, J,OU=People,DC=contoso,DC=com"]}),
    );
    spec.insert(
        "attributeMappings".into(),
        json!([
            {"object": "user", "target": "physicalDeliveryOfficeName", "attribute": "l"},
            {"object": "user", "target": "companyName", "constant": "Contoso", "flow": "ObjectAddOnly"},
            {"object": "inetOrgPerson", "target": "displayName", "expression": "Join(\" \", [givenName], [sn])", "flow": "Always"},
            {"object": "group", "target": "description", "attribute": "info"}
        ]),
    );
    spec.insert("accidentalDeletes".into(), json!({"enabled": true, "threshold": 50}));
    spec.insert("notifications".into(), json!({"email": "identity-ops@contoso.com"}));
    manifest
}

#[tokio::test]
async fn scope_mappings_and_deletion_protection_are_checked_at_admission() {
    let client = client().await;
    let ns = namespace(&client, "scoped").await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client, &ns);

    let ous = |n: usize| json!({"organizationalUnits": (0..n).map(|i| format!("OU=Site{i},DC=contoso,DC=com")).collect::<Vec<_>>()});
    let groups = |n: usize| json!({"groups": (0..n).map(|i| format!("CN=Pilot{i},OU=Groups,DC=contoso,DC=com")).collect::<Vec<_>>()});
    let one_of_scope = "set exactly one of organizationalUnits or groups";
    let one_source = "set exactly one of attribute, constant or expression";
    let cases: Vec<Case> = vec![
        (
            "scope with both OUs and groups",
            "/scope",
            Some(
                json!({"organizationalUnits": ["OU=Sales,DC=contoso,DC=com"], "groups": ["CN=Pilot,DC=contoso,DC=com"]}),
            ),
            "spec.scope",
            one_of_scope,
        ),
        ("scope with neither", "/scope", Some(json!({})), "spec.scope", one_of_scope),
        ("no OU", "/scope", Some(ous(0)), "spec.scope.organizationalUnits", "at least 1 items"),
        ("60 OUs", "/scope", Some(ous(60)), "spec.scope.organizationalUnits", "at most 59 items"),
        ("no group", "/scope", Some(groups(0)), "spec.scope.groups", "at least 1 items"),
        ("60 groups", "/scope", Some(groups(60)), "spec.scope.groups", "at most 59 items"),
        (
            "OU not a distinguished name",
            "/scope",
            Some(json!({"organizationalUnits": ["OU=Sales,DC=contoso,DC=com", "Sales"]})),
            "spec.scope.organizationalUnits",
            "must be a distinguished name",
        ),
        (
            "group not a distinguished name",
            "/scope",
            Some(json!({"groups": ["Pilot"]})),
            "spec.scope.groups",
            "must be a distinguished name",
        ),
        (
            "mapping without a source",
            "/attributeMappings",
            Some(json!([{"object": "user", "target": "department"}])),
            "spec.attributeMappings[0]",
            one_source,
        ),
        (
            "mapping with two sources",
            "/attributeMappings",
            Some(
                json!([{"object": "user", "target": "department", "attribute": "department", "expression": "[department]"}]),
            ),
            "spec.attributeMappings[0]",
            one_source,
        ),
        (
            "unknown object type",
            "/attributeMappings",
            Some(json!([{"object": "computer", "target": "department", "attribute": "department"}])),
            "spec.attributeMappings[0].object",
            "supported values",
        ),
        (
            "unknown flow",
            "/attributeMappings",
            Some(json!([{"object": "user", "target": "department", "attribute": "department", "flow": "Sometimes"}])),
            "spec.attributeMappings[0].flow",
            "supported values",
        ),
        (
            "threshold 0",
            "/accidentalDeletes",
            Some(json!({"threshold": 0})),
            "spec.accidentalDeletes.threshold",
            "must be at least 1",
        ),
        (
            "e-mail without a domain",
            "/notifications",
            Some(json!({"email": "identity-ops"})),
            "spec.notifications.email",
            "one e-mail address",
        ),
        (
            "two e-mail addresses",
            "/notifications",
            Some(json!({"email": "a@contoso.com, b@contoso.com"})),
            "spec.notifications.email",
            "one e-mail address",
        ),
    ];
    assert_rejected(&api, "bad", minimal_profile, cases).await;

    // Two mappings with one (object, target): the list-map keys refuse them, on create as the
    // apiserver's validation ("Duplicate value") and on server-side apply before that.
    let mut twice = minimal_profile("twice");
    twice["spec"]["attributeMappings"] = json!([
        {"object": "user", "target": "department", "attribute": "department"},
        {"object": "user", "target": "department", "constant": "Sales"}
    ]);
    let created = api.create(&PostParams::default(), &serde_json::from_value(twice.clone()).unwrap()).await;
    let message = api_message(created.expect_err("two mappings with one (object, target) created"));
    assert!(message.contains("spec.attributeMappings[1]") && message.contains("Duplicate value"), "{message}");
    let message = api_message(apply(&api, "twice", &twice).await.expect_err("two mappings applied"));
    assert!(message.contains(".spec.attributeMappings") && message.contains("duplicate entries"), "{message}");
    // The same target on two object types is two keys.
    twice["spec"]["attributeMappings"][1]["object"] = json!("inetOrgPerson");
    apply(&api, "twice", &twice).await.expect("one target on user and on inetOrgPerson");

    // The edges that are allowed: 59 entries, and a comma inside a value escaped as \,.
    for (name, scope) in [
        ("ous-59", ous(59)),
        ("groups-59", groups(59)),
        ("escaped-comma", json!({"organizationalUnits": ["OU=Smith\\, J,DC=contoso,DC=com"]})),
    ] {
        let mut manifest = minimal_profile(name);
        manifest["spec"]["scope"] = scope;
        let stored = apply(&api, name, &manifest).await.unwrap_or_else(|e| panic!("{name} rejected: {e}"));
        assert_eq!(serde_json::to_value(&stored.spec).unwrap(), manifest["spec"], "{name}");
    }
    let stored = api.get("escaped-comma").await.unwrap();
    let dns = stored.spec.scope.unwrap().organizational_units.unwrap();
    assert_eq!(dns[0].as_str(), r"OU=Smith\, J,DC=contoso,DC=com");
}

#[tokio::test]
async fn tenant_and_cloud_are_immutable() {
    let client = client().await;
    let ns = namespace(&client, "immutable").await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client, &ns);
    apply(&api, "p", &minimal_profile("p")).await.unwrap();

    let mut other_tenant = minimal_profile("p");
    other_tenant["spec"]["tenantId"] = json!("99999999-2222-3333-4444-555555555555");
    let message = api_message(apply(&api, "p", &other_tenant).await.unwrap_err());
    assert!(message.contains("spec.tenantId") && message.contains("immutable"), "{message}");

    // Absent means Global, so setting another cloud later is a change too.
    let mut other_cloud = minimal_profile("p");
    other_cloud["spec"]["cloud"] = json!("China");
    let message = api_message(apply(&api, "p", &other_cloud).await.unwrap_err());
    assert!(message.contains("cloud is immutable"), "{message}");

    let mut same_cloud = minimal_profile("p");
    same_cloud["spec"]["cloud"] = json!("Global");
    apply(&api, "p", &same_cloud).await.expect("spelling out the default is no change");
}

fn ready_status(status: &str) -> Value {
    json!({
        "apiVersion": "cloudsync.io/v1alpha1",
        "kind": "CloudSyncProfile",
        "status": {
            "observedGeneration": 1,
            "conditions": [{
                "type": "Ready", "status": status, "reason": if status == "True" { "Ready" } else { "Reconciling" },
                "message": "jobs are running", "lastTransitionTime": "2026-11-26T12:00:00Z", "observedGeneration": 1
            }],
            "jobs": [
                {"templateId": "AD2AADProvisioning", "id": "AD2AADProvisioning.0a1b.c2", "code": "Active", "scheduleState": "Active"},
                {"templateId": "AD2AADPasswordHash", "id": "AD2AADPasswordHash.0a1b.c3", "code": "Paused", "scheduleState": "Paused"}
            ]
        }
    })
}

#[tokio::test]
async fn status_subresource_does_not_bump_generation() {
    let client = client().await;
    let ns = namespace(&client, "status").await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client, &ns);
    let created =
        api.create(&PostParams::default(), &serde_json::from_value(minimal_profile("p")).unwrap()).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    let patched = api
        .patch_status("p", &PatchParams::apply("cloudsync-tests").force(), &Patch::Apply(ready_status("True")))
        .await
        .unwrap();
    assert_eq!(patched.metadata.generation, Some(1), "a status write must not bump generation");
    let status: &CloudSyncProfileStatus = patched.status.as_ref().unwrap();
    assert_eq!(status.jobs.len(), 2);
    assert_eq!(status.conditions[0].type_, "Ready");

    // Status sent through the main resource is ignored (status is a subresource).
    let mut with_status = minimal_profile("p");
    with_status["status"] = json!({"secretsHash": "sha256:forged"});
    let after =
        api.patch("p", &PatchParams::apply("cloudsync-tests").force(), &Patch::Apply(with_status)).await.unwrap();
    assert_eq!(after.status.unwrap().secrets_hash, None);

    // A spec change does bump it.
    let mut changed = minimal_profile("p");
    changed["spec"]["suspend"] = json!(true);
    let after = api.patch("p", &PatchParams::apply("cloudsync-tests").force(), &Patch::Apply(changed)).await.unwrap();
    assert_eq!(after.metadata.generation, Some(2));
}

#[tokio::test]
async fn kubectl_get_prints_the_columns() {
    let client = client().await;
    let ns = namespace(&client, "columns").await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client, &ns);
    api.create(&PostParams::default(), &serde_json::from_value(minimal_profile("contoso")).unwrap()).await.unwrap();
    api.patch_status("contoso", &PatchParams::apply("cloudsync-tests").force(), &Patch::Apply(ready_status("True")))
        .await
        .unwrap();

    let out = kubectl(&["get", "csp", "-n", &ns]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "REASON", "DOMAIN", "PROVISIONING", "PASSWORDHASH", "AGE"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..6], ["contoso", "True", "Ready", "contoso.com", "Active", "Paused"]);

    let wide = String::from_utf8(kubectl(&["get", "csp", "-n", &ns, "-o", "wide"]).stdout).unwrap();
    assert!(wide.lines().next().unwrap().ends_with("MESSAGE"), "{wide}");
    assert!(wide.contains("jobs are running"), "{wide}");

    // The category lists both kinds; the profiles with the same columns (kubectl prefixes names
    // with the kind when a category spans several).
    let by_category = String::from_utf8(kubectl(&["get", "cloudsync", "-n", &ns]).stdout).unwrap();
    let row: Vec<&str> = by_category.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert_eq!(
        row.get(..4),
        Some(&["cloudsyncprofile.cloudsync.io/contoso", "True", "Ready", "contoso.com"][..]),
        "{by_category}"
    );
    let kinds =
        String::from_utf8(kubectl(&["api-resources", "--categories", "cloudsync", "-o", "name"]).stdout).unwrap();
    assert_eq!(
        kinds.split_whitespace().collect::<Vec<_>>(),
        ["cloudsyncprofiles.cloudsync.io", "provisionrequests.cloudsync.io"]
    );

    let explain = String::from_utf8(kubectl(&["explain", "csp.spec.restart.resetScope"]).stdout).unwrap();
    assert!(explain.contains("ConnectorDataStore are refused"), "{explain}");
}

#[tokio::test]
async fn kubectl_wait_returns_when_ready_is_patched_in() {
    let client = client().await;
    let ns = namespace(&client, "wait").await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client, &ns);
    api.create(&PostParams::default(), &serde_json::from_value(minimal_profile("p")).unwrap()).await.unwrap();
    api.patch_status("p", &PatchParams::apply("cloudsync-tests").force(), &Patch::Apply(ready_status("False")))
        .await
        .unwrap();

    let kubeconfig = crate::support::kube_env::kubeconfig_path();
    let mut wait = tokio::process::Command::new(crate::support::kube_env::bin_dir().join("kubectl"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["wait", "--for=condition=Ready", "csp/p", "-n", &ns, "--timeout=60s"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // While Ready is False the wait must still be running.
    let early = tokio::time::timeout(Duration::from_secs(2), wait.wait()).await;
    assert!(early.is_err(), "kubectl wait returned before Ready was True");

    api.patch_status("p", &PatchParams::apply("cloudsync-tests").force(), &Patch::Apply(ready_status("True")))
        .await
        .unwrap();
    let status =
        tokio::time::timeout(Duration::from_secs(30), wait.wait()).await.expect("kubectl wait returned").unwrap();
    assert!(status.success(), "kubectl wait failed");
}

/// The manifests in examples/ that the README points to are valid profiles: the apiserver accepts
/// each one as it is written and stores it unchanged.
#[tokio::test]
async fn example_profiles_are_accepted() {
    let client = client().await;
    let ns = namespace(&client, "examples").await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client, &ns);
    let dir = crate::support::kube_env::repo_root().join("examples");
    let mut applied = Vec::new();
    for file in ["cloudsyncprofile.yaml", "scoped-profile.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut manifest: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(manifest["kind"], "CloudSyncProfile", "{file}");
        manifest["metadata"]["namespace"] = json!(ns);
        let name = manifest["metadata"]["name"].as_str().unwrap().to_string();
        let stored = apply(&api, &name, &manifest).await.unwrap_or_else(|e| panic!("{file} rejected: {e}"));
        assert_eq!(serde_json::to_value(&stored.spec).unwrap(), manifest["spec"], "{file} changed on the way");
        applied.push(stored);
    }
    // The scoped example shows every part of the feature.
    let scoped = &applied[1].spec;
    assert_eq!(scoped.scope.as_ref().and_then(|s| s.organizational_units.as_ref()).map(Vec::len), Some(2));
    let mappings = scoped.attribute_mappings();
    assert_eq!(mappings.len(), 3);
    assert!(mappings.iter().any(|m| m.attribute.is_some()));
    assert!(mappings.iter().any(|m| m.constant.is_some()));
    assert!(mappings.iter().any(|m| m.expression.as_deref() == Some(r#"Join(" ", [givenName], [sn])"#)));
    assert_eq!(scoped.delete_threshold(), 50);
    assert_eq!(scoped.notifications.as_ref().map(|n| n.email.as_str()), Some("identity-ops@contoso.com"));
}
