//! The HealthLake emulator: a real HTTP server speaking Amazon HealthLake's wire protocol
//! (awsJson1_0), for tests, benchmarks and local trials.
//!
//! It stands for AWS, so it imports nothing from the rest of this crate. Start one in-process
//! with [`start`], point aws-sdk-healthlake at [`RunningEmulator::endpoint_url`], and steer it
//! with the admin methods (clock, faults, call log) that the HTTP admin API under
//! `/_emulator/` also serves:
//!
//! ```no_run
//! # async fn example() -> Result<(), healthlake_operator::emulator::EmulatorError> {
//! use healthlake_operator::emulator::{self, EmulatorConfig};
//! let running = emulator::start(EmulatorConfig::for_tests(), "127.0.0.1:0").await?;
//! let client = aws_sdk_healthlake::Client::from_conf(running.sdk_config_builder().build());
//! running.advance_clock(std::time::Duration::from_secs(60));
//! running.shutdown().await?;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as RouterState;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

mod admin;
mod call_log;
mod clock;
mod config;
mod faults;
mod idempotency;
mod lifecycle;
mod operation;
mod operations;
mod pagination;
mod persistence;
mod quotas;
mod seed;
mod service;
mod state;
mod validate;
mod wire;

pub use admin::ADMIN_PREFIX;
pub use call_log::{CallRecord, OperationCounters};
pub use config::{
    ClockMode, DEFAULT_MAX_DATASTORES, EmulatorConfig, JobConcurrency, PhaseDurations, Profile,
    Quotas, Rate,
};
pub use faults::{ErrorCategory, Fault, InjectedJobOutcome, JobKind};
pub use operation::{Operation, UnknownOperation};
pub use seed::{DatastoreSeed, SeededDatastore};
pub use service::Emulator;
pub use state::{DatastoreRecord, DatastoreStatus, JobRecord, JobStatus, State};
pub use wire::ErrorType;

/// The access key id of the static credentials [`RunningEmulator::sdk_config_builder`] uses.
pub const TEST_ACCESS_KEY_ID: &str = "AKIAEMULATOREXAMPLE1";

/// Why the emulator could not start, load or save its state, or stop.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The configuration cannot produce AWS-shaped ARNs.
    #[error("invalid emulator configuration: {0}")]
    Config(String),
    /// The listen address is not a loopback socket address.
    #[error("invalid listen address {address}: {reason}")]
    Address {
        /// The address given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Binding the socket failed.
    #[error("failed to listen on {address}: {source}")]
    Bind {
        /// The address given.
        address: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Reading or writing the state file failed.
    #[error("failed to access the state file {path}: {source}")]
    StateFile {
        /// The state file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The state file holds something the emulator cannot read.
    #[error("failed to read the state file {path}: {reason}")]
    StateFormat {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A seeded datastore is one AWS could never hold (bad region, name or tags).
    #[error("invalid seeded datastore: {0}")]
    Seed(String),
    /// The server stopped with an error.
    #[error("the emulator server failed: {0}")]
    Serve(std::io::Error),
}

async fn aws_endpoint(
    RouterState(emulator): RouterState<Emulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    emulator.handle_aws_request(&headers, &body).await
}

/// Anything but `POST /` or an admin path: answered in AWS's error format, with a request id.
async fn unknown_route() -> Response {
    let error = wire::AwsError::new(
        ErrorType::UnknownOperationException,
        "HealthLake is served by POST / with an X-Amz-Target header",
    );
    wire::error_response(&error, &wire::new_request_id())
}

impl Emulator {
    /// The HTTP routes: `POST /` for HealthLake and the admin API under [`ADMIN_PREFIX`].
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", post(aws_endpoint).fallback(unknown_route))
            .nest(ADMIN_PREFIX, admin::routes())
            .fallback(unknown_route)
            .with_state(self.clone())
    }
}

/// An emulator serving HTTP on a loopback port; stops when shut down or dropped.
///
/// It dereferences to [`Emulator`], so the admin methods (`advance_clock`, `inject`, `calls`,
/// `counters`, `reset`, ...) are called on it directly.
pub struct RunningEmulator {
    emulator: Emulator,
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// Starts an emulator listening on `address` (a loopback address; port 0 picks a free port).
pub async fn start(
    config: EmulatorConfig,
    address: &str,
) -> Result<RunningEmulator, EmulatorError> {
    let socket: SocketAddr = address.parse().map_err(|error| EmulatorError::Address {
        address: address.to_string(),
        reason: format!("{error}"),
    })?;
    if !socket.ip().is_loopback() {
        return Err(EmulatorError::Address {
            address: address.to_string(),
            reason: "the emulator has no real authentication, so it listens on loopback only"
                .to_string(),
        });
    }
    let emulator = Emulator::new(config)?;
    let listener = tokio::net::TcpListener::bind(socket)
        .await
        .map_err(|source| EmulatorError::Bind {
            address: address.to_string(),
            source,
        })?;
    let bound = listener
        .local_addr()
        .map_err(|source| EmulatorError::Bind {
            address: address.to_string(),
            source,
        })?;
    let (stop, stopped) = oneshot::channel::<()>();
    let router = emulator.router();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    Ok(RunningEmulator {
        emulator,
        address: bound,
        stop: Some(stop),
        server: Some(server),
    })
}

impl RunningEmulator {
    /// The URL to give the SDK as `endpoint_url`, such as `http://127.0.0.1:40213`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The socket address the emulator listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The configured region: the one in-process helpers without a region argument act on,
    /// and the one [`RunningEmulator::sdk_config_builder`] signs for.
    pub fn region(&self) -> &str {
        &self.emulator.config().region
    }

    /// The account id in the emulator's ARNs.
    pub fn account_id(&self) -> &str {
        &self.emulator.config().account_id
    }

    /// The emulator core (also reachable through `Deref`).
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// An SDK configuration builder aimed at this emulator: its endpoint and region, static
    /// test credentials, and the SDK's default retry behaviour (change it on the builder).
    pub fn sdk_config_builder(&self) -> aws_sdk_healthlake::config::Builder {
        self.sdk_config_builder_in(self.region())
    }

    /// [`RunningEmulator::sdk_config_builder`] for another region: the client signs for
    /// `region`, so its calls reach that region's datastores, jobs and quotas.
    pub fn sdk_config_builder_in(&self, region: &str) -> aws_sdk_healthlake::config::Builder {
        let credentials = aws_sdk_healthlake::config::Credentials::new(
            TEST_ACCESS_KEY_ID,
            "emulator-secret-access-key",
            None,
            None,
            "healthlake-emulator",
        );
        aws_sdk_healthlake::config::Builder::new()
            .behavior_version(aws_sdk_healthlake::config::BehaviorVersion::latest())
            .endpoint_url(self.endpoint_url())
            .region(aws_sdk_healthlake::config::Region::new(region.to_string()))
            .credentials_provider(credentials)
    }

    /// Stops accepting connections, lets calls in flight finish, and waits for the server.
    pub async fn shutdown(mut self) -> Result<(), EmulatorError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.server.take() {
            Some(server) => match server.await {
                Ok(result) => result.map_err(EmulatorError::Serve),
                Err(join) => Err(EmulatorError::Serve(std::io::Error::other(
                    join.to_string(),
                ))),
            },
            None => Ok(()),
        }
    }
}

impl Deref for RunningEmulator {
    type Target = Emulator;

    fn deref(&self) -> &Emulator {
        &self.emulator
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
