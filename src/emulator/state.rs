//! What one region of the emulated account holds (datastores, jobs, idempotency tokens), with
//! the indexes that keep a call's cost flat as the region fills up.
//!
//! Lifecycles are lazy: nothing runs in the background. [`State::settle`] (in `lifecycle.rs`)
//! replays every transition whose time has come, in time order, before each call is answered,
//! so the answer is the same whether time passed for real or the clock was advanced.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::clock::EpochMillis;
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
    /// Waiting for a running job to end (of its datastore, or of its kind in the region).
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
    pub(super) fn progress_at(&self, fraction: f64) -> Progress {
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

/// Derived lookups, rebuilt from the records whenever a state is read from JSON, so that no
/// call has to scan every datastore or job of the region.
#[derive(Clone, Debug, Default, PartialEq)]
struct Index {
    /// Datastore ids in creation order.
    datastores_by_sequence: BTreeMap<u64, String>,
    /// Each datastore's job ids in submission order.
    jobs_by_datastore: HashMap<String, BTreeMap<u64, String>>,
    /// Datastores with a transition still ahead: CREATING, DELETING and DELETED (purged later).
    changing_datastores: BTreeSet<String>,
    /// Jobs that have not ended, in submission order.
    open_jobs: BTreeMap<u64, String>,
    /// DELETED datastores (they do not count against the data store quota).
    deleted_datastores: BTreeSet<String>,
}

/// The records of [`State`] as they are stored; the index is rebuilt from them.
#[derive(Deserialize)]
struct StoredState {
    datastores: BTreeMap<String, DatastoreRecord>,
    jobs: BTreeMap<String, JobRecord>,
    client_tokens: BTreeMap<String, IdempotentCall>,
    next_sequence: u64,
    #[serde(default = "never")]
    settled_at: EpochMillis,
}

fn never() -> EpochMillis {
    EpochMillis::MIN
}

impl From<StoredState> for State {
    fn from(stored: StoredState) -> Self {
        let mut state = State {
            datastores: stored.datastores,
            jobs: stored.jobs,
            client_tokens: stored.client_tokens,
            next_sequence: stored.next_sequence,
            settled_at: stored.settled_at,
            index: Index::default(),
        };
        state.reindex();
        state
    }
}

/// Everything one region of the emulated account holds; the state file stores one per region.
///
/// Read the records freely; change datastore status and add records only through the methods,
/// which keep the lookups in step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredState")]
pub struct State {
    /// Datastores by id.
    pub datastores: BTreeMap<String, DatastoreRecord>,
    /// Jobs by id.
    pub jobs: BTreeMap<String, JobRecord>,
    /// Idempotent calls by `<Operation>:<ClientToken>`.
    pub client_tokens: BTreeMap<String, IdempotentCall>,
    /// The next sequence number to hand out.
    pub next_sequence: u64,
    /// The emulator time of the last settle (epoch milliseconds): no transition found later is
    /// placed before it.
    pub settled_at: EpochMillis,
    #[serde(skip)]
    index: Index,
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

/// Whether a datastore in this status still has a transition ahead.
fn is_changing(status: DatastoreStatus) -> bool {
    matches!(
        status,
        DatastoreStatus::Creating | DatastoreStatus::Deleting | DatastoreStatus::Deleted
    )
}

impl State {
    /// An empty region.
    pub fn new() -> Self {
        State {
            datastores: BTreeMap::new(),
            jobs: BTreeMap::new(),
            client_tokens: BTreeMap::new(),
            next_sequence: 1,
            settled_at: never(),
            index: Index::default(),
        }
    }

    /// Rebuilds every lookup from the records.
    fn reindex(&mut self) {
        let mut index = Index::default();
        for datastore in self.datastores.values() {
            index
                .datastores_by_sequence
                .insert(datastore.sequence, datastore.id.clone());
            if is_changing(datastore.status) {
                index.changing_datastores.insert(datastore.id.clone());
            }
            if datastore.status == DatastoreStatus::Deleted {
                index.deleted_datastores.insert(datastore.id.clone());
            }
        }
        for job in self.jobs.values() {
            index
                .jobs_by_datastore
                .entry(job.datastore_id.clone())
                .or_default()
                .insert(job.sequence, job.id.clone());
            if !job.status.is_final() {
                index.open_jobs.insert(job.sequence, job.id.clone());
            }
        }
        self.index = index;
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

    /// Adds a datastore.
    pub fn insert_datastore(&mut self, datastore: DatastoreRecord) {
        let id = datastore.id.clone();
        self.index
            .datastores_by_sequence
            .insert(datastore.sequence, id.clone());
        if is_changing(datastore.status) {
            self.index.changing_datastores.insert(id.clone());
        }
        if datastore.status == DatastoreStatus::Deleted {
            self.index.deleted_datastores.insert(id.clone());
        }
        if let Some(replaced) = self.datastores.insert(id, datastore) {
            self.index.datastores_by_sequence.remove(&replaced.sequence);
            self.reindex();
        }
    }

    /// Moves a datastore to a status, since `since`; false when there is no such datastore.
    pub fn set_datastore_status(
        &mut self,
        id: &str,
        status: DatastoreStatus,
        since: EpochMillis,
    ) -> bool {
        let Some(datastore) = self.datastores.get_mut(id) else {
            return false;
        };
        datastore.status = status;
        datastore.status_since = since;
        if is_changing(status) {
            self.index.changing_datastores.insert(id.to_string());
        } else {
            self.index.changing_datastores.remove(id);
        }
        if status == DatastoreStatus::Deleted {
            self.index.deleted_datastores.insert(id.to_string());
        } else {
            self.index.deleted_datastores.remove(id);
        }
        true
    }

    /// Forgets a datastore and its jobs (AWS purges a DELETED datastore after a while).
    pub(super) fn purge_datastore(&mut self, id: &str) {
        if let Some(datastore) = self.datastores.remove(id) {
            self.index
                .datastores_by_sequence
                .remove(&datastore.sequence);
        }
        self.index.changing_datastores.remove(id);
        self.index.deleted_datastores.remove(id);
        for (sequence, job_id) in self.index.jobs_by_datastore.remove(id).unwrap_or_default() {
            self.jobs.remove(&job_id);
            self.index.open_jobs.remove(&sequence);
        }
    }

    /// The ids of datastores with a transition still ahead.
    pub(super) fn changing_datastores(&self) -> Vec<String> {
        self.index.changing_datastores.iter().cloned().collect()
    }

    /// Stops tracking a datastore that has no transition ahead any more.
    pub(super) fn settled_datastore(&mut self, id: &str) {
        self.index.changing_datastores.remove(id);
    }

    /// Every datastore in creation order.
    pub fn datastores_in_order(&self) -> impl Iterator<Item = &DatastoreRecord> {
        self.index
            .datastores_by_sequence
            .values()
            .filter_map(|id| self.datastores.get(id))
    }

    /// Adds a job.
    pub fn insert_job(&mut self, job: JobRecord) {
        self.index
            .jobs_by_datastore
            .entry(job.datastore_id.clone())
            .or_default()
            .insert(job.sequence, job.id.clone());
        if !job.status.is_final() {
            self.index.open_jobs.insert(job.sequence, job.id.clone());
        }
        if self.jobs.insert(job.id.clone(), job).is_some() {
            self.reindex();
        }
    }

    /// A datastore's jobs in submission order.
    pub fn jobs_of<'a>(&'a self, datastore_id: &str) -> impl Iterator<Item = &'a JobRecord> {
        self.index
            .jobs_by_datastore
            .get(datastore_id)
            .into_iter()
            .flat_map(|jobs| jobs.values())
            .filter_map(|id| self.jobs.get(id))
    }

    /// The ids of the jobs that have not ended, in submission order.
    pub(super) fn open_jobs(&self) -> Vec<String> {
        self.index.open_jobs.values().cloned().collect()
    }

    /// Stops tracking a job that has ended.
    pub(super) fn ended_job(&mut self, sequence: u64) {
        self.index.open_jobs.remove(&sequence);
    }

    /// Ends every job of a datastore that is being deleted.
    pub fn fail_jobs_of(&mut self, datastore_id: &str, now: EpochMillis) {
        let ids: Vec<String> = self
            .index
            .jobs_by_datastore
            .get(datastore_id)
            .map(|jobs| jobs.values().cloned().collect())
            .unwrap_or_default();
        for id in ids {
            if let Some(job) = self.jobs.get_mut(&id)
                && !job.status.is_final()
            {
                job.status = JobStatus::Failed;
                job.end_time = Some(now);
                job.message = Some("the data store was deleted".to_string());
                let sequence = job.sequence;
                self.ended_job(sequence);
            }
        }
    }

    /// How many datastores count against the data store quota (every one not DELETED).
    pub fn live_datastores(&self) -> usize {
        self.datastores
            .len()
            .saturating_sub(self.index.deleted_datastores.len())
    }

    /// The jobs of one kind that have not ended, counted by status.
    pub fn open_job_counts(&self, kind: JobKind) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for job in self
            .index
            .open_jobs
            .values()
            .filter_map(|id| self.jobs.get(id))
            .filter(|job| job.kind == kind)
        {
            *counts.entry(job.status.aws_name()).or_default() += 1;
        }
        counts
    }
}
