//! The Graph client against the Graph simulator over real HTTP: every typed call the reconciler
//! makes, error classification, Retry-After, backoff, timeouts, replication lag, the token cache
//! and workload identity.

use std::time::{Duration, Instant};

use base64::Engine;
use cloudsync_operator::api::Cloud;
use cloudsync_operator::graph::model::{PASSWORD_HASH_TEMPLATE, PROVISIONING_TEMPLATE};
use cloudsync_operator::graph::{
    Cause, ClientConfig, Credential, ErrorKind, GraphClient, Overrides, RetryPolicy, Source, Tenant, json_secret,
};
use cloudsync_sim::{FaultSpec, Registration, SimHandle, Simulator};
use secrecy::SecretString;
use serde_json::json;

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT: &str = "aaaaaaaa-bbbb-cccc-dddd-000000000001";
const SECRET: &str = "client~secret.value-42";

async fn sim() -> SimHandle {
    Simulator::builder().tenant(TENANT, CLIENT, SECRET).speed(60.0).start().await.expect("simulator")
}

fn config(sim: &SimHandle) -> ClientConfig {
    let url = url::Url::parse(&sim.url()).unwrap();
    ClientConfig {
        overrides: Overrides { graph: Some(url.clone()), login: Some(url) },
        timeout: Duration::from_secs(5),
        retry: RetryPolicy { base_backoff: Duration::from_millis(50), ..RetryPolicy::default() },
    }
}

fn secret_credential(secret: &str) -> Credential {
    Credential::ClientSecret { client_id: CLIENT.into(), secret: SecretString::from(secret.to_string()) }
}

fn tenant(sim: &SimHandle) -> Tenant {
    GraphClient::new(config(sim)).unwrap().tenant(Cloud::Global, TENANT, secret_credential(SECRET))
}

fn fault(spec: &str) -> FaultSpec {
    FaultSpec::parse_cli(spec).expect("fault spec")
}

#[tokio::test]
async fn the_whole_cloud_sync_procedure_through_typed_calls() {
    let sim = sim().await;
    let g = tenant(&sim);

    let org = g.organization().await.unwrap();
    assert_eq!(org.id, TENANT);
    assert_eq!(org.on_premises_sync_enabled, None, "never synced");
    g.enable_on_premises_sync(&org.id).await.unwrap();
    assert_eq!(g.organization().await.unwrap().on_premises_sync_enabled, Some(true));

    assert!(g.find_cloud_sync_service_principals("O'Brien.com").await.unwrap().is_empty());
    let created = g.instantiate_cloud_sync("O'Brien.com").await.unwrap();
    let sp = &created.service_principal.id;
    assert_eq!(created.application.app_id, created.service_principal.app_id);
    let found = g.find_cloud_sync_service_principals("O'Brien.com").await.unwrap();
    assert_eq!(found.len(), 1, "lookup by template + quoted display name");
    assert_eq!(&found[0].id, sp);
    assert_eq!(g.service_principal(sp, true).await.unwrap().display_name.as_deref(), Some("O'Brien.com"));
    let app = g.find_application_by_app_id(created.application.app_id.as_deref().unwrap()).await.unwrap().unwrap();
    assert_eq!(app.id, created.application.id);
    assert_eq!(g.application(&app.id).await.unwrap().id, app.id);

    let templates = g.list_sync_templates(sp, true).await.unwrap();
    assert!(templates.iter().any(|t| t.id == PROVISIONING_TEMPLATE));
    assert!(templates.iter().any(|t| t.id == PASSWORD_HASH_TEMPLATE));

    let prov = g.create_job(sp, PROVISIONING_TEMPLATE, true).await.unwrap();
    let phs = g.create_job(sp, PASSWORD_HASH_TEMPLATE, true).await.unwrap();
    assert_eq!(prov.id.split('.').count(), 3, "real job ids have three parts: {}", prov.id);
    assert_eq!(prov.schedule_state().map(|s| s.as_str()), Some("Disabled"));
    assert_eq!(prov.code().map(|c| c.as_str()), Some("NotRun"));
    assert_eq!(prov.schedule.as_ref().unwrap().interval.unwrap().as_secs(), 922_337_203_685, "TimeSpan.MaxValue");
    let jobs = g.list_jobs(sp, false).await.unwrap();
    assert_eq!(jobs.len(), 2);

    let secrets = [
        json_secret("Domain", &json!({"domain": "contoso.com"})),
        json_secret("AppKey", &json!({"appKeyScenario": "AD2AADPasswordHash"})),
    ];
    g.put_secrets(sp, &secrets, true).await.unwrap();
    let mut keys = g.get_secret_keys(sp).await.unwrap();
    keys.sort();
    assert_eq!(keys, ["AppKey", "Domain"]);
    let state = sim.state(TENANT).unwrap().to_string();
    assert!(state.contains(r#"{\"domain\":\"contoso.com\"}"#), "stored double-encoded: {state}");

    g.start_job(sp, &prov.id).await.unwrap();
    g.start_job(sp, &phs.id).await.unwrap();
    assert_eq!(g.get_job(sp, &prov.id).await.unwrap().code().map(|c| c.as_str()), Some("Active"));
    g.pause_job(sp, &phs.id).await.unwrap();
    let paused = g.get_job(sp, &phs.id).await.unwrap();
    assert_eq!(
        (paused.schedule_state().map(|s| s.as_str()), paused.code().map(|c| c.as_str())),
        (Some("Paused"), Some("Paused"))
    );
    g.restart_job(sp, &prov.id, "Watermark, Escrows, QuarantineState").await.unwrap();
    g.validate_job_credentials(sp, &prov.id, PROVISIONING_TEMPLATE).await.unwrap();
    assert_eq!(sim.counters().redundant_starts, 0);

    g.delete_job(sp, &phs.id).await.unwrap();
    assert_eq!(g.list_jobs(sp, false).await.unwrap().len(), 1);
    g.delete_application(&app.id).await.unwrap();
    let gone = g.service_principal(sp, false).await.unwrap_err();
    assert_eq!(gone.kind, ErrorKind::NotFound, "deleting the application removes its service principal");

    // Every call carried a client-request-id; retries aside, each call its own.
    let calls: Vec<_> = sim.calls().into_iter().filter(|c| c.api == "graph").collect();
    assert!(calls.iter().all(|c| !c.client_request_id.is_empty()));
    let mut ids: Vec<_> = calls.iter().map(|c| c.client_request_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), calls.len());
}

#[tokio::test]
async fn odd_job_ids_are_opaque_and_url_encoded() {
    let sim = sim().await;
    let g = tenant(&sim);
    let sp = g.instantiate_cloud_sync("contoso.com").await.unwrap().service_principal.id;
    for id in ["AD2AADProvisioning.fc96887f36da47508c935c28a0c0b6da", "AD2AADPasswordHash.a b#c?d/e"] {
        let template = id.split('.').next().unwrap();
        sim.seed_job(TENANT, &sp, id, template).unwrap();
        assert_eq!(g.get_job(&sp, id).await.unwrap().id, id);
        g.start_job(&sp, id).await.unwrap();
    }
}

#[tokio::test]
async fn errors_carry_kind_code_message_and_request_id() {
    let sim = sim().await;
    let g = tenant(&sim);

    let e = g.service_principal("00000000-0000-0000-0000-00000000dead", false).await.unwrap_err();
    assert_eq!((e.kind, e.source, e.status), (ErrorKind::NotFound, Source::Graph, Some(404)));
    assert_eq!(e.code.as_deref(), Some("Request_ResourceNotFound"));
    assert!(e.request_id.as_deref().is_some_and(|r| !r.is_empty()), "{e:?}");
    assert!(e.to_string().starts_with("servicePrincipals.get failed: HTTP 404 Request_ResourceNotFound"), "{e}");

    let sp = g.instantiate_cloud_sync("contoso.com").await.unwrap().service_principal.id;
    let e = g.create_job(&sp, "NoSuchTemplate", false).await.unwrap_err();
    assert_eq!((e.kind, e.status), (ErrorKind::NeedsUserAction, Some(400)));
    assert!(g.list_jobs(&sp, false).await.unwrap().is_empty(), "nothing was created");

    // An app without the sync permission: sync APIs answer 401, not 403 (reference §4.1).
    sim.register(Registration::new(TENANT, "aaaaaaaa-bbbb-cccc-dddd-000000000002", "other-secret").without_sync())
        .unwrap();
    let unprivileged = GraphClient::new(config(&sim)).unwrap().tenant(
        Cloud::Global,
        TENANT,
        Credential::ClientSecret {
            client_id: "aaaaaaaa-bbbb-cccc-dddd-000000000002".into(),
            secret: SecretString::from("other-secret"),
        },
    );
    let e = unprivileged.list_jobs(&sp, false).await.unwrap_err();
    assert_eq!((e.kind, e.status), (ErrorKind::Unauthorized, Some(401)));
}

#[tokio::test]
async fn refused_credentials_are_classified_and_never_echoed() {
    let sim = sim().await;
    let client = GraphClient::new(config(&sim)).unwrap();

    let wrong = client.tenant(Cloud::Global, TENANT, secret_credential("wrong-secret-value"));
    let e = wrong.organization().await.unwrap_err();
    assert_eq!((e.kind, e.source), (ErrorKind::Unauthorized, Source::Login));
    assert_eq!(e.code.as_deref(), Some("invalid_client"));
    assert!(e.message.contains("AADSTS7000215"), "{e}");
    for shown in [e.to_string(), format!("{e:?}")] {
        assert!(!shown.contains("wrong-secret-value"), "secret leaked: {shown}");
    }

    let unknown_tenant =
        client.tenant(Cloud::Global, "99999999-2222-3333-4444-555555555555", secret_credential(SECRET));
    let e = unknown_tenant.check_credentials().await.unwrap_err();
    assert_eq!((e.kind, e.source), (ErrorKind::Unauthorized, Source::Login));
    assert!(e.message.contains("AADSTS90002"), "{e}");
    assert!(!format!("{e:?}").contains(SECRET));
}

#[tokio::test]
async fn retry_after_is_honoured_exactly_and_never_early() {
    let sim = sim().await;
    let g = tenant(&sim);
    let sp = g.instantiate_cloud_sync("contoso.com").await.unwrap().service_principal.id;
    sim.add_fault(fault(
        "kind=status,status=429,retryAfter=2,method=GET,path=/beta/servicePrincipals/*/synchronization/jobs,times=2",
    ))
    .unwrap();
    let started = Instant::now();
    g.list_jobs(&sp, false).await.unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(4), "two Retry-After: 2 waits, took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(6), "no extra delay on top of Retry-After: {elapsed:?}");
    let c = sim.counters();
    assert_eq!((c.throttled, c.early_retries), (2, 0));
    // The retries are one logical call: same client-request-id three times.
    let ids: Vec<_> = sim
        .calls()
        .into_iter()
        .filter(|c| c.path.ends_with("/jobs") && c.method == "GET")
        .map(|c| c.client_request_id)
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|i| *i == ids[0]));

    // 503 with Retry-After is throttling too.
    sim.add_fault(fault("kind=status,status=503,retryAfter=1,method=GET,path=/beta/organization,times=1")).unwrap();
    let started = Instant::now();
    g.organization().await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(sim.counters().early_retries, 0);
}

#[tokio::test]
async fn a_long_retry_after_is_handed_back_instead_of_blocking() {
    let sim = sim().await;
    let g = tenant(&sim);
    sim.add_fault(fault("kind=status,status=429,retryAfter=120,method=GET,path=/beta/organization,times=1")).unwrap();
    let started = Instant::now();
    let e = g.organization().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(e.kind, ErrorKind::Throttled);
    assert_eq!(e.retry_after, Some(Duration::from_secs(120)));
    assert!(e.is_transient());
    assert!(e.not_processed(), "429");

    // Until then the gate is closed: calls for the tenant are handed back without being sent.
    let before = sim.calls().len();
    let e = g.list_jobs("00000000-0000-0000-0000-000000000001", false).await.unwrap_err();
    assert_eq!(
        (e.kind, e.cause, e.status, e.code.as_deref()),
        (ErrorKind::Throttled, Cause::RetryAfterPending, None, None)
    );
    assert!(e.retry_after.is_some_and(|left| left > Duration::from_secs(100)), "{e:?}");
    assert!(e.not_processed());
    assert_eq!(sim.calls().len(), before, "nothing reached the simulator");
}

#[tokio::test]
async fn a_write_can_wait_for_the_gate_and_then_be_sent_without_any_wait() {
    let sim = sim().await;
    let g = tenant(&sim);
    g.check_credentials().await.unwrap();
    sim.add_fault(fault("kind=status,status=429,retryAfter=2,method=GET,path=/beta/organization,times=1")).unwrap();
    let started = Instant::now();

    // A fail-fast call does not wait out even its own 429: the caller decides.
    let e = g.fail_fast().organization().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!((e.kind, e.cause, e.status), (ErrorKind::Throttled, Cause::ErrorStatus, Some(429)));
    assert_eq!(e.retry_after, Some(Duration::from_secs(2)));
    assert!(e.not_processed());
    let pending = g.retry_after_pending().expect("the 429 closed the gate");
    assert!(pending > Duration::from_secs(1) && pending <= Duration::from_secs(2), "{pending:?}");

    // While the gate is closed a fail-fast write is refused at once and never sent.
    let e = g.fail_fast().instantiate_cloud_sync("contoso.com").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(
        (e.kind, e.cause, e.status, e.code.as_deref()),
        (ErrorKind::Throttled, Cause::RetryAfterPending, None, None)
    );
    assert!(e.not_processed() && e.is_transient());
    assert!(e.retry_after.is_some_and(|left| left > Duration::from_secs(1) && left <= Duration::from_secs(2)));
    let instantiates = || sim.calls().into_iter().filter(|c| c.path.ends_with("/instantiate")).count();
    assert_eq!(instantiates(), 0);

    g.until_open().await.expect("a short wait is slept");
    assert!(started.elapsed() >= Duration::from_secs(2), "waited out Retry-After: {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(3), "and no longer: {:?}", started.elapsed());
    assert_eq!(g.retry_after_pending(), None);
    let sent = Instant::now();
    g.fail_fast().instantiate_cloud_sync("contoso.com").await.unwrap();
    assert!(sent.elapsed() < Duration::from_secs(1));
    assert_eq!(instantiates(), 1);
    assert_eq!(sim.counters().early_retries, 0);
}

#[tokio::test]
async fn a_refused_connection_is_typed_and_repeatable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let g = GraphClient::new(ClientConfig {
        overrides: Overrides { graph: Some(url.clone()), login: Some(url) },
        timeout: Duration::from_secs(2),
        retry: RetryPolicy { base_backoff: Duration::from_millis(10), ..RetryPolicy::default() },
    })
    .unwrap()
    .tenant(Cloud::Global, TENANT, secret_credential(SECRET));
    let e = g.restart_job("sp", "job", "Full").await.unwrap_err();
    assert_eq!(
        (e.kind, e.source, e.cause, e.code.as_deref()),
        (ErrorKind::Transient, Source::Transport, Cause::Connect, None)
    );
    assert!(e.is_connect_failure() && e.not_processed() && e.is_transient());
    assert!(e.message.contains("Connection refused"), "says why: {e}");
    assert!(!e.to_string().contains(SECRET));
}

#[tokio::test]
async fn server_errors_are_retried_for_idempotent_calls_only() {
    let sim = sim().await;
    let g = tenant(&sim);
    let sp = g.instantiate_cloud_sync("contoso.com").await.unwrap().service_principal.id;

    sim.add_fault(fault(
        "kind=status,status=503,method=GET,path=/beta/servicePrincipals/*/synchronization/jobs,times=2",
    ))
    .unwrap();
    assert!(g.list_jobs(&sp, false).await.unwrap().is_empty());
    sim.add_fault(fault(
        "kind=status,status=500,method=PUT,path=/beta/servicePrincipals/*/synchronization/secrets,times=1",
    ))
    .unwrap();
    g.put_secrets(&sp, &[json_secret("Domain", &json!({"domain": "contoso.com"}))], false).await.unwrap();

    // A POST that failed with 5xx may have been applied: the caller must look before repeating.
    sim.add_fault(fault(
        "kind=status,status=502,method=POST,path=/beta/servicePrincipals/*/synchronization/jobs,times=1",
    ))
    .unwrap();
    let e = g.create_job(&sp, PROVISIONING_TEMPLATE, false).await.unwrap_err();
    assert_eq!((e.kind, e.status), (ErrorKind::Transient, Some(502)));
    let posts = sim.calls().into_iter().filter(|c| c.method == "POST" && c.path.ends_with("/jobs")).count();
    assert_eq!(posts, 1, "not retried");
}

#[tokio::test]
async fn a_slow_answer_times_out_and_gets_are_retried() {
    let sim = sim().await;
    let mut cfg = config(&sim);
    cfg.timeout = Duration::from_millis(400);
    let g = GraphClient::new(cfg).unwrap().tenant(Cloud::Global, TENANT, secret_credential(SECRET));
    g.check_credentials().await.unwrap();
    sim.add_fault(fault("kind=latency,ms=1500,method=GET,path=/beta/organization,times=1")).unwrap();
    let started = Instant::now();
    g.organization().await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(1500), "did not wait for the slow answer");

    sim.add_fault(fault("kind=latency,ms=1500,method=POST,path=/beta/applicationTemplates/*/instantiate,times=1"))
        .unwrap();
    let e = g.instantiate_cloud_sync("contoso.com").await.unwrap_err();
    assert_eq!((e.kind, e.source, e.cause), (ErrorKind::Transient, Source::Transport, Cause::Timeout));
    assert_eq!(e.code, None, "no invented Graph code");
    assert!(!e.not_processed(), "a timed-out POST may have been applied");
    assert_eq!(e.to_string(), "applicationTemplates.instantiate failed: no complete answer within 400ms");
}

#[tokio::test]
async fn replication_lag_after_creation_is_waited_out_when_asked() {
    let sim = sim().await;
    let g = tenant(&sim);
    // 12 s of service time at speed 60 is 0.2 s of real time, well inside the retry budget.
    sim.add_fault(fault("kind=not-found-after-create,seconds=12")).unwrap();
    let sp = g.instantiate_cloud_sync("contoso.com").await.unwrap().service_principal.id;
    let e = g.list_jobs(&sp, false).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(g.list_jobs(&sp, true).await.unwrap().is_empty(), "eventual calls retry through the window");
}

#[tokio::test]
async fn concurrent_callers_share_one_token_request() {
    let sim = sim().await;
    let g = tenant(&sim);
    let calls = (0..20).map(|_| {
        let g = g.clone();
        tokio::spawn(async move { g.organization().await })
    });
    for c in futures::future::join_all(calls).await {
        c.unwrap().unwrap();
    }
    assert_eq!(sim.counters().token_requests, 1);

    // A rotated secret is a new credential: its own token.
    let rotated = GraphClient::new(config(&sim)).unwrap();
    rotated.tenant(Cloud::Global, TENANT, secret_credential(SECRET)).check_credentials().await.unwrap();
    rotated.tenant(Cloud::Global, TENANT, secret_credential(SECRET)).check_credentials().await.unwrap();
    assert_eq!(sim.counters().token_requests, 2, "one more for the new client, then cached");
}

#[tokio::test]
async fn tokens_are_refreshed_before_they_expire() {
    let sim = Simulator::builder()
        .tenant(TENANT, CLIENT, SECRET)
        .token_lifetime(Duration::from_secs(2))
        .start()
        .await
        .unwrap();
    let g = tenant(&sim);
    g.organization().await.unwrap();
    g.organization().await.unwrap();
    assert_eq!(sim.counters().token_requests, 1);
    // Refresh is due after three quarters of the lifetime, before Graph would reject it.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    g.organization().await.unwrap();
    assert_eq!(sim.counters().token_requests, 2);
    assert!(sim.calls().iter().all(|c| c.status < 400), "no call was made with an expired token");
}

fn federated_token(issuer: &str, subject: &str) -> String {
    let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(json!({"alg": "RS256", "typ": "JWT"})),
        b64(json!({"iss": issuer, "sub": subject, "aud": ["api://AzureADTokenExchange"], "exp": 4_000_000_000u64}))
    )
}

#[tokio::test]
async fn workload_identity_reads_the_token_file_at_every_request() {
    const WI_CLIENT: &str = "aaaaaaaa-bbbb-cccc-dddd-00000000000f";
    const ISSUER: &str = "https://oidc.example.test/cluster";
    let sim = Simulator::builder()
        .register(
            Registration::new(TENANT, WI_CLIENT, "unused")
                .with_federated(ISSUER, "system:serviceaccount:cloudsync-system:cloudsync-operator"),
        )
        .token_lifetime(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    std::fs::write(&file, federated_token(ISSUER, "system:serviceaccount:cloudsync-system:cloudsync-operator"))
        .unwrap();
    let g = GraphClient::new(config(&sim)).unwrap().tenant(
        Cloud::Global,
        TENANT,
        Credential::Federated { client_id: WI_CLIENT.into(), token_file: file.clone() },
    );
    g.organization().await.unwrap();

    // kubelet rotates the file; the next token request must present the new content.
    std::fs::write(&file, federated_token(ISSUER, "system:serviceaccount:other:intruder")).unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    let e = g.organization().await.unwrap_err();
    assert_eq!((e.kind, e.source), (ErrorKind::Unauthorized, Source::Login));
    assert!(e.message.contains("AADSTS70021"), "{e}");

    std::fs::remove_file(&file).unwrap();
    let e = g.check_credentials().await.unwrap_err();
    assert_eq!(
        (e.kind, e.source, e.cause, e.code.as_deref()),
        (ErrorKind::Unauthorized, Source::Login, Cause::TokenFileUnreadable, None)
    );
    assert!(e.message.contains("azure-identity-token"), "names the file: {e}");
    assert!(e.not_processed(), "no token, so nothing went to Graph");
}

#[tokio::test]
async fn the_clouds_scope_is_requested_even_through_overrides() {
    let sim = sim().await;
    let client = GraphClient::new(config(&sim)).unwrap();
    for (cloud, scope) in [
        (Cloud::Global, "https://graph.microsoft.com/.default"),
        (Cloud::UsGov, "https://graph.microsoft.us/.default"),
        (Cloud::UsGovDoD, "https://dod-graph.microsoft.us/.default"),
        (Cloud::China, "https://microsoftgraph.chinacloudapi.cn/.default"),
    ] {
        let t = client.tenant(cloud, TENANT, secret_credential(SECRET));
        assert_eq!(t.endpoints().scope, scope, "{cloud:?}");
        t.organization().await.unwrap_or_else(|e| panic!("{cloud:?}: {e}"));
    }
}

/// What a gateway or a broken server answers instead of Graph's JSON: a page, nothing, half a
/// list, or far more than any Graph answer. Each is a typed error that says what came, repeats
/// none of it, and a huge body is refused at the cap instead of being held in memory.
#[tokio::test]
async fn hostile_bodies_are_typed_errors_and_huge_ones_are_cut_at_the_cap() {
    let sim = sim().await;
    let g = tenant(&sim);
    let sp = g.instantiate_cloud_sync("contoso.com").await.unwrap().service_principal.id;
    let jobs = "method=GET,path=/beta/servicePrincipals/*/synchronization/jobs";
    let unusable = |e: &cloudsync_operator::graph::GraphError| {
        assert_eq!(
            (e.cause, e.source, e.status, e.code.as_deref()),
            (Cause::UnusableAnswer, Source::Graph, Some(200), None)
        );
        assert!(!e.message.contains("<html") && !e.message.contains(SECRET), "{e}");
    };

    sim.add_fault(fault(&format!("kind=body,body=html,{jobs},times=1"))).unwrap();
    let e = g.list_jobs(&sp, false).await.unwrap_err();
    unusable(&e);
    assert!(e.message.starts_with("cannot read the response (text/html, "), "{e}");

    sim.add_fault(fault(&format!("kind=body,body=empty,{jobs},times=1"))).unwrap();
    let e = g.list_jobs(&sp, false).await.unwrap_err();
    unusable(&e);
    assert!(e.message.contains("(application/json, 0 bytes)"), "{e}");

    sim.add_fault(fault(&format!("kind=body,body=truncated,{jobs},times=1"))).unwrap();
    let e = g.list_jobs(&sp, false).await.unwrap_err();
    unusable(&e);
    assert!(e.message.contains("EOF"), "{e}");

    // A gateway's page on an error status keeps the status's meaning and names what came.
    sim.add_fault(fault(&format!("kind=body,body=html,status=502,{jobs}"))).unwrap();
    let e = g.list_jobs(&sp, false).await.unwrap_err();
    assert_eq!(
        (e.kind, e.cause, e.status, e.code.as_deref()),
        (ErrorKind::Transient, Cause::ErrorStatus, Some(502), None)
    );
    assert!(e.message.starts_with("the answer is not a Graph error (text/html, "), "{e}");
    assert!(!e.message.contains("Bad Gateway"), "{e}");
    sim.clear_faults();

    // The same well-formed list under the cap is read; past it, refused at the cap.
    sim.add_fault(fault(&format!("kind=body,body=huge,bytes=1048576,{jobs},times=1"))).unwrap();
    assert!(g.list_jobs(&sp, false).await.unwrap().is_empty(), "a 1 MiB list of nothing is read");
    sim.add_fault(fault(&format!("kind=body,body=huge,bytes={},{jobs},times=1", 256u64 << 20))).unwrap();
    let started = Instant::now();
    let e = g.list_jobs(&sp, false).await.unwrap_err();
    unusable(&e);
    assert!(e.message.contains("larger than the 16 MiB the client reads"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "stopped at the cap, not after 256 MiB: {:?}",
        started.elapsed()
    );

    // An error status with a huge body is classified by its status alone.
    sim.add_fault(fault(&format!("kind=body,body=huge,status=404,{jobs},times=1"))).unwrap();
    let e = g.list_jobs(&sp, false).await.unwrap_err();
    assert_eq!(
        (e.kind, e.cause, e.status, e.code.as_deref()),
        (ErrorKind::NotFound, Cause::ErrorStatus, Some(404), None)
    );
    assert_eq!(e.message, "");

    // Afterwards the client is fine.
    assert!(g.list_jobs(&sp, false).await.unwrap().is_empty());
}
