//! What the controllers tell `/healthz` and `/readyz`: which controllers run, whether their
//! watches work, and whether their caches hold the cluster's objects.
//!
//! A controller registers itself when it starts ([`Health::controller`]) and reports through the
//! returned [`ControllerHealth`]: every watch event, every watch error, the end of the initial
//! list, and its own end. [`Health::report`] turns that into the two probe answers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a watch may fail without a success before the process counts as unhealthy, unless
/// the run command says otherwise. kube-runtime retries a failing watch with backoff on its own;
/// this only catches a watch that never recovers (a CRD deleted, RBAC revoked).
pub const DEFAULT_WATCH_FAILURE_LIMIT: Duration = Duration::from_secs(60);

/// The controllers' health, shared by the controllers (writers) and the probe endpoint (reader).
#[derive(Debug)]
pub struct Health {
    watch_failure_limit: Duration,
    state: Mutex<State>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct State {
    controllers: BTreeMap<String, Controller>,
    shutting_down: bool,
}

#[derive(Debug, Default)]
struct Controller {
    synced: bool,
    stopped: bool,
    failing_since: Option<Instant>,
    last_error: Option<String>,
}

/// What the probes answer; `Err` carries the reason, for the response body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// `/healthz`: every controller runs and no watch has failed for longer than the limit.
    pub live: Result<(), String>,
    /// Every registered controller's cache holds the initial list (vacuously true when none
    /// runs, as on a standby replica).
    pub synced: Result<(), String>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new(DEFAULT_WATCH_FAILURE_LIMIT)
    }
}

impl Health {
    /// Health that turns a watch failing for longer than `watch_failure_limit` into a failed
    /// liveness probe.
    pub fn new(watch_failure_limit: Duration) -> Self {
        Self {
            watch_failure_limit,
            state: Mutex::default(),
            shutdown: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Registers a controller named `name` (the kind, plus the namespace when the operator
    /// watches a list of them) and returns its reporting handle.
    pub fn controller(self: &Arc<Self>, name: String) -> ControllerHealth {
        self.lock()
            .controllers
            .insert(name.clone(), Controller::default());
        ControllerHealth {
            health: self.clone(),
            name,
        }
    }

    /// Marks the start of a shutdown: controllers that stop from now on do so on purpose.
    pub fn shutting_down(&self) {
        self.lock().shutting_down = true;
        self.shutdown.send_replace(true);
    }

    /// The probe answers at `now`.
    pub fn report(&self, now: Instant) -> Report {
        let state = self.lock();
        let mut live = Ok(());
        let mut synced = Ok(());
        for (name, controller) in &state.controllers {
            if controller.stopped && !state.shutting_down {
                live = Err(format!("the {name} controller has stopped"));
            } else if let Some(since) = controller.failing_since {
                let failing_for = now.saturating_duration_since(since);
                if failing_for >= self.watch_failure_limit {
                    live = Err(format!(
                        "the {name} watch has failed for {}s: {}",
                        failing_for.as_secs(),
                        controller.last_error.as_deref().unwrap_or("unknown error")
                    ));
                }
            }
            if !controller.synced && synced.is_ok() {
                synced = Err(format!("the {name} cache has not synced yet"));
            }
            if live.is_err() {
                break;
            }
        }
        Report { live, synced }
    }

    // A poisoned lock only means another thread panicked while holding it; the state is still a
    // set of flags worth reporting.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut Controller)) {
        if let Some(controller) = self.lock().controllers.get_mut(name) {
            change(controller);
        }
    }
}

/// One controller's reporting handle.
#[derive(Clone, Debug)]
pub struct ControllerHealth {
    health: Arc<Health>,
    name: String,
}

impl ControllerHealth {
    /// The watch delivered an event: it works.
    pub fn watch_ok(&self) {
        self.health.update(&self.name, |controller| {
            controller.failing_since = None;
            controller.last_error = None;
        });
    }

    /// The watch failed with `error` at `now`; kube-runtime retries it.
    pub fn watch_failed(&self, error: &dyn std::fmt::Display, now: Instant) {
        let message = error.to_string();
        self.health.update(&self.name, |controller| {
            controller.failing_since.get_or_insert(now);
            controller.last_error = Some(message);
        });
    }

    /// The cache holds the initial list.
    pub fn synced(&self) {
        self.health
            .update(&self.name, |controller| controller.synced = true);
    }

    /// The controller's task ended.
    pub fn stopped(&self) {
        self.health
            .update(&self.name, |controller| controller.stopped = true);
    }

    /// Runs `task` and marks the controller stopped when it ends, however it ends.
    ///
    /// A controller whose cache never synced (its CRD missing, its list forbidden) is dropped
    /// at shutdown instead of awaited: it never started a reconcile, and kube-runtime would hold
    /// it until the cache syncs, that is forever.
    pub async fn run_until_stopped(self, task: impl std::future::Future<Output = ()>) {
        struct StopOnDrop(ControllerHealth);
        impl Drop for StopOnDrop {
            fn drop(&mut self) {
                self.0.stopped();
            }
        }
        let mut shutdown = self.health.shutdown.subscribe();
        let health = self.health.clone();
        let name = self.name.clone();
        let _stop = StopOnDrop(self);
        let never_synced = async move {
            let _ = shutdown.wait_for(|stopping| *stopping).await;
            let synced = health
                .lock()
                .controllers
                .get(&name)
                .is_some_and(|controller| controller.synced);
            if synced {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = task => {}
            () = never_synced => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Arc<Health> {
        Arc::new(Health::new(Duration::from_secs(60)))
    }

    #[test]
    fn a_standby_with_no_controllers_is_live_and_synced() {
        let report = health().report(Instant::now());
        assert_eq!(report.live, Ok(()));
        assert_eq!(report.synced, Ok(()));
    }

    #[test]
    fn a_controller_is_synced_once_its_initial_list_is_in() {
        let health = health();
        let datastores = health.controller("FHIRDatastore".to_owned());
        let jobs = health.controller("FHIRImportJob".to_owned());
        datastores.synced();
        let report = health.report(Instant::now());
        assert_eq!(report.live, Ok(()));
        assert_eq!(
            report.synced,
            Err("the FHIRImportJob cache has not synced yet".to_owned())
        );
        jobs.synced();
        assert_eq!(health.report(Instant::now()).synced, Ok(()));
    }

    #[test]
    fn a_watch_failing_past_the_limit_fails_liveness_until_it_recovers() {
        let health = health();
        let datastores = health.controller("FHIRDatastore".to_owned());
        let start = Instant::now();
        datastores.watch_failed(&"404 page not found", start);
        datastores.watch_failed(&"404 page not found", start + Duration::from_secs(30));
        assert_eq!(
            health.report(start + Duration::from_secs(59)).live,
            Ok(()),
            "within the limit kube-runtime's own retries may still succeed"
        );
        let failed = health.report(start + Duration::from_secs(61)).live;
        assert_eq!(
            failed,
            Err("the FHIRDatastore watch has failed for 61s: 404 page not found".to_owned())
        );
        datastores.watch_ok();
        assert_eq!(health.report(start + Duration::from_secs(62)).live, Ok(()));
    }

    #[tokio::test]
    async fn a_controller_that_never_synced_is_not_awaited_at_shutdown() {
        let health = health();
        let datastores = health.controller("FHIRDatastore".to_owned());
        let running = tokio::spawn(datastores.run_until_stopped(std::future::pending()));
        health.shutting_down();
        running.await.expect("the controller task ends");
        assert_eq!(health.report(Instant::now()).live, Ok(()));
    }

    #[tokio::test]
    async fn a_stopped_controller_fails_liveness_unless_the_process_is_shutting_down() {
        let health = health();
        let jobs = health.controller("FHIRExportJob".to_owned());
        jobs.run_until_stopped(async {}).await;
        assert_eq!(
            health.report(Instant::now()).live,
            Err("the FHIRExportJob controller has stopped".to_owned())
        );
        health.shutting_down();
        assert_eq!(health.report(Instant::now()).live, Ok(()));
    }
}
