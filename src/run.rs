//! `healthlake-operator run`: flags, leader election, health and metrics, and the controllers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use prometheus_client::registry::Registry;

use crate::controller::metrics::Metrics;
use crate::controller::{self, Context, Settings};
use crate::healthlake::HealthLake;

/// Flags of `healthlake-operator run`; each can also be set through its environment variable.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Namespaces to watch, comma-separated; all namespaces when empty.
    #[arg(long, env = "HEALTHLAKE_OPERATOR_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// AWS region of datastores that do not name one.
    #[arg(long, env = "HEALTHLAKE_OPERATOR_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Send HealthLake calls to this endpoint instead of AWS's (an emulator, a VPC endpoint).
    #[arg(long, env = "HEALTHLAKE_OPERATOR_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Accept `spec.datastoreId` in jobs: lets a job name any datastore the operator's IAM role
    /// can reach, so enable it only where every tenant may use every datastore.
    #[arg(long, env = "HEALTHLAKE_OPERATOR_ALLOW_DATASTORE_ID_REFS")]
    pub allow_datastore_id_refs: bool,
    /// Seconds between polls right after a change.
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_POLL_SOON_SECONDS",
        default_value_t = 5.0
    )]
    pub poll_soon_seconds: f64,
    /// Seconds between polls while a datastore is created or deleted or a job runs.
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_POLL_LONG_SECONDS",
        default_value_t = 45.0
    )]
    pub poll_long_seconds: f64,
    /// Seconds between drift checks of objects in sync.
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_RESYNC_SECONDS",
        default_value_t = 600.0
    )]
    pub resync_seconds: f64,
    /// First retry delay, in seconds, after a throttled or failed call; doubles per failure.
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_BACKOFF_BASE_SECONDS",
        default_value_t = 5.0
    )]
    pub backoff_base_seconds: f64,
    /// Longest retry delay, in seconds.
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_BACKOFF_MAX_SECONDS",
        default_value_t = 300.0
    )]
    pub backoff_max_seconds: f64,
    /// Reconciles running at once, per kind.
    #[arg(long, env = "HEALTHLAKE_OPERATOR_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    /// Address of the health (`/healthz`, `/readyz`) and Prometheus (`/metrics`) endpoint.
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_METRICS_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_address: SocketAddr,
    /// Elect a leader through a coordination Lease so that only one replica acts.
    #[arg(long, env = "HEALTHLAKE_OPERATOR_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_LEASE_NAME",
        default_value = "healthlake-operator"
    )]
    pub lease_name: String,
    /// Namespace of the leader-election Lease (normally the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Start the HealthLake emulator in-process and send every HealthLake call to it, to try the
    /// operator on a cluster without AWS. Nothing reaches AWS in this mode.
    #[arg(long, env = "HEALTHLAKE_OPERATOR_EMULATOR")]
    pub emulator: bool,
    /// With `--emulator`: how long emulated datastores and jobs take, `fast` (seconds) or
    /// `realistic` (AWS-like minutes).
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_EMULATOR_PROFILE",
        value_enum,
        default_value = "fast"
    )]
    pub emulator_profile: crate::emulator::Profile,
    /// Client-side request quotas per region and operation class.
    #[command(flatten)]
    pub rate_limits: crate::healthlake::limiter::RateLimitArgs,
}

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A flag holds a value that cannot work.
    #[error("invalid flag {flag}: {reason}")]
    InvalidFlag {
        /// The flag.
        flag: &'static str,
        /// Why.
        reason: String,
    },
    /// The Kubernetes client could not be built.
    #[error("failed to connect to kubernetes: {0}")]
    Kubernetes(#[from] kube::Error),
    /// Leader election failed.
    #[error("leader election failed: {0}")]
    LeaderElection(String),
    /// The health and metrics endpoint could not start.
    #[error("failed to serve health and metrics on {address}: {source}")]
    Serve {
        /// The address.
        address: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl RunArgs {
    /// The controller settings these flags describe.
    pub fn settings(&self) -> Result<Settings, RunError> {
        if self.concurrency == 0 {
            // kube-runtime reads 0 as "unbounded", the opposite of what anyone means by it.
            return Err(RunError::InvalidFlag {
                flag: "--concurrency",
                reason: "0 would run reconciles without bound; give at least 1".to_owned(),
            });
        }
        Ok(Settings {
            default_region: self.region.clone(),
            allow_datastore_id_refs: self.allow_datastore_id_refs,
            poll_soon: seconds("--poll-soon-seconds", self.poll_soon_seconds)?,
            poll_long: seconds("--poll-long-seconds", self.poll_long_seconds)?,
            resync: seconds("--resync-seconds", self.resync_seconds)?,
            backoff_base: seconds("--backoff-base-seconds", self.backoff_base_seconds)?,
            backoff_max: seconds("--backoff-max-seconds", self.backoff_max_seconds)?,
            concurrency: self.concurrency,
            ..Settings::default()
        })
    }
}

fn seconds(flag: &'static str, value: f64) -> Result<Duration, RunError> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|duration| !duration.is_zero())
        .ok_or_else(|| RunError::InvalidFlag {
            flag,
            reason: format!("{value} is not a positive number of seconds"),
        })
}

/// Runs the operator until SIGTERM or Ctrl-C, or until it loses leadership.
pub async fn run(
    args: RunArgs,
    client: Client,
    healthlake: Arc<dyn HealthLake>,
) -> Result<(), RunError> {
    let settings = args.settings()?;
    let metrics = Arc::new(Metrics::default());
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(args.metrics_address)
        .await
        .map_err(|source| RunError::Serve {
            address: args.metrics_address,
            source,
        })?;
    tokio::spawn(serve_health(listener, Arc::new(registry), ready.clone()));

    let context = Arc::new(Context::new(client.clone(), healthlake, settings, metrics));
    if !args.leader_election {
        ready.store(true, Ordering::Relaxed);
        controller::run(context, args.namespaces, shutdown_signal()).await;
        return Ok(());
    }

    let identity = std::env::var("POD_NAME")
        .unwrap_or_else(|_| format!("healthlake-operator-{}", std::process::id()));
    let manager = LeaseManagerBuilder::new(client, &args.lease_name)
        .with_namespace(&args.lease_namespace)
        .with_identity(&identity)
        .with_duration(15)
        .with_grace(5)
        .build()
        .await
        .map_err(|error| RunError::LeaderElection(error.to_string()))?;
    let (mut leadership, _task) = manager.watch().await;
    tracing::info!(%identity, lease = %args.lease_name, "waiting to become the leader");
    // Standby replicas are ready: they serve health and take over when the leader goes.
    ready.store(true, Ordering::Relaxed);
    tokio::select! {
        changed = leadership.wait_for(|leading| *leading) => {
            changed.map_err(|error| RunError::LeaderElection(error.to_string()))?;
        }
        () = shutdown_signal() => return Ok(()),
    }
    tracing::info!(%identity, "became the leader, starting the controllers");
    let (lost_sender, mut lost) = tokio::sync::watch::channel(false);
    let stop = async move {
        tokio::select! {
            () = shutdown_signal() => {}
            _ = leadership.wait_for(|leading| !*leading) => {
                tracing::error!("lost leadership, stopping so that two replicas never both act");
                let _ = lost_sender.send(true);
            }
        }
    };
    controller::run(context, args.namespaces, stop).await;
    if *lost.borrow_and_update() {
        return Err(RunError::LeaderElection("lost the lease".to_owned()));
    }
    Ok(())
}

/// Resolves on SIGTERM (how Kubernetes stops pods) or Ctrl-C.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

#[derive(Clone)]
struct HealthState {
    registry: Arc<Registry>,
    ready: Arc<AtomicBool>,
}

async fn serve_health(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    ready: Arc<AtomicBool>,
) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readiness))
        .route("/metrics", get(metrics_text))
        .with_state(HealthState { registry, ready });
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "health and metrics endpoint stopped");
    }
}

async fn readiness(State(state): State<HealthState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

async fn metrics_text(
    State(state): State<HealthState>,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain")],
            "failed to encode metrics".to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        run: RunArgs,
    }

    fn settings(flags: &[&str]) -> Result<Settings, RunError> {
        let mut arguments = vec!["healthlake-operator"];
        arguments.extend_from_slice(flags);
        Command::try_parse_from(arguments)
            .expect("flags parse")
            .run
            .settings()
    }

    #[test]
    fn flags_become_settings() {
        let settings = settings(&[
            "--namespaces",
            "a,b",
            "--poll-long-seconds",
            "30",
            "--allow-datastore-id-refs",
        ])
        .expect("valid");
        assert_eq!(settings.poll_long, Duration::from_secs(30));
        assert!(settings.allow_datastore_id_refs);
        assert_eq!(settings.concurrency, 8);
    }

    #[test]
    fn impossible_values_are_refused_with_the_flag_named() {
        for (flags, flag) in [
            (&["--concurrency", "0"][..], "--concurrency"),
            (&["--poll-soon-seconds", "0"][..], "--poll-soon-seconds"),
            (&["--resync-seconds=-5"][..], "--resync-seconds"),
        ] {
            let error = settings(flags).expect_err("refused");
            assert!(error.to_string().contains(flag), "{error}");
        }
    }
}
