//! Command line: `run` (the controller), `crd` (print the CRD), `sim` (the Graph simulator, in
//! builds with the default `sim` feature).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
// A flag given twice takes its last value, so wrappers can append overrides to default flags.
#[command(
    name = "cloudsync-operator",
    version,
    about = "Microsoft Entra cloud sync, declaratively, on Kubernetes",
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller.
    Run(Box<crate::controller::RunArgs>),
    /// Print the CustomResourceDefinitions (CloudSyncProfile, ProvisionRequest) as YAML.
    Crd {
        /// Only the CRD committed as this file in crds/, e.g. cloudsyncprofiles.cloudsync.io.yaml.
        #[arg(long)]
        file: Option<String>,
    },
    /// Run the Microsoft Graph simulator.
    #[cfg(feature = "sim")]
    Sim(cloudsync_sim::SimArgs),
}

impl Cli {
    pub async fn run(self) -> ExitCode {
        match self.command {
            Command::Crd { file } => match crate::api::crds_yaml(file.as_deref()) {
                Ok(yaml) => {
                    print!("{yaml}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: cannot render the CRD: {e}");
                    ExitCode::FAILURE
                }
            },
            #[cfg(feature = "sim")]
            Command::Sim(args) => match cloudsync_sim::run(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            },
            Command::Run(args) => match crate::controller::run(*args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> crate::controller::RunArgs {
        let mut argv = vec!["cloudsync-operator", "run"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Run(a) => *a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn boolean_flags_take_a_bare_switch_or_a_value() {
        assert!(!run_args(&[]).leader_election);
        assert!(run_args(&["--leader-election"]).leader_election);
        assert!(run_args(&["--leader-election=true"]).leader_election);
        assert!(!run_args(&["--leader-election=false"]).leader_election);
        assert!(run_args(&["--allow-workload-identity"]).allow_workload_identity);
        assert!(Cli::try_parse_from(["cloudsync-operator", "run", "--leader-election=maybe"]).is_err());
    }

    #[test]
    fn defaults_and_lists() {
        let a = run_args(&["--namespace", "a,b", "--namespace", "c"]);
        assert_eq!(a.namespaces, ["a", "b", "c"]);
        assert_eq!(a.resync_seconds, 300);
        assert_eq!(a.metrics_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(a.lease_duration_seconds, 15);
        assert!(Cli::try_parse_from(["cloudsync-operator", "run", "--graph-url", "not a url"]).is_err());
        assert_eq!(
            run_args(&["--resync-seconds", "2", "--resync-seconds", "30"]).resync_seconds,
            30,
            "the last one wins"
        );
    }
}
