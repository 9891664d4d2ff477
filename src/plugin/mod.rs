//! `kubectl cloudsync`: the weekly work of an identity team, through the Kubernetes API only (the
//! user's kubeconfig; no Graph credentials). kubectl runs the `kubectl-cloudsync` binary when it
//! is on PATH.

pub mod redact;
pub mod render;

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use serde_json::{Value, json};

use crate::api::{
    ALLOWED_RESET_SCOPES, CloudSyncProfile, ProvisionRequest, ProvisionRequestSpec, Subject, SubjectType,
};

#[derive(Parser, Debug)]
#[command(
    name = "kubectl-cloudsync",
    bin_name = "kubectl cloudsync",
    version,
    about = "Microsoft Entra cloud sync profiles, day to day: status, restart, suspend, provision on demand, held deletes, support bundles"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Namespace of the profiles (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Path of the kubeconfig (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Jobs, state, last and next run, quarantine, recent failure codes, conditions and Graph ids of
    /// a profile; every profile of the namespace without a name.
    Status {
        profile: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Restart the profile's jobs once (sets a new spec.restart.requestId).
    Restart {
        profile: String,
        /// Comma-separated: Escrows, Watermark, QuarantineState, Full, ForceDeletes (default: the
        /// portal's "Restart provisioning", Watermark, Escrows, QuarantineState).
        #[arg(long)]
        reset_scope: Option<String>,
    },
    /// Pause the profile's jobs (spec.suspend: true).
    Suspend { profile: String },
    /// Start the profile's jobs again (spec.suspend: false).
    Resume { profile: String },
    /// Provision up to five objects now (creates a ProvisionRequest, waits, prints the steps).
    Provision {
        profile: String,
        /// Distinguished name of a user (repeatable).
        #[arg(long = "user", value_name = "DN")]
        users: Vec<String>,
        /// Distinguished name of a group (repeatable).
        #[arg(long = "group", value_name = "DN")]
        groups: Vec<String>,
        /// Distinguished name of an inetOrgPerson (repeatable).
        #[arg(long = "inet-org-person", value_name = "DN")]
        inet_org_persons: Vec<String>,
        /// How long to wait for the outcome, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Delete the request this many seconds after it completes.
        #[arg(long)]
        ttl: Option<i64>,
    },
    /// Release the deletes the accidental-delete threshold holds (a ForceDeletes restart), after
    /// confirmation.
    ApproveDeletes {
        profile: String,
        /// Do not ask.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// A redacted support bundle: the profile, its ProvisionRequests, Events, and the operator's
    /// recent log lines about it when its pods can be read.
    Report {
        profile: String,
        /// Namespace of the operator's pods (default: every namespace you can list pods in).
        #[arg(long)]
        operator_namespace: Option<String>,
        /// Log lines to read per operator pod.
        #[arg(long, default_value_t = 5000)]
        tail: i64,
    },
}

/// A failure to report to the user, with the exit code.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{0}")]
    User(String),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("kubeconfig: {0}")]
    Config(String),
}

pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli, &mut std::io::stdout(), &mut std::io::stdin().lock()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn connect(g: &Global) -> Result<(Client, String), PluginError> {
    let options = KubeConfigOptions { context: g.context.clone(), ..Default::default() };
    let config = match &g.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| PluginError::Config(e.to_string()))?;
            Config::from_custom_kubeconfig(kc, &options).await.map_err(|e| PluginError::Config(e.to_string()))?
        }
        None => Config::from_kubeconfig(&options).await.map_err(|e| PluginError::Config(e.to_string()))?,
    };
    let namespace = g.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(PluginError::Kube)?;
    Ok((client, namespace))
}

async fn get_profile(api: &Api<CloudSyncProfile>, ns: &str, name: &str) -> Result<CloudSyncProfile, PluginError> {
    api.get_opt(name)
        .await?
        .ok_or_else(|| PluginError::User(format!("CloudSyncProfile {name} not found in namespace {ns}")))
}

async fn requests_of(client: &Client, ns: &str, profile: &str) -> Result<Vec<ProvisionRequest>, PluginError> {
    let api: Api<ProvisionRequest> = Api::namespaced(client.clone(), ns);
    // A cluster without the ProvisionRequest CRD (an older install) still shows profiles.
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items.into_iter().filter(|r| r.spec.profile == profile).collect()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

fn request_id() -> String {
    // The time for people, a random part so that two requests in one second stay two.
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("kubectl-cloudsync-{}-{}", jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ"), &random[..8])
}

fn check_reset_scope(s: &str) -> Result<(), PluginError> {
    for part in s.split(',').map(str::trim) {
        if !ALLOWED_RESET_SCOPES.contains(&part) {
            return Err(PluginError::User(format!(
                "--reset-scope: '{part}' is not one of {}",
                ALLOWED_RESET_SCOPES.join(", ")
            )));
        }
    }
    Ok(())
}

async fn patch_spec(api: &Api<CloudSyncProfile>, name: &str, spec: Value) -> Result<(), PluginError> {
    api.patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": spec}))).await?;
    Ok(())
}

/// Runs one command; output to `out`, confirmations read from `input`.
pub async fn run(cli: Cli, out: &mut impl Write, input: &mut impl BufRead) -> Result<(), PluginError> {
    let (client, ns) = connect(&cli.global).await?;
    let profiles: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    let w = |out: &mut dyn Write, s: &str| -> Result<(), PluginError> {
        out.write_all(s.as_bytes()).map_err(|e| PluginError::User(format!("cannot write output: {e}")))
    };
    match cli.command {
        Command::Status { profile: None, output } => {
            let list = profiles.list(&ListParams::default()).await?.items;
            match output {
                Output::Json => w(out, &format!("{}\n", to_json(&list)))?,
                Output::Text if list.is_empty() => w(out, &format!("No CloudSyncProfiles in namespace {ns}.\n"))?,
                Output::Text => w(out, &render::profiles(&list))?,
            }
        }
        Command::Status { profile: Some(name), output } => {
            let p = get_profile(&profiles, &ns, &name).await?;
            let requests = requests_of(&client, &ns, &name).await?;
            match output {
                Output::Json => {
                    let doc = json!({"profile": strip(&p), "provisionRequests": requests.iter().map(strip).collect::<Vec<_>>()});
                    w(out, &format!("{}\n", to_json(&doc)))?
                }
                Output::Text => w(out, &render::profile(&p, &requests, jiff::Timestamp::now()))?,
            }
        }
        Command::Restart { profile, reset_scope } => {
            get_profile(&profiles, &ns, &profile).await?;
            if let Some(s) = &reset_scope {
                check_reset_scope(s)?;
            }
            let id = request_id();
            let mut restart = json!({"requestId": id});
            if let Some(s) = reset_scope {
                restart["resetScope"] = json!(s);
            }
            patch_spec(&profiles, &profile, json!({"restart": restart})).await?;
            w(
                out,
                &format!(
                    "restart requested for {ns}/{profile} (requestId {id}); it is carried out once status.lastRestartRequestId shows it: kubectl cloudsync status {profile}\n"
                ),
            )?;
        }
        Command::Suspend { profile } => {
            get_profile(&profiles, &ns, &profile).await?;
            patch_spec(&profiles, &profile, json!({"suspend": true})).await?;
            w(out, &format!("{ns}/{profile} suspended: the operator pauses its jobs\n"))?;
        }
        Command::Resume { profile } => {
            get_profile(&profiles, &ns, &profile).await?;
            patch_spec(&profiles, &profile, json!({"suspend": false})).await?;
            w(out, &format!("{ns}/{profile} resumed: the operator starts its jobs again\n"))?;
        }
        Command::Provision { profile, users, groups, inet_org_persons, timeout, ttl } => {
            get_profile(&profiles, &ns, &profile).await?;
            let subjects: Vec<Subject> = users
                .into_iter()
                .map(|d| (d, SubjectType::User))
                .chain(groups.into_iter().map(|d| (d, SubjectType::Group)))
                .chain(inet_org_persons.into_iter().map(|d| (d, SubjectType::InetOrgPerson)))
                .map(|(dn, kind)| Subject { dn: crate::api::DistinguishedName(dn), kind })
                .collect();
            if subjects.is_empty() || subjects.len() > crate::api::MAX_SUBJECTS {
                return Err(PluginError::User(format!(
                    "give 1 to {} subjects with --user, --group or --inet-org-person",
                    crate::api::MAX_SUBJECTS
                )));
            }
            let mut request = ProvisionRequest::new(
                "",
                ProvisionRequestSpec { profile: profile.clone(), subjects, ttl_seconds_after_finished: ttl },
            );
            request.metadata.name = None;
            request.metadata.generate_name = Some(format!("{profile}-"));
            let api: Api<ProvisionRequest> = Api::namespaced(client.clone(), &ns);
            let created = api.create(&PostParams::default(), &request).await.map_err(|e| match e {
                kube::Error::Api(s) if s.code == 422 || s.code == 400 => PluginError::User(s.message),
                other => other.into(),
            })?;
            let name = created.name_any();
            w(out, &format!("provisionrequest.cloudsync.io/{name} created; waiting up to {timeout}s\n"))?;
            let done = wait_complete(&api, &name, Duration::from_secs(timeout)).await?;
            match done {
                Some(r) => w(out, &render::request_outcome(&r))?,
                None => {
                    return Err(PluginError::User(format!(
                        "{name} did not complete within {timeout}s; see kubectl get cspr {name} -n {ns} -o yaml"
                    )));
                }
            }
        }
        Command::ApproveDeletes { profile, yes } => {
            let p = get_profile(&profiles, &ns, &profile).await?;
            let held = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Degraded" && c.reason == "DeletesHeld"))
                .cloned();
            let Some(held) = held else {
                return Err(PluginError::User(format!(
                    "{ns}/{profile} holds no deletes (its Degraded condition is not DeletesHeld); nothing to approve"
                )));
            };
            w(out, &format!("{}\n", held.message))?;
            if !yes {
                w(
                    out,
                    &format!(
                        "Approve the held deletes of {ns}/{profile}? The job restarts with ForceDeletes and Entra ID deletes the objects. [y/N] "
                    ),
                )?;
                out.flush().ok();
                let mut answer = String::new();
                input.read_line(&mut answer).ok();
                if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
                    return Err(PluginError::User("not approved; nothing changed".into()));
                }
            }
            let id = request_id();
            patch_spec(&profiles, &profile, json!({"restart": {"requestId": id, "resetScope": "ForceDeletes"}}))
                .await?;
            w(out, &format!("deletes approved: ForceDeletes restart requested for {ns}/{profile} (requestId {id})\n"))?;
        }
        Command::Report { profile, operator_namespace, tail } => {
            let p = get_profile(&profiles, &ns, &profile).await?;
            let bundle = report(&client, &ns, &p, operator_namespace.as_deref(), tail).await?;
            w(out, &redact::redact(&bundle))?;
        }
    }
    Ok(())
}

fn to_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// An object without managedFields, which only add noise to output and bundles.
fn strip<K: serde::Serialize>(k: &K) -> Value {
    let mut v = serde_json::to_value(k).unwrap_or(Value::Null);
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    v
}

async fn wait_complete(
    api: &Api<ProvisionRequest>,
    name: &str,
    timeout: Duration,
) -> Result<Option<ProvisionRequest>, PluginError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let r = api.get(name).await?;
        if r.completed_at().is_some() {
            return Ok(Some(r));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The support bundle as YAML documents.
async fn report(
    client: &Client,
    ns: &str,
    p: &CloudSyncProfile,
    operator_namespace: Option<&str>,
    tail: i64,
) -> Result<String, PluginError> {
    let name = p.name_any();
    let requests = requests_of(client, ns, &name).await?;
    let names: Vec<String> = std::iter::once(name.clone()).chain(requests.iter().map(|r| r.name_any())).collect();
    let events: Vec<Value> = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.api_version.as_deref().is_some_and(|v| v.starts_with("cloudsync.io/"))
                    && r.name.as_deref().is_some_and(|n| names.iter().any(|x| x == n))
            })
        })
        .map(|e| strip(&e))
        .collect();
    let (logs, log_note) = operator_logs(client, ns, &name, operator_namespace, tail).await;
    let doc = json!({
        "kind": "CloudSyncReport",
        "generatedAt": jiff::Timestamp::now().to_string(),
        "generatedBy": format!("kubectl-cloudsync {}", env!("CARGO_PKG_VERSION")),
        "profile": strip(p),
        "provisionRequests": requests.iter().map(strip).collect::<Vec<_>>(),
        "events": events,
        "operatorLogs": {"note": log_note, "lines": logs},
    });
    serde_yaml::to_string(&doc).map_err(|e| PluginError::User(format!("cannot render the report: {e}")))
}

/// The operator's log lines that name the profile (`namespace/name`), from every operator pod the
/// user may read. Never fails the report: a note says why there are none.
async fn operator_logs(
    client: &Client,
    ns: &str,
    name: &str,
    operator_namespace: Option<&str>,
    tail: i64,
) -> (Vec<String>, String) {
    let pods: Api<Pod> = match operator_namespace {
        Some(o) => Api::namespaced(client.clone(), o),
        None => Api::all(client.clone()),
    };
    let lp = ListParams::default().labels("app.kubernetes.io/name=cloudsync-operator");
    let list = match pods.list(&lp).await {
        Ok(l) => l.items,
        Err(e) => return (Vec::new(), format!("the operator's pods cannot be listed: {e}")),
    };
    if list.is_empty() {
        return (Vec::new(), "no operator pod (label app.kubernetes.io/name=cloudsync-operator) found".into());
    }
    let needle = format!("{ns}/{name}");
    let dotted = format!("{name}.{ns}");
    let mut lines = Vec::new();
    let mut notes = Vec::new();
    for pod in list {
        let pns = pod.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &pns);
        let params = LogParams { tail_lines: Some(tail), timestamps: false, ..Default::default() };
        match api.logs(&pod.name_any(), &params).await {
            Ok(text) => lines.extend(
                text.lines()
                    .filter(|l| l.contains(&needle) || l.contains(&dotted))
                    .map(|l| format!("{}/{}: {l}", pns, pod.name_any())),
            ),
            Err(e) => notes.push(format!("{pns}/{}: {e}", pod.name_any())),
        }
    }
    let note = if notes.is_empty() {
        format!("{} line(s) naming {needle}", lines.len())
    } else {
        format!("some logs could not be read: {}", notes.join("; "))
    };
    (lines, note)
}
