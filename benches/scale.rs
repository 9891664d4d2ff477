//! Scale benchmark: many profiles across several tenants, one operator, the Graph simulator and a
//! real kube-apiserver. Prints numbers; asserts nothing about time. Results: BENCHMARKS.md.
//!
//!   make bench                                   # 200 profiles in 10 tenants, Graph at 0 ms
//!   BENCH_PROFILES=1000 BENCH_TENANTS=1000 BENCH_LATENCY_MS=100 make bench
//!   BENCH_JITTER_MS=40 ...                       # each Graph call 100 ± 40 ms (binomial, mean 100)
//!   BENCH_OPERATOR_ARGS="--concurrency 128" ...  # the operator's flags (default: none, its defaults)
//!   BENCH_SINGLE_LATENCIES="0,50,100,200" ...    # one profile's apply → Ready at each latency
//!                                                # (median of BENCH_SINGLE_RUNS=3), next to its floor;
//!                                                # "" skips it
//!   BENCH_ATTACH="perf record -g -o /tmp/op.data -p {pid}" ...  # a profiler on the operator
//!                                                # while it converges (stopped with SIGINT)
//!   BENCH_RESYNC_SECONDS=10 BENCH_STEADY_SECONDS=600 ...  # steady-state window (default: the
//!                                                # operator's default resync, one minute)
//!
//! Measured: one profile's apply → Ready per latency; then time until every profile is Ready,
//! the operator's peak RSS and CPU seconds to converge, status writes and Graph calls per profile,
//! and in steady state its CPU per minute, Graph reads per profile per resync and RSS over time.
//! Readiness and status writes come from one watch (not from listing, which loads the apiserver
//! at 10,000 profiles); a status write is an event whose status differs from the one before.

// The integration tests' support code; the benchmark uses only part of it.
#[path = "../tests/integration/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

use cloudsync_operator::api::CloudSyncProfile;
use cloudsync_sim::{Registration, SimHandle, Simulator};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;
use support::kube_env::{client, namespace};
use support::operator::Operator;

/// The operator's default `--resync-seconds`.
const DEFAULT_RESYNC: u64 = 300;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix(field).map(|v| v.trim().trim_end_matches(" kB").trim().to_string()))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// User + system CPU seconds of `pid` (fields 14 and 15 of /proc/pid/stat, in clock ticks).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces; the fields after it are plain.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // rest starts at field 3 (state): utime is field 14, stime 15.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks as f64 / 100.0
}

/// The control plane's processes (kube-apiserver, etcd), from the pid files hack/testenv.sh keeps
/// next to the kubeconfig the bench was given; empty when they are not found.
fn control_plane_pids() -> Vec<(&'static str, u32)> {
    let Ok(kubeconfig) = std::env::var("CLOUDSYNC_TEST_KUBECONFIG") else { return Vec::new() };
    let Some(dir) = std::path::Path::new(&kubeconfig).parent().map(std::path::Path::to_path_buf) else {
        return Vec::new();
    };
    ["kube-apiserver", "etcd"]
        .into_iter()
        .filter_map(|name| {
            let pid = std::fs::read_to_string(dir.join(format!("{name}.pid"))).ok()?.trim().parse().ok()?;
            Some((name, pid))
        })
        .collect()
}

/// Latency rules for the simulator: `ms` on every call, or with jitter a base of `ms - jitter`
/// plus four rules of `jitter / 2` that each fire half the time (mean `ms`, range ± `jitter`).
fn latency_faults(sim: &SimHandle, ms: usize, jitter: usize) {
    sim.clear_faults();
    let jitter = jitter.min(ms);
    let mut rules = vec![(ms - jitter, 1.0)];
    if jitter > 0 {
        rules.extend(std::iter::repeat_n((jitter / 2, 0.5), 4));
    }
    for (ms, p) in rules.into_iter().filter(|(ms, _)| *ms > 0) {
        let fault =
            cloudsync_sim::FaultSpec::parse_cli(&format!("kind=latency,ms={ms},p={p},path=**")).expect("latency fault");
        sim.add_fault(fault).expect("add latency fault");
    }
}

#[derive(Default)]
struct Seen {
    ready_at: Option<Duration>,
    /// The status last seen; None before the first event (the apply, without one).
    status: Option<u64>,
    status_writes: u32,
}

/// What the watch has seen of each profile: when it became Ready, how often its status changed.
#[derive(Default)]
struct Watched {
    profiles: HashMap<String, Seen>,
    ready: usize,
}

fn status_hash(p: &CloudSyncProfile) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_string(&p.status).unwrap_or_default().hash(&mut h);
    h.finish()
}

fn watch(api: Api<CloudSyncProfile>, started: Instant) -> Arc<Mutex<Watched>> {
    let seen = Arc::new(Mutex::new(Watched::default()));
    let out = seen.clone();
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default()).boxed();
        while let Some(ev) = events.next().await {
            let p = match ev {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
                Ok(_) => continue,
                Err(e) => {
                    eprintln!("watch: {e}");
                    continue;
                }
            };
            let name = p.metadata.name.clone().unwrap_or_default();
            let mut w = seen.lock().expect("watch state");
            let hash = status_hash(&p);
            let s = w.profiles.entry(name).or_default();
            if s.status.is_some_and(|h| h != hash) {
                s.status_writes += 1;
            }
            s.status = Some(hash);
            let newly_ready = s.ready_at.is_none() && support::operator::is_ready(&p);
            if newly_ready {
                s.ready_at = Some(started.elapsed());
                w.ready += 1;
            }
        }
    });
    out
}

async fn wait_ready(w: &Arc<Mutex<Watched>>, n: usize, started: Instant, limit: Duration) -> Duration {
    loop {
        if w.lock().expect("watch state").ready >= n {
            return started.elapsed();
        }
        let ready = w.lock().expect("watch state").ready;
        assert!(started.elapsed() < limit, "only {ready}/{n} Ready after {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn tenant_id(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", 0xbe000000u32 + i as u32, i)
}

async fn simulator(tenants: usize) -> SimHandle {
    let mut builder = Simulator::builder().speed(60.0);
    for i in 0..tenants {
        builder = builder.register(Registration::new(
            tenant_id(i),
            format!("c{i:07}-0000-4000-8000-000000000001"),
            format!("secret-{i}"),
        ));
    }
    builder.start().await.expect("simulator")
}

async fn credentials(client: &Client, ns: &str, tenants: usize) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let pp = PatchParams::apply("cloudsync-bench").force();
    futures::stream::iter(0..tenants)
        .for_each_concurrent(32, |i| {
            let (secrets, pp) = (secrets.clone(), pp.clone());
            async move {
                let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("creds-{i}")},
                    "stringData": {"clientId": format!("c{i:07}-0000-4000-8000-000000000001"), "clientSecret": format!("secret-{i}")}});
                secrets.patch(&format!("creds-{i}"), &pp, &Patch::Apply(s)).await.expect("secret");
            }
        })
        .await;
}

async fn apply_profile(api: &Api<CloudSyncProfile>, name: &str, tenant: usize) {
    let m = json!({"apiVersion": "cloudsync.io/v1alpha1", "kind": "CloudSyncProfile", "metadata": {"name": name},
        "spec": {"tenantId": tenant_id(tenant), "credentials": {"secretRef": {"name": format!("creds-{tenant}")}},
                 "domain": format!("{name}.contoso.com"), "passwordHashSync": true}});
    api.patch(name, &PatchParams::apply("cloudsync-bench").force(), &Patch::Apply(m)).await.expect("profile");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One new profile at a time, at each latency: apply → Ready, against its own operator and
/// simulator so the scale run's counters stay its own.
async fn single(client: &Client, operator_args: &[String], latencies: &[usize], jitter: usize, runs: usize) {
    let ns = namespace(client, "bench-single").await;
    let sim = simulator(1).await;
    credentials(client, &ns, 1).await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    let mut args: Vec<&str> = vec!["--resync-seconds", "300", "--log-level", "warn"];
    args.extend(operator_args.iter().map(String::as_str));
    let mut op = Operator::start(&ns, &sim, &args);
    let started = Instant::now();
    let w = watch(api.clone(), started);
    let mut results = Vec::new();
    let mut n = 0;
    // A first profile warms up what every later one reuses (token, template list, schema cache
    // of the template), as a running operator has; it is not measured.
    for (round, &ms) in std::iter::once(&0).chain(latencies).enumerate() {
        latency_faults(&sim, ms, jitter);
        let mut times = Vec::new();
        let mut calls = Vec::new();
        for _ in 0..if round == 0 { 1 } else { runs } {
            sim.reset();
            let t0 = started.elapsed();
            n += 1;
            apply_profile(&api, &format!("s{n:03}"), 0).await;
            wait_ready(&w, n, started, Duration::from_secs(120)).await;
            let ready = w.lock().expect("watch state").profiles[&format!("s{n:03}")].ready_at.unwrap_or_default();
            times.push((ready - t0).as_secs_f64());
            let c = sim.counters();
            calls.push((c.reads + c.writes + c.token_requests) as f64);
        }
        if round > 0 {
            results.push((ms, median(times), median(calls)));
        }
    }
    op.terminate();
    sim.shutdown().await;
    let base = results.iter().find(|r| r.0 == 0).map(|r| r.1);
    println!("\none new profile, apply → Ready (median of {runs}; floor = the 0 ms run + k × latency)");
    println!("  latency   apply→Ready   floor k=5   Graph calls   round trips implied");
    for (ms, t, calls) in &results {
        let floor = base.map(|b| format!("{:>9.3} s", b + 5.0 * *ms as f64 / 1000.0)).unwrap_or_default();
        let implied = match base {
            Some(b) if *ms > 0 => format!("{:.1}", (t - b) / (*ms as f64 / 1000.0)),
            _ => "-".to_string(),
        };
        println!("  {ms:>4} ms   {t:>9.3} s   {floor}   {calls:>11}   {implied:>8}");
    }
}

#[tokio::main]
async fn main() {
    let profiles = env_usize("BENCH_PROFILES", 200);
    let tenants = env_usize("BENCH_TENANTS", 10).max(1);
    let resync = env_usize("BENCH_RESYNC_SECONDS", DEFAULT_RESYNC as usize) as u64;
    let steady_secs = env_usize("BENCH_STEADY_SECONDS", 60) as u64;
    let latency_ms = env_usize("BENCH_LATENCY_MS", 0);
    let jitter_ms = env_usize("BENCH_JITTER_MS", 0);
    let single_runs = env_usize("BENCH_SINGLE_RUNS", 3).max(1);
    let single_latencies: Vec<usize> = std::env::var("BENCH_SINGLE_LATENCIES")
        .unwrap_or_else(|_| "0,50,100,200".to_string())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let operator_args: Vec<String> =
        std::env::var("BENCH_OPERATOR_ARGS").unwrap_or_default().split_whitespace().map(str::to_string).collect();
    println!(
        "cores {}, graph latency {latency_ms} ms ± {jitter_ms}, operator flags {operator_args:?}, resync {resync}s",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );

    let client = client().await;
    if !single_latencies.is_empty() {
        single(&client, &operator_args, &single_latencies, jitter_ms, single_runs).await;
    }
    if profiles == 0 {
        return;
    }

    let ns = namespace(&client, "bench").await;
    let sim = simulator(tenants).await;
    latency_faults(&sim, latency_ms, jitter_ms);
    credentials(&client, &ns, tenants).await;
    let profiles_api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);

    let resync_arg = resync.to_string();
    let mut args: Vec<&str> = vec!["--resync-seconds", &resync_arg, "--log-level", "warn"];
    args.extend(operator_args.iter().map(String::as_str));
    let op = Operator::start(&ns, &sim, &args);
    let pid = op.pid();
    // Its start (connecting, first empty lists) is not the convergence's cost.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_idle = cpu_seconds(pid);
    // Where the machine's other cores went: the control plane, and this process (the simulator,
    // the applies and the watch).
    let others = control_plane_pids();
    let others_idle: Vec<f64> = others.iter().map(|(_, p)| cpu_seconds(*p)).collect();
    let me = std::process::id();
    let me_idle = cpu_seconds(me);
    // A profiler attached to the operator for the convergence (e.g. `perf record -g -p {pid}`),
    // stopped with SIGINT when every profile is Ready.
    let mut profiler = std::env::var("BENCH_ATTACH").ok().filter(|c| !c.is_empty()).map(|c| {
        std::process::Command::new("sh")
            .args(["-c", &format!("exec {}", c.replace("{pid}", &pid.to_string()))])
            .spawn()
            .expect("start the profiler")
    });
    if profiler.is_some() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    sim.reset();
    // Apply concurrently (as `kubectl apply -f dir/` or Argo CD would), and watch readiness meanwhile.
    let started = Instant::now();
    let w = watch(profiles_api.clone(), started);
    let applying = {
        let api = profiles_api.clone();
        tokio::spawn(async move {
            futures::stream::iter(0..profiles)
                .for_each_concurrent(32, |p| {
                    let api = api.clone();
                    async move { apply_profile(&api, &format!("p{p:05}"), p % tenants).await }
                })
                .await;
            started.elapsed()
        })
    };
    let all_ready = wait_ready(&w, profiles, started, Duration::from_secs(1800)).await;
    let applied = applying.await.expect("apply task");
    let cpu_converge = cpu_seconds(pid) - cpu_idle;
    let others_cpu: Vec<String> = others
        .iter()
        .zip(&others_idle)
        .map(|((name, p), idle)| format!("{name} {:.2} s", cpu_seconds(*p) - idle))
        .collect();
    let me_cpu = cpu_seconds(me) - me_idle;
    if let Some(p) = profiler.as_mut() {
        let _ = std::process::Command::new("kill").args(["-INT", &p.id().to_string()]).status();
        let _ = p.wait();
    }
    let hwm = proc_status_kib(pid, "VmHWM:");
    let rss_converged = proc_status_kib(pid, "VmRSS:");
    let (anon, file) = (proc_status_kib(pid, "RssAnon:"), proc_status_kib(pid, "RssFile:"));
    let c = sim.counters();
    let (first_ready, status_writes) = {
        let w = w.lock().expect("watch state");
        let first = w.profiles.values().filter_map(|s| s.ready_at).min().unwrap_or_default();
        let writes: u64 = w.profiles.values().map(|s| u64::from(s.status_writes)).sum();
        (first, writes)
    };

    println!("\ncloudsync-operator scale benchmark");
    println!(
        "  profiles {profiles} in {tenants} tenants, Graph latency {latency_ms} ms ± {jitter_ms}, operator flags {:?}, resync {resync}s",
        operator_args.join(" ")
    );
    println!("  applied all profiles in            {:>8.2} s  (32 concurrent applies)", applied.as_secs_f64());
    println!("  first profile Ready after          {:>8.2} s", first_ready.as_secs_f64());
    println!(
        "  all profiles Ready after           {:>8.2} s  ({:.1} profiles/s)",
        all_ready.as_secs_f64(),
        profiles as f64 / all_ready.as_secs_f64()
    );
    println!("  operator CPU to converge           {:>8.2} s", cpu_converge);
    println!(
        "  meanwhile, other CPU               {}; bench (simulator, applies, watch) {me_cpu:.2} s",
        if others_cpu.is_empty() { "control plane not found".to_string() } else { others_cpu.join(", ") }
    );
    println!(
        "  operator peak RSS                  {:>8.1} MiB  ({:.1} MiB when all Ready: {:.1} anonymous, {:.1} file-backed)",
        mib(hwm),
        mib(rss_converged),
        mib(anon),
        mib(file)
    );
    println!("  status writes per profile          {:>8.2}", status_writes as f64 / profiles as f64);
    println!(
        "  Graph calls per profile            {:>8.2}  ({:.2} writes, {:.2} reads, {} token requests)",
        (c.writes + c.reads + c.token_requests) as f64 / profiles as f64,
        c.writes as f64 / profiles as f64,
        c.reads as f64 / profiles as f64,
        c.token_requests
    );
    println!("  throttled answers / early retries  {:>8} / {}", c.throttled, c.early_retries);
    println!("  duplicates (service principals, jobs) {} / {}", c.duplicate_service_principals, c.duplicate_jobs);

    // Steady state: the window starts a resync after convergence at the earliest when the window
    // spans several resyncs; with the default resync, one minute of it.
    sim.reset();
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let mut samples = Vec::new();
    let window = Duration::from_secs(steady_secs);
    while t0.elapsed() < window {
        tokio::time::sleep(Duration::from_secs(60).min(window)).await;
        samples.push(format!("{:.1}", mib(proc_status_kib(pid, "VmRSS:"))));
    }
    let steady = sim.counters();
    let cpu = cpu_seconds(pid) - cpu0;
    let minutes = t0.elapsed().as_secs_f64() / 60.0;
    println!(
        "  steady state over {:.0} s: CPU {:.2} s per minute, writes {}, reads per profile per resync {:.2}",
        t0.elapsed().as_secs_f64(),
        cpu / minutes,
        steady.writes,
        steady.reads as f64 / profiles as f64 / (t0.elapsed().as_secs_f64() / resync as f64)
    );
    println!("  RSS each minute (MiB): {}", samples.join(" "));
    drop(op);
}
