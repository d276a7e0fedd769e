//! The `healthlake-operator` command.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Manage Amazon HealthLake FHIR datastores, import jobs and export jobs from Kubernetes.
#[derive(Parser)]
#[command(name = "healthlake-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD.
    Crd {
        /// Write `<plural>.<group>.yaml` files into this directory instead of printing.
        #[arg(long)]
        output_dir: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { output_dir } => write_crds(output_dir),
    }
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
