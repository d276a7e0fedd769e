//! How one region moves along on the emulator's clock: datastores CREATING → ACTIVE and
//! DELETING → DELETED → purged, jobs SUBMITTED → QUEUED → IN_PROGRESS → ended.
//!
//! Only datastores with a transition ahead and jobs that have not ended are visited, so a call
//! costs the same whether the region holds ten finished objects or ten thousand.

use std::collections::{HashMap, HashSet};

use super::clock::{EpochMillis, duration_millis};
use super::config::{JobConcurrency, PhaseDurations};
use super::faults::{InjectedJobOutcome, JobKind};
use super::state::{DatastoreStatus, JobRecord, JobStatus, State};

/// What a running job holds, so that no other job can run until it ends.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Slot {
    /// The job's datastore: one running job per datastore.
    Datastore(String),
    /// The job's kind in the region: one running import and one running export.
    Kind(JobKind),
}

fn slots(job: &JobRecord, concurrency: JobConcurrency) -> Vec<Slot> {
    let datastore = Slot::Datastore(job.datastore_id.clone());
    match concurrency {
        JobConcurrency::Datastore => vec![datastore],
        JobConcurrency::Account => vec![datastore, Slot::Kind(job.kind)],
    }
}

/// The timing of jobs, from the phase durations.
struct JobTimes {
    submission: i64,
    queued: i64,
    run: i64,
}

impl JobTimes {
    fn of(phases: &PhaseDurations) -> Self {
        JobTimes {
            submission: duration_millis(phases.job_submission),
            queued: duration_millis(phases.job_queued),
            run: duration_millis(phases.job_run).max(1),
        }
    }

    /// The earliest a job can start: after its SUBMITTED and its least QUEUED time.
    fn ready(&self, job: &JobRecord) -> EpochMillis {
        job.submit_time
            .saturating_add(self.submission)
            .saturating_add(self.queued)
    }

    fn end(&self, job: &JobRecord) -> EpochMillis {
        job.started_at
            .unwrap_or(job.submit_time)
            .saturating_add(self.run)
    }
}

impl State {
    /// Applies every transition due by `now`, in time order.
    pub fn settle(
        &mut self,
        now: EpochMillis,
        phases: &PhaseDurations,
        retention: Option<i64>,
        concurrency: JobConcurrency,
    ) {
        self.settle_datastores(now, phases, retention);
        self.settle_jobs(now, phases, concurrency);
        self.settled_at = self.settled_at.max(now);
    }

    fn settle_datastores(
        &mut self,
        now: EpochMillis,
        phases: &PhaseDurations,
        retention: Option<i64>,
    ) {
        let creation = duration_millis(phases.datastore_creation);
        let deletion = duration_millis(phases.datastore_deletion);
        for id in self.changing_datastores() {
            let Some(datastore) = self.datastores.get_mut(&id) else {
                self.settled_datastore(&id);
                continue;
            };
            let mut status = datastore.status;
            let mut since = datastore.status_since;
            if status == DatastoreStatus::Creating && now >= since.saturating_add(creation) {
                since = since.saturating_add(creation);
                match datastore.planned_failure.take() {
                    Some(cause) => {
                        status = DatastoreStatus::CreateFailed;
                        datastore.error_cause = Some(cause);
                    }
                    None => status = DatastoreStatus::Active,
                }
            }
            if status == DatastoreStatus::Deleting && now >= since.saturating_add(deletion) {
                status = DatastoreStatus::Deleted;
                since = since.saturating_add(deletion);
            }
            self.set_datastore_status(&id, status, since);
            if status == DatastoreStatus::Deleted {
                match retention {
                    Some(kept) if now >= since.saturating_add(kept) => self.purge_datastore(&id),
                    Some(_) => {}
                    None => self.settled_datastore(&id),
                }
            }
        }
    }

    /// Runs the job queues: a waiting job starts once none of its slots is held and no job
    /// submitted before it is waiting for one of them (first in, first out).
    fn settle_jobs(
        &mut self,
        now: EpochMillis,
        phases: &PhaseDurations,
        concurrency: JobConcurrency,
    ) {
        let open = self.open_jobs();
        if open.is_empty() {
            return;
        }
        let times = JobTimes::of(phases);
        // Nothing found now can have happened before the last settle: anything due by then
        // was applied then, and what changed since (a deletion) changed at that time.
        let floor = self.settled_at;
        let mut held: HashMap<Slot, String> = HashMap::new();
        let mut free_since: HashMap<Slot, EpochMillis> = HashMap::new();
        let mut running: Vec<String> = Vec::new();
        let mut waiting: Vec<String> = Vec::new();
        for id in open {
            let Some(job) = self.jobs.get(&id) else {
                continue;
            };
            if job.status == JobStatus::InProgress {
                for slot in slots(job, concurrency) {
                    held.insert(slot, id.clone());
                }
                running.push(id);
            } else if job.status.is_waiting() {
                waiting.push(id);
            }
        }
        loop {
            let next_end = running
                .iter()
                .filter_map(|id| {
                    self.jobs
                        .get(id)
                        .map(|job| (times.end(job), job.sequence, id))
                })
                .min()
                .map(|(end, _, id)| (end, id.clone()));
            let next_start =
                self.next_start(&waiting, &held, &free_since, &times, floor, concurrency);
            match (next_end, next_start) {
                (Some((end, id)), start)
                    if end <= now && start.as_ref().is_none_or(|(start, _)| end <= *start) =>
                {
                    running.retain(|other| *other != id);
                    let Some(job) = self.jobs.get_mut(&id) else {
                        continue;
                    };
                    finish(job, end);
                    for slot in slots(job, concurrency) {
                        held.remove(&slot);
                        free_since.insert(slot, end);
                    }
                    let sequence = job.sequence;
                    self.ended_job(sequence);
                }
                (_, Some((start, id))) if start <= now => {
                    waiting.retain(|other| *other != id);
                    let Some(job) = self.jobs.get_mut(&id) else {
                        continue;
                    };
                    job.status = JobStatus::InProgress;
                    job.started_at = Some(start);
                    for slot in slots(job, concurrency) {
                        held.insert(slot, id.clone());
                    }
                    running.push(id);
                }
                _ => break,
            }
        }
        for id in &running {
            if let Some(job) = self.jobs.get_mut(id) {
                let started = job.started_at.unwrap_or(job.submit_time);
                job.progress = job.progress_at((now - started) as f64 / times.run as f64);
            }
        }
        for id in &waiting {
            if let Some(job) = self.jobs.get_mut(id)
                && job.status == JobStatus::Submitted
                && now >= job.submit_time.saturating_add(times.submission)
            {
                job.status = JobStatus::Queued;
            }
        }
    }

    /// The waiting job that can start first, and when: the earliest in submission order whose
    /// slots are neither held nor wanted by an earlier waiting job.
    fn next_start(
        &self,
        waiting: &[String],
        held: &HashMap<Slot, String>,
        free_since: &HashMap<Slot, EpochMillis>,
        times: &JobTimes,
        floor: EpochMillis,
        concurrency: JobConcurrency,
    ) -> Option<(EpochMillis, String)> {
        let mut wanted: HashSet<Slot> = HashSet::new();
        let mut best: Option<(EpochMillis, String)> = None;
        for id in waiting {
            let Some(job) = self.jobs.get(id) else {
                continue;
            };
            let job_slots = slots(job, concurrency);
            let blocked = job_slots
                .iter()
                .any(|slot| held.contains_key(slot) || wanted.contains(slot));
            if !blocked {
                let start = job_slots
                    .iter()
                    .filter_map(|slot| free_since.get(slot).copied())
                    .fold(times.ready(job).max(floor), EpochMillis::max);
                if best.as_ref().is_none_or(|(earliest, _)| start < *earliest) {
                    best = Some((start, id.clone()));
                }
            }
            wanted.extend(job_slots);
        }
        best
    }
}

/// Ends a running job at `end` as its planned outcome says.
fn finish(job: &mut JobRecord, end: EpochMillis) {
    job.progress = job.progress_at(1.0);
    job.end_time = Some(end);
    job.status = match &job.planned_outcome {
        None => JobStatus::Completed,
        Some(InjectedJobOutcome::CompletedWithErrors { .. }) => JobStatus::CompletedWithErrors,
        Some(InjectedJobOutcome::Failed { message }) => {
            job.message = Some(message.clone());
            JobStatus::Failed
        }
    };
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::emulator::config::Profile;
    use crate::emulator::state::{DatastoreRecord, Progress};

    fn datastore(state: &mut State, status: DatastoreStatus) -> String {
        let id = state.new_id();
        let sequence = state.take_sequence();
        state.insert_datastore(DatastoreRecord {
            id: id.clone(),
            sequence,
            name: None,
            type_version: "R4".to_string(),
            created_at: 0,
            sse_configuration: json!({}),
            preload_data_config: None,
            identity_provider_configuration: json!({}),
            tags: BTreeMap::new(),
            status,
            status_since: 0,
            planned_failure: None,
            error_cause: None,
        });
        id
    }

    fn job(state: &mut State, datastore_id: &str, kind: JobKind, at: EpochMillis) -> String {
        let id = state.new_id();
        let sequence = state.take_sequence();
        state.insert_job(JobRecord {
            kind,
            id: id.clone(),
            sequence,
            datastore_id: datastore_id.to_string(),
            name: None,
            submit_time: at,
            data_access_role_arn: String::new(),
            input_data_config: None,
            output_data_config: json!({}),
            validation_level: None,
            status: JobStatus::Submitted,
            started_at: None,
            end_time: None,
            message: None,
            planned_outcome: None,
            progress: Progress::default(),
        });
        id
    }

    /// Fast profile: a job is ready 2 s after submission and runs 10 s.
    fn settle(state: &mut State, now: EpochMillis, concurrency: JobConcurrency) {
        state.settle(now, &Profile::Fast.phases(), Some(3_600_000), concurrency);
    }

    #[test]
    fn under_account_concurrency_an_import_waits_for_the_import_of_another_datastore() {
        let mut state = State::new();
        let first = datastore(&mut state, DatastoreStatus::Active);
        let second = datastore(&mut state, DatastoreStatus::Active);
        let one = job(&mut state, &first, JobKind::Import, 0);
        let two = job(&mut state, &second, JobKind::Import, 0);
        let export = job(&mut state, &second, JobKind::Export, 0);
        settle(&mut state, 30_000, JobConcurrency::Account);
        assert_eq!(state.jobs[&one].started_at, Some(2_000));
        assert_eq!(state.jobs[&one].end_time, Some(12_000));
        assert_eq!(state.jobs[&two].started_at, Some(12_000));
        assert_eq!(state.jobs[&two].end_time, Some(22_000));
        // The export waits only for its datastore, which the second import holds.
        assert_eq!(state.jobs[&export].started_at, Some(22_000));
        assert_eq!(state.jobs[&export].status, JobStatus::InProgress);
    }

    #[test]
    fn a_job_freed_by_a_deletion_starts_then_not_earlier() {
        let mut state = State::new();
        let first = datastore(&mut state, DatastoreStatus::Active);
        let second = datastore(&mut state, DatastoreStatus::Active);
        let one = job(&mut state, &first, JobKind::Import, 0);
        let two = job(&mut state, &second, JobKind::Import, 0);
        settle(&mut state, 5_000, JobConcurrency::Account);
        state.set_datastore_status(&first, DatastoreStatus::Deleting, 5_000);
        state.fail_jobs_of(&first, 5_000);
        assert_eq!(state.jobs[&one].status, JobStatus::Failed);
        settle(&mut state, 6_000, JobConcurrency::Account);
        assert_eq!(state.jobs[&two].started_at, Some(5_000));
    }

    #[test]
    fn settled_objects_leave_nothing_to_visit_and_the_index_survives_json() {
        let mut state = State::new();
        let mut last = String::new();
        for _ in 0..200 {
            last = datastore(&mut state, DatastoreStatus::Creating);
            job(&mut state, &last, JobKind::Export, 0);
        }
        let phases = PhaseDurations {
            job_run: Duration::from_millis(1),
            ..Profile::Fast.phases()
        };
        state.settle(10_000_000, &phases, None, JobConcurrency::Datastore);
        assert!(state.changing_datastores().is_empty());
        assert!(state.open_jobs().is_empty());
        assert_eq!(state.live_datastores(), 200);
        let text = serde_json::to_string(&state).unwrap_or_default();
        let read: State = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(read, state);
        assert_eq!(read.jobs_of(&last).count(), 1);
    }
}
