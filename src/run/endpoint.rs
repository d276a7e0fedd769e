//! The health and metrics endpoint: `/healthz` (liveness), `/readyz` (readiness) and `/metrics`
//! (Prometheus text format).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::controller::health::Health;
use crate::controller::metrics::Metrics;

/// This replica's part in leader election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not yet known: the lease has not been read yet.
    Starting,
    /// Runs the controllers (holds the lease, or runs without leader election).
    Leader,
    /// Another replica holds the lease; this one takes over when it goes.
    Standby,
    /// Stopping after SIGTERM.
    ShuttingDown,
}

/// What the endpoint reports from.
#[derive(Clone)]
pub struct Probes {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    role: Arc<Mutex<Role>>,
}

impl Probes {
    /// Probes over the controllers' `health` and `metrics` (registered in a registry of their own).
    pub fn new(metrics: Arc<Metrics>, health: Arc<Health>) -> Self {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        Self {
            registry: Arc::new(registry),
            metrics,
            health,
            role: Arc::new(Mutex::new(Role::Starting)),
        }
    }

    /// Records this replica's role, for `/readyz` and the `is_leader` gauge.
    pub fn set_role(&self, role: Role) {
        *self
            .role
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = role;
        self.metrics.set_leader(role == Role::Leader);
    }

    /// This replica's role.
    pub fn role(&self) -> Role {
        *self
            .role
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `/readyz`: a leader once its caches hold the cluster's objects, a standby at once.
    fn readiness(&self) -> Result<&'static str, String> {
        match self.role() {
            Role::Starting => Err("waiting to learn who holds the lease".to_owned()),
            Role::ShuttingDown => Err("shutting down".to_owned()),
            Role::Standby => Ok("ready: standby, another replica holds the lease"),
            Role::Leader => self
                .health
                .report(Instant::now())
                .synced
                .map(|()| "ready: leader, caches synced"),
        }
    }
}

/// Serves the endpoint on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, probes: Probes) {
    let app = Router::new()
        .route("/healthz", get(liveness))
        .route("/readyz", get(readiness))
        .route("/metrics", get(metrics_text))
        .with_state(probes);
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "health and metrics endpoint stopped");
    }
}

fn answer(result: Result<&'static str, String>) -> (StatusCode, String) {
    match result {
        Ok(text) => (StatusCode::OK, text.to_owned()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}

async fn liveness(State(probes): State<Probes>) -> (StatusCode, String) {
    answer(probes.health.report(Instant::now()).live.map(|()| "ok"))
}

async fn readiness(State(probes): State<Probes>) -> (StatusCode, String) {
    answer(probes.readiness())
}

async fn metrics_text(
    State(probes): State<Probes>,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    probes.metrics.refresh_objects();
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &probes.registry) {
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
