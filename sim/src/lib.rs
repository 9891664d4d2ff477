//! The Microsoft Graph simulator: the identity platform's token endpoint, the Graph calls of
//! Entra cloud sync (reference `graph-sync-api.md`), injectable faults and a control API, on one
//! HTTP server. Run it with `cloudsync-operator sim` or embed it with [`Simulator::builder`].
//!
//! Pure logic lives in `odata` ($filter), `jobs` (job life cycle), `faults` (rule matching) and
//! `state` (directory); `routes`, `auth` and `control` are the HTTP ends.

mod auth;
mod bodies;
mod calls;
mod clock;
mod control;
mod deletes;
mod envelope;
mod expression;
mod faults;
mod ids;
mod jobs;
mod odata;
#[cfg(test)]
mod odata_props;
mod ondemand;
mod provisioning;
mod routes;
mod schema;
mod server;
mod state;
mod templates;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use calls::{CallRecord, Counters};
pub use control::{FederatedCredentialSpec, Registered, Registration};
pub use faults::FaultSpec;
pub use state::CLOUD_SYNC_TEMPLATE_ID;

use server::Shared;

/// Errors of the simulator's CLI and embedding API.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("invalid --tenant: {0}")]
    Tenant(String),
    #[error("invalid --fault: {0}")]
    Fault(String),
    #[error("invalid --speed {0}: must be a number in (0, 1000000]")]
    Speed(f64),
    #[error("{0}")]
    Control(String),
    #[error("cannot wait for Ctrl-C: {0}")]
    Signal(std::io::Error),
}

/// Command-line arguments of `cloudsync-operator sim`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// Address to listen on; port 0 picks a free port (the startup line shows the bound address).
    #[arg(long, default_value = "127.0.0.1:0", env = "CLOUDSYNC_SIM_ADDR")]
    pub addr: SocketAddr,
    /// Registers TENANT:CLIENT:SECRET, an app with full cloud-sync permissions. Repeatable.
    /// Without any, a demo tenant with random ids and secret is created and printed.
    #[arg(long = "tenant", value_name = "TENANT:CLIENT:SECRET")]
    pub tenants: Vec<String>,
    /// Service time runs this many times faster than real time (job cycles, fault windows).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// A fault rule as comma-separated key=value pairs, e.g.
    /// 'kind=status,status=429,retryAfter=2,method=GET,path=/beta/servicePrincipals,times=1'. Repeatable.
    #[arg(long = "fault", value_name = "RULE")]
    pub faults: Vec<String>,
    /// Lifetime of issued access tokens, in seconds (`expires_in`).
    #[arg(long, default_value_t = 3599)]
    pub token_lifetime: u64,
}

/// Runs the simulator until interrupted.
pub async fn run(args: SimArgs) -> Result<(), SimError> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let mut builder =
        Simulator::builder().addr(args.addr).speed(args.speed).token_lifetime(Duration::from_secs(args.token_lifetime));
    for t in &args.tenants {
        builder = builder.register(Registration::parse_cli(t).map_err(SimError::Tenant)?);
    }
    let demo = args.tenants.is_empty();
    if demo {
        builder =
            builder.register(Registration { display_name: Some("Demo tenant".into()), ..Registration::default() });
    }
    for f in &args.faults {
        builder = builder.fault(FaultSpec::parse_cli(f).map_err(SimError::Fault)?);
    }
    let handle = builder.start().await?;
    println!("graph simulator listening on {}", handle.url());
    if demo && let Some(r) = handle.registered.first() {
        println!("demo tenant id:     {}", r.tenant_id);
        println!("demo client id:     {}", r.client_id);
        println!("demo client secret: {}", r.client_secret.as_deref().unwrap_or(""));
    }
    tokio::signal::ctrl_c().await.map_err(SimError::Signal)?;
    handle.shutdown().await;
    Ok(())
}

/// Entry point of the embedding API.
pub struct Simulator;

impl Simulator {
    pub fn builder() -> SimulatorBuilder {
        SimulatorBuilder {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            speed: 1.0,
            token_lifetime: Duration::from_secs(3599),
            registrations: Vec::new(),
            faults: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimulatorBuilder {
    addr: SocketAddr,
    speed: f64,
    token_lifetime: Duration,
    registrations: Vec<Registration>,
    faults: Vec<FaultSpec>,
}

impl SimulatorBuilder {
    /// Defaults to `127.0.0.1:0` (a random free port).
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Registers a tenant with one app having full cloud-sync permissions.
    pub fn tenant(self, tenant_id: &str, client_id: &str, client_secret: &str) -> Self {
        self.register(Registration::new(tenant_id, client_id, client_secret))
    }

    pub fn register(mut self, registration: Registration) -> Self {
        self.registrations.push(registration);
        self
    }

    pub fn speed(mut self, speed: f64) -> Self {
        self.speed = speed;
        self
    }

    /// `expires_in` of issued tokens; `Duration::ZERO` issues tokens that are already expired.
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    pub fn fault(mut self, fault: FaultSpec) -> Self {
        self.faults.push(fault);
        self
    }

    pub async fn start(self) -> Result<SimHandle, SimError> {
        if !(self.speed.is_finite() && self.speed > 0.0 && self.speed <= 1_000_000.0) {
            return Err(SimError::Speed(self.speed));
        }
        let shared = Arc::new(Shared::new(self.speed, self.token_lifetime));
        let mut registered = Vec::new();
        for r in self.registrations {
            registered.push(control::register(&shared, r).map_err(SimError::Tenant)?);
        }
        for f in self.faults {
            shared.lock().faults.add(f).map_err(SimError::Fault)?;
        }
        let listener =
            TcpListener::bind(self.addr).await.map_err(|source| SimError::Bind { addr: self.addr, source })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind { addr: self.addr, source })?;
        let _ = shared.addr.set(addr);
        let cancel = CancellationToken::new();
        let app = server::app(shared.clone());
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await;
            if let Err(e) = served {
                tracing::error!(error = %e, "graph simulator stopped");
            }
        });
        Ok(SimHandle { shared, addr, cancel, task: Some(task), registered })
    }
}

/// A running simulator. Dropping it stops the server.
#[derive(Debug)]
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
    registered: Vec<Registered>,
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:41234` (Graph is under `/beta` and `/v1.0`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token endpoint of `tenant_id`.
    pub fn token_url(&self, tenant_id: &str) -> String {
        format!("{}/{tenant_id}/oauth2/v2.0/token", self.url())
    }

    /// The registrations made by the builder, with generated ids and secrets.
    pub fn registered(&self) -> &[Registered] {
        &self.registered
    }

    /// Registers another tenant or app while running.
    pub fn register(&self, registration: Registration) -> Result<Registered, SimError> {
        control::register(&self.shared, registration).map_err(SimError::Tenant)
    }

    /// Adds a fault rule; returns its id.
    pub fn add_fault(&self, fault: FaultSpec) -> Result<u64, SimError> {
        self.shared.lock().faults.add(fault).map_err(SimError::Fault)
    }

    pub fn remove_fault(&self, id: u64) -> bool {
        self.shared.lock().faults.remove(id)
    }

    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    pub fn calls(&self) -> Vec<CallRecord> {
        self.shared.lock().log.calls()
    }

    pub fn counters(&self) -> Counters {
        control::counters(&self.shared, None)
    }

    pub fn tenant_counters(&self, tenant_id: &str) -> Counters {
        control::counters(&self.shared, Some(tenant_id))
    }

    /// Clears the call log, counters and `Retry-After` memory; directory state stays.
    pub fn reset(&self) {
        let mut inner = self.shared.lock();
        inner.log.reset();
        inner.retries.clear();
        inner.on_demand.clear();
    }

    /// The `/_sim/tenants/{id}/state` document.
    pub fn state(&self, tenant_id: &str) -> Option<serde_json::Value> {
        control::state_dump(&self.shared, tenant_id)
    }

    /// Quarantines a job now (`reason` from synchronizationQuarantineReason).
    pub fn quarantine_job(
        &self,
        tenant_id: &str,
        sp_id: &str,
        job_id: &str,
        reason: &str,
        error_code: &str,
    ) -> Result<(), SimError> {
        let action = control::quarantine_action(Some(reason.to_owned()), Some(error_code.to_owned()), None)
            .map_err(SimError::Control)?;
        control::job_action(&self.shared, tenant_id, sp_id, job_id, action)
            .map(|_| ())
            .map_err(|e| SimError::Control(e.message))
    }

    /// Makes the next `count` executions of a job (all, if `None`) fail with `error_code`.
    pub fn fail_job(
        &self,
        tenant_id: &str,
        sp_id: &str,
        job_id: &str,
        error_code: &str,
        count: Option<u64>,
    ) -> Result<(), SimError> {
        let action = control::JobAction::Fail { error: jobs::SyncError::from_code(error_code, None), count };
        control::job_action(&self.shared, tenant_id, sp_id, job_id, action)
            .map(|_| ())
            .map_err(|e| SimError::Control(e.message))
    }

    pub fn clear_job_failure(&self, tenant_id: &str, sp_id: &str, job_id: &str) -> Result<(), SimError> {
        control::job_action(&self.shared, tenant_id, sp_id, job_id, control::JobAction::Recover)
            .map(|_| ())
            .map_err(|e| SimError::Control(e.message))
    }

    /// Makes the next execution of a job want to delete `count` objects (0 withdraws them); at
    /// or above the delete threshold the job then quarantines with `TooManyDeletes`.
    pub fn want_deletes(&self, tenant_id: &str, sp_id: &str, job_id: &str, count: u64) -> Result<(), SimError> {
        control::job_action(&self.shared, tenant_id, sp_id, job_id, control::JobAction::Deletes { count })
            .map(|_| ())
            .map_err(|e| SimError::Control(e.message))
    }

    /// Makes the next `runs` runs of a job (all, if `None`) end with `count` entry-level errors
    /// of `error_code` (state EntryLevelErrors, countEscrowed, failure entries in the
    /// provisioning logs); `count` 0 withdraws them.
    /// What provisionOnDemand answers for `dn` on this job: `result` Success, Skipped or Failure,
    /// with Graph's `errorCode`. Without a script, an object's first call succeeds (Create) and
    /// later ones are Skipped with RedundantExport.
    pub fn script_on_demand(
        &self,
        tenant_id: &str,
        job_id: &str,
        dn: &str,
        result: &str,
        error_code: Option<&str>,
    ) -> Result<(), SimError> {
        let outcome = ondemand::Scripted { result: result.to_owned(), error_code: error_code.map(str::to_owned) };
        control::script_on_demand(&self.shared, tenant_id, job_id, dn, outcome).map_err(SimError::Control)
    }

    pub fn entry_errors(
        &self,
        tenant_id: &str,
        sp_id: &str,
        job_id: &str,
        error_code: &str,
        count: u64,
        runs: Option<u64>,
    ) -> Result<(), SimError> {
        let action = control::JobAction::EntryErrors { code: error_code.to_owned(), count, runs };
        control::job_action(&self.shared, tenant_id, sp_id, job_id, action)
            .map(|_| ())
            .map_err(|e| SimError::Control(e.message))
    }

    /// Adds a job with a chosen id (e.g. an old two-part id) to a service principal.
    pub fn seed_job(&self, tenant_id: &str, sp_id: &str, job_id: &str, template_id: &str) -> Result<(), SimError> {
        let action = control::JobAction::Seed { template_id: template_id.to_owned() };
        control::job_action(&self.shared, tenant_id, sp_id, job_id, action)
            .map(|_| ())
            .map_err(|e| SimError::Control(e.message))
    }

    /// Stops accepting connections and waits for in-flight requests.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
