//! What the emulated account holds (datastores, jobs, idempotency tokens) and how it moves
//! along on the emulator's clock.
//!
//! Lifecycles are lazy: nothing runs in the background. [`State::settle`] replays every
//! transition whose time has come, in time order, before each call is answered, so the
//! answer is the same whether time passed for real or the clock was advanced.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::clock::{Clock, EpochMillis, duration_millis};
use super::config::PhaseDurations;
use super::faults::{ErrorCause, InjectedJobOutcome, JobKind};

/// The datastore states the emulator produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DatastoreStatus {
    /// Being created.
    Creating,
    /// Ready.
    Active,
    /// Creation failed; see the ErrorCause.
    CreateFailed,
    /// Being deleted.
    Deleting,
    /// Gone; describable until the retention ends.
    Deleted,
}

impl DatastoreStatus {
    /// The AWS value.
    pub fn aws_name(self) -> &'static str {
        match self {
            DatastoreStatus::Creating => "CREATING",
            DatastoreStatus::Active => "ACTIVE",
            DatastoreStatus::CreateFailed => "CREATE_FAILED",
            DatastoreStatus::Deleting => "DELETING",
            DatastoreStatus::Deleted => "DELETED",
        }
    }
}

/// The job states the emulator produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// Accepted, not yet queued.
    Submitted,
    /// Waiting for its datastore.
    Queued,
    /// Running.
    InProgress,
    /// Finished without errors.
    Completed,
    /// Finished, some resources or files failed.
    CompletedWithErrors,
    /// Failed.
    Failed,
}

impl JobStatus {
    /// The AWS value.
    pub fn aws_name(self) -> &'static str {
        match self {
            JobStatus::Submitted => "SUBMITTED",
            JobStatus::Queued => "QUEUED",
            JobStatus::InProgress => "IN_PROGRESS",
            JobStatus::Completed => "COMPLETED",
            JobStatus::CompletedWithErrors => "COMPLETED_WITH_ERRORS",
            JobStatus::Failed => "FAILED",
        }
    }

    /// Whether the job has not started yet.
    pub fn is_waiting(self) -> bool {
        matches!(self, JobStatus::Submitted | JobStatus::Queued)
    }

    /// Whether the job has ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::CompletedWithErrors | JobStatus::Failed
        )
    }
}

/// One datastore.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatastoreRecord {
    /// The 32-hex-digit id.
    pub id: String,
    /// Creation order, used for listing and pagination.
    pub sequence: u64,
    /// `DatastoreName`.
    pub name: Option<String>,
    /// `DatastoreTypeVersion`.
    pub type_version: String,
    /// `CreatedAt`.
    pub created_at: EpochMillis,
    /// `SseConfiguration` as AWS reports it.
    pub sse_configuration: Value,
    /// `PreloadDataConfig`, when given.
    pub preload_data_config: Option<Value>,
    /// `IdentityProviderConfiguration` as AWS reports it.
    pub identity_provider_configuration: Value,
    /// Tags by key.
    pub tags: BTreeMap<String, String>,
    /// The current status.
    pub status: DatastoreStatus,
    /// When the current status began.
    pub status_since: EpochMillis,
    /// Set when an injected fault makes creation fail.
    pub planned_failure: Option<ErrorCause>,
    /// `ErrorCause`, once creation failed.
    pub error_cause: Option<ErrorCause>,
}

/// Numbers a job reports through `JobProgressReport`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Files scanned.
    pub scanned_files: u64,
    /// Megabytes scanned.
    pub scanned_megabytes: f64,
    /// Files imported.
    pub imported_files: u64,
    /// Resources scanned.
    pub resources_scanned: u64,
    /// Resources imported.
    pub resources_imported: u64,
    /// Resources refused for a customer error.
    pub resources_with_error: u64,
    /// Files that could not be read for a customer error.
    pub files_with_error: u64,
    /// Resources per second.
    pub throughput: f64,
}

/// How many files and resources every emulated job processes.
const JOB_FILES: u64 = 10;
const JOB_RESOURCES: u64 = 1000;
const JOB_MEGABYTES: f64 = 25.0;

/// One import or export job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Import or export.
    pub kind: JobKind,
    /// The 32-hex-digit id.
    pub id: String,
    /// Submission order, used for the queue, listing and pagination.
    pub sequence: u64,
    /// The datastore the job belongs to.
    pub datastore_id: String,
    /// `JobName`.
    pub name: Option<String>,
    /// `SubmitTime`.
    pub submit_time: EpochMillis,
    /// `DataAccessRoleArn`.
    pub data_access_role_arn: String,
    /// `InputDataConfig` (imports).
    pub input_data_config: Option<Value>,
    /// `JobOutputDataConfig` (imports) or `OutputDataConfig` (exports).
    pub output_data_config: Value,
    /// `ValidationLevel` (imports).
    pub validation_level: Option<String>,
    /// The current status.
    pub status: JobStatus,
    /// When the job started running.
    pub started_at: Option<EpochMillis>,
    /// `EndTime`.
    pub end_time: Option<EpochMillis>,
    /// `Message`.
    pub message: Option<String>,
    /// How the job will end, when a fault says so.
    pub planned_outcome: Option<InjectedJobOutcome>,
    /// Progress as of the last settle.
    pub progress: Progress,
}

impl JobRecord {
    fn progress_at(&self, fraction: f64) -> Progress {
        let fraction = fraction.clamp(0.0, 1.0);
        let (resources_with_error, files_with_error) = match &self.planned_outcome {
            Some(InjectedJobOutcome::CompletedWithErrors {
                resources_with_error,
                files_with_error,
            }) => (*resources_with_error, *files_with_error),
            _ => (0, 0),
        };
        let scale = |total: u64| (total as f64 * fraction).floor() as u64;
        let resources_scanned = scale(JOB_RESOURCES.max(resources_with_error));
        let errors = scale(resources_with_error);
        Progress {
            scanned_files: scale(JOB_FILES.max(files_with_error)),
            scanned_megabytes: JOB_MEGABYTES * fraction,
            imported_files: scale(JOB_FILES.saturating_sub(files_with_error)),
            resources_scanned,
            resources_imported: resources_scanned.saturating_sub(errors),
            resources_with_error: errors,
            files_with_error: scale(files_with_error),
            throughput: if fraction > 0.0 { 100.0 } else { 0.0 },
        }
    }
}

/// A remembered idempotent call: what was asked and what was answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdempotentCall {
    /// The request without its ClientToken, in canonical form.
    pub fingerprint: String,
    /// The first answer.
    pub response: Value,
}

/// Everything the emulated account holds; this is what the state file stores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Datastores by id.
    pub datastores: BTreeMap<String, DatastoreRecord>,
    /// Jobs by id.
    pub jobs: BTreeMap<String, JobRecord>,
    /// Idempotent calls by `<Operation>:<ClientToken>`.
    pub client_tokens: BTreeMap<String, IdempotentCall>,
    /// The next sequence number to hand out.
    pub next_sequence: u64,
    /// The emulator's clock.
    pub clock: Clock,
}

impl State {
    /// An empty account with this clock.
    pub fn new(clock: Clock) -> Self {
        State {
            datastores: BTreeMap::new(),
            jobs: BTreeMap::new(),
            client_tokens: BTreeMap::new(),
            next_sequence: 1,
            clock,
        }
    }

    /// Hands out the next sequence number.
    pub fn take_sequence(&mut self) -> u64 {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        sequence
    }

    /// A fresh 32-hex-digit id used by no datastore and no job.
    pub fn new_id(&self) -> String {
        loop {
            let bits: u128 = rand::random();
            let id = format!("{bits:032x}");
            if !self.datastores.contains_key(&id) && !self.jobs.contains_key(&id) {
                return id;
            }
        }
    }

    /// Applies every transition due by `now`.
    pub fn settle(&mut self, now: EpochMillis, phases: &PhaseDurations, retention: Option<i64>) {
        let creation = duration_millis(phases.datastore_creation);
        let deletion = duration_millis(phases.datastore_deletion);
        let mut purged = Vec::new();
        for datastore in self.datastores.values_mut() {
            if datastore.status == DatastoreStatus::Creating
                && now >= datastore.status_since.saturating_add(creation)
            {
                datastore.status_since = datastore.status_since.saturating_add(creation);
                match datastore.planned_failure.take() {
                    Some(cause) => {
                        datastore.status = DatastoreStatus::CreateFailed;
                        datastore.error_cause = Some(cause);
                    }
                    None => datastore.status = DatastoreStatus::Active,
                }
            }
            if datastore.status == DatastoreStatus::Deleting
                && now >= datastore.status_since.saturating_add(deletion)
            {
                datastore.status = DatastoreStatus::Deleted;
                datastore.status_since = datastore.status_since.saturating_add(deletion);
            }
            if datastore.status == DatastoreStatus::Deleted
                && retention.is_some_and(|kept| now >= datastore.status_since.saturating_add(kept))
            {
                purged.push(datastore.id.clone());
            }
        }
        for id in &purged {
            self.datastores.remove(id);
        }
        self.jobs
            .retain(|_, job| self.datastores.contains_key(&job.datastore_id));
        let datastore_ids: Vec<String> = self.datastores.keys().cloned().collect();
        for datastore_id in datastore_ids {
            self.settle_jobs(&datastore_id, now, phases);
        }
    }

    /// Runs one datastore's queue: one job at a time, first in, first out.
    fn settle_jobs(&mut self, datastore_id: &str, now: EpochMillis, phases: &PhaseDurations) {
        let submission = duration_millis(phases.job_submission);
        let queued = duration_millis(phases.job_queued);
        let run = duration_millis(phases.job_run).max(1);
        let mut ids: Vec<(u64, String)> = self
            .jobs
            .values()
            .filter(|job| job.datastore_id == datastore_id)
            .map(|job| (job.sequence, job.id.clone()))
            .collect();
        ids.sort();
        let ids: Vec<String> = ids.into_iter().map(|(_, id)| id).collect();
        let mut free_since = ids
            .iter()
            .filter_map(|id| self.jobs.get(id))
            .filter(|job| job.status.is_final())
            .filter_map(|job| job.end_time)
            .max()
            .unwrap_or(i64::MIN);
        loop {
            let running = ids.iter().find(|id| {
                self.jobs
                    .get(*id)
                    .is_some_and(|job| job.status == JobStatus::InProgress)
            });
            if let Some(id) = running {
                let Some(job) = self.jobs.get_mut(id) else {
                    break;
                };
                let started = job.started_at.unwrap_or(job.submit_time);
                let end = started.saturating_add(run);
                if end > now {
                    job.progress = job.progress_at((now - started) as f64 / run as f64);
                    break;
                }
                job.progress = job.progress_at(1.0);
                job.end_time = Some(end);
                job.status = match &job.planned_outcome {
                    None => JobStatus::Completed,
                    Some(InjectedJobOutcome::CompletedWithErrors { .. }) => {
                        JobStatus::CompletedWithErrors
                    }
                    Some(InjectedJobOutcome::Failed { message }) => {
                        job.message = Some(message.clone());
                        JobStatus::Failed
                    }
                };
                free_since = end;
                continue;
            }
            let head = ids.iter().find(|id| {
                self.jobs
                    .get(*id)
                    .is_some_and(|job| job.status.is_waiting())
            });
            let Some(job) = head.and_then(|id| self.jobs.get_mut(id)) else {
                break;
            };
            let ready = job
                .submit_time
                .saturating_add(submission)
                .saturating_add(queued);
            let start = ready.max(free_since);
            if start > now {
                break;
            }
            job.status = JobStatus::InProgress;
            job.started_at = Some(start);
        }
        for id in &ids {
            if let Some(job) = self.jobs.get_mut(id)
                && job.status == JobStatus::Submitted
                && now >= job.submit_time.saturating_add(submission)
            {
                job.status = JobStatus::Queued;
            }
        }
    }

    /// Ends every job of a datastore that is being deleted.
    pub fn fail_jobs_of(&mut self, datastore_id: &str, now: EpochMillis) {
        for job in self.jobs.values_mut() {
            if job.datastore_id == datastore_id && !job.status.is_final() {
                job.status = JobStatus::Failed;
                job.end_time = Some(now);
                job.message = Some("the data store was deleted".to_string());
            }
        }
    }
}
