//! `nats-operator`: the operator binary and its offline tools.

use std::io::Read;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nats_operator::api::crd::{ConversionEndpoint, crds_yaml};
use nats_operator::manifest::convert_stream;

/// NATS operator for Kubernetes: NatsCluster and NatsServiceRole (nats.io/v1beta1, with
/// nats.io/v1alpha2 manifests of the Go nats-operator still accepted).
#[derive(Parser, Debug)]
#[command(name = "nats-operator", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the NatsCluster and NatsServiceRole CustomResourceDefinitions as YAML.
    Crds {
        /// Namespace of the operator's Service, which serves the conversion webhook.
        #[arg(long, default_value = "nats-io")]
        namespace: String,
        /// Name of the operator's Service.
        #[arg(long, default_value = "nats-operator")]
        service: String,
    },
    /// Convert NatsCluster and NatsServiceRole manifests between API versions, offline.
    ///
    /// Reads a multi-document YAML file (or `-` for stdin) and prints it with every
    /// nats.io object converted; other documents are copied through unchanged.
    /// Converted documents are re-serialised, so their comments are not kept.
    Convert {
        /// Target apiVersion: nats.io/v1beta1 or nats.io/v1alpha2.
        #[arg(long, value_parser = ["nats.io/v1beta1", "nats.io/v1alpha2"])]
        to: String,
        /// Input file, or `-` for standard input.
        #[arg(short = 'f', long = "filename")]
        file: String,
    },
}

fn read_input(path: &str) -> std::io::Result<String> {
    if path == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(path)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { namespace, service } => {
            let endpoint = ConversionEndpoint::Service {
                namespace,
                name: service,
                port: 443,
            };
            match crds_yaml(&endpoint) {
                Ok(yaml) => {
                    print!("{yaml}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: cannot render the CRDs: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Convert { to, file } => {
            let input = match read_input(&file) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: cannot read {file}: {e}");
                    return ExitCode::from(2);
                }
            };
            match convert_stream(&input, &to) {
                Ok(out) => {
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {file}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
