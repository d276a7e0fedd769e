//! The job decision tables, run for import and export jobs alike: every kind of prior status ×
//! where the job should run × what Describe*Job reported × what came of the start → conditions,
//! next look, action, events, ids and the region recorded at the start.
//!
//! Priors are built by running the decisions themselves an hour ago, so each is a status the
//! operator really writes.

use std::fmt::Debug;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::api::JobStatus;
use crate::decide::datastore::Settled;
use crate::decide::fixtures::{meta, now};
use crate::decide::job::*;
use crate::decide::tests::{
    assert_transitions, error_rows, expected_settled_phase, phase_is, phase_of,
};
use crate::decide::{ObjectMeta, Phase, Requeue, Step};
use crate::healthlake::{HealthLakeError, Job, StartedJob};

const JOB_ID: &str = "job-1";
const DATASTORE_ID: &str = "ds-1";
const STUCK_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What a job kind's status needs for the tables.
trait Kind: JobRecord + Default + Debug {}
impl<S: JobRecord + Default + Debug> Kind for S {}

fn an_hour_ago() -> Timestamp {
    now() - SignedDuration::from_hours(1)
}

fn job(status: JobStatus) -> Job {
    let ended = matches!(
        status,
        JobStatus::Completed
            | JobStatus::CompletedWithErrors
            | JobStatus::Failed
            | JobStatus::CancelCompleted
    );
    Job {
        job_id: JOB_ID.to_owned(),
        datastore_id: DATASTORE_ID.to_owned(),
        job_name: Some("nightly".to_owned()),
        status,
        submit_time: Some(an_hour_ago() - SignedDuration::from_mins(5)),
        end_time: ended.then(an_hour_ago),
        message: ended.then(|| "see the output location".to_owned()),
        progress: None,
    }
}

fn described(status: JobStatus) -> JobObservation {
    JobObservation::Described(job(status))
}

#[derive(Clone, Copy, Debug)]
enum Aim {
    Ready,
    NotReady,
    Failed,
    Refused,
}

const AIMS: [Aim; 4] = [Aim::Ready, Aim::NotReady, Aim::Failed, Aim::Refused];

fn target(aim: Aim) -> Target {
    match aim {
        Aim::Ready => Target::Ready {
            datastore_id: DATASTORE_ID.to_owned(),
            region: "us-east-1".to_owned(),
        },
        Aim::NotReady => Target::NotReady {
            message: "waiting for FHIRDatastore patients to become Ready (it is CREATING)"
                .to_owned(),
        },
        Aim::Failed => Target::Failed {
            message: "FHIRDatastore patients failed (CreateFailed: kms key is disabled)".to_owned(),
        },
        Aim::Refused => Target::Refused {
            reason: "CrossNamespaceReference",
            message: "spec.datastoreRef names namespace other".to_owned(),
        },
    }
}

fn started(region: &str) -> JobOutcome {
    JobOutcome::Started {
        started: StartedJob {
            job_id: JOB_ID.to_owned(),
            status: JobStatus::Submitted,
            datastore_id: None,
        },
        datastore_id: DATASTORE_ID.to_owned(),
        region: region.to_owned(),
    }
}

fn access_denied() -> HealthLakeError {
    HealthLakeError::Terminal {
        reason: "AccessDenied".to_owned(),
        message: "not authorized to perform healthlake:StartFHIRImportJob".to_owned(),
    }
}

/// One reconcile: decide, then settle with `outcome`.
fn reconcile<S: Kind>(
    status: &S,
    aim: Aim,
    observed: Option<&JobObservation>,
    outcome: &JobOutcome,
    ttl: Option<i32>,
    at: Timestamp,
) -> (JobDecision<S>, Settled<S>) {
    let meta = meta("nightly");
    let target = target(aim);
    let input = JobInput {
        meta: &meta,
        status,
        target: &target,
        observed,
        ttl_seconds_after_finished: ttl,
        stuck_after: STUCK_AFTER,
        now: at,
    };
    let decision = decide(&input);
    let settled = settle(&decision, outcome, &input);
    (decision, settled)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prior {
    Nothing,
    StalledOnStart,
    WaitingForDatastore,
    DatastoreFailed,
    Submitted,
    Queued,
    InProgress,
    Completed,
    Failed,
}

const NOT_STARTED: [Prior; 4] = [
    Prior::Nothing,
    Prior::StalledOnStart,
    Prior::WaitingForDatastore,
    Prior::DatastoreFailed,
];
const RUNNING: [Prior; 3] = [Prior::Submitted, Prior::Queued, Prior::InProgress];
const ENDED: [Prior; 2] = [Prior::Completed, Prior::Failed];

/// The status the operator wrote an hour ago on the way to `which`.
fn prior<S: Kind>(which: Prior) -> S {
    let step = |status: &S, aim: Aim, observed: Option<JobObservation>, outcome: JobOutcome| {
        reconcile(
            status,
            aim,
            observed.as_ref(),
            &outcome,
            None,
            an_hour_ago(),
        )
        .1
        .status
    };
    let follow = |status: JobStatus| {
        step(
            &prior(Prior::Submitted),
            Aim::Ready,
            Some(described(status)),
            JobOutcome::Nothing,
        )
    };
    match which {
        Prior::Nothing => S::default(),
        Prior::StalledOnStart => step(
            &S::default(),
            Aim::Ready,
            None,
            JobOutcome::Failed {
                error: access_denied(),
                action: "start import job on datastore ds-1".to_owned(),
            },
        ),
        Prior::WaitingForDatastore => step(&S::default(), Aim::NotReady, None, JobOutcome::Nothing),
        Prior::DatastoreFailed => step(&S::default(), Aim::Failed, None, JobOutcome::Nothing),
        Prior::Submitted => step(&S::default(), Aim::Ready, None, started("eu-west-1")),
        Prior::Queued => follow(JobStatus::Queued),
        Prior::InProgress => follow(JobStatus::InProgress),
        Prior::Completed => follow(JobStatus::Completed),
        Prior::Failed => follow(JobStatus::Failed),
    }
}

/// An event's reason and whether it is a Warning, if one is sent.
type Event = Option<(&'static str, bool)>;

fn is(status: &str, reason: &str) -> (String, String) {
    (status.to_owned(), reason.to_owned())
}

fn events<S>(settled: &Settled<S>) -> Vec<(String, bool)> {
    settled
        .notices
        .iter()
        .map(|notice| (notice.reason.clone(), notice.warning))
        .collect()
}

fn expect_events(expected: &[(&str, bool)]) -> Vec<(String, bool)> {
    expected
        .iter()
        .map(|(reason, warning)| ((*reason).to_owned(), *warning))
        .collect()
}

/// The ids and region `before` recorded are all still there.
fn assert_ids_kept<S: Kind>(case: &str, before: &S, after: &S) {
    for (field, old, new) in [
        ("jobId", before.job_id(), after.job_id()),
        ("datastoreId", before.datastore_id(), after.datastore_id()),
        ("region", before.region(), after.region()),
    ] {
        if old.is_some() {
            assert_eq!(new, old, "{case}: {field} is never dropped");
        }
    }
}

/// The status without what every reconcile rewrites.
fn without_conditions<S: Kind>(status: &S) -> S {
    let mut status = status.clone();
    status.conditions_mut().clear();
    status.set_observed_generation(None);
    status
}

fn the_priors_are_what_their_names_say<S: Kind>() {
    // prior → (Ready, Reconciling, Stalled), job status, region recorded at the start
    let rows = [
        (
            Prior::Nothing,
            [is("absent", ""), is("absent", ""), is("absent", "")],
            None,
            None,
        ),
        (
            Prior::StalledOnStart,
            phase_is(Phase::Stalled, "AccessDenied"),
            None,
            None,
        ),
        (
            Prior::WaitingForDatastore,
            phase_is(Phase::Progressing, "WaitingForDatastore"),
            None,
            None,
        ),
        (
            Prior::DatastoreFailed,
            phase_is(Phase::Stalled, "DatastoreFailed"),
            None,
            None,
        ),
        (
            Prior::Submitted,
            phase_is(Phase::Progressing, "Submitted"),
            Some(JobStatus::Submitted),
            Some("eu-west-1"),
        ),
        (
            Prior::Queued,
            phase_is(Phase::Progressing, "Queued"),
            Some(JobStatus::Queued),
            Some("eu-west-1"),
        ),
        (
            Prior::InProgress,
            phase_is(Phase::Progressing, "InProgress"),
            Some(JobStatus::InProgress),
            Some("eu-west-1"),
        ),
        (
            Prior::Completed,
            phase_is(Phase::Ready, "Completed"),
            Some(JobStatus::Completed),
            Some("eu-west-1"),
        ),
        (
            Prior::Failed,
            phase_is(Phase::Stalled, "Failed"),
            Some(JobStatus::Failed),
            Some("eu-west-1"),
        ),
    ];
    for (which, phase, job_status, region) in rows {
        let status: S = prior(which);
        assert_eq!(phase_of(status.conditions()), phase, "{which:?}");
        assert_eq!(status.job_status(), job_status.as_ref(), "{which:?}");
        assert_eq!(
            status.region(),
            region,
            "{which:?}: region recorded at the start"
        );
        assert_eq!(
            status.job_id(),
            job_status.is_some().then_some(JOB_ID),
            "{which:?}"
        );
    }
}

fn not_started_table<S: Kind>() {
    // target → action, conditions, requeue, event (sent when the conditions change)
    let rows = [
        (
            Aim::Ready,
            true,
            (Phase::Progressing, "Starting"),
            Requeue::Soon,
            None,
        ),
        (
            Aim::NotReady,
            false,
            (Phase::Progressing, "WaitingForDatastore"),
            Requeue::LongOperation,
            None,
        ),
        (
            Aim::Failed,
            false,
            (Phase::Stalled, "DatastoreFailed"),
            Requeue::LongOperation,
            Some(("DatastoreFailed", true)),
        ),
        (
            Aim::Refused,
            false,
            (Phase::Stalled, "CrossNamespaceReference"),
            Requeue::AwaitChange,
            Some(("CrossNamespaceReference", true)),
        ),
    ];
    let mut cells = 0;
    for (aim, starts, (phase, reason), requeue, event) in rows {
        for which in NOT_STARTED {
            // Nothing was started, so nothing is described: a stray observation changes nothing.
            for observed in [
                None,
                Some(JobObservation::Gone),
                Some(described(JobStatus::Failed)),
            ] {
                let before: S = prior(which);
                let case = format!("{aim:?} after {which:?}, observed {observed:?}");
                let (decision, settled) = reconcile(
                    &before,
                    aim,
                    observed.as_ref(),
                    &JobOutcome::Nothing,
                    None,
                    now(),
                );
                let expected_action = if starts {
                    JobAction::Start {
                        datastore_id: DATASTORE_ID.to_owned(),
                        region: "us-east-1".to_owned(),
                    }
                } else {
                    JobAction::None
                };
                assert_eq!(decision.action, expected_action, "{case}: action");
                let phase = phase_is(phase, reason);
                assert_eq!(
                    phase_of(settled.status.conditions()),
                    phase,
                    "{case}: conditions"
                );
                assert_transitions(
                    before.conditions(),
                    settled.status.conditions(),
                    now(),
                    &case,
                );
                assert_eq!(settled.requeue, requeue, "{case}: requeue");
                let changed = phase_of(before.conditions()) != phase;
                assert_eq!(
                    events(&settled),
                    expect_events(event.filter(|_| changed).as_slice()),
                    "{case}: events"
                );
                assert_eq!(settled.status.job_id(), None, "{case}");
                cells += 1;
            }
        }
    }
    assert_eq!(cells, 4 * NOT_STARTED.len() * 3);
}

struct RunningRow {
    observed: Option<JobObservation>,
    /// The conditions, or `None` when they stay as they were.
    phase: Option<(Phase, &'static str)>,
    requeue: Requeue,
    /// The event, sent when the conditions change.
    event: Option<(&'static str, bool)>,
}

fn running_rows() -> Vec<RunningRow> {
    // Progress AWS makes on its own sends no event; only Warnings do.
    let row = |status: JobStatus, phase, reason, requeue, event: Option<(&'static str, bool)>| {
        RunningRow {
            observed: Some(described(status)),
            phase: Some((phase, reason)),
            requeue,
            event,
        }
    };
    let long = Requeue::LongOperation;
    let done = Requeue::AwaitChange;
    vec![
        RunningRow {
            observed: None,
            phase: None,
            requeue: Requeue::Soon,
            event: None,
        },
        row(
            JobStatus::Submitted,
            Phase::Progressing,
            "Submitted",
            long,
            None,
        ),
        row(JobStatus::Queued, Phase::Progressing, "Queued", long, None),
        row(
            JobStatus::InProgress,
            Phase::Progressing,
            "InProgress",
            long,
            None,
        ),
        row(
            JobStatus::CancelSubmitted,
            Phase::Progressing,
            "Cancelling",
            long,
            None,
        ),
        row(
            JobStatus::CancelInProgress,
            Phase::Progressing,
            "Cancelling",
            long,
            None,
        ),
        row(
            JobStatus::CancelFailed,
            Phase::Progressing,
            "CancelFailed",
            long,
            Some(("CancelFailed", true)),
        ),
        row(JobStatus::Completed, Phase::Ready, "Completed", done, None),
        row(
            JobStatus::CompletedWithErrors,
            Phase::Stalled,
            "CompletedWithErrors",
            done,
            Some(("CompletedWithErrors", true)),
        ),
        row(
            JobStatus::Failed,
            Phase::Stalled,
            "Failed",
            done,
            Some(("Failed", true)),
        ),
        row(
            JobStatus::CancelCompleted,
            Phase::Stalled,
            "Cancelled",
            done,
            Some(("Cancelled", true)),
        ),
        row(
            JobStatus::Unknown("PAUSED".to_owned()),
            Phase::Progressing,
            "UnknownJobStatus",
            long,
            Some(("UnknownJobStatus", true)),
        ),
        RunningRow {
            observed: Some(JobObservation::Gone),
            phase: Some((Phase::Stalled, "JobGone")),
            requeue: Requeue::AwaitChange,
            event: Some(("JobGone", true)),
        },
    ]
}

fn running_table<S: Kind>() {
    let mut cells = 0;
    for row in running_rows() {
        for which in RUNNING {
            let before: S = prior(which);
            let mut first: Option<Settled<S>> = None;
            for aim in AIMS {
                let case = format!("{:?} after {which:?}, target {aim:?}", row.observed);
                let (decision, settled) = reconcile(
                    &before,
                    aim,
                    row.observed.as_ref(),
                    &JobOutcome::Nothing,
                    None,
                    now(),
                );
                assert_eq!(
                    decision.action,
                    JobAction::None,
                    "{case}: a started job starts no more"
                );
                let phase = match row.phase {
                    Some((phase, reason)) => phase_is(phase, reason),
                    None => phase_of(before.conditions()),
                };
                let status = &settled.status;
                assert_eq!(phase_of(status.conditions()), phase, "{case}: conditions");
                assert_transitions(before.conditions(), status.conditions(), now(), &case);
                assert_eq!(settled.requeue, row.requeue, "{case}: requeue");
                let changed = phase_of(before.conditions()) != phase;
                assert_eq!(
                    events(&settled),
                    expect_events(row.event.filter(|_| changed).as_slice()),
                    "{case}: events"
                );
                assert_ids_kept(&case, &before, status);
                if let Some(JobObservation::Described(job)) = &row.observed {
                    assert_eq!(status.job_status(), Some(&job.status), "{case}: jobStatus");
                    assert_eq!(
                        needs_describe(status),
                        !is_terminal(&job.status),
                        "{case}: described again only while it runs"
                    );
                }
                // The datastore's state no longer matters once the job runs.
                match &first {
                    None => first = Some(settled),
                    Some(first) => assert_eq!(&settled, first, "{case}: same as for target Ready"),
                }
                cells += 1;
            }
        }
    }
    assert_eq!(cells, 13 * RUNNING.len() * AIMS.len());
}

fn ended_table<S: Kind>() {
    // ttlSecondsAfterFinished (the job ended an hour ago) → action, requeue, event
    let rows: [(Option<i32>, JobAction, Requeue, Event); 5] = [
        (None, JobAction::None, Requeue::AwaitChange, None),
        (
            Some(0),
            JobAction::DeleteObject,
            Requeue::AwaitChange,
            Some(("Expired", false)),
        ),
        (
            Some(3600),
            JobAction::DeleteObject,
            Requeue::AwaitChange,
            Some(("Expired", false)),
        ),
        (
            Some(5400),
            JobAction::None,
            Requeue::After(Duration::from_secs(1800)),
            None,
        ),
        (
            Some(-5),
            JobAction::DeleteObject,
            Requeue::AwaitChange,
            Some(("Expired", false)),
        ),
    ];
    let mut cells = 0;
    for (ttl, action, requeue, event) in rows {
        for which in ENDED {
            for aim in AIMS {
                for observed in [
                    None,
                    Some(described(JobStatus::InProgress)),
                    Some(JobObservation::Gone),
                ] {
                    let before: S = prior(which);
                    let case = format!(
                        "ttl {ttl:?} after {which:?}, target {aim:?}, observed {observed:?}"
                    );
                    let (decision, settled) = reconcile(
                        &before,
                        aim,
                        observed.as_ref(),
                        &JobOutcome::Nothing,
                        ttl,
                        now(),
                    );
                    assert_eq!(decision.action, action, "{case}: action");
                    assert_eq!(settled.requeue, requeue, "{case}: requeue");
                    assert_eq!(
                        settled
                            .notices
                            .first()
                            .map(|notice| (notice.reason.as_str(), notice.warning)),
                        event,
                        "{case}: event"
                    );
                    assert_eq!(
                        settled.status.conditions(),
                        before.conditions(),
                        "{case}: an ended job's conditions never change"
                    );
                    assert_eq!(
                        without_conditions(&settled.status),
                        without_conditions(&before),
                        "{case}"
                    );
                    assert!(
                        !needs_describe(&settled.status),
                        "{case}: no AWS call once ended"
                    );
                    cells += 1;
                }
            }
        }
    }
    assert_eq!(cells, 5 * ENDED.len() * AIMS.len() * 3);
}

fn start_outcome_table<S: Kind>() {
    let mut cells = 0;
    for which in NOT_STARTED {
        let before: S = prior(which);
        let case = format!("started after {which:?}");
        // The region the job runs in is the one the start used, recorded with the id.
        let (_, settled) = reconcile(
            &before,
            Aim::Ready,
            None,
            &started("eu-west-1"),
            None,
            now(),
        );
        let status = &settled.status;
        assert_eq!(status.job_id(), Some(JOB_ID), "{case}");
        assert_eq!(status.datastore_id(), Some(DATASTORE_ID), "{case}");
        assert_eq!(
            status.region(),
            Some("eu-west-1"),
            "{case}: region recorded at the start"
        );
        assert_eq!(status.job_status(), Some(&JobStatus::Submitted), "{case}");
        assert_eq!(
            phase_of(status.conditions()),
            phase_is(Phase::Progressing, "Submitted"),
            "{case}"
        );
        assert_transitions(before.conditions(), status.conditions(), now(), &case);
        assert_eq!(settled.requeue, Requeue::Soon, "{case}");
        assert_eq!(
            events(&settled),
            expect_events(&[("Started", false)]),
            "{case}"
        );
        assert!(needs_describe(status), "{case}");
        cells += 1;

        for row in error_rows() {
            let case = format!("start failed with {:?} after {which:?}", row.error);
            let outcome = JobOutcome::Failed {
                error: row.error,
                action: "start import job on datastore ds-1".to_owned(),
            };
            let (_, settled) = reconcile(&before, Aim::Ready, None, &outcome, None, now());
            let status = &settled.status;
            let phase =
                expected_settled_phase(row.effect, Step::Act, &phase_of(before.conditions()));
            assert_eq!(phase_of(status.conditions()), phase, "{case}: conditions");
            assert_transitions(before.conditions(), status.conditions(), now(), &case);
            assert_eq!(settled.requeue, row.requeue, "{case}: requeue");
            let changed = phase_of(before.conditions()) != phase;
            let expected = row.notice.filter(|(_, warning)| *warning || changed);
            assert_eq!(
                events(&settled),
                expect_events(expected.as_slice()),
                "{case}: events"
            );
            assert_eq!(status.job_id(), None, "{case}: no id without a start");
            assert_eq!(status.region(), None, "{case}: no region without a start");
            cells += 1;
        }
    }
    assert_eq!(cells, NOT_STARTED.len() * 10);
}

fn unobserved_table<S: Kind>() {
    let meta: ObjectMeta = meta("nightly");
    let mut cells = 0;
    for row in error_rows() {
        for which in RUNNING {
            let before: S = prior(which);
            let case = format!("describe failed with {:?} after {which:?}", row.error);
            let settled = unobserved(
                &before,
                &row.error,
                "describe import job job-1",
                &meta,
                now(),
            );
            let status = &settled.status;
            let phase =
                expected_settled_phase(row.effect, Step::Observe, &phase_of(before.conditions()));
            assert_eq!(phase_of(status.conditions()), phase, "{case}: conditions");
            assert_transitions(before.conditions(), status.conditions(), now(), &case);
            assert_eq!(settled.requeue, row.requeue, "{case}: requeue");
            let changed = phase_of(before.conditions()) != phase;
            let expected = row.notice.filter(|(_, warning)| *warning || changed);
            assert_eq!(
                events(&settled),
                expect_events(expected.as_slice()),
                "{case}: events"
            );
            assert_eq!(
                without_conditions(status),
                without_conditions(&before),
                "{case}: the last observation stands"
            );
            cells += 1;
        }
    }
    assert_eq!(cells, 9 * RUNNING.len());
}

fn stuck_warning<S: Kind>() {
    let reconciling = |status: &S| {
        status
            .conditions()
            .iter()
            .find(|condition| condition.type_ == "Reconciling")
            .map(|condition| condition.message.clone())
            .unwrap_or_default()
    };
    let slow = |status: JobStatus, hours: i64| {
        let mut job = job(status);
        job.submit_time = Some(now() - SignedDuration::from_hours(hours));
        JobObservation::Described(job)
    };
    // (prior, observed status, hours since submission) → says so, warned
    let rows = [
        (Prior::Submitted, JobStatus::Submitted, 23, false, false),
        (Prior::Submitted, JobStatus::Submitted, 25, true, true),
        (Prior::Submitted, JobStatus::Queued, 25, true, true),
        (Prior::Queued, JobStatus::Queued, 25, true, true),
        (Prior::Queued, JobStatus::InProgress, 25, false, false),
        (Prior::InProgress, JobStatus::InProgress, 48, false, false),
    ];
    for (which, job_status, hours, says, warned) in rows {
        let case = format!("{job_status} {hours} h after submission, after {which:?}");
        let observed = slow(job_status.clone(), hours);
        let (_, first) = reconcile(
            &prior::<S>(which),
            Aim::Ready,
            Some(&observed),
            &JobOutcome::Nothing,
            None,
            now(),
        );
        assert_eq!(
            reconciling(&first.status).contains("longer than HealthLake usually takes"),
            says,
            "{case}: {}",
            reconciling(&first.status)
        );
        assert_eq!(
            first.requeue,
            Requeue::LongOperation,
            "{case}: polling goes on"
        );
        let taking_long = |settled: &Settled<S>| {
            settled
                .notices
                .iter()
                .filter(|notice| notice.reason == "TakingLong" && notice.warning)
                .count()
        };
        assert_eq!(
            taking_long(&first),
            usize::from(warned),
            "{case}: one warning"
        );

        // Still stuck ten minutes later, or moved on to the next waiting phase: not again.
        let later = now() + SignedDuration::from_mins(10);
        for next in [JobStatus::Submitted, JobStatus::Queued] {
            let (_, again) = reconcile(
                &first.status,
                Aim::Ready,
                Some(&slow(next.clone(), hours)),
                &JobOutcome::Nothing,
                None,
                later,
            );
            if says {
                assert_eq!(taking_long(&again), 0, "{case}, then {next}: not again");
            }
        }
    }
}

macro_rules! for_both_job_kinds {
    ($($table:ident),* $(,)?) => {
        mod import {
            $(
                #[test]
                fn $table() {
                    super::$table::<crate::api::FHIRImportJobStatus>();
                }
            )*
        }
        mod export {
            $(
                #[test]
                fn $table() {
                    super::$table::<crate::api::FHIRExportJobStatus>();
                }
            )*
        }
    };
}

for_both_job_kinds!(
    the_priors_are_what_their_names_say,
    not_started_table,
    running_table,
    ended_table,
    start_outcome_table,
    unobserved_table,
    stuck_warning,
);
