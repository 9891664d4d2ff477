use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    cloudsync_operator::cli::Cli::parse().run().await
}
