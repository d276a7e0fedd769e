//! The `healthlake-operator` command.
//!
//! The production build (default features) has `run` and `crd` only. Builds with the `emulator`
//! feature add the `emulator` command and `run --emulator`; with `test-apiserver`, the `sandbox`
//! command; with `trial` (both), the `trial` command: everything in one process, for a first try.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use healthlake_operator::healthlake::sdk::{SdkHealthLake, SdkSettings};
use healthlake_operator::run::logging::{self, LogFormat};
use healthlake_operator::run::{DEFAULT_METRICS_ADDRESS, Operator, RunArgs, shutdown_signal};

/// Manage Amazon HealthLake FHIR datastores, import jobs and export jobs from Kubernetes.
#[derive(Parser)]
#[command(name = "healthlake-operator", version, about)]
struct Cli {
    /// How log lines look on stderr: `text` (readable) or `json` (one object per line).
    #[arg(
        long,
        global = true,
        env = "HEALTHLAKE_OPERATOR_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up; boxing the large variants would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the operator against the cluster of the current kubeconfig or service account.
    Run {
        #[command(flatten)]
        args: RunArgs,
        #[cfg(feature = "emulator")]
        #[command(flatten)]
        emulator: EmulatorFlags,
    },
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD.
    Crd {
        /// Write `<plural>.<group>.yaml` files into this directory instead of printing.
        #[arg(long)]
        output_dir: Option<PathBuf>,
    },
    /// Run the HealthLake emulator: AWS's HealthLake API on a loopback port, for tests and trials.
    #[cfg(feature = "emulator")]
    Emulator(EmulatorArgs),
    /// Serve an in-memory Kubernetes API with the CRDs loaded, for trying kubectl without a
    /// cluster.
    #[cfg(feature = "test-apiserver")]
    Sandbox(SandboxArgs),
    /// Try the operator with neither a cluster nor AWS: an in-memory Kubernetes API, the
    /// HealthLake emulator and the controllers in one process. Prints the KUBECONFIG to use.
    #[cfg(all(feature = "emulator", feature = "test-apiserver"))]
    Trial(TrialArgs),
}

/// `run` flags of builds with the emulator.
#[cfg(feature = "emulator")]
#[derive(clap::Args)]
struct EmulatorFlags {
    /// Start the HealthLake emulator in-process and send every HealthLake call to it, to try the
    /// operator on a cluster without AWS. Nothing reaches AWS in this mode.
    #[arg(long)]
    emulator: bool,
    /// With `--emulator`: how long emulated datastores and jobs take, `fast` (seconds) or
    /// `realistic` (AWS-like minutes).
    #[arg(long, value_enum, default_value = "fast")]
    emulator_profile: healthlake_operator::emulator::Profile,
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

/// Options of `healthlake-operator trial`.
#[cfg(all(feature = "emulator", feature = "test-apiserver"))]
#[derive(clap::Args)]
struct TrialArgs {
    /// The loopback address and port of the in-memory Kubernetes API (port 0: a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Also write the kubeconfig here, so that it stays the same across restarts.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// How long emulated datastores and jobs take, `fast` (seconds) or `realistic` (AWS-like
    /// minutes).
    #[arg(long, value_enum, default_value = "fast")]
    emulator_profile: healthlake_operator::emulator::Profile,
    #[command(flatten)]
    run: RunArgs,
}

/// Options of `healthlake-operator emulator`.
#[cfg(feature = "emulator")]
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
    /// Keep the emulator's state in this file, so that it survives a restart.
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Turn AWS's request-rate quotas off.
    #[arg(long)]
    no_quotas: bool,
    /// Run the emulator's clock this many times faster than real time: phases, quota windows
    /// and retention all shrink by this factor (benchmarks fit an hour into a minute).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    clock_speed: u32,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match execute(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, in the chosen log format; no backtrace.
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        #[cfg(feature = "emulator")]
        Command::Run { args, emulator } if emulator.emulator => {
            let (sdk, running) = in_process_emulator(&args.region, emulator.emulator_profile)
                .await
                .context("failed to start the in-process emulator")?;
            run_operator(args, production_address(), cluster_client().await?, sdk).await?;
            running.shutdown().await?;
            Ok(())
        }
        Command::Run { args, .. } => {
            let sdk = aws_adapter(&args).await;
            run_operator(args, production_address(), cluster_client().await?, sdk).await
        }
        Command::Crd { output_dir } => write_crds(output_dir),
        #[cfg(feature = "emulator")]
        Command::Emulator(arguments) => run_emulator(arguments).await,
        #[cfg(feature = "test-apiserver")]
        Command::Sandbox(arguments) => run_sandbox(arguments).await,
        #[cfg(all(feature = "emulator", feature = "test-apiserver"))]
        Command::Trial(arguments) => run_trial(arguments).await,
    }
}

fn production_address() -> SocketAddr {
    DEFAULT_METRICS_ADDRESS
        .parse()
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 8080)))
}

/// The SDK adapter over the default AWS credential chain, or `--endpoint-url`.
async fn aws_adapter(args: &RunArgs) -> SdkHealthLake {
    let mut settings = SdkSettings::new(args.region.clone());
    if let Some(endpoint_url) = &args.endpoint_url {
        settings = settings.with_endpoint_url(endpoint_url.clone());
    }
    SdkHealthLake::from_default_chain(settings).await
}

async fn cluster_client() -> anyhow::Result<kube::Client> {
    kube::Client::try_default()
        .await
        .context("failed to connect to kubernetes")
}

async fn run_operator(
    args: RunArgs,
    default_address: SocketAddr,
    client: kube::Client,
    sdk: SdkHealthLake,
) -> anyhow::Result<()> {
    let operator = Operator::bind(args, default_address, client, sdk).await?;
    operator.run(shutdown_signal()).await?;
    Ok(())
}

/// Starts the emulator on a free loopback port and returns an SDK adapter aimed at it.
#[cfg(feature = "emulator")]
async fn in_process_emulator(
    region: &str,
    profile: healthlake_operator::emulator::Profile,
) -> anyhow::Result<(
    SdkHealthLake,
    healthlake_operator::emulator::RunningEmulator,
)> {
    use healthlake_operator::emulator::{self, EmulatorConfig};
    let config = EmulatorConfig {
        region: region.to_owned(),
        ..EmulatorConfig::default()
    }
    .with_profile(profile);
    let running = emulator::start(config, "127.0.0.1:0").await?;
    tracing::warn!(endpoint = %running.endpoint_url(), "running against the in-process HealthLake emulator: nothing reaches AWS");
    let settings = SdkSettings::new(region.to_owned()).with_endpoint_url(running.endpoint_url());
    Ok((SdkHealthLake::with_static_credentials(settings), running))
}

#[cfg(all(feature = "emulator", feature = "test-apiserver"))]
async fn run_trial(arguments: TrialArgs) -> anyhow::Result<()> {
    let server = sandbox_server().await?;
    let (sdk, running) =
        in_process_emulator(&arguments.run.region, arguments.emulator_profile).await?;
    // Bound before the KUBECONFIG line, so that a busy port fails before anything is printed.
    let operator = Operator::bind(
        arguments.run,
        SocketAddr::from(([127, 0, 0, 1], 0)),
        server.client(),
        sdk,
    )
    .await?;
    let served = serve_sandbox(&server, &arguments.listen, arguments.kubeconfig).await?;
    println!(
        "health and metrics on http://{}/metrics",
        operator.address()
    );
    operator.run(shutdown_signal()).await?;
    drop(served);
    running.shutdown().await?;
    Ok(())
}

#[cfg(feature = "test-apiserver")]
async fn run_sandbox(arguments: SandboxArgs) -> anyhow::Result<()> {
    let server = sandbox_server().await?;
    let _served = serve_sandbox(&server, &arguments.listen, arguments.kubeconfig).await?;
    shutdown_signal().await;
    Ok(())
}

/// The in-memory Kubernetes API with the CRDs and a `default` namespace.
#[cfg(feature = "test-apiserver")]
async fn sandbox_server() -> anyhow::Result<healthlake_operator::apiserver::ApiServer> {
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
    Ok(server)
}

/// Serves `server` on `address` and prints how to reach it.
#[cfg(feature = "test-apiserver")]
async fn serve_sandbox(
    server: &healthlake_operator::apiserver::ApiServer,
    address: &str,
    kubeconfig: Option<PathBuf>,
) -> anyhow::Result<healthlake_operator::apiserver::ServedApi> {
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
    Ok(served)
}

#[cfg(feature = "emulator")]
async fn run_emulator(arguments: EmulatorArgs) -> anyhow::Result<()> {
    use healthlake_operator::emulator::{self, EmulatorConfig, Quotas};
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
    if arguments.clock_speed > 1 {
        config.clock = emulator::ClockMode::Accelerated(arguments.clock_speed);
    }
    let running = emulator::start(config, &arguments.listen).await?;
    tracing::info!(endpoint = %running.endpoint_url(), "healthlake emulator listening");
    shutdown_signal().await;
    running.shutdown().await?;
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
