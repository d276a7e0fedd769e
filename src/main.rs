//! The `healthlake-operator` command.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use healthlake_operator::healthlake::HealthLake;
use healthlake_operator::healthlake::sdk::{SdkHealthLake, SdkSettings};
use healthlake_operator::run::RunArgs;

/// Manage Amazon HealthLake FHIR datastores, import jobs and export jobs from Kubernetes.
#[derive(Parser)]
#[command(name = "healthlake-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator against the cluster of the current kubeconfig or service account.
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD.
    Crd {
        /// Write `<plural>.<group>.yaml` files into this directory instead of printing.
        #[arg(long)]
        output_dir: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run_operator(args).await,
        Command::Crd { output_dir } => write_crds(output_dir),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,kube_runtime=warn,aws_config=warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

async fn run_operator(args: RunArgs) -> anyhow::Result<()> {
    init_tracing();
    let client = kube::Client::try_default()
        .await
        .context("failed to connect to kubernetes")?;
    let mut settings = SdkSettings::new(args.region.clone());
    if let Some(endpoint_url) = &args.endpoint_url {
        settings = settings.with_endpoint_url(endpoint_url.clone());
    }
    let healthlake: Arc<dyn HealthLake> =
        Arc::new(SdkHealthLake::from_default_chain(settings).await);
    healthlake_operator::run::run(args, client, healthlake).await?;
    Ok(())
}

fn write_crds(output_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let documents =
        healthlake_operator::api::crd_documents().context("failed to render the crds")?;
    match output_dir {
        None => {
            let joined: Vec<&str> = documents.iter().map(|(_, yaml)| yaml.as_str()).collect();
            print!("{}", joined.join("---\n"));
        }
        Some(directory) => {
            std::fs::create_dir_all(&directory)
                .with_context(|| format!("failed to create {}", directory.display()))?;
            for (file_name, yaml) in documents {
                let path = directory.join(file_name);
                std::fs::write(&path, yaml)
                    .with_context(|| format!("failed to write {}", path.display()))?;
            }
        }
    }
    Ok(())
}
