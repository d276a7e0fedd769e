//! The `healthlake-operator` command.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use healthlake_operator::emulator::{self, EmulatorConfig};
use healthlake_operator::healthlake::HealthLake;
use healthlake_operator::healthlake::limiter::RateLimited;
use healthlake_operator::healthlake::sdk::{SdkHealthLake, SdkSettings};
use healthlake_operator::run::RunArgs;

/// Manage Amazon HealthLake FHIR datastores, import jobs and export jobs from Kubernetes.
#[derive(Parser)]
#[command(name = "healthlake-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up; boxing the large variant would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the operator against the cluster of the current kubeconfig or service account.
    Run {
        #[command(flatten)]
        args: RunArgs,
        /// Instead of connecting to a cluster, serve an in-memory Kubernetes API with the CRDs
        /// on this loopback address and run against it (with `--emulator`: no cluster and no AWS
        /// needed). Prints the kubeconfig to use with kubectl.
        #[cfg(feature = "test-apiserver")]
        #[arg(long, value_name = "ADDRESS", num_args = 0..=1, default_missing_value = "127.0.0.1:6443")]
        sandbox: Option<String>,
    },
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD.
    Crd {
        /// Write `<plural>.<group>.yaml` files into this directory instead of printing.
        #[arg(long)]
        output_dir: Option<PathBuf>,
    },
    /// Run the HealthLake emulator: AWS's HealthLake API on a loopback port, for tests and trials.
    Emulator(EmulatorArgs),
    /// Serve an in-memory Kubernetes API with the CRDs loaded, for trying the operator and
    /// kubectl without a cluster (built with the `test-apiserver` feature).
    #[cfg(feature = "test-apiserver")]
    Sandbox(SandboxArgs),
}

/// Options of `healthlake-operator sandbox`.
#[cfg(feature = "test-apiserver")]
#[derive(clap::Args)]
struct SandboxArgs {
    /// The loopback address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: String,
    /// Also write the kubeconfig for the sandbox here.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

/// Options of `healthlake-operator emulator`.
#[derive(clap::Args)]
struct EmulatorArgs {
    /// The loopback address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:4566")]
    listen: String,
    /// The default AWS region: the one the admin API seeds into when no region is given.
    /// Every request is answered in the region of its SigV4 credential scope.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// The twelve-digit account id used in ARNs.
    #[arg(long, default_value = "123456789012")]
    account_id: String,
    /// The data store quota: at most this many datastores that are not DELETED per region.
    #[arg(long, default_value_t = healthlake_operator::emulator::DEFAULT_MAX_DATASTORES,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_datastores: u32,
    /// Which jobs wait for which: `account` (one running import and one running export per
    /// region, and one running job per datastore) or `datastore` (one running job per
    /// datastore).
    #[arg(long, value_enum, default_value = "account")]
    job_concurrency: healthlake_operator::emulator::JobConcurrency,
    /// How long datastores and jobs take: `fast` (seconds) or `realistic` (AWS-like minutes).
    #[arg(long, value_enum, default_value = "fast")]
    profile: healthlake_operator::emulator::Profile,
    /// Keep the emulator's state in this file, so it survives a restart.
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Turn AWS's request-rate quotas off.
    #[arg(long)]
    no_quotas: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        #[cfg(feature = "test-apiserver")]
        Command::Run { args, sandbox } => {
            init_tracing();
            match sandbox {
                Some(address) => {
                    let (served, client) = start_sandbox(&address, None).await?;
                    run_operator(args, client).await?;
                    drop(served);
                    Ok(())
                }
                None => run_operator(args, cluster_client().await?).await,
            }
        }
        #[cfg(not(feature = "test-apiserver"))]
        Command::Run { args } => {
            init_tracing();
            run_operator(args, cluster_client().await?).await
        }
        Command::Crd { output_dir } => write_crds(output_dir),
        Command::Emulator(arguments) => run_emulator(arguments).await,
        #[cfg(feature = "test-apiserver")]
        Command::Sandbox(arguments) => run_sandbox(arguments).await,
    }
}

#[cfg(feature = "test-apiserver")]
async fn run_sandbox(arguments: SandboxArgs) -> anyhow::Result<()> {
    init_tracing();
    let (_served, _client) = start_sandbox(&arguments.listen, arguments.kubeconfig).await?;
    tokio::signal::ctrl_c()
        .await
        .context("failed to wait for ctrl-c")?;
    Ok(())
}

/// Serves the in-memory Kubernetes API with the CRDs and a `default` namespace on `address`,
/// prints how to reach it, and returns it with a client for it.
#[cfg(feature = "test-apiserver")]
async fn start_sandbox(
    address: &str,
    kubeconfig: Option<PathBuf>,
) -> anyhow::Result<(healthlake_operator::apiserver::ServedApi, kube::Client)> {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, PostParams};

    let server = healthlake_operator::apiserver::ApiServer::new();
    for (file_name, yaml) in healthlake_operator::api::crd_documents()? {
        server.load_crds_yaml(&yaml, &file_name)?;
    }
    let default = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some("default".to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    // The namespace may exist already; either way it exists afterwards.
    let _ = Api::<Namespace>::all(server.client())
        .create(&PostParams::default(), &default)
        .await;
    let served = server.serve(address).await?;
    let kubeconfig = match kubeconfig {
        Some(path) => {
            std::fs::copy(served.kubeconfig_path(), &path)
                .with_context(|| format!("failed to write {}", path.display()))?;
            path
        }
        None => served.kubeconfig_path().to_path_buf(),
    };
    println!("in-memory kubernetes api on {}", served.url());
    println!("export KUBECONFIG={}", kubeconfig.display());
    Ok((served, server.client()))
}

async fn run_emulator(arguments: EmulatorArgs) -> anyhow::Result<()> {
    use healthlake_operator::emulator::Quotas;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let mut config = EmulatorConfig {
        region: arguments.region,
        account_id: arguments.account_id,
        state_file: arguments.state_file,
        ..EmulatorConfig::default()
    }
    .with_profile(arguments.profile)
    .with_max_datastores(Some(arguments.max_datastores))
    .with_job_concurrency(arguments.job_concurrency);
    if arguments.no_quotas {
        config.quotas = Quotas::Off;
    }
    let running = emulator::start(config, &arguments.listen).await?;
    tracing::info!(endpoint = %running.endpoint_url(), "healthlake emulator listening");
    tokio::signal::ctrl_c()
        .await
        .context("failed to wait for ctrl-c")?;
    running.shutdown().await?;
    Ok(())
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

async fn cluster_client() -> anyhow::Result<kube::Client> {
    kube::Client::try_default()
        .await
        .context("failed to connect to kubernetes")
}

async fn run_operator(args: RunArgs, client: kube::Client) -> anyhow::Result<()> {
    let mut settings = SdkSettings::new(args.region.clone());
    // Kept alive for as long as the operator runs.
    let mut in_process_emulator = None;
    let sdk = if args.emulator {
        let config = EmulatorConfig {
            region: args.region.clone(),
            ..EmulatorConfig::default()
        }
        .with_profile(args.emulator_profile);
        let running = emulator::start(config, "127.0.0.1:0")
            .await
            .context("failed to start the in-process emulator")?;
        tracing::warn!(endpoint = %running.endpoint_url(), "running against the in-process HealthLake emulator: nothing reaches AWS");
        settings = settings.with_endpoint_url(running.endpoint_url());
        in_process_emulator = Some(running);
        SdkHealthLake::with_static_credentials(settings)
    } else {
        if let Some(endpoint_url) = &args.endpoint_url {
            settings = settings.with_endpoint_url(endpoint_url.clone());
        }
        SdkHealthLake::from_default_chain(settings).await
    };
    let limits = args
        .rate_limits
        .config()
        .context("invalid rate limit flags")?;
    let healthlake: Arc<dyn HealthLake> =
        Arc::new(RateLimited::new(sdk, limits).context("invalid rate limit flags")?);
    healthlake_operator::run::run(args, client, healthlake).await?;
    if let Some(running) = in_process_emulator {
        running.shutdown().await?;
    }
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
