//! `kubectl cloudsync ...`: kubectl runs this binary when it is on PATH. See `plugin`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    cloudsync_operator::plugin::main().await
}
