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
mod own_writes;

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
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use errors::ErrorTracker;
use metrics::Metrics;
use own_writes::OwnWrites;

use crate::api::{FHIRDatastore, FHIRExportJob, FHIRImportJob};
use crate::decide::stall::{self, Hold, RETRY_AT_ANNOTATION, RetrySchedule};
use crate::decide::{Notice, ObjectMeta, Requeue};
use crate::healthlake::{HealthLake, HealthLakeError};

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
    /// First slow retry of a Stalled object whose cause can be fixed outside Kubernetes.
    pub stalled_retry_base: Duration,
    /// Longest wait between two slow retries.
    pub stalled_retry_max: Duration,
    /// How long a datastore may stay CREATING or DELETING before users are warned.
    pub datastore_stuck_after: Duration,
    /// How long a job may stay SUBMITTED or QUEUED before users are warned.
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
            datastore_stuck_after: Duration::from_secs(2 * 3600),
            job_stuck_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl Settings {
    /// The slow retry schedule of Stalled objects.
    pub fn stalled_retry(&self) -> RetrySchedule {
        RetrySchedule {
            first: self.stalled_retry_base,
            max: self.stalled_retry_max.max(self.stalled_retry_base),
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
    /// Who publishes the events (for the one-off recorders of Normal events).
    reporter: Reporter,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Per-object failure memory.
    pub errors: ErrorTracker,
    /// When each datastore's tags were last read, for the drift check.
    pub tag_readings: datastore::TagReadings,
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
        let errors = ErrorTracker::new(
            settings.backoff_base,
            settings.backoff_max,
            settings.stalled_retry(),
        );
        Self {
            recorder: Recorder::new(client.clone(), reporter.clone()),
            reporter,
            client,
            healthlake,
            settings,
            metrics,
            errors,
            tag_readings: datastore::TagReadings::default(),
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
    /// created together do not poll in lockstep. Success forgets the object's past failures.
    /// `decided_at` is when the reconcile knew its outcome, read before the status was written:
    /// a stall's slow retries are timed from it (as its Stalled condition's `lastTransitionTime`
    /// is), not from whenever this runs after the status write and the events.
    fn action<K: Resource>(
        &self,
        object: &K,
        meta: &ObjectMeta,
        requeue: Requeue,
        decided_at: jiff::Timestamp,
    ) -> Action {
        match requeue {
            Requeue::Backoff | Requeue::SlowRetry => {}
            // The call waits for the operator's own request budget: a slow retry it belonged to
            // has not happened yet, and is made once the budget comes.
            Requeue::Quota(_) => self.errors.retry_deferred(&meta.uid),
            _ => self.errors.succeeded(&meta.uid),
        }
        match requeue {
            Requeue::Soon => Action::requeue(jitter_below(self.settings.poll_soon, 10)),
            Requeue::LongOperation => Action::requeue(jitter_below(self.settings.poll_long, 20)),
            Requeue::Resync => Action::requeue(jitter(self.settings.resync, 10)),
            Requeue::Backoff => Action::requeue(self.errors.backoff(&meta.uid)),
            // Looked at again at least every resync: a look before the retry is due costs no AWS
            // call, and it keeps a clock that jumps from stranding the object.
            Requeue::SlowRetry => Action::requeue(jitter(
                self.errors
                    .slow_retry(&meta.uid, meta.generation, retry_at(object), decided_at)
                    .min(self.settings.resync),
                5,
            )),
            // Re-checked at least every resync: cheap (ended jobs need no AWS call), and robust
            // to clock jumps.
            Requeue::After(wait) => Action::requeue(jitter(wait.min(self.settings.resync), 10)),
            // The limiter's queue already spaced the callers: the wait is this object's turn, so
            // it comes back then (no jitter, which would leave the turn unused), at least every
            // resync. Each look costs calls (a datastore with no id lists by name first).
            Requeue::Quota(wait) => Action::requeue(wait.min(self.settings.resync)),
            Requeue::AwaitChange => Action::await_change(),
        }
    }

    /// Whether a Stalled object (or one waiting for an account quota) may call AWS now (see
    /// [`ErrorTracker::stalled`]): objects not held at their current generation always may.
    /// A wait comes back no longer than the resync interval (see [`Requeue::SlowRetry`]).
    fn hold<K: Resource>(
        &self,
        object: &K,
        meta: &ObjectMeta,
        conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    ) -> Hold {
        match stall::held_since(conditions, meta.generation) {
            Some(since) => match self.errors.stalled(
                &meta.uid,
                meta.generation,
                since,
                retry_at(object),
                self.now(),
            ) {
                Hold::Wait(wait) => Hold::Wait(wait.min(self.settings.resync)),
                Hold::Act => Hold::Act,
            },
            None => Hold::Act,
        }
    }

    /// Counts a failed HealthLake call, naming the code of an error the operator does not know.
    fn count_error(&self, kind: &str, error: &HealthLakeError) {
        match error {
            HealthLakeError::Unrecognized { code, .. } => self
                .metrics
                .healthlake_error(kind, &format!("Unrecognized:{code}")),
            other => self.metrics.healthlake_error(kind, other.class()),
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
        // kube-runtime's recorder keeps every event it published for minutes, to patch a repeat
        // as a series, and scans them all on each publish: with one Normal event per object
        // (never repeated on purpose) that cache grew to ~3.5 KiB per object and cost a full
        // scan per event. Normal events go through a recorder of their own, dropped at once;
        // Warnings, which do repeat while a problem lasts, share the long-lived one.
        let recorder = if notice.warning {
            self.recorder.clone()
        } else {
            Recorder::new(self.client.clone(), self.reporter.clone())
        };
        if let Err(error) = recorder.publish(&event, &object.object_ref(&())).await {
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
    /// The object kept changing while its status was written: the requeue settles it again.
    #[error("the object changed while its status was written, several times in a row")]
    StaleStatus,
    /// Cleanup is under way; the finalizer stays until AWS confirms. Not a failure.
    #[error("cleanup is still under way")]
    CleanupPending(Action),
    /// The object was deleted, or deleted and created again under its name, while its status was
    /// written: the new object is reconciled on its own. Not a failure.
    #[error("the object was deleted or replaced while its status was written")]
    Replaced,
}

impl Error {
    /// The requeue of a cleanup that is still under way, if this is one.
    fn pending(&self) -> Option<Action> {
        match self {
            Self::CleanupPending(action) => Some(action.clone()),
            Self::Replaced => Some(Action::await_change()),
            Self::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::CleanupFailed(error) => error.pending(),
                _ => None,
            },
            _ => None,
        }
    }
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

/// The value of the object's `retry-at` annotation, if any.
fn retry_at<K: Resource>(object: &K) -> Option<&str> {
    object
        .meta()
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(RETRY_AT_ANNOTATION))
        .map(String::as_str)
}

/// What came of a status write.
#[derive(Debug, PartialEq, Eq)]
enum Written {
    /// Written, or nothing to write.
    Done,
    /// The object changed since `current` was read (HTTP 409): re-read it and settle again.
    Stale,
}

/// Writes the change from `current` to `desired` to `.status` when they differ, as a JSON merge
/// patch that carries the `resourceVersion` the status was computed from: the API server refuses
/// it (409 Conflict) when the object changed since, so a stale copy never overwrites a newer
/// status. Sends nothing when nothing changed.
///
/// `read` holds the `resourceVersion` of every copy of the object the status was computed from,
/// oldest first (more than one after a 409 and a re-read); the last one is the precondition. A
/// write that went through is handed to `own_writes`, so that the next reconcile acts on it even
/// before the watch delivers it.
async fn write_status<K, S>(
    api: &Api<K>,
    own_writes: &OwnWrites<K>,
    name: &str,
    read: &[String],
    current: &S,
    desired: &S,
) -> Result<Written, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + 'static,
    S: Serialize + PartialEq,
{
    if current == desired {
        return Ok(Written::Done);
    }
    let to_json = |status: &S| {
        serde_json::to_value(status).map_err(|error| Error::Kube(kube::Error::SerdeError(error)))
    };
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": read.last()},
        "status": merge_patch(&to_json(current)?, &to_json(desired)?),
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    match api.patch_status(name, &params, &Patch::Merge(&patch)).await {
        Ok(written) => {
            own_writes.wrote(read, written);
            Ok(Written::Done)
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Written::Stale),
        Err(error) => Err(error.into()),
    }
}

/// Re-reads the object `meta` describes after a 409, to settle its status again on the fresh
/// copy. Fails with [`Error::Replaced`] when the name is gone or now belongs to another object
/// (another uid: deleted and created again while the reconcile ran), so that what the reconcile
/// learned from AWS about the old object never lands in the new one's status.
async fn reread<K>(api: &Api<K>, meta: &ObjectMeta) -> Result<K, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.get_opt(&meta.name).await? {
        Some(object) if object.meta().uid.as_deref() == Some(meta.uid.as_str()) => Ok(object),
        _ => Err(Error::Replaced),
    }
}

/// The JSON merge patch (RFC 7386) that turns `old` into `new`: changed members, and `null` for
/// members `new` lacks.
fn merge_patch(old: &serde_json::Value, new: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = serde_json::Map::new();
            for (key, value) in new {
                match old.get(key) {
                    Some(previous) if previous == value => {}
                    Some(previous) => {
                        patch.insert(key.clone(), merge_patch(previous, value));
                    }
                    None => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            for key in old.keys().filter(|key| !new.contains_key(*key)) {
                patch.insert(key.clone(), Value::Null);
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

/// `base` plus up to `percent` % of it, at random: the wait is at least `base` (a resync interval
/// is the least time between two drift checks).
fn jitter(base: Duration, percent: u64) -> Duration {
    let spread = base.as_millis() as u64 * percent / 100;
    if spread == 0 {
        return base;
    }
    base + Duration::from_millis(rand::random_range(0..=spread))
}

/// `base` minus up to `percent` % of it, at random: the wait is at most `base` (a poll interval
/// bounds how late a change in AWS reaches the status).
fn jitter_below(base: Duration, percent: u64) -> Duration {
    let spread = base.as_millis() as u64 * percent / 100;
    if spread == 0 {
        return base;
    }
    base.saturating_sub(Duration::from_millis(rand::random_range(0..=spread)))
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

/// What makes an object worth reconciling again at once: a new object, a spec change
/// (generation), a deletion request, a finalizer change or a new `retry-at` annotation. Status-only changes, most of them the
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
    retry_at(object).hash(&mut hasher);
    Some(hasher.finish())
}

/// Fills the cache `reader`/`writer` with `api`'s objects, without `managedFields` (nothing reads
/// them, and they are often most of an object's size), and returns the stream of relevant changes
/// that drives a controller.
/// `observe` sees every watch event after it reached the cache (jobs index themselves by datastore
/// with it, and forget deleted objects).
///
/// Inside a task started by [`run`], the watch reports to the controller's health (watch
/// errors, recovery, the initial list) and its cache feeds the `objects` gauge.
fn watched<K>(
    api: Api<K>,
    (reader, writer): (Store<K>, reflector::store::Writer<K>),
    observe: impl Fn(&watcher::Event<K>, &Store<K>) + Send + 'static,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send
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
    let cache = reader.clone();
    let report = REPORT.try_with(Clone::clone).ok();
    if let Some(report) = &report {
        report.metrics.count_objects(report.kind, reader.clone());
    }
    watcher(api, watcher::Config::default().any_semantic())
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
        .modify(slim)
        .reflect(writer)
        .inspect(move |event| {
            if let Ok(event) = event {
                observe(event, &cache);
            }
        })
        .applied_objects()
        .predicate_filter(relevant_change, PredicateConfig::default())
}

/// Drops what the cache of every watched object never needs: the managed fields, the labels,
/// and every annotation the operator does not read (kubectl's last-applied copy of the manifest,
/// Helm's and Argo CD's bookkeeping, ...). Each map of a decoded object costs a B-tree node of
/// about half a KiB even with one entry, per cached object; the writes are merge patches and
/// patches of the finalizers, so what the cache leaves out is never written back.
fn slim<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    meta.labels = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.retain(|key, _| READ_ANNOTATIONS.contains(&key.as_str()));
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// [`slim`] for a FHIRDatastore, which also drops the region annotation once `status.region`
/// records the region (the annotation only matters before the first status write).
fn slim_datastore(object: &mut FHIRDatastore) {
    slim(object);
    if object
        .status
        .as_ref()
        .is_some_and(|status| status.region.is_some())
        && let Some(annotations) = object.metadata.annotations.as_mut()
    {
        annotations.remove(crate::api::REGION_ANNOTATION);
        if annotations.is_empty() {
            object.metadata.annotations = None;
        }
    }
}

/// The annotations the operator reads from its objects.
const READ_ANNOTATIONS: [&str; 2] = [RETRY_AT_ANNOTATION, crate::api::REGION_ANNOTATION];

/// Keeps the objects of a shared stream whose `key` changed since the last one seen with the
/// same uid, like kube-runtime's predicate filter for plain streams: an entry not seen for
/// [`CHANGE_MEMORY`] is forgotten (the next copy of its object passes as changed), so that the
/// uids of deleted objects do not pile up.
fn changed<K: Resource + Send + Sync + 'static>(
    stream: impl futures::Stream<Item = Arc<K>> + Send,
    key: impl Fn(&K) -> u64 + Send + Sync + 'static,
) -> impl futures::Stream<Item = Arc<K>> + Send {
    let seen = std::sync::Mutex::new(ChangeMemory::default());
    stream.filter(move |object| {
        let uid = object.meta().uid.clone().unwrap_or_default();
        let value = key(object);
        let mut seen = seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        std::future::ready(seen.changed(uid, value, tokio::time::Instant::now()))
    })
}

/// How long [`changed`] remembers an object it has not seen since: kube-runtime's predicate
/// filter's default.
const CHANGE_MEMORY: Duration = Duration::from_secs(3600);

/// The last key seen per uid, and when.
#[derive(Default)]
struct ChangeMemory {
    entries: std::collections::HashMap<String, (u64, tokio::time::Instant)>,
    last_sweep: Option<tokio::time::Instant>,
}

impl ChangeMemory {
    /// Whether `value` differs from the last key seen for `uid` within [`CHANGE_MEMORY`], and
    /// remembers it. Sweeps entries older than that once per [`CHANGE_MEMORY`].
    fn changed(&mut self, uid: String, value: u64, now: tokio::time::Instant) -> bool {
        let last_sweep = *self.last_sweep.get_or_insert(now);
        if now.duration_since(last_sweep) >= CHANGE_MEMORY {
            self.entries
                .retain(|_, (_, seen)| now.duration_since(*seen) < CHANGE_MEMORY);
            self.last_sweep = Some(now);
        }
        let previous = self.entries.insert(uid, (value, now));
        !previous
            .is_some_and(|(key, seen)| key == value && now.duration_since(seen) < CHANGE_MEMORY)
    }
}

/// The FHIRDatastore watch shared by the three controllers of one scope: one list and watch,
/// one cache, each change decoded once.
struct SharedDatastores {
    store: Store<FHIRDatastore>,
    writer: Option<reflector::store::Writer<FHIRDatastore>>,
    api: Api<FHIRDatastore>,
}

impl SharedDatastores {
    fn new(api: Api<FHIRDatastore>) -> Self {
        let (store, writer) = reflector::store_shared(1024);
        Self {
            store,
            writer: Some(writer),
            api,
        }
    }

    /// A stream of every datastore change, for one controller.
    fn subscribe(&self) -> impl futures::Stream<Item = Arc<FHIRDatastore>> + Send + use<> {
        self.writer
            .as_ref()
            .and_then(|writer| writer.subscribe())
            .expect("a shared store hands out subscribers until it starts")
    }

    /// The watch that feeds the cache and every subscriber; it must be polled for any of them
    /// to see a change. It reports to the FHIRDatastore controller's health and feeds the
    /// `objects` gauge.
    /// `own_writes` follows the watch, to forget the writes it delivered.
    fn start(
        mut self,
        report: Report,
        own_writes: Arc<OwnWrites<FHIRDatastore>>,
    ) -> impl std::future::Future<Output = ()> + Send {
        let writer = self.writer.take().expect("started once");
        report
            .metrics
            .count_objects(report.kind, self.store.clone());
        watcher(self.api, watcher::Config::default().any_semantic())
            .default_backoff()
            .inspect(move |event| match event {
                Ok(watcher::Event::InitDone) => {
                    report.health.watch_ok();
                    report.health.synced();
                }
                Ok(_) => report.health.watch_ok(),
                Err(error) => report.health.watch_failed(error, std::time::Instant::now()),
            })
            .modify(slim_datastore)
            .reflect_shared(writer)
            .inspect(move |event| {
                if let Ok(event) = event {
                    own_writes.observe(event);
                }
            })
            .for_each(|event| async move {
                if let Err(error) = event {
                    tracing::warn!(%error, kind = "FHIRDatastore", "watch failed: are the CRDs installed, and may the operator list and watch them?");
                }
            })
    }
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
        let datastores = SharedDatastores::new(scoped_api(&context.client, scope.as_deref()));
        let config = controller_config(&context.settings);
        let datastore_report = report_of(&context, "FHIRDatastore", scope.as_deref());
        let datastore_store = datastores.store.clone();
        let datastore_writes = Arc::new(OwnWrites::new(datastore_store.clone()));
        let datastore_changes = changed(datastores.subscribe(), |datastore: &FHIRDatastore| {
            relevant_change(datastore).unwrap_or_default()
        });
        let import_trigger = datastores.subscribe();
        let export_trigger = datastores.subscribe();
        let datastore_controller =
            Controller::for_shared_stream(datastore_changes, datastore_store.clone())
                .with_config(config.clone());
        let shutdown_signal = wait_for(stopped.clone());
        tasks.spawn(reported(
            datastore_report.clone(),
            datastore_controller
                .graceful_shutdown_on(shutdown_signal)
                .run(
                    datastore::reconcile,
                    datastore::error_policy,
                    Arc::new(datastore::DatastoreContext {
                        shared: context.clone(),
                        own_writes: datastore_writes.clone(),
                    }),
                )
                .for_each(|result| report_watch_failure("FHIRDatastore", result)),
        ));
        tasks.spawn(reported(
            report_of(&context, "FHIRImportJob", scope.as_deref()),
            job::run::<FHIRImportJob>(
                context.clone(),
                scope.clone(),
                import_trigger,
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
                export_trigger,
                datastore_store,
                config,
                wait_for(stopped.clone()),
            ),
        ));
        let mut stop_watch = stopped.clone();
        let watch = datastores.start(datastore_report, datastore_writes);
        tasks.spawn(async move {
            tokio::select! {
                () = watch => {}
                _ = stop_watch.wait_for(|stop| *stop) => {}
            }
        });
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

#[cfg(all(test, feature = "test-apiserver"))]
mod tests;
