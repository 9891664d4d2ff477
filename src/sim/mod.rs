//! The Microsoft Graph simulator (placeholder until the simulator lands).

/// Command-line arguments of `cloudsync-operator sim`.
#[derive(clap::Args, Debug)]
pub struct SimArgs {}

/// Runs the simulator until interrupted.
pub async fn run(_args: SimArgs) -> anyhow_free::Result {
    Err("the simulator is not built yet".into())
}

mod anyhow_free {
    pub type Result = std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;
}
