//! The FHIRImportJob and FHIRExportJob controllers: one generic reconcile over [`JobKind`].

use std::fmt::Debug;
use std::sync::Arc;

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

use super::{Context, Error, fail, key_of, object_meta, scoped_api, write_status};
use crate::api::{
    DatastoreReference, FHIRDatastore, FHIRExportJob, FHIRExportJobStatus, FHIRImportJob,
    FHIRImportJobStatus,
};
use crate::decide::job::{self as decide, JobAction, JobInput, JobObservation, JobRecord, Target};
use crate::decide::{Notice, ObjectMeta};
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

/// The shared context plus the datastores the jobs refer to.
struct JobContext {
    shared: Arc<Context>,
    datastores: Store<FHIRDatastore>,
}

/// Runs the controller for one job kind, reconciling a job again whenever the datastore it
/// names changes.
pub(super) async fn run<K: JobKind>(
    context: Arc<Context>,
    namespace: Option<String>,
    datastores_api: Api<FHIRDatastore>,
    datastores: Store<FHIRDatastore>,
    config: kube::runtime::controller::Config,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let jobs: Api<K> = scoped_api(&context.client, namespace.as_deref());
    let (job_store, changes) = super::watched(jobs);
    let controller = Controller::for_stream(changes, job_store.clone()).with_config(config);
    let controller = controller.watches(
        datastores_api,
        watcher::Config::default().any_semantic(),
        move |datastore: FHIRDatastore| {
            let name = datastore.name_any();
            let namespace = datastore.namespace();
            job_store
                .state()
                .into_iter()
                .filter(|job| {
                    job.namespace() == namespace
                        && job
                            .reference()
                            .is_some_and(|reference| reference.name == name)
                })
                .map(|job| ObjectRef::from_obj(job.as_ref()))
                .collect::<Vec<_>>()
        },
    );
    let job_context = Arc::new(JobContext {
        shared: context,
        datastores,
    });
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile::<K>, error_policy::<K>, job_context)
        .for_each(|result| super::report_watch_failure(K::KIND, result))
        .await;
}

fn error_policy<K: JobKind>(object: Arc<K>, error: &Error, context: Arc<JobContext>) -> Action {
    tracing::warn!(%error, kind = K::KIND, name = %object.name_any(), "job reconcile failed");
    Action::requeue(
        context
            .shared
            .errors
            .backoff(&key_of(K::KIND, object.as_ref())),
    )
}

async fn reconcile<K: JobKind>(object: Arc<K>, context: Arc<JobContext>) -> Result<Action, Error> {
    let result = reconcile_job(object.as_ref(), &context).await;
    context.shared.metrics.reconciled(K::KIND, result.is_ok());
    result
}

async fn reconcile_job<K: JobKind>(object: &K, job_context: &JobContext) -> Result<Action, Error> {
    let context = job_context.shared.as_ref();
    let meta = object_meta(object)?;
    let key = key_of(K::KIND, object);
    if object.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if context.errors.is_held(&key, meta.generation) {
        return Ok(Action::await_change());
    }
    let api: Api<K> = Api::namespaced(context.client.clone(), &meta.namespace);
    let status = object.job_status().cloned().unwrap_or_default();
    let datastore = object.reference().and_then(|reference| {
        job_context
            .datastores
            .get(&ObjectRef::new(&reference.name).within(&meta.namespace))
    });
    let target = decide::resolve_target(
        object.reference(),
        object.raw_datastore_id(),
        &meta.namespace,
        context.settings.allow_datastore_id_refs,
        datastore.as_deref(),
        &context.settings.default_region,
    );
    let region = match &target {
        Target::Ready { region, .. } => region.clone(),
        _ => datastore
            .as_ref()
            .and_then(|datastore| {
                datastore
                    .status
                    .as_ref()
                    .and_then(|status| status.region.clone())
            })
            .unwrap_or_else(|| context.settings.default_region.clone()),
    };

    let observed = match (
        decide::needs_describe(&status),
        status.job_id(),
        datastore_id_of(&status, &target),
    ) {
        (true, Some(job_id), Some(datastore_id)) => {
            match K::describe(context.healthlake.as_ref(), &region, &datastore_id, job_id).await {
                Ok(job) => Some(JobObservation::Described(job)),
                Err(HealthLakeError::NotFound { .. }) => Some(JobObservation::Gone),
                Err(error) => {
                    let action = format!("describe {} job {job_id}", K::VERB);
                    return fail(
                        &api,
                        object,
                        K::KIND,
                        context,
                        &status,
                        &status,
                        &error,
                        &action,
                    )
                    .await;
                }
            }
        }
        _ => None,
    };

    let decision = decide::decide(&JobInput {
        meta: &meta,
        status: &status,
        target: &target,
        observed: observed.as_ref(),
        ttl_seconds_after_finished: object.ttl(),
        now: context.now(),
    });
    if let Some(notice) = &decision.notice {
        context.publish(object, notice, "Reconcile").await;
    }
    // One status write per reconcile, after the start if there is one (see the datastore
    // controller for why).
    let written = match &decision.action {
        JobAction::None => decision.status.clone(),
        JobAction::Start {
            datastore_id,
            region,
        } => {
            match object
                .start(context.healthlake.as_ref(), &meta, region, datastore_id)
                .await
            {
                Ok(started) => {
                    let message = format!(
                        "started {} job {} on datastore {datastore_id}",
                        K::VERB,
                        started.job_id
                    );
                    context
                        .publish(object, &Notice::normal("Started", message), "Start")
                        .await;
                    decide::after_start(
                        &decision.status,
                        &started,
                        datastore_id,
                        &meta,
                        context.now(),
                    )
                }
                Err(error) => {
                    let action = format!("start {} job on datastore {datastore_id}", K::VERB);
                    return fail(
                        &api,
                        object,
                        K::KIND,
                        context,
                        &status,
                        &decision.status,
                        &error,
                        &action,
                    )
                    .await;
                }
            }
        }
        JobAction::DeleteObject => {
            match api.delete(&meta.name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.is_not_found() => {}
                Err(error) => return Err(error.into()),
            }
            context.errors.forget(&key);
            return Ok(Action::await_change());
        }
    };
    write_status(&api, &meta.name, &status, &written).await?;
    context.errors.succeeded(&key);
    Ok(context.action(&key, decision.requeue))
}

/// The datastore a started job runs against: the one saved at the start, else the target's.
fn datastore_id_of<S: JobRecord>(status: &S, target: &Target) -> Option<String> {
    match (status.datastore_id(), target) {
        (Some(datastore_id), _) => Some(datastore_id.to_owned()),
        (None, Target::Ready { datastore_id, .. }) => Some(datastore_id.clone()),
        (None, _) => None,
    }
}
