//! The error table: every class of failed HealthLake call, as a read or as an act, on every kind
//! of prior status → conditions, next look and event.

use std::time::Duration;

use jiff::SignedDuration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::fixtures::{condition, now};
use super::*;

/// A failed call of each class, with what it must lead to.
pub(crate) struct ErrorRow {
    /// The error.
    pub error: HealthLakeError,
    /// What the conditions become.
    pub effect: Effect,
    /// When to look again.
    pub requeue: Requeue,
    /// The event's reason and whether it is a Warning; `None` for none (the operator's own
    /// pacing by its rate limiter shows in the conditions only).
    pub notice: Option<(&'static str, bool)>,
}

/// How a failed call changes the conditions.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Effect {
    /// A wait: Reconciling with this reason; a read keeps a True Ready.
    Wait(&'static str),
    /// Stalled with this reason.
    Stall(&'static str),
    /// Reconciling with this reason, read or act alike.
    Progress(&'static str),
    /// The operator's own fix-up (a tag sync): Reconciling with this reason, keeping a True Ready,
    /// read or act alike.
    Sync(&'static str),
}

/// One row per error class the HealthLake port reports.
pub(crate) fn error_rows() -> Vec<ErrorRow> {
    let message = || "something went wrong".to_owned();
    vec![
        ErrorRow {
            error: HealthLakeError::WaitingForQuota {
                retry_after: Duration::from_secs(30),
            },
            effect: Effect::Wait("WaitingForQuota"),
            requeue: Requeue::Quota(Duration::from_secs(30)),
            notice: None,
        },
        ErrorRow {
            error: HealthLakeError::Throttled { message: message() },
            effect: Effect::Wait("Throttled"),
            requeue: Requeue::Backoff,
            notice: Some(("Throttled", true)),
        },
        ErrorRow {
            error: HealthLakeError::Conflict { message: message() },
            effect: Effect::Wait("Conflict"),
            requeue: Requeue::Backoff,
            notice: Some(("Conflict", true)),
        },
        ErrorRow {
            error: HealthLakeError::Retryable { message: message() },
            effect: Effect::Wait("Retrying"),
            requeue: Requeue::Backoff,
            notice: Some(("HealthLakeError", true)),
        },
        ErrorRow {
            error: HealthLakeError::Unrecognized {
                code: "BrandNewException".to_owned(),
                message: message(),
            },
            effect: Effect::Wait("Retrying"),
            requeue: Requeue::Backoff,
            notice: Some(("BrandNewException", true)),
        },
        ErrorRow {
            error: HealthLakeError::NotFound { message: message() },
            effect: Effect::Wait("NotFound"),
            requeue: Requeue::Backoff,
            notice: Some(("NotFound", true)),
        },
        ErrorRow {
            error: HealthLakeError::Terminal {
                reason: "AccessDenied".to_owned(),
                message: message(),
            },
            effect: Effect::Stall("AccessDenied"),
            requeue: Requeue::SlowRetry,
            notice: Some(("AccessDenied", true)),
        },
        ErrorRow {
            error: HealthLakeError::Terminal {
                reason: "ValidationException".to_owned(),
                message: message(),
            },
            effect: Effect::Stall("ValidationException"),
            requeue: Requeue::SlowRetry,
            notice: Some(("ValidationException", true)),
        },
        ErrorRow {
            error: HealthLakeError::AccountQuota { message: message() },
            effect: Effect::Progress("AccountQuotaReached"),
            requeue: Requeue::SlowRetry,
            notice: Some(("AccountQuotaReached", true)),
        },
    ]
}

/// (status, reason) of Ready, Reconciling and Stalled.
pub(crate) fn phase_of(conditions: &[Condition]) -> [(String, String); 3] {
    [
        condition(conditions, "Ready"),
        condition(conditions, "Reconciling"),
        condition(conditions, "Stalled"),
    ]
}

/// The three conditions `set_phase` writes for `phase` with `reason`.
pub(crate) fn phase_is(phase: Phase, reason: &str) -> [(String, String); 3] {
    let (ready, reconciling, stalled) = match phase {
        Phase::Ready => ("True", "False", "False"),
        Phase::Progressing => ("False", "True", "False"),
        Phase::Stalled => ("False", "False", "True"),
    };
    [ready, reconciling, stalled].map(|status| (status.to_owned(), reason.to_owned()))
}

/// What a settled step (`settle`, `unobserved`) makes of conditions that were `prior`: as
/// [`expected_phase`], except that a held object (Stalled, or waiting for an account quota) whose
/// retry waits for the operator's own request quota keeps its conditions: the retry has not
/// happened yet.
pub(crate) fn expected_settled_phase(
    effect: Effect,
    step: Step,
    prior: &[(String, String); 3],
) -> [(String, String); 3] {
    let held =
        prior[2].0 == "True" || prior[1] == ("True".to_owned(), "AccountQuotaReached".to_owned());
    match effect {
        Effect::Wait("WaitingForQuota") if held => prior.clone(),
        _ => expected_phase(effect, step, prior),
    }
}

/// What `effect` makes of conditions that were `prior`, for a read or an act.
pub(crate) fn expected_phase(
    effect: Effect,
    step: Step,
    prior: &[(String, String); 3],
) -> [(String, String); 3] {
    match effect {
        Effect::Wait(reason) if step == Step::Observe && prior[0].0 == "True" => [
            prior[0].clone(),
            ("True".to_owned(), reason.to_owned()),
            ("False".to_owned(), reason.to_owned()),
        ],
        Effect::Sync(reason) if prior[0].0 == "True" => [
            prior[0].clone(),
            ("True".to_owned(), reason.to_owned()),
            ("False".to_owned(), reason.to_owned()),
        ],
        Effect::Wait(reason) | Effect::Progress(reason) | Effect::Sync(reason) => {
            phase_is(Phase::Progressing, reason)
        }
        Effect::Stall(reason) => phase_is(Phase::Stalled, reason),
    }
}

fn an_hour_ago() -> jiff::Timestamp {
    now() - SignedDuration::from_hours(1)
}

fn prior(phase: Option<(Phase, &str)>) -> Vec<Condition> {
    let mut conditions = Vec::new();
    if let Some((phase, reason)) = phase {
        set_phase(
            &mut conditions,
            phase,
            reason,
            "as it was",
            Some(1),
            an_hour_ago(),
        );
    }
    conditions
}

#[test]
fn every_error_class_read_or_act_on_every_prior_phase() {
    let priors = [
        None,
        Some((Phase::Ready, "Active")),
        Some((Phase::Progressing, "Creating")),
        Some((Phase::Stalled, "AccessDenied")),
    ];
    let mut cells = 0;
    for row in error_rows() {
        for step in [Step::Observe, Step::Act] {
            for prior_phase in priors {
                let before = prior(prior_phase);
                let mut conditions = before.clone();
                let (requeue, notice) = on_error(
                    &mut conditions,
                    &row.error,
                    "create datastore patients",
                    step,
                    Some(2),
                    now(),
                );
                let case = format!("{:?} {step:?} after {prior_phase:?}", row.error);
                let expected = expected_phase(row.effect, step, &phase_of(&before));
                assert_eq!(phase_of(&conditions), expected, "{case}: conditions");
                assert_eq!(requeue, row.requeue, "{case}: requeue");
                assert_eq!(
                    notice
                        .as_ref()
                        .map(|notice| (notice.reason.as_str(), notice.warning)),
                    row.notice,
                    "{case}: event"
                );
                if let Some(notice) = notice {
                    assert!(
                        notice.message.contains("create datastore patients"),
                        "{case}: the event names what was attempted: {}",
                        notice.message
                    );
                }
                assert_transitions(&before, &conditions, now(), &case);
                for condition in &conditions {
                    let kept_ready = expected[0] == phase_of(&before)[0]
                        && condition.type_ == "Ready"
                        && matches!(row.effect, Effect::Wait(_))
                        && step == Step::Observe;
                    let generation = if kept_ready { Some(1) } else { Some(2) };
                    assert_eq!(
                        condition.observed_generation, generation,
                        "{case}: {} observedGeneration",
                        condition.type_
                    );
                }
                cells += 1;
            }
        }
    }
    assert_eq!(cells, 9 * 2 * 4);
}

#[test]
fn messages_say_what_to_do() {
    let rows = [
        (
            HealthLakeError::Unrecognized {
                code: "BrandNewException".to_owned(),
                message: "odd".to_owned(),
            },
            "Reconciling",
            "HealthLake answered BrandNewException",
        ),
        (
            HealthLakeError::Terminal {
                reason: "AccessDenied".to_owned(),
                message: "not authorized".to_owned(),
            },
            "Stalled",
            stall::RETRY_AT_ANNOTATION,
        ),
        (
            HealthLakeError::AccountQuota {
                message: "10 datastores".to_owned(),
            },
            "Reconciling",
            "delete a datastore in this region or ask AWS to raise the quota",
        ),
        (
            HealthLakeError::WaitingForQuota {
                retry_after: Duration::from_secs(5),
            },
            "Reconciling",
            "waiting for request quota to start import job",
        ),
    ];
    for (error, holding, says) in rows {
        let mut conditions = Vec::new();
        on_error(
            &mut conditions,
            &error,
            "start import job",
            Step::Act,
            Some(1),
            now(),
        );
        let message = conditions
            .iter()
            .find(|condition| condition.type_ == holding)
            .map(|condition| condition.message.clone())
            .unwrap_or_default();
        assert!(message.contains(says), "{error:?}: {message}");
        let others_quiet = conditions
            .iter()
            .filter(|condition| condition.type_ != holding && condition.type_ != "Ready")
            .all(|condition| condition.message.is_empty());
        assert!(
            others_quiet,
            "{error:?}: only the holding condition explains"
        );
    }
}

/// Asserts what README promises: a condition whose status did not change keeps its
/// `lastTransitionTime`, and one that changed moved to `now`.
pub(crate) fn assert_transitions(
    before: &[Condition],
    after: &[Condition],
    now: jiff::Timestamp,
    case: &str,
) {
    for condition in after {
        match before.iter().find(|old| old.type_ == condition.type_) {
            Some(old) if old.status == condition.status => assert_eq!(
                condition.last_transition_time, old.last_transition_time,
                "{case}: {} stayed {}, so its lastTransitionTime stays",
                condition.type_, condition.status
            ),
            _ => assert_eq!(
                condition.last_transition_time.0, now,
                "{case}: {} became {} now",
                condition.type_, condition.status
            ),
        }
    }
}
