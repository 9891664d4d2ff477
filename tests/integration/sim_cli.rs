//! The `sim` subcommand of the built binary (the simulator itself is tested in its own crate, sim/).

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const BIN: &str = env!("CARGO_BIN_EXE_cloudsync-operator");
const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT: &str = "aaaaaaaa-bbbb-cccc-dddd-000000000001";
const SECRET: &str = "s3cret~value.with:colon";
const SCOPE: &str = "https://graph.microsoft.com/.default";

fn spawn(args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(BIN)
        .arg("sim")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the binary");
    let stdout = child.stdout.take().expect("stdout");
    (child, BufReader::new(stdout).lines())
}

async fn line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("line within 10 s")
        .expect("read stdout")
        .expect("a line")
}

async fn token(http: &reqwest::Client, base: &str, tenant: &str, client: &str, secret: &str) -> String {
    let r = http
        .post(format!("{base}/{tenant}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", secret),
            ("scope", SCOPE),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    body["access_token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn starts_with_tenant_and_fault_flags() {
    let (mut child, mut lines) = spawn(&[
        "--addr",
        "127.0.0.1:0",
        "--tenant",
        &format!("{TENANT}:{CLIENT}:{SECRET}"),
        "--speed",
        "100",
        "--fault",
        "tenant=*,method=GET,path=/beta/organization,kind=status,status=503,times=1",
    ]);
    let first = line(&mut lines).await;
    let base = first.strip_prefix("graph simulator listening on ").expect(&first).to_owned();
    assert!(base.starts_with("http://127.0.0.1:") && !base.ends_with(":0"), "{base}");
    let http = reqwest::Client::new();
    let t = token(&http, &base, TENANT, CLIENT, SECRET).await;
    let get = || http.get(format!("{base}/beta/organization")).bearer_auth(&t).send();
    assert_eq!(get().await.unwrap().status(), 503);
    assert_eq!(get().await.unwrap().status(), 200);
    let health: Value = http.get(format!("{base}/_sim/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["speed"], 100.0);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn demo_tenant_is_printed() {
    let (mut child, mut lines) = spawn(&[]);
    let base =
        line(&mut lines).await.strip_prefix("graph simulator listening on ").map(str::to_owned).expect("startup line");
    let mut creds = Vec::new();
    for _ in 0..3 {
        let l = line(&mut lines).await;
        creds.push(l.split_once(':').map(|(_, v)| v.trim().to_owned()).expect(&l));
    }
    let http = reqwest::Client::new();
    let t = token(&http, &base, &creds[0], &creds[1], &creds[2]).await;
    let org: Value =
        http.get(format!("{base}/v1.0/organization")).bearer_auth(&t).send().await.unwrap().json().await.unwrap();
    assert_eq!(org["value"][0]["id"], creds[0].as_str());
    child.kill().await.unwrap();
}

#[tokio::test]
async fn bad_flags_fail() {
    for args in [&["--fault", "kind=nope"][..], &["--tenant", "only-two:parts"][..], &["--speed", "0"][..]] {
        let out = Command::new(BIN).arg("sim").args(args).output().await.unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("error"), "{args:?}");
    }
}
