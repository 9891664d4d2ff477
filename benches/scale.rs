//! Scale benchmark: many profiles across several tenants, one operator, the Graph simulator and a
//! real kube-apiserver. Prints numbers; asserts nothing about time.
//!
//!   make bench                      # 200 profiles in 10 tenants
//!   BENCH_PROFILES=500 BENCH_TENANTS=20 make bench
//!   BENCH_LATENCY_MS=100 make bench   # every Graph and token call answers 100 ms later
//!   BENCH_OPERATOR_ARGS="--concurrency 128" make bench   # the operator's flags (default: --concurrency 16)
//!
//! Measured: time until every profile is Ready, Graph writes and reads per profile while
//! converging, the steady-state cost (Graph reads per profile per resync), throttling seen, and
//! the operator's resident memory.

// The integration tests' support code; the benchmark uses only part of it.
#[path = "../tests/integration/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;

use cloudsync_operator::api::CloudSyncProfile;
use cloudsync_sim::{Registration, Simulator};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;
use support::kube_env::{client, namespace};
use support::operator::Operator;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").trim().to_string()))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let profiles = env_usize("BENCH_PROFILES", 200);
    let tenants = env_usize("BENCH_TENANTS", 10).max(1);
    let resync = env_usize("BENCH_RESYNC_SECONDS", 10) as u64;

    let client = client().await;
    let ns = namespace(&client, "bench").await;
    let mut builder = Simulator::builder().speed(60.0);
    let tenant_ids: Vec<String> =
        (0..tenants).map(|i| format!("{:08x}-0000-4000-8000-{:012x}", 0xbe000000u32 + i as u32, i)).collect();
    for (i, t) in tenant_ids.iter().enumerate() {
        builder = builder.register(Registration::new(
            t.clone(),
            format!("c{i:07}-0000-4000-8000-000000000001"),
            format!("secret-{i}"),
        ));
    }
    let sim = builder.start().await.expect("simulator");
    // Real Graph answers in tens to hundreds of milliseconds; the simulator in well under one.
    let latency_ms = env_usize("BENCH_LATENCY_MS", 0);
    if latency_ms > 0 {
        let fault = cloudsync_sim::FaultSpec::parse_cli(&format!("kind=latency,ms={latency_ms},path=**"))
            .expect("latency fault");
        sim.add_fault(fault).expect("add latency fault");
    }
    let operator_args: Vec<String> = std::env::var("BENCH_OPERATOR_ARGS")
        .unwrap_or_else(|_| "--concurrency 16".to_string())
        .split_whitespace()
        .map(str::to_string)
        .collect();

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let profiles_api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    let pp = PatchParams::apply("cloudsync-bench").force();
    for i in 0..tenants {
        let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("creds-{i}")},
            "stringData": {"clientId": format!("c{i:07}-0000-4000-8000-000000000001"), "clientSecret": format!("secret-{i}")}});
        secrets.patch(&format!("creds-{i}"), &pp, &Patch::Apply(s)).await.expect("secret");
    }

    let resync_arg = resync.to_string();
    let mut args: Vec<&str> = vec!["--resync-seconds", &resync_arg, "--log-level", "warn"];
    args.extend(operator_args.iter().map(String::as_str));
    println!("graph latency: {latency_ms} ms; operator flags: {args:?}");
    let op = Operator::start(&ns, &sim, &args);
    // Apply concurrently (as `kubectl apply -f dir/` or Argo CD would), and watch readiness meanwhile.
    let started = Instant::now();
    let applying = {
        let api = profiles_api.clone();
        let ids = tenant_ids.clone();
        tokio::spawn(async move {
            futures::stream::iter(0..profiles)
                .for_each_concurrent(32, |p| {
                    let (api, pp, t) = (api.clone(), pp.clone(), p % tenants);
                    let m = json!({"apiVersion": "cloudsync.io/v1alpha1", "kind": "CloudSyncProfile", "metadata": {"name": format!("p{p:05}")},
                        "spec": {"tenantId": ids[t], "credentials": {"secretRef": {"name": format!("creds-{t}")}},
                                 "domain": format!("d{p}.contoso.com"), "passwordHashSync": true}});
                    async move {
                        api.patch(&format!("p{p:05}"), &pp, &Patch::Apply(m)).await.expect("profile");
                    }
                })
                .await;
            started.elapsed()
        })
    };
    let mut first_ready: Option<Duration> = None;
    let mut ready_at: HashMap<String, Duration> = HashMap::new();
    loop {
        let list = profiles_api.list(&ListParams::default()).await.expect("list");
        for p in list.items.iter().filter(|p| support::operator::is_ready(p)) {
            ready_at.entry(p.metadata.name.clone().unwrap_or_default()).or_insert_with(|| started.elapsed());
        }
        if !ready_at.is_empty() && first_ready.is_none() {
            first_ready = Some(started.elapsed());
        }
        if ready_at.len() == profiles {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "only {}/{profiles} Ready after 30 minutes",
            ready_at.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_ready = started.elapsed();
    let applied = applying.await.expect("apply task");
    let c = sim.counters();
    let rss_converged = rss_kib(op.pid());

    sim.reset();
    let window = Duration::from_secs(resync * 3);
    tokio::time::sleep(window).await;
    let steady = sim.counters();
    let rss_steady = rss_kib(op.pid());
    let resyncs = window.as_secs_f64() / resync as f64;

    println!("\ncloudsync-operator scale benchmark");
    println!(
        "  profiles {profiles} in {tenants} tenants, Graph latency {latency_ms} ms, operator flags {:?}, resync {resync}s",
        operator_args.join(" ")
    );
    println!("  applied all profiles in            {:>8.2} s  (32 concurrent applies)", applied.as_secs_f64());
    println!("  first profile Ready after          {:>8.2} s", first_ready.unwrap_or_default().as_secs_f64());
    println!(
        "  all profiles Ready after           {:>8.2} s  ({:.1} profiles/s)",
        all_ready.as_secs_f64(),
        profiles as f64 / all_ready.as_secs_f64()
    );
    println!("  Graph writes per profile           {:>8.2}", c.writes as f64 / profiles as f64);
    println!("  Graph reads per profile            {:>8.2}", c.reads as f64 / profiles as f64);
    println!("  token requests                     {:>8}  ({} tenants)", c.token_requests, tenants);
    println!("  throttled answers / early retries  {:>8} / {}", c.throttled, c.early_retries);
    println!("  duplicates (service principals, jobs) {} / {}", c.duplicate_service_principals, c.duplicate_jobs);
    println!(
        "  steady state over {:.0} s: writes {}, reads per profile per resync {:.2}",
        window.as_secs_f64(),
        steady.writes,
        steady.reads as f64 / profiles as f64 / resyncs
    );
    println!(
        "  operator memory (RSS)              {:>8.1} MiB converged, {:.1} MiB steady",
        rss_converged as f64 / 1024.0,
        rss_steady as f64 / 1024.0
    );
}
