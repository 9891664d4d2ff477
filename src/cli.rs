//! Command line: `run` (the controller), `crd` (print the CRD), `sim` (the Graph simulator).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "cloudsync-operator", version, about = "Microsoft Entra cloud sync, declaratively, on Kubernetes")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller.
    Run(crate::controller::RunArgs),
    /// Print the CloudSyncProfile CustomResourceDefinition as YAML.
    Crd,
    /// Run the Microsoft Graph simulator.
    Sim(crate::sim::SimArgs),
}

impl Cli {
    pub async fn run(self) -> ExitCode {
        match self.command {
            Command::Crd => match crate::api::crd_yaml() {
                Ok(yaml) => {
                    print!("{yaml}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: cannot render the CRD: {e}");
                    ExitCode::FAILURE
                }
            },
            Command::Sim(args) => match crate::sim::run(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            },
            Command::Run(args) => match crate::controller::run(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            },
        }
    }
}
