//! Decisions for `FHIRImportJob` and `FHIRExportJob`: wait for the datastore, start once, poll
//! to a terminal status, copy progress, and make no AWS call once the job has ended.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::datastore::{Settled, with_stuck_warning};
use super::{
    Notice, ObjectMeta, Phase, Requeue, Step, keep_transition_times, phase_changed, set_phase,
    settle_failure, worth_sending,
};
use crate::api::{
    ConditionType, DatastoreReference, FHIRDatastore, FHIRExportJobSpec, FHIRExportJobStatus,
    FHIRImportJobSpec, FHIRImportJobStatus, JobProgress, JobStatus,
};
use crate::healthlake::{
    HealthLakeError, Job, S3Output, StartExportJob, StartImportJob, StartedJob,
};

/// The status fields both job kinds share, so one set of decisions serves both.
pub trait JobRecord: Clone + PartialEq {
    /// The job id, once AWS returned it.
    fn job_id(&self) -> Option<&str>;
    /// The last status AWS reported.
    fn job_status(&self) -> Option<&JobStatus>;
    /// The datastore the job was started on.
    fn datastore_id(&self) -> Option<&str>;
    /// The region the job was started in.
    fn region(&self) -> Option<&str>;
    /// When the job ended.
    fn end_time(&self) -> Option<&Time>;
    /// The conditions.
    fn conditions(&self) -> &[Condition];
    /// The conditions, to change them.
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
    /// Sets `observedGeneration`.
    fn set_observed_generation(&mut self, generation: Option<i64>);
    /// Records what Start*Job returned, and the region the job runs in.
    fn record_start(&mut self, started: &StartedJob, datastore_id: &str, region: &str);
    /// Puts back the AWS ids and region `previous` recorded where this status lacks them.
    fn keep_ids(&mut self, previous: &Self);
    /// Records what Describe*Job returned.
    fn record_job(&mut self, job: &Job);
    /// A short progress summary for messages, if the kind reports progress.
    fn progress_summary(&self) -> Option<String>;
}

macro_rules! job_record {
    ($status:ty, |$self_:ident, $job:ident| $record_progress:expr, |$me:ident| $summary:expr) => {
        impl JobRecord for $status {
            fn job_id(&self) -> Option<&str> {
                self.job_id.as_deref()
            }
            fn job_status(&self) -> Option<&JobStatus> {
                self.job_status.as_ref()
            }
            fn datastore_id(&self) -> Option<&str> {
                self.datastore_id.as_deref()
            }
            fn region(&self) -> Option<&str> {
                self.region.as_deref()
            }
            fn end_time(&self) -> Option<&Time> {
                self.end_time.as_ref()
            }
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
            fn conditions_mut(&mut self) -> &mut Vec<Condition> {
                &mut self.conditions
            }
            fn set_observed_generation(&mut self, generation: Option<i64>) {
                self.observed_generation = generation;
            }
            fn record_start(&mut self, started: &StartedJob, datastore_id: &str, region: &str) {
                self.job_id = Some(started.job_id.clone());
                self.job_status = Some(started.status.clone());
                self.datastore_id = Some(started.datastore_id.clone().unwrap_or_else(|| datastore_id.to_owned()));
                self.region = Some(region.to_owned());
            }
            fn keep_ids(&mut self, previous: &Self) {
                if self.job_id.is_none() {
                    self.job_id.clone_from(&previous.job_id);
                }
                if self.datastore_id.is_none() {
                    self.datastore_id.clone_from(&previous.datastore_id);
                }
                if self.region.is_none() {
                    self.region.clone_from(&previous.region);
                }
            }
            fn record_job(&mut $self_, $job: &Job) {
                $self_.job_id = Some($job.job_id.clone());
                $self_.job_status = Some($job.status.clone());
                $self_.datastore_id = Some($job.datastore_id.clone());
                $self_.submit_time = $job.submit_time.map(Time);
                $self_.end_time = $job.end_time.map(Time);
                $self_.message = $job.message.clone();
                $record_progress
            }
            fn progress_summary(&$me) -> Option<String> {
                $summary
            }
        }
    };
}

job_record!(
    FHIRImportJobStatus,
    |self, job| {
        if let Some(report) = &job.progress {
            let summary = match (report.resources_imported, report.resources_scanned) {
                (Some(imported), Some(scanned)) => Some(format!("{imported}/{scanned}")),
                _ => None,
            };
            self.progress = Some(JobProgress {
                summary,
                total_number_of_scanned_files: report.scanned_files,
                total_size_of_scanned_files_in_mb: report.scanned_size_mb,
                total_number_of_imported_files: report.imported_files,
                total_number_of_resources_scanned: report.resources_scanned,
                total_number_of_resources_imported: report.resources_imported,
                total_number_of_resources_with_customer_error: report.resources_with_customer_error,
                total_number_of_files_read_with_customer_error: report
                    .files_read_with_customer_error,
                throughput: report.throughput,
            });
        }
    },
    |self| self
        .progress
        .as_ref()
        .and_then(|progress| progress.summary.clone())
        .map(|summary| format!("{summary} resources imported"))
);

job_record!(FHIRExportJobStatus, |self, job| {}, |self| None);

/// Where a job should run, as far as the operator can tell from Kubernetes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The datastore is Ready: the job can start.
    Ready {
        /// The datastore id.
        datastore_id: String,
        /// Its region.
        region: String,
    },
    /// Not yet: the FHIRDatastore is missing or not Ready. The job waits.
    NotReady {
        /// What the job is waiting for.
        message: String,
    },
    /// The FHIRDatastore failed (CREATE_FAILED, or Stalled): the job cannot start unless it
    /// recovers, which the job notices by itself.
    Failed {
        /// Which datastore, and why.
        message: String,
    },
    /// The reference cannot work until the job is changed.
    Refused {
        /// CamelCase reason.
        reason: &'static str,
        /// What is wrong and what to do instead.
        message: String,
    },
}

/// Resolves a job's datastore reference against the FHIRDatastore it names (if found).
pub fn resolve_target(
    reference: Option<&DatastoreReference>,
    datastore_id: Option<&str>,
    job_namespace: &str,
    allow_datastore_id_refs: bool,
    datastore: Option<&FHIRDatastore>,
    default_region: &str,
) -> Target {
    if let Some(id) = datastore_id {
        return if allow_datastore_id_refs {
            Target::Ready {
                datastore_id: id.to_owned(),
                region: default_region.to_owned(),
            }
        } else {
            Target::Refused {
                reason: "DatastoreIdRefsDisabled",
                message: "spec.datastoreId is not allowed because the operator runs without --allow-datastore-id-refs: \
                          name a FHIRDatastore in this namespace with spec.datastoreRef instead"
                    .to_owned(),
            }
        };
    }
    let Some(reference) = reference else {
        return Target::Refused {
            reason: "MissingDatastoreReference",
            message: "the job names no datastore: set spec.datastoreRef.name".to_owned(),
        };
    };
    if let Some(namespace) = reference
        .namespace
        .as_deref()
        .filter(|namespace| *namespace != job_namespace)
    {
        return Target::Refused {
            reason: "CrossNamespaceReference",
            message: format!(
                "spec.datastoreRef names namespace {namespace}, but a job may only use a FHIRDatastore in its own namespace {job_namespace}"
            ),
        };
    }
    let Some(datastore) = datastore else {
        return Target::NotReady {
            message: format!(
                "waiting for FHIRDatastore {}, which does not exist",
                reference.name
            ),
        };
    };
    let status = datastore.status.as_ref();
    let holds = |type_: ConditionType| {
        status.is_some_and(|status| {
            status
                .conditions
                .iter()
                .any(|condition| condition.type_ == type_.as_str() && condition.status == "True")
        })
    };
    let ready = holds(ConditionType::Ready);
    let create_failed = status
        .and_then(|status| status.datastore_status.as_ref())
        .is_some_and(|state| *state == crate::api::DatastoreStatus::CreateFailed);
    if !ready && (create_failed || holds(ConditionType::Stalled)) {
        let why = status
            .and_then(|status| {
                status
                    .conditions
                    .iter()
                    .find(|condition| condition.type_ == ConditionType::Stalled.as_str())
            })
            .map(|condition| format!("{}: {}", condition.reason, condition.message))
            .unwrap_or_else(|| "CREATE_FAILED".to_owned());
        return Target::Failed {
            message: format!(
                "FHIRDatastore {} failed ({why}); the job starts by itself if the datastore recovers",
                reference.name
            ),
        };
    }
    match status.and_then(|status| status.datastore_id.clone()) {
        Some(datastore_id) if ready && datastore.metadata.deletion_timestamp.is_none() => {
            Target::Ready {
                datastore_id,
                region: status
                    .and_then(|status| status.region.clone())
                    .or_else(|| datastore.spec.region.clone())
                    .unwrap_or_else(|| default_region.to_owned()),
            }
        }
        _ => {
            let state = status
                .and_then(|status| status.datastore_status.as_ref())
                .map(|state| state.to_string())
                .unwrap_or_else(|| "not created yet".to_owned());
            Target::NotReady {
                message: format!(
                    "waiting for FHIRDatastore {} to become Ready (it is {state})",
                    reference.name
                ),
            }
        }
    }
}

/// What Describe*Job reported.
#[derive(Clone, Debug, PartialEq)]
// One value per reconcile, moved once: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
pub enum JobObservation {
    /// The job as described.
    Described(Job),
    /// AWS does not know the job id.
    Gone,
}

/// What to do for a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobAction {
    /// Nothing now.
    None,
    /// Start the job on this datastore (ClientToken = the object's uid).
    Start {
        /// The datastore id.
        datastore_id: String,
        /// Its region.
        region: String,
    },
    /// `ttlSecondsAfterFinished` has passed: delete the Kubernetes object.
    DeleteObject,
}

/// The outcome of a job decision.
#[derive(Clone, Debug, PartialEq)]
pub struct JobDecision<S> {
    /// What to do.
    pub action: JobAction,
    /// The status to write (only if it differs).
    pub status: S,
    /// When to look again.
    pub requeue: Requeue,
    /// An event for users.
    pub notice: Option<Notice>,
}

/// Everything a job decision reads.
#[derive(Clone, Debug)]
pub struct JobInput<'a, S> {
    /// The object's identity.
    pub meta: &'a ObjectMeta,
    /// Its current status.
    pub status: &'a S,
    /// Where the job should run.
    pub target: &'a Target,
    /// What Describe*Job reported, when the controller asked (see [`needs_describe`]).
    pub observed: Option<&'a JobObservation>,
    /// `spec.ttlSecondsAfterFinished`.
    pub ttl_seconds_after_finished: Option<i32>,
    /// How long SUBMITTED or QUEUED may last before users are warned.
    pub stuck_after: Duration,
    /// The current time.
    pub now: Timestamp,
}

/// What happened when the controller carried out a job decision's action.
#[derive(Clone, Debug, PartialEq)]
pub enum JobOutcome {
    /// The action needed no call.
    Nothing,
    /// Start*Job answered.
    Started {
        /// What AWS returned.
        started: StartedJob,
        /// The datastore it runs against.
        datastore_id: String,
        /// The region it runs in.
        region: String,
    },
    /// The call failed.
    Failed {
        /// How it failed.
        error: HealthLakeError,
        /// What was attempted, for messages.
        action: String,
    },
}

/// True for the statuses after which a job never changes again.
pub fn is_terminal(status: &JobStatus) -> bool {
    matches!(
        status,
        JobStatus::Completed
            | JobStatus::CompletedWithErrors
            | JobStatus::Failed
            | JobStatus::CancelCompleted
    )
}

/// Reasons a job is Stalled for by its reference alone, without any AWS call having failed: such a
/// job is looked at again as soon as its datastore changes, never held to the slow retry schedule.
pub const REFERENCE_STALLS: &[&str] = &[
    "DatastoreFailed",
    "CrossNamespaceReference",
    "DatastoreIdRefsDisabled",
    "MissingDatastoreReference",
];

/// True when the job is Stalled for one of the [`REFERENCE_STALLS`].
pub fn stalled_by_reference(conditions: &[Condition]) -> bool {
    conditions.iter().any(|condition| {
        condition.type_ == ConditionType::Stalled.as_str()
            && condition.status == "True"
            && REFERENCE_STALLS.contains(&condition.reason.as_str())
    })
}

/// True when the controller should call Describe*Job: a job was started and has not ended.
pub fn needs_describe<S: JobRecord>(status: &S) -> bool {
    status.job_id().is_some() && !status.job_status().is_some_and(is_terminal)
}

/// Decides what to do for a job.
pub fn decide<S: JobRecord>(input: &JobInput<'_, S>) -> JobDecision<S> {
    let generation = input.meta.generation;
    let now = input.now;
    let mut status = input.status.clone();
    status.set_observed_generation(generation);

    if input.status.job_status().is_some_and(is_terminal) {
        let (action, requeue, notice) = expiry(&status, input.ttl_seconds_after_finished, now);
        return JobDecision {
            action,
            status,
            requeue,
            notice,
        };
    }

    let Some(job_id) = input.status.job_id().map(str::to_owned) else {
        let (action, requeue, notice) = match input.target {
            Target::Refused { reason, message } => {
                set_phase(
                    status.conditions_mut(),
                    Phase::Stalled,
                    reason,
                    message,
                    generation,
                    now,
                );
                (
                    JobAction::None,
                    Requeue::AwaitChange,
                    Some(Notice::warning(reason, message.clone())),
                )
            }
            Target::NotReady { message } => {
                set_phase(
                    status.conditions_mut(),
                    Phase::Progressing,
                    "WaitingForDatastore",
                    message,
                    generation,
                    now,
                );
                (JobAction::None, Requeue::LongOperation, None)
            }
            Target::Failed { message } => {
                set_phase(
                    status.conditions_mut(),
                    Phase::Stalled,
                    "DatastoreFailed",
                    message,
                    generation,
                    now,
                );
                (
                    JobAction::None,
                    Requeue::LongOperation,
                    Some(Notice::warning("DatastoreFailed", message.clone())),
                )
            }
            Target::Ready {
                datastore_id,
                region,
            } => {
                let message = format!("starting the job on datastore {datastore_id}");
                set_phase(
                    status.conditions_mut(),
                    Phase::Progressing,
                    "Starting",
                    &message,
                    generation,
                    now,
                );
                let action = JobAction::Start {
                    datastore_id: datastore_id.clone(),
                    region: region.clone(),
                };
                (action, Requeue::Soon, None)
            }
        };
        let notice =
            notice.filter(|_| phase_changed(input.status.conditions(), status.conditions()));
        return JobDecision {
            action,
            status,
            requeue,
            notice,
        };
    };

    let (requeue, notice) = match input.observed {
        None => (Requeue::Soon, None),
        Some(JobObservation::Gone) => {
            let message = format!(
                "HealthLake no longer knows job {job_id}; create a new job object to run it again"
            );
            set_phase(
                status.conditions_mut(),
                Phase::Stalled,
                "JobGone",
                &message,
                generation,
                now,
            );
            (
                Requeue::AwaitChange,
                Some(Notice::warning("JobGone", message)),
            )
        }
        Some(JobObservation::Described(job)) => {
            status.record_job(job);
            follow(&mut status, input, job)
        }
    };
    let (action, requeue) = if status.job_status().is_some_and(is_terminal) {
        let (action, ttl_requeue, _) = expiry(&status, input.ttl_seconds_after_finished, now);
        (action, ttl_requeue)
    } else {
        (JobAction::None, requeue)
    };
    let notice = notice
        .filter(|notice| worth_sending(notice, input.status.conditions(), status.conditions()));
    JobDecision {
        action,
        status,
        requeue,
        notice,
    }
}

fn follow<S: JobRecord>(
    status: &mut S,
    input: &JobInput<'_, S>,
    job: &Job,
) -> (Requeue, Option<Notice>) {
    let generation = input.meta.generation;
    let now = input.now;
    let id = &job.job_id;
    let datastore = &job.datastore_id;
    let aws_message = job
        .message
        .as_deref()
        .map(|message| format!(": {message}"))
        .unwrap_or_default();
    let progress = status
        .progress_summary()
        .map(|summary| format!(" ({summary})"))
        .unwrap_or_default();
    let (phase, reason, message, requeue, warning) = match &job.status {
        JobStatus::Submitted => (
            Phase::Progressing,
            "Submitted",
            format!("job {id} was submitted to datastore {datastore}"),
            Requeue::LongOperation,
            false,
        ),
        JobStatus::Queued => (
            Phase::Progressing,
            "Queued",
            format!(
                "job {id} on datastore {datastore} is queued: HealthLake runs one import job and one export job \
                 at a time in an account and region, so it starts when the jobs submitted before it end"
            ),
            Requeue::LongOperation,
            false,
        ),
        JobStatus::InProgress => (
            Phase::Progressing,
            "InProgress",
            format!("job {id} is running{progress}"),
            Requeue::LongOperation,
            false,
        ),
        JobStatus::CancelSubmitted | JobStatus::CancelInProgress => (
            Phase::Progressing,
            "Cancelling",
            format!("job {id} is being cancelled"),
            Requeue::LongOperation,
            false,
        ),
        JobStatus::CancelFailed => (
            Phase::Progressing,
            "CancelFailed",
            format!("cancelling job {id} failed, so it goes on{aws_message}"),
            Requeue::LongOperation,
            true,
        ),
        JobStatus::Completed => (
            Phase::Ready,
            "Completed",
            format!("job {id} completed{progress}"),
            Requeue::AwaitChange,
            false,
        ),
        JobStatus::CompletedWithErrors => (
            Phase::Stalled,
            "CompletedWithErrors",
            format!(
                "job {id} completed with errors{aws_message}{progress}; see the error files in the output location"
            ),
            Requeue::AwaitChange,
            true,
        ),
        JobStatus::Failed => (
            Phase::Stalled,
            "Failed",
            format!("job {id} failed{aws_message}"),
            Requeue::AwaitChange,
            true,
        ),
        JobStatus::CancelCompleted => (
            Phase::Stalled,
            "Cancelled",
            format!("job {id} was cancelled outside Kubernetes"),
            Requeue::AwaitChange,
            true,
        ),
        JobStatus::Unknown(value) => (
            Phase::Progressing,
            "UnknownJobStatus",
            format!(
                "HealthLake reports status {value} for job {id}, which this operator version does not know; it will look again"
            ),
            Requeue::LongOperation,
            true,
        ),
    };
    let (message, stuck) = if matches!(job.status, JobStatus::Submitted | JobStatus::Queued) {
        with_stuck_warning(
            message,
            input.status.conditions(),
            job.submit_time,
            input.stuck_after,
            now,
        )
    } else {
        (message, None)
    };
    set_phase(
        status.conditions_mut(),
        phase,
        reason,
        &message,
        generation,
        now,
    );
    // Progress AWS makes on its own (queued, running, completed) shows in the conditions; a
    // Normal event records only what the operator did (`Started`), so that the happy path costs
    // one event per job.
    let notice = if let Some(stuck) = stuck {
        Some(stuck)
    } else if warning {
        Some(Notice::warning(reason, message))
    } else {
        None
    };
    (requeue, notice)
}

/// For an ended job: delete the object once `ttlSecondsAfterFinished` has passed, else wait.
fn expiry<S: JobRecord>(
    status: &S,
    ttl_seconds: Option<i32>,
    now: Timestamp,
) -> (JobAction, Requeue, Option<Notice>) {
    let Some(ttl_seconds) = ttl_seconds else {
        return (JobAction::None, Requeue::AwaitChange, None);
    };
    let ended = status.end_time().map(|time| time.0).or_else(|| {
        status
            .conditions()
            .iter()
            .find(|condition| condition.type_ == ConditionType::Reconciling.as_str())
            .map(|condition| condition.last_transition_time.0)
    });
    let ended = ended.unwrap_or(now);
    let ttl = Duration::from_secs(u64::try_from(ttl_seconds).unwrap_or(0));
    let elapsed = now.duration_since(ended).unsigned_abs();
    if now >= ended && elapsed >= ttl {
        let notice = Notice::normal(
            "Expired",
            format!("deleting the finished job after ttlSecondsAfterFinished ({ttl_seconds}s)"),
        );
        (JobAction::DeleteObject, Requeue::AwaitChange, Some(notice))
    } else if now < ended {
        (JobAction::None, Requeue::After(ttl + elapsed), None)
    } else {
        (JobAction::None, Requeue::After(ttl - elapsed), None)
    }
}

/// Turns a job decision and what came of its action into the status to write: the one status
/// step of every job reconcile (see [`super::datastore::settle`]).
pub fn settle<S: JobRecord>(
    decision: &JobDecision<S>,
    outcome: &JobOutcome,
    input: &JobInput<'_, S>,
) -> Settled<S> {
    let generation = input.meta.generation;
    let now = input.now;
    let mut status = decision.status.clone();
    let mut requeue = decision.requeue;
    let mut notices: Vec<Notice> = decision.notice.iter().cloned().collect();
    match outcome {
        JobOutcome::Nothing => {}
        JobOutcome::Started {
            started,
            datastore_id,
            region,
        } => {
            status.record_start(started, datastore_id, region);
            let message = format!("started job {} on datastore {datastore_id}", started.job_id);
            set_phase(
                status.conditions_mut(),
                Phase::Progressing,
                "Submitted",
                &message,
                generation,
                now,
            );
            notices.push(Notice::normal("Started", message));
        }
        JobOutcome::Failed { error, action } => {
            requeue = settle_failure(
                input.status.conditions(),
                status.conditions_mut(),
                &mut notices,
                (error, action, Step::Act),
                generation,
                now,
            );
        }
    }
    keep_transition_times(input.status.conditions(), status.conditions_mut());
    status.keep_ids(input.status);
    Settled {
        status,
        requeue,
        notices,
    }
}

/// The status after a failed Describe*Job (`action` says which): the last observation stands and
/// the wait or failure shows in `Reconciling` (or `Stalled`).
pub fn unobserved<S: JobRecord>(
    input_status: &S,
    error: &HealthLakeError,
    action: &str,
    meta: &ObjectMeta,
    now: Timestamp,
) -> Settled<S> {
    let mut status = input_status.clone();
    status.set_observed_generation(meta.generation);
    let mut notices = Vec::new();
    let requeue = settle_failure(
        input_status.conditions(),
        status.conditions_mut(),
        &mut notices,
        (error, action, Step::Observe),
        meta.generation,
        now,
    );
    Settled {
        status,
        requeue,
        notices,
    }
}

/// The job name: `spec.jobName`, else the object's name cut to HealthLake's 64 characters.
pub fn job_name(job_name: Option<&str>, meta: &ObjectMeta) -> String {
    job_name
        .map(str::to_owned)
        .unwrap_or_else(|| meta.name.chars().take(64).collect())
}

/// The StartFHIRImportJob request for a spec.
pub fn import_request(
    spec: &FHIRImportJobSpec,
    meta: &ObjectMeta,
    datastore_id: &str,
) -> StartImportJob {
    let output = &spec.job_output_data_config.s3_configuration;
    StartImportJob {
        client_token: meta.uid.clone(),
        datastore_id: datastore_id.to_owned(),
        job_name: job_name(spec.job_name.as_deref(), meta),
        input_s3_uri: spec.input_data_config.s3_uri.clone(),
        output: S3Output {
            s3_uri: output.s3_uri.clone(),
            kms_key_id: output.kms_key_id.clone(),
        },
        data_access_role_arn: spec.data_access_role_arn.clone(),
        validation_level: spec.validation_level,
    }
}

/// The StartFHIRExportJob request for a spec.
pub fn export_request(
    spec: &FHIRExportJobSpec,
    meta: &ObjectMeta,
    datastore_id: &str,
) -> StartExportJob {
    let output = &spec.output_data_config.s3_configuration;
    StartExportJob {
        client_token: meta.uid.clone(),
        datastore_id: datastore_id.to_owned(),
        job_name: job_name(spec.job_name.as_deref(), meta),
        output: S3Output {
            s3_uri: output.s3_uri.clone(),
            kms_key_id: output.kms_key_id.clone(),
        },
        data_access_role_arn: spec.data_access_role_arn.clone(),
    }
}

#[cfg(test)]
mod tests;
