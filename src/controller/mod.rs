//! Thin kube-runtime shells around `decide/`: read, decide, act, patch status, requeue.
//!
//! One Controller per kind shares a [`Context`]: the HealthLake port (rate-limited), the event
//! recorder, metrics, settings, and per-object failure memory. Status is written with one field
//! manager and only when it changed.

mod datastore;
mod errors;
pub mod health;
mod job;
pub mod metrics;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, PredicateConfig, WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use errors::{ErrorTracker, ObjectKey};
use metrics::Metrics;

use crate::api::{FHIRDatastore, FHIRExportJob, FHIRImportJob};
use crate::decide::{Notice, ObjectMeta, Requeue};
use crate::healthlake::HealthLake;

/// The field manager of every status patch and event the operator writes.
pub const FIELD_MANAGER: &str = "healthlake-operator";

/// How the controllers behave; every value has a command-line flag.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Region of datastores that name none.
    pub default_region: String,
    /// Accept `spec.datastoreId` in jobs (off: a tenant could reach another team's datastore).
    pub allow_datastore_id_refs: bool,
    /// Poll interval right after a change.
    pub poll_soon: Duration,
    /// Poll interval while a long operation runs.
    pub poll_long: Duration,
    /// Re-check interval of objects in sync (drift detection).
    pub resync: Duration,
    /// First retry delay after a retryable error; it doubles per failure.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Reconciles running at once per kind.
    pub concurrency: u16,
    /// First retry of a Stalled object whose cause can be fixed outside Kubernetes (an IAM
    /// policy, a KMS key); it doubles per retry up to `stalled_retry_max`.
    pub stalled_retry_base: Duration,
    /// Longest wait between retries of a Stalled object.
    pub stalled_retry_max: Duration,
    /// A datastore CREATING or DELETING for longer than this gets a warning.
    pub datastore_stuck_after: Duration,
    /// A job SUBMITTED or QUEUED for longer than this gets a warning.
    pub job_stuck_after: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_region: "us-east-1".to_owned(),
            allow_datastore_id_refs: false,
            poll_soon: Duration::from_secs(5),
            poll_long: Duration::from_secs(45),
            resync: Duration::from_secs(600),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(300),
            concurrency: 8,
            stalled_retry_base: Duration::from_secs(300),
            stalled_retry_max: Duration::from_secs(3600),
            datastore_stuck_after: Duration::from_secs(7200),
            job_stuck_after: Duration::from_secs(86400),
        }
    }
}

/// The source of "now" for decisions: the system clock in production, a controlled clock in
/// tests (so that the operator and the HealthLake emulator agree on time).
pub type Clock = Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>;

/// Everything a reconcile needs, shared by the three controllers.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// HealthLake, behind the client-side rate limiter.
    pub healthlake: Arc<dyn HealthLake>,
    /// Settings.
    pub settings: Settings,
    /// Publishes Kubernetes events.
    pub recorder: Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Per-object failure memory.
    pub errors: ErrorTracker,
    /// Where "now" comes from.
    pub clock: Clock,
    /// What the controllers report to `/healthz` and `/readyz`.
    pub health: Arc<health::Health>,
}

impl Context {
    /// A context for the controllers.
    pub fn new(
        client: Client,
        healthlake: Arc<dyn HealthLake>,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let errors = ErrorTracker::new(settings.backoff_base, settings.backoff_max);
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            healthlake,
            settings,
            metrics,
            errors,
            clock: Arc::new(jiff::Timestamp::now),
            health: Arc::default(),
        }
    }

    /// The same context reporting the controllers' health to `health`.
    pub fn with_health(mut self, health: Arc<health::Health>) -> Self {
        self.health = health;
        self
    }

    /// The same context reading time from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The current time, from the context's clock.
    pub fn now(&self) -> jiff::Timestamp {
        (self.clock)()
    }

    /// Turns a decision's requeue into a kube-runtime action, with jitter so that many objects
    /// created together do not poll in lockstep.
    fn action(&self, key: &ObjectKey, requeue: Requeue) -> Action {
        match requeue {
            Requeue::Soon => Action::requeue(jitter(self.settings.poll_soon, 10)),
            Requeue::LongOperation => Action::requeue(jitter(self.settings.poll_long, 20)),
            Requeue::Resync => Action::requeue(jitter(self.settings.resync, 10)),
            Requeue::Backoff => Action::requeue(self.errors.backoff(key)),
            // Re-checked at least every resync: cheap (ended jobs need no AWS call), and robust
            // to clock jumps.
            Requeue::After(wait) => Action::requeue(jitter(wait.min(self.settings.resync), 10)),
            Requeue::Quota(wait) => Action::requeue(jitter(wait.min(self.settings.poll_long), 10)),
            Requeue::AwaitChange => Action::await_change(),
        }
    }

    /// Publishes a decision's notice as a Kubernetes event on `object`. Failing to publish is
    /// logged, never fatal.
    async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        notice: &Notice,
        action: &str,
    ) {
        let event = Event {
            type_: if notice.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: notice.reason.clone(),
            note: Some(truncate(&notice.message, 1000)),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(%error, reason = %notice.reason, "failed to publish event");
        }
    }
}

/// Why a reconcile could not finish. HealthLake errors are handled inside the reconcile (they
/// become conditions and requeues); these are the Kubernetes-side failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes api request failed: {0}")]
    Kube(#[from] kube::Error),
    /// The object lacks a field every stored object has.
    #[error("object has no {0}")]
    MissingField(&'static str),
    /// The datastore finalizer failed.
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// Cleanup is under way; the finalizer stays until AWS confirms. Not a failure.
    #[error("cleanup is still under way")]
    CleanupPending(Action),
}

impl Error {
    /// The requeue of a cleanup that is still under way, if this is one.
    fn pending(&self) -> Option<Action> {
        match self {
            Self::CleanupPending(action) => Some(action.clone()),
            Self::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::CleanupFailed(error) => error.pending(),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A status with kstatus conditions, so that one failure path serves every kind.
trait Conditioned: Clone + PartialEq + Serialize {
    /// The conditions, to change them.
    fn conditions_mut(
        &mut self,
    ) -> &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>;
    /// Sets `observedGeneration`.
    fn observe_generation(&mut self, generation: Option<i64>);
}

impl Conditioned for crate::api::FHIRDatastoreStatus {
    fn conditions_mut(
        &mut self,
    ) -> &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        &mut self.conditions
    }
    fn observe_generation(&mut self, generation: Option<i64>) {
        self.observed_generation = generation;
    }
}

impl<S: crate::decide::job::JobRecord + Serialize> Conditioned for S {
    fn conditions_mut(
        &mut self,
    ) -> &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        crate::decide::job::JobRecord::conditions_mut(self)
    }
    fn observe_generation(&mut self, generation: Option<i64>) {
        self.set_observed_generation(generation);
    }
}

/// Turns a failed HealthLake call into conditions, an event, a metric and a requeue. `base` is
/// the status the reconcile had decided on; `current` is what the object holds now. A terminal
/// error also holds the object, without AWS calls, until its generation changes.
#[allow(clippy::too_many_arguments)]
async fn fail<K, S>(
    api: &Api<K>,
    object: &K,
    kind: &'static str,
    context: &Context,
    current: &S,
    base: &S,
    error: &crate::healthlake::HealthLakeError,
    action: &str,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Conditioned,
{
    let meta = object_meta(object)?;
    let key = key_of(kind, object);
    context.metrics.healthlake_error(kind, error.class());
    let mut next = base.clone();
    next.observe_generation(meta.generation);
    let (requeue, notice) = crate::decide::on_error(
        next.conditions_mut(),
        error,
        action,
        meta.generation,
        context.now(),
    );
    write_status(api, &meta.name, current, &next).await?;
    if let Some(notice) = &notice {
        context.publish(object, notice, "Reconcile").await;
    }
    if requeue == Requeue::AwaitChange {
        context.errors.hold(&key, meta.generation);
    }
    Ok(context.action(&key, requeue))
}

/// The identity a decision needs.
fn object_meta<K: Resource>(object: &K) -> Result<ObjectMeta, Error> {
    let meta = object.meta();
    Ok(ObjectMeta {
        name: meta
            .name
            .clone()
            .ok_or(Error::MissingField("metadata.name"))?,
        namespace: meta
            .namespace
            .clone()
            .ok_or(Error::MissingField("metadata.namespace"))?,
        uid: meta
            .uid
            .clone()
            .ok_or(Error::MissingField("metadata.uid"))?,
        generation: meta.generation,
    })
}

/// Replaces `.status` when it differs from `current`; sends nothing otherwise.
async fn write_status<K, S>(api: &Api<K>, name: &str, current: &S, desired: &S) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    S: Serialize + PartialEq,
{
    if current == desired {
        return Ok(());
    }
    let value = serde_json::to_value(desired)
        .map_err(|error| Error::Kube(kube::Error::SerdeError(error)))?;
    let patch = json_patch::Patch(vec![json_patch::PatchOperation::Add(
        json_patch::AddOperation {
            path: json_patch::jsonptr::PointerBuf::from_tokens(["status"]),
            value,
        },
    )]);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch_status(name, &params, &Patch::<()>::Json(patch))
        .await?;
    Ok(())
}

fn jitter(base: Duration, percent: u64) -> Duration {
    let spread = base.as_millis() as u64 * percent / 100;
    if spread == 0 {
        return base;
    }
    base + Duration::from_millis(rand::random_range(0..=spread))
}

fn truncate(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn key_of<K: Resource>(kind: &'static str, object: &K) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: object.namespace().unwrap_or_default(),
        name: object.name_any(),
    }
}

/// What makes an object worth reconciling again at once: a new object, a spec change
/// (generation), a deletion request or a finalizer change. Status-only changes, most of them the
/// operator's own writes, are left to the requeue schedule; otherwise every status patch would
/// trigger another poll of AWS, as fast as the rate limiter allows.
fn relevant_change<K: Resource>(object: &K) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = object.meta();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    meta.uid.hash(&mut hasher);
    meta.generation.hash(&mut hasher);
    meta.deletion_timestamp.is_some().hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    Some(hasher.finish())
}

/// A cache of `api`'s objects, without `managedFields` (nothing reads them, and they are often
/// most of an object's size), and the stream of relevant changes that drives a controller.
///
/// Inside a task started by [`run`], the watch reports to the controller's health (watch
/// errors, recovery, the initial list) and its cache feeds the `objects` gauge.
fn watched<K>(
    api: Api<K>,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send,
)
where
    K: Resource<DynamicType = ()>
        + metrics::HasConditions
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let report = REPORT.try_with(Clone::clone).ok();
    if let Some(report) = &report {
        report.metrics.count_objects(report.kind, reader.clone());
    }
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .inspect(move |event| {
            if let Some(report) = &report {
                match event {
                    Ok(watcher::Event::InitDone) => {
                        report.health.watch_ok();
                        report.health.synced();
                    }
                    Ok(_) => report.health.watch_ok(),
                    Err(error) => report.health.watch_failed(error, std::time::Instant::now()),
                }
            }
        })
        .modify(|object: &mut K| object.meta_mut().managed_fields = None)
        .reflect(writer)
        .applied_objects()
        .predicate_filter(relevant_change, PredicateConfig::default());
    (reader, stream)
}

impl<K: job::JobKind> metrics::HasConditions for K {
    fn conditions(&self) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
        self.job_status().map_or(&[], |status| {
            crate::decide::job::JobRecord::conditions(status)
        })
    }
}

/// Where the watch of the controller task being polled reports: set by [`run`] around each
/// controller task, read by [`watched`], so that every controller's watch reports without
/// threading the handles through each controller's constructor.
#[derive(Clone)]
struct Report {
    kind: &'static str,
    health: health::ControllerHealth,
    metrics: Arc<Metrics>,
}

tokio::task_local! {
    static REPORT: Report;
}

/// Registers a controller of `kind` (in `scope`, a namespace) with the health report.
fn report_of(context: &Context, kind: &'static str, scope: Option<&str>) -> Report {
    let name = match scope {
        Some(namespace) => format!("{kind} in {namespace}"),
        None => kind.to_owned(),
    };
    Report {
        kind,
        health: context.health.controller(name),
        metrics: context.metrics.clone(),
    }
}

/// Runs one controller task under its health report: its watch reports through [`watched`],
/// and its end counts as a stopped controller (a failure unless the operator is shutting down).
fn reported(
    report: Report,
    task: impl std::future::Future<Output = ()> + Send + 'static,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let health = report.health.clone();
    REPORT.scope(report, health.run_until_stopped(task))
}

/// Logs what a controller's output stream reports that nobody else does: a failing watch (the
/// CRD is missing, or RBAC forbids listing it). Reconcile failures are logged by the error
/// policies; a cleanup still under way is not a failure.
async fn report_watch_failure<K, E>(
    kind: &'static str,
    result: Result<
        (kube::runtime::reflector::ObjectRef<K>, Action),
        kube::runtime::controller::Error<E, watcher::Error>,
    >,
) where
    K: Resource,
    E: std::error::Error,
{
    if let Err(kube::runtime::controller::Error::QueueError(error)) = result {
        tracing::warn!(%error, kind, "watch failed: are the CRDs installed, and may the operator list and watch them?");
    }
}

/// Runs the three controllers over `namespaces` (all namespaces when empty) until `shutdown`
/// resolves.
pub async fn run(
    context: Arc<Context>,
    namespaces: Vec<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    for scope in scopes {
        let datastores: Api<FHIRDatastore> = scoped_api(&context.client, scope.as_deref());
        let config = controller_config(&context.settings);
        let datastore_report = report_of(&context, "FHIRDatastore", scope.as_deref());
        let (datastore_store, changes) =
            REPORT.sync_scope(datastore_report.clone(), || watched(datastores.clone()));
        let datastore_controller =
            Controller::for_stream(changes, datastore_store.clone()).with_config(config.clone());
        let shutdown_signal = wait_for(stopped.clone());
        tasks.spawn(reported(
            datastore_report,
            datastore_controller
                .graceful_shutdown_on(shutdown_signal)
                .run(
                    datastore::reconcile,
                    datastore::error_policy,
                    context.clone(),
                )
                .for_each(|result| report_watch_failure("FHIRDatastore", result)),
        ));
        tasks.spawn(reported(
            report_of(&context, "FHIRImportJob", scope.as_deref()),
            job::run::<FHIRImportJob>(
                context.clone(),
                scope.clone(),
                datastores.clone(),
                datastore_store.clone(),
                config.clone(),
                wait_for(stopped.clone()),
            ),
        ));
        tasks.spawn(reported(
            report_of(&context, "FHIRExportJob", scope.as_deref()),
            job::run::<FHIRExportJob>(
                context.clone(),
                scope.clone(),
                datastores,
                datastore_store,
                config,
                wait_for(stopped.clone()),
            ),
        ));
    }
    shutdown.await;
    context.health.shutting_down();
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
}

fn scoped_api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

fn controller_config(settings: &Settings) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default()
        .concurrency(settings.concurrency)
        .debounce(Duration::from_millis(200))
}

async fn wait_for(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}
