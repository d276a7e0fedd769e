//! `healthlake-operator run`: flags, leader election, health and metrics, and the controllers.

mod endpoint;
mod instrumented;
mod leader;
pub mod logging;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;

use endpoint::Probes;
pub use endpoint::Role;
pub use instrumented::{Measured, Side};
pub use leader::identity;

use crate::controller::health::Health;
use crate::controller::metrics::Metrics;
use crate::controller::{self, Context, Settings};
use crate::healthlake::HealthLake;
use crate::healthlake::limiter::RateLimited;

/// Where `run` serves health and metrics unless told otherwise: every interface, so that the
/// kubelet's probes and Prometheus reach it.
pub const DEFAULT_METRICS_ADDRESS: &str = "0.0.0.0:8080";

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
    /// Seconds between polls right after a change (at most; spread up to 10 % below).
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_POLL_SOON_SECONDS",
        default_value_t = 5.0
    )]
    pub poll_soon_seconds: f64,
    /// Seconds between polls while a datastore is created or deleted or a job runs (at most;
    /// spread up to 20 % below): a change in AWS reaches the status within this.
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_POLL_LONG_SECONDS",
        default_value_t = 45.0
    )]
    pub poll_long_seconds: f64,
    /// Seconds between drift checks of objects in sync (at least; spread up to 10 % above).
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
    /// First retry, in seconds, of a Stalled object whose cause can be fixed outside Kubernetes
    /// (an IAM policy, a KMS key); doubles per retry up to `--stalled-retry-max-seconds`.
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_STALLED_RETRY_SECONDS",
        default_value_t = 300.0
    )]
    pub stalled_retry_seconds: f64,
    /// Longest wait, in seconds, between retries of a Stalled object.
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_STALLED_RETRY_MAX_SECONDS",
        default_value_t = 3600.0
    )]
    pub stalled_retry_max_seconds: f64,
    /// Warn when a datastore stays CREATING or DELETING longer than this many seconds.
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_DATASTORE_STUCK_SECONDS",
        default_value_t = 7200.0
    )]
    pub datastore_stuck_seconds: f64,
    /// Warn when a job stays SUBMITTED or QUEUED longer than this many seconds.
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_JOB_STUCK_SECONDS",
        default_value_t = 86400.0
    )]
    pub job_stuck_seconds: f64,
    /// Address of the health (`/healthz`, `/readyz`) and Prometheus (`/metrics`) endpoint
    /// [default: 0.0.0.0:8080; the trial: 127.0.0.1 on a free port, printed at start].
    #[arg(long, env = "HEALTHLAKE_OPERATOR_METRICS_ADDRESS")]
    pub metrics_address: Option<SocketAddr>,
    /// `/healthz` fails once a controller's watch has failed this many seconds without a
    /// success (kube-runtime retries it meanwhile), so that the kubelet restarts the pod.
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_WATCH_FAILURE_SECONDS",
        default_value_t = 60.0
    )]
    pub watch_failure_seconds: f64,
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
    /// Seconds a leader's lease lasts without renewal: how long a crashed leader's replacement
    /// waits. The holder renews it a third of this before it expires.
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_LEASE_DURATION_SECONDS",
        default_value_t = 15
    )]
    pub lease_duration_seconds: u64,
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
    /// Another replica took the lease while this one led: it stops so that two never act.
    #[error(
        "lost the leader-election lease {lease} (this replica is {identity}): stopped the controllers so that two replicas never act at once"
    )]
    LostLease {
        /// The Lease.
        lease: String,
        /// This replica's identity.
        identity: String,
    },
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
            stalled_retry_base: seconds("--stalled-retry-seconds", self.stalled_retry_seconds)?,
            stalled_retry_max: seconds(
                "--stalled-retry-max-seconds",
                self.stalled_retry_max_seconds,
            )?,
            datastore_stuck_after: seconds(
                "--datastore-stuck-seconds",
                self.datastore_stuck_seconds,
            )?,
            job_stuck_after: seconds("--job-stuck-seconds", self.job_stuck_seconds)?,
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

/// The operator, its health and metrics endpoint bound, ready to run.
pub struct Operator {
    args: RunArgs,
    settings: Settings,
    client: Client,
    healthlake: Arc<dyn HealthLake>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    probes: Probes,
    listener: tokio::net::TcpListener,
    address: SocketAddr,
    identity: String,
}

impl Operator {
    /// Checks the flags and binds the health and metrics endpoint (on `--metrics-address`, else
    /// `default_address`). `aws` is the HealthLake port to use (the SDK adapter in production);
    /// the operator puts metrics and the client-side rate limiter in front of it.
    ///
    /// # Errors
    /// An impossible flag value, or an address that cannot be bound (in use, not local).
    pub async fn bind(
        args: RunArgs,
        default_address: SocketAddr,
        client: Client,
        aws: impl HealthLake + 'static,
    ) -> Result<Self, RunError> {
        let settings = args.settings()?;
        let limits = args
            .rate_limits
            .config()
            .map_err(|error| RunError::InvalidFlag {
                flag: "--rate-limit-*",
                reason: error.to_string(),
            })?;
        if leader::timings(args.lease_duration_seconds).is_none() {
            return Err(RunError::InvalidFlag {
                flag: "--lease-duration-seconds",
                reason: format!(
                    "{} leaves no time to renew the lease; give at least 2",
                    args.lease_duration_seconds
                ),
            });
        }
        let watch_failure_limit = seconds("--watch-failure-seconds", args.watch_failure_seconds)?;
        let metrics = Arc::new(Metrics::default());
        let limited = RateLimited::new(Measured::new(aws, Side::Aws, metrics.clone()), limits)
            .map_err(|error| RunError::InvalidFlag {
                flag: "--rate-limit-*",
                reason: error.to_string(),
            })?;
        let healthlake: Arc<dyn HealthLake> =
            Arc::new(Measured::new(limited, Side::Limiter, metrics.clone()));
        let health = Arc::new(Health::new(watch_failure_limit));
        let probes = Probes::new(metrics.clone(), health.clone());
        let requested = args.metrics_address.unwrap_or(default_address);
        let listener = tokio::net::TcpListener::bind(requested)
            .await
            .map_err(|source| RunError::Serve {
                address: requested,
                source,
            })?;
        let address = listener.local_addr().map_err(|source| RunError::Serve {
            address: requested,
            source,
        })?;
        Ok(Self {
            args,
            settings,
            client,
            healthlake,
            metrics,
            health,
            probes,
            listener,
            address,
            identity: leader::identity(),
        })
    }

    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// This replica's leader-election identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Runs until `shutdown` resolves or the lease is lost. Without leader election the
    /// controllers start at once; with it, this replica waits as a standby until it holds the
    /// lease. On `shutdown`, in-flight reconciles finish, then the lease is released, so that a
    /// standby can take over at once.
    ///
    /// # Errors
    /// The Lease cannot be created or read ([`RunError::LeaderElection`]), or another replica
    /// took it while this one led ([`RunError::LostLease`]).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RunError> {
        let Self {
            args,
            settings,
            client,
            healthlake,
            metrics,
            health,
            probes,
            listener,
            address,
            identity,
        } = self;
        tokio::spawn(endpoint::serve(listener, probes.clone()));
        tracing::info!(%address, "serving /healthz, /readyz and /metrics");
        let (stopping, mut stop_requested) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stopping.send(true);
        });
        let context = Arc::new(
            Context::new(client.clone(), healthlake, settings, metrics).with_health(health),
        );
        if !args.leader_election {
            probes.set_role(Role::Leader);
            let mut stop = stop_requested.clone();
            controller::run(context, args.namespaces, async move {
                let _ = stop.wait_for(|stop| *stop).await;
            })
            .await;
            probes.set_role(Role::ShuttingDown);
            return Ok(());
        }

        let (duration, grace) = leader::timings(args.lease_duration_seconds).unwrap_or((15, 5));
        let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
            .with_namespace(&args.lease_namespace)
            .with_identity(&identity)
            .with_duration(duration)
            .with_grace(grace)
            .build()
            .await
            .map_err(|error| RunError::LeaderElection(error.to_string()))?;
        let (mut leadership, manager_task) = manager.watch().await;
        tracing::info!(%identity, lease = %args.lease_name, namespace = %args.lease_namespace, "waiting to become the leader");

        // Standby until the lease is ours; a standby learns who leads by reading the Lease.
        loop {
            if probes.role() == Role::Starting {
                let holder = leader::holder(&client, &args.lease_namespace, &args.lease_name).await;
                if holder.as_ref().is_some_and(|holder| *holder != identity) {
                    probes.set_role(Role::Standby);
                    tracing::info!(%identity, leader = holder.as_deref().unwrap_or_default(), "standing by: another replica leads");
                }
            }
            let stop = tokio::select! {
                changed = leadership.wait_for(|leading| *leading) => {
                    changed.map_err(|error| RunError::LeaderElection(error.to_string()))?;
                    break;
                }
                _ = stop_requested.wait_for(|stop| *stop) => true,
                () = tokio::time::sleep(leader::recheck_interval(grace)) => false,
            };
            if stop {
                probes.set_role(Role::ShuttingDown);
                release(leadership, manager_task, duration).await;
                return Ok(());
            }
        }

        probes.set_role(Role::Leader);
        tracing::info!(%identity, "became the leader, starting the controllers");
        let (lost_sender, mut lost) = tokio::sync::watch::channel(false);
        // A clone: the lease is released only when `leadership` itself goes, after the
        // controllers' in-flight reconciles have finished.
        let mut watching = leadership.clone();
        let mut stop = stop_requested.clone();
        controller::run(context, args.namespaces, async move {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => {}
                _ = watching.wait_for(|leading| !*leading) => {
                    let _ = lost_sender.send(true);
                }
            }
        })
        .await;
        probes.set_role(Role::ShuttingDown);
        if *lost.borrow_and_update() {
            return Err(RunError::LostLease {
                lease: args.lease_name,
                identity,
            });
        }
        release(leadership, manager_task, duration).await;
        tracing::info!(%identity, "released the lease, stopping");
        Ok(())
    }
}

/// Releases the lease (when held) by closing the manager's channel, and waits for the manager
/// to confirm, at most one lease duration.
async fn release(
    leadership: tokio::sync::watch::Receiver<bool>,
    manager_task: tokio::task::JoinHandle<
        kube_lease_manager::Result<kube_lease_manager::LeaseManager>,
    >,
    duration_seconds: u64,
) {
    drop(leadership);
    match tokio::time::timeout(Duration::from_secs(duration_seconds), manager_task).await {
        Ok(Ok(Ok(_))) => {}
        Ok(Ok(Err(error))) => {
            tracing::warn!(%error, "failed to release the lease; it expires on its own")
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "the lease manager failed; the lease expires on its own")
        }
        Err(_) => tracing::warn!("releasing the lease took too long; it expires on its own"),
    }
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
        assert_eq!(settings.stalled_retry_base, Duration::from_secs(300));
        assert_eq!(settings.stalled_retry_max, Duration::from_secs(3600));
        assert_eq!(settings.datastore_stuck_after, Duration::from_secs(7200));
        assert_eq!(settings.job_stuck_after, Duration::from_secs(86400));
    }

    #[test]
    fn the_stalled_retry_and_stuck_warnings_have_flags() {
        let settings = settings(&[
            "--stalled-retry-seconds",
            "60",
            "--stalled-retry-max-seconds",
            "600",
            "--datastore-stuck-seconds",
            "3600",
            "--job-stuck-seconds",
            "1.5",
        ])
        .expect("valid");
        assert_eq!(settings.stalled_retry_base, Duration::from_secs(60));
        assert_eq!(settings.stalled_retry_max, Duration::from_secs(600));
        assert_eq!(settings.datastore_stuck_after, Duration::from_secs(3600));
        assert_eq!(settings.job_stuck_after, Duration::from_millis(1500));
        let defaults = Settings::default();
        let parsed = self::settings(&[]).expect("valid");
        assert_eq!(defaults.stalled_retry_base, parsed.stalled_retry_base);
        assert_eq!(defaults.stalled_retry_max, parsed.stalled_retry_max);
        assert_eq!(defaults.datastore_stuck_after, parsed.datastore_stuck_after);
        assert_eq!(defaults.job_stuck_after, parsed.job_stuck_after);
    }

    #[test]
    fn impossible_values_are_refused_with_the_flag_named() {
        for (flags, flag) in [
            (&["--concurrency", "0"][..], "--concurrency"),
            (&["--poll-soon-seconds", "0"][..], "--poll-soon-seconds"),
            (&["--resync-seconds=-5"][..], "--resync-seconds"),
            (
                &["--stalled-retry-seconds", "0"][..],
                "--stalled-retry-seconds",
            ),
            (&["--job-stuck-seconds", "nan"][..], "--job-stuck-seconds"),
        ] {
            let error = settings(flags).expect_err("refused");
            assert!(error.to_string().contains(flag), "{error}");
        }
    }
}
