//! The FHIRImportJob and FHIRExportJob controllers: one generic reconcile over [`JobKind`].

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::NamespaceResourceScope;
use kube::api::DeleteParams;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Context, Error, OwnWrites, Written, object_meta, scoped_api, write_status};
use crate::api::{
    DatastoreReference, FHIRDatastore, FHIRExportJob, FHIRExportJobStatus, FHIRImportJob,
    FHIRImportJobStatus,
};
use crate::decide::ObjectMeta;
use crate::decide::job::{
    self as decide, JobAction, JobInput, JobObservation, JobOutcome, JobRecord, Target,
};
use crate::decide::stall::Hold;
use crate::healthlake::{HealthLake, HealthLakeError, Job, Result as HealthLakeResult, StartedJob};

/// What differs between import and export jobs.
pub trait JobKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// The status type.
    type Status: JobRecord + Default + Serialize + Debug + Send + Sync;
    /// The kind, for metrics, events and logs.
    const KIND: &'static str;
    /// The verb for messages: "import" or "export".
    const VERB: &'static str;
    /// The current status.
    fn job_status(&self) -> Option<&Self::Status>;
    /// `spec.datastoreRef`.
    fn reference(&self) -> Option<&DatastoreReference>;
    /// `spec.datastoreId`.
    fn raw_datastore_id(&self) -> Option<&str>;
    /// `spec.ttlSecondsAfterFinished`.
    fn ttl(&self) -> Option<i32>;
    /// Start*Job.
    fn start<'a>(
        &'a self,
        healthlake: &'a dyn HealthLake,
        meta: &'a ObjectMeta,
        region: &'a str,
        datastore_id: &'a str,
    ) -> BoxFuture<'a, HealthLakeResult<StartedJob>>;
    /// Describe*Job.
    fn describe<'a>(
        healthlake: &'a dyn HealthLake,
        region: &'a str,
        datastore_id: &'a str,
        job_id: &'a str,
    ) -> BoxFuture<'a, HealthLakeResult<Job>>;
}

/// Implements [`JobKind`] for a job resource: import and export jobs differ only in their types,
/// their names, how the start request is built, and which HealthLake calls start and describe
/// them.
macro_rules! job_kind {
    ($kind:ty, $status:ty, $name:literal, $verb:literal, $request:path, $start:ident, $describe:ident) => {
        impl JobKind for $kind {
            type Status = $status;
            const KIND: &'static str = $name;
            const VERB: &'static str = $verb;
            fn job_status(&self) -> Option<&Self::Status> {
                self.status.as_ref()
            }
            fn reference(&self) -> Option<&DatastoreReference> {
                self.spec.datastore_ref.as_ref()
            }
            fn raw_datastore_id(&self) -> Option<&str> {
                self.spec.datastore_id.as_deref()
            }
            fn ttl(&self) -> Option<i32> {
                self.spec.ttl_seconds_after_finished
            }
            fn start<'a>(
                &'a self,
                healthlake: &'a dyn HealthLake,
                meta: &'a ObjectMeta,
                region: &'a str,
                datastore_id: &'a str,
            ) -> BoxFuture<'a, HealthLakeResult<StartedJob>> {
                Box::pin(async move {
                    let request = $request(&self.spec, meta, datastore_id);
                    healthlake.$start(region, &request).await
                })
            }
            fn describe<'a>(
                healthlake: &'a dyn HealthLake,
                region: &'a str,
                datastore_id: &'a str,
                job_id: &'a str,
            ) -> BoxFuture<'a, HealthLakeResult<Job>> {
                healthlake.$describe(region, datastore_id, job_id)
            }
        }
    };
}

job_kind!(
    FHIRImportJob,
    FHIRImportJobStatus,
    "FHIRImportJob",
    "import",
    decide::import_request,
    start_import_job,
    describe_import_job
);
job_kind!(
    FHIRExportJob,
    FHIRExportJobStatus,
    "FHIRExportJob",
    "export",
    decide::export_request,
    start_export_job,
    describe_export_job
);

/// The shared context plus the datastores the jobs refer to, and the job writes the watch has not
/// delivered yet.
struct JobContext<K: JobKind> {
    shared: Arc<Context>,
    datastores: Store<FHIRDatastore>,
    own_writes: Arc<OwnWrites<K>>,
}

/// Which jobs name which FHIRDatastore, so that a datastore change finds its jobs without a scan
/// of every job. Kept up to date from the job watch.
#[derive(Default)]
struct JobIndex {
    inner: Mutex<IndexMaps>,
}

#[derive(Default)]
struct IndexMaps {
    /// (namespace, datastore name) → names of the jobs that reference it.
    jobs: HashMap<(String, String), HashSet<String>>,
    /// (namespace, job name) → the datastore name it references.
    datastore_of: HashMap<(String, String), String>,
}

impl JobIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, IndexMaps> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn remove_from(maps: &mut IndexMaps, namespace: &str, job: &str) {
        let key = (namespace.to_owned(), job.to_owned());
        if let Some(datastore) = maps.datastore_of.remove(&key) {
            let datastore_key = (namespace.to_owned(), datastore);
            if let Some(jobs) = maps.jobs.get_mut(&datastore_key) {
                jobs.remove(job);
                if jobs.is_empty() {
                    maps.jobs.remove(&datastore_key);
                }
            }
        }
    }

    fn insert_into<K: JobKind>(maps: &mut IndexMaps, job: &K) {
        let namespace = job.namespace().unwrap_or_default();
        let name = job.name_any();
        Self::remove_from(maps, &namespace, &name);
        if let Some(reference) = job.reference() {
            maps.jobs
                .entry((namespace.clone(), reference.name.clone()))
                .or_default()
                .insert(name.clone());
            maps.datastore_of
                .insert((namespace, name), reference.name.clone());
        }
    }

    /// Follows one watch event.
    fn observe<K: JobKind>(&self, event: &watcher::Event<K>, store: &Store<K>) {
        match event {
            watcher::Event::Apply(job) | watcher::Event::InitApply(job) => {
                Self::insert_into(&mut self.lock(), job);
            }
            watcher::Event::Delete(job) => Self::remove_from(
                &mut self.lock(),
                &job.namespace().unwrap_or_default(),
                &job.name_any(),
            ),
            // A relist is complete: the cache holds exactly the jobs that exist.
            watcher::Event::InitDone => {
                let mut maps = self.lock();
                *maps = IndexMaps::default();
                for job in store.state() {
                    Self::insert_into(&mut maps, job.as_ref());
                }
            }
            watcher::Event::Init => {}
        }
    }

    /// The jobs that name `datastore`.
    fn jobs_of<K: JobKind>(&self, datastore: &FHIRDatastore) -> Vec<ObjectRef<K>> {
        let namespace = datastore.namespace().unwrap_or_default();
        self.lock()
            .jobs
            .get(&(namespace.clone(), datastore.name_any()))
            .map(|jobs| {
                jobs.iter()
                    .map(|job| ObjectRef::new(job).within(&namespace))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What a job reads of its datastore: readiness, failure, id and region. Jobs are reconciled
/// again only when this changes, not on every datastore status write.
fn what_jobs_see(datastore: &FHIRDatastore) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    datastore
        .metadata
        .deletion_timestamp
        .is_some()
        .hash(&mut hasher);
    if let Some(status) = &datastore.status {
        status.datastore_id.hash(&mut hasher);
        status.region.hash(&mut hasher);
        status
            .datastore_status
            .as_ref()
            .map(|state| state.to_string())
            .hash(&mut hasher);
        for condition in &status.conditions {
            if condition.type_ != "Reconciling" {
                (&condition.type_, &condition.status).hash(&mut hasher);
            }
        }
    }
    hasher.finish()
}

/// The jobs that name `datastore` and have not started: a started job runs on the datastore id
/// and region recorded at its start and is polled on its own schedule, so nothing its
/// FHIRDatastore does (a tag sync that drops `Ready` for a moment, a deletion) is worth a
/// Describe call.
fn waiting_jobs<K: JobKind>(
    index: &JobIndex,
    jobs: &Store<K>,
    datastore: &FHIRDatastore,
) -> Vec<ObjectRef<K>> {
    index
        .jobs_of::<K>(datastore)
        .into_iter()
        .filter(|job| {
            jobs.get(job)
                .and_then(|job| {
                    job.job_status()
                        .and_then(|status| status.job_id().map(drop))
                })
                .is_none()
        })
        .collect()
}

/// Runs the controller for one job kind, reconciling a job that has not started again whenever
/// what it reads of the datastore it names changes.
pub(super) async fn run<K: JobKind>(
    context: Arc<Context>,
    namespace: Option<String>,
    datastore_changes: impl futures::Stream<Item = Arc<FHIRDatastore>> + Send + 'static,
    datastores: Store<FHIRDatastore>,
    config: kube::runtime::controller::Config,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let jobs: Api<K> = scoped_api(&context.client, namespace.as_deref());
    let index = Arc::new(JobIndex::default());
    let indexer = index.clone();
    let errors = context.clone();
    let (job_store, writer) = kube::runtime::reflector::store();
    let own_writes = Arc::new(OwnWrites::new(job_store.clone()));
    let watch_writes = own_writes.clone();
    let changes = super::watched(jobs, (job_store.clone(), writer), move |event, store| {
        indexer.observe(event, store);
        watch_writes.observe(event);
        if let watcher::Event::Delete(job) = event
            && let Some(uid) = job.meta().uid.as_deref()
        {
            errors.errors.forget(uid);
        }
    });
    let started = job_store.clone();
    let controller = Controller::for_stream(changes, job_store)
        .with_config(config)
        .watches_shared_stream(
            super::changed(datastore_changes, what_jobs_see),
            move |datastore: Arc<FHIRDatastore>| waiting_jobs(&index, &started, &datastore),
        );
    let job_context = Arc::new(JobContext {
        shared: context,
        datastores,
        own_writes,
    });
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile::<K>, error_policy::<K>, job_context)
        .for_each(|result| super::report_watch_failure(K::KIND, result))
        .await;
}

fn error_policy<K: JobKind>(object: Arc<K>, error: &Error, context: Arc<JobContext<K>>) -> Action {
    if let Some(action) = error.pending() {
        return action;
    }
    tracing::warn!(%error, kind = K::KIND, name = %object.name_any(), "job reconcile failed");
    Action::requeue(
        context
            .shared
            .errors
            .backoff(object.meta().uid.as_deref().unwrap_or_default()),
    )
}

/// Reconciles one job on the newest copy this process knows (its own last write, when the watch
/// has not delivered it yet).
async fn reconcile<K: JobKind>(
    object: Arc<K>,
    context: Arc<JobContext<K>>,
) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let object = context.own_writes.newest(object);
    let result = reconcile_job(object.as_ref(), &context).await;
    context.shared.metrics.reconciled_in(
        K::KIND,
        result
            .as_ref()
            .map_or_else(|error| error.pending().is_some(), |_| true),
        started.elapsed(),
    );
    result
}

/// What one job reconcile observed and did, so that its status can be settled again on a fresher
/// copy of the object.
// One value per reconcile, kept on the stack while its status is written: boxing would only add
// noise.
#[allow(clippy::large_enum_variant)]
enum Step {
    /// Describe*Job could not be asked or failed.
    Unobserved {
        error: HealthLakeError,
        action: String,
    },
    /// The decision's action had this outcome.
    Acted {
        observed: Option<JobObservation>,
        outcome: JobOutcome,
    },
}

async fn reconcile_job<K: JobKind>(
    object: &K,
    job_context: &JobContext<K>,
) -> Result<Action, Error> {
    let context = job_context.shared.as_ref();
    let meta = object_meta(object)?;
    if object.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let api: Api<K> = Api::namespaced(context.client.clone(), &meta.namespace);
    let status = object.job_status().cloned().unwrap_or_default();
    let target = target_of(object, &meta, job_context);
    // The region a started job runs in is the one recorded at its start, whatever happened to
    // its FHIRDatastore since.
    let region = status
        .region()
        .map(str::to_owned)
        .or_else(|| match &target {
            Target::Ready { region, .. } => Some(region.clone()),
            _ => None,
        })
        .unwrap_or_else(|| context.settings.default_region.clone());
    // A job stalled by its reference (its datastore failed) starts the moment the datastore is
    // Ready again; only stalls from a failed AWS call wait for the slow schedule.
    let calls_aws = decide::needs_describe(&status)
        || (status.job_id().is_none() && matches!(target, Target::Ready { .. }));
    if calls_aws
        && !decide::stalled_by_reference(status.conditions())
        && let Hold::Wait(wait) = context.hold(object, &meta, status.conditions())
    {
        return Ok(Action::requeue(wait));
    }

    let described = match (
        decide::needs_describe(&status),
        status.job_id(),
        datastore_id_of(&status, &target),
    ) {
        (true, Some(job_id), Some(datastore_id)) => {
            match K::describe(context.healthlake.as_ref(), &region, &datastore_id, job_id).await {
                Ok(job) => Ok(Some(JobObservation::Described(job))),
                Err(HealthLakeError::NotFound { .. }) => Ok(Some(JobObservation::Gone)),
                Err(error) => Err((error, format!("describe {} job {job_id}", K::VERB))),
            }
        }
        _ => Ok(None),
    };
    let step = match described {
        Err((error, action)) => Step::Unobserved { error, action },
        Ok(observed) => {
            let input = job_input(object, &status, &meta, &target, observed.as_ref(), context);
            let decision = decide::decide(&input);
            let outcome = match &decision.action {
                JobAction::None => JobOutcome::Nothing,
                JobAction::Start {
                    datastore_id,
                    region,
                } => match object
                    .start(context.healthlake.as_ref(), &meta, region, datastore_id)
                    .await
                {
                    Ok(started) => JobOutcome::Started {
                        started,
                        datastore_id: datastore_id.clone(),
                        region: region.clone(),
                    },
                    Err(error) => JobOutcome::Failed {
                        error,
                        action: format!("start {} job on datastore {datastore_id}", K::VERB),
                    },
                },
                JobAction::DeleteObject => {
                    if let Some(notice) = &decision.notice {
                        context.publish(object, notice, "Delete").await;
                    }
                    match api.delete(&meta.name, &DeleteParams::background()).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(status)) if status.is_not_found() => {}
                        Err(error) => return Err(error.into()),
                    }
                    context.errors.forget(&meta.uid);
                    return Ok(Action::await_change());
                }
            };
            Step::Acted { observed, outcome }
        }
    };

    let decided_at = context.now();
    let mut current = object.clone();
    let mut read = Vec::new();
    for _ in 0..STALE_WRITE_ATTEMPTS {
        read.extend(current.resource_version());
        let status = current.job_status().cloned().unwrap_or_default();
        let settled = match &step {
            Step::Unobserved { error, action } => {
                context.count_error(K::KIND, error);
                decide::unobserved(&status, error, action, &meta, context.now())
            }
            Step::Acted { observed, outcome } => {
                if let JobOutcome::Failed { error, .. } = outcome {
                    context.count_error(K::KIND, error);
                }
                let input = job_input(
                    &current,
                    &status,
                    &meta,
                    &target,
                    observed.as_ref(),
                    context,
                );
                decide::settle(&decide::decide(&input), outcome, &input)
            }
        };
        match write_status(
            &api,
            &job_context.own_writes,
            &meta.name,
            &read,
            &status,
            &settled.status,
        )
        .await?
        {
            Written::Done => {
                for notice in &settled.notices {
                    context.publish(object, notice, "Reconcile").await;
                }
                return Ok(context.action(object, &meta, settled.requeue, decided_at));
            }
            Written::Stale => current = super::reread(&api, &meta).await?,
        }
    }
    Err(Error::StaleStatus)
}

/// How often a status write that meets a newer object is settled again.
const STALE_WRITE_ATTEMPTS: usize = 3;

/// Where the job should run, from the FHIRDatastore it names (in the shared cache).
fn target_of<K: JobKind>(object: &K, meta: &ObjectMeta, job_context: &JobContext<K>) -> Target {
    let context = job_context.shared.as_ref();
    let datastore = object.reference().and_then(|reference| {
        job_context
            .datastores
            .get(&ObjectRef::new(&reference.name).within(&meta.namespace))
    });
    decide::resolve_target(
        object.reference(),
        object.raw_datastore_id(),
        &meta.namespace,
        context.settings.allow_datastore_id_refs,
        datastore.as_deref(),
        &context.settings.default_region,
    )
}

fn job_input<'a, K: JobKind>(
    object: &K,
    status: &'a K::Status,
    meta: &'a ObjectMeta,
    target: &'a Target,
    observed: Option<&'a JobObservation>,
    context: &Context,
) -> JobInput<'a, K::Status> {
    JobInput {
        meta,
        status,
        target,
        observed,
        ttl_seconds_after_finished: object.ttl(),
        stuck_after: context.settings.job_stuck_after,
        now: context.now(),
    }
}

/// The datastore a started job runs against: the one saved at the start, else the target's.
fn datastore_id_of<S: JobRecord>(status: &S, target: &Target) -> Option<String> {
    match (status.datastore_id(), target) {
        (Some(datastore_id), _) => Some(datastore_id.to_owned()),
        (None, Target::Ready { datastore_id, .. }) => Some(datastore_id.clone()),
        (None, _) => None,
    }
}
