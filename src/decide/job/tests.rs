//! Every row of the job lifecycle, for import jobs (export jobs share the decisions).

use super::*;
use crate::api::{FHIRDatastoreSpec, FHIRDatastoreStatus};
use crate::decide::fixtures::{condition, meta, now};
use crate::healthlake::ProgressReport;

/// Prior status × target × observation × outcome, for both job kinds.
mod tables;

fn job(status: JobStatus) -> Job {
    Job {
        job_id: "job-1".to_owned(),
        datastore_id: "ds-1".to_owned(),
        job_name: Some("import".to_owned()),
        status,
        submit_time: Some(now()),
        end_time: None,
        message: None,
        progress: Some(ProgressReport {
            resources_scanned: Some(1500),
            resources_imported: Some(1200),
            scanned_files: Some(3),
            ..Default::default()
        }),
    }
}

fn ready_target() -> Target {
    Target::Ready {
        datastore_id: "ds-1".to_owned(),
        region: "us-east-1".to_owned(),
    }
}

fn started() -> FHIRImportJobStatus {
    FHIRImportJobStatus {
        job_id: Some("job-1".to_owned()),
        job_status: Some(JobStatus::Submitted),
        ..Default::default()
    }
}

fn run(
    status: &FHIRImportJobStatus,
    target: &Target,
    observed: Option<&JobObservation>,
    ttl: Option<i32>,
) -> JobDecision<FHIRImportJobStatus> {
    let meta = meta("import");
    decide(&JobInput {
        meta: &meta,
        status,
        target,
        observed,
        ttl_seconds_after_finished: ttl,
        stuck_after: std::time::Duration::from_secs(86_400),
        now: now(),
    })
}

fn phase(status: &FHIRImportJobStatus) -> [(String, String); 3] {
    [
        condition(&status.conditions, "Ready"),
        condition(&status.conditions, "Reconciling"),
        condition(&status.conditions, "Stalled"),
    ]
}

#[test]
fn every_job_status() {
    let rows: [(JobStatus, &str, &str, Requeue); 11] = [
        (
            JobStatus::Submitted,
            "Reconciling",
            "Submitted",
            Requeue::LongOperation,
        ),
        (
            JobStatus::Queued,
            "Reconciling",
            "Queued",
            Requeue::LongOperation,
        ),
        (
            JobStatus::InProgress,
            "Reconciling",
            "InProgress",
            Requeue::LongOperation,
        ),
        (
            JobStatus::CancelSubmitted,
            "Reconciling",
            "Cancelling",
            Requeue::LongOperation,
        ),
        (
            JobStatus::CancelInProgress,
            "Reconciling",
            "Cancelling",
            Requeue::LongOperation,
        ),
        (
            JobStatus::CancelFailed,
            "Reconciling",
            "CancelFailed",
            Requeue::LongOperation,
        ),
        (
            JobStatus::Completed,
            "Ready",
            "Completed",
            Requeue::AwaitChange,
        ),
        (
            JobStatus::CompletedWithErrors,
            "Stalled",
            "CompletedWithErrors",
            Requeue::AwaitChange,
        ),
        (JobStatus::Failed, "Stalled", "Failed", Requeue::AwaitChange),
        (
            JobStatus::CancelCompleted,
            "Stalled",
            "Cancelled",
            Requeue::AwaitChange,
        ),
        (
            JobStatus::Unknown("PAUSED".to_owned()),
            "Reconciling",
            "UnknownJobStatus",
            Requeue::LongOperation,
        ),
    ];
    for (job_status, true_condition, reason, requeue) in rows {
        let observed = JobObservation::Described(job(job_status.clone()));
        let decision = run(&started(), &ready_target(), Some(&observed), None);
        let [ready, reconciling, stalled] = phase(&decision.status);
        let holding = match true_condition {
            "Ready" => ready,
            "Reconciling" => reconciling,
            _ => stalled,
        };
        assert_eq!(
            holding,
            ("True".to_owned(), reason.to_owned()),
            "{job_status}"
        );
        assert_eq!(decision.requeue, requeue, "{job_status}");
        assert_eq!(decision.status.job_status.as_ref(), Some(&job_status));
        assert_eq!(decision.action, JobAction::None, "{job_status}");
        let progress = decision.status.progress.clone().expect("progress copied");
        assert_eq!(progress.summary.as_deref(), Some("1200/1500"));
        assert_eq!(progress.total_number_of_scanned_files, Some(3));
    }
}

#[test]
fn waits_for_the_datastore_then_starts_once() {
    let waiting = Target::NotReady {
        message: "waiting for FHIRDatastore patients to become Ready (it is CREATING)".to_owned(),
    };
    let decision = run(&FHIRImportJobStatus::default(), &waiting, None, None);
    assert_eq!(decision.action, JobAction::None);
    assert_eq!(
        phase(&decision.status)[1],
        ("True".to_owned(), "WaitingForDatastore".to_owned())
    );

    let decision = run(&FHIRImportJobStatus::default(), &ready_target(), None, None);
    assert_eq!(
        decision.action,
        JobAction::Start {
            datastore_id: "ds-1".to_owned(),
            region: "us-east-1".to_owned()
        }
    );

    let started_job = StartedJob {
        job_id: "job-1".to_owned(),
        status: JobStatus::Submitted,
        datastore_id: None,
    };
    let meta = meta("import");
    let status = FHIRImportJobStatus::default();
    let target = ready_target();
    let input = JobInput {
        meta: &meta,
        status: &status,
        target: &target,
        observed: None,
        ttl_seconds_after_finished: None,
        stuck_after: std::time::Duration::from_secs(86_400),
        now: now(),
    };
    let outcome = JobOutcome::Started {
        started: started_job,
        datastore_id: "ds-1".to_owned(),
        region: "eu-west-1".to_owned(),
    };
    let status = settle(&decision, &outcome, &input).status;
    assert_eq!(status.job_id.as_deref(), Some("job-1"));
    assert_eq!(status.datastore_id.as_deref(), Some("ds-1"));
    assert_eq!(
        status.region.as_deref(),
        Some("eu-west-1"),
        "the region is pinned at the start"
    );
    let again = run(&status, &ready_target(), None, None);
    assert_ne!(
        again.action,
        JobAction::Start {
            datastore_id: "ds-1".to_owned(),
            region: "us-east-1".to_owned()
        },
        "a job id in status means the job started"
    );
}

#[test]
fn refused_references_stall() {
    let refused = Target::Refused {
        reason: "CrossNamespaceReference",
        message: "nope".to_owned(),
    };
    let decision = run(&FHIRImportJobStatus::default(), &refused, None, None);
    assert_eq!(
        phase(&decision.status)[2],
        ("True".to_owned(), "CrossNamespaceReference".to_owned())
    );
    assert!(decision.notice.is_some_and(|notice| notice.warning));
}

#[test]
fn terminal_jobs_are_never_described_again() {
    let mut status = started();
    assert!(needs_describe(&status));
    for terminal in [
        JobStatus::Completed,
        JobStatus::CompletedWithErrors,
        JobStatus::Failed,
        JobStatus::CancelCompleted,
    ] {
        status.job_status = Some(terminal);
        assert!(!needs_describe(&status));
    }
    status.job_status = Some(JobStatus::CancelFailed);
    assert!(
        needs_describe(&status),
        "a failed cancellation leaves the job running"
    );
    assert!(
        !needs_describe(&FHIRImportJobStatus::default()),
        "nothing to describe before the start"
    );
}

#[test]
fn a_job_aws_forgot_stalls() {
    let decision = run(
        &started(),
        &ready_target(),
        Some(&JobObservation::Gone),
        None,
    );
    assert_eq!(
        phase(&decision.status)[2],
        ("True".to_owned(), "JobGone".to_owned())
    );
}

#[test]
fn ttl_after_finished() {
    let ended = now() - jiff::SignedDuration::from_secs(30);
    let mut finished = job(JobStatus::Completed);
    finished.end_time = Some(ended);
    let observed = JobObservation::Described(finished);
    let decision = run(&started(), &ready_target(), Some(&observed), Some(60));
    assert_eq!(decision.action, JobAction::None);
    assert_eq!(decision.requeue, Requeue::After(Duration::from_secs(30)));

    let decision = run(&decision.status, &ready_target(), None, Some(10));
    assert_eq!(decision.action, JobAction::DeleteObject);

    let kept = run(&decision.status, &ready_target(), None, None);
    assert_eq!(
        (kept.action, kept.requeue),
        (JobAction::None, Requeue::AwaitChange)
    );
}

#[test]
fn resolve_target_rules() {
    let reference = DatastoreReference {
        name: "patients".to_owned(),
        namespace: None,
    };
    let other_namespace = DatastoreReference {
        name: "patients".to_owned(),
        namespace: Some("other".to_owned()),
    };
    assert!(matches!(
        resolve_target(
            Some(&other_namespace),
            None,
            "clinical",
            false,
            None,
            "us-east-1"
        ),
        Target::Refused {
            reason: "CrossNamespaceReference",
            ..
        }
    ));
    assert!(matches!(
        resolve_target(None, Some("ds"), "clinical", false, None, "us-east-1"),
        Target::Refused {
            reason: "DatastoreIdRefsDisabled",
            ..
        }
    ));
    assert_eq!(
        resolve_target(None, Some("ds"), "clinical", true, None, "us-east-1"),
        Target::Ready {
            datastore_id: "ds".to_owned(),
            region: "us-east-1".to_owned()
        }
    );
    assert!(matches!(
        resolve_target(Some(&reference), None, "clinical", false, None, "us-east-1"),
        Target::NotReady { .. }
    ));

    let spec = FHIRDatastoreSpec {
        datastore_name: None,
        datastore_type_version: Default::default(),
        sse_configuration: None,
        preload_data_config: None,
        identity_provider_configuration: None,
        tags: Default::default(),
        deletion_policy: Default::default(),
        datastore_id: None,
        region: None,
    };
    let mut datastore = FHIRDatastore::new("patients", spec);
    datastore.status = Some(FHIRDatastoreStatus {
        datastore_id: Some("ds-1".to_owned()),
        region: Some("eu-west-1".to_owned()),
        ..Default::default()
    });
    assert!(matches!(
        resolve_target(
            Some(&reference),
            None,
            "clinical",
            false,
            Some(&datastore),
            "us-east-1"
        ),
        Target::NotReady { .. }
    ));
    if let Some(status) = datastore.status.as_mut() {
        crate::decide::set_phase(
            &mut status.conditions,
            crate::decide::Phase::Ready,
            "Active",
            "",
            Some(1),
            now(),
        );
    }
    assert_eq!(
        resolve_target(
            Some(&reference),
            None,
            "clinical",
            false,
            Some(&datastore),
            "us-east-1"
        ),
        Target::Ready {
            datastore_id: "ds-1".to_owned(),
            region: "eu-west-1".to_owned()
        }
    );
}

#[test]
fn job_name_defaults_to_object_name_cut_to_64() {
    let long = "x".repeat(80);
    assert_eq!(job_name(None, &meta(&long)).len(), 64);
    assert_eq!(job_name(Some("given"), &meta(&long)), "given");
}
