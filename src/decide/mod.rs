//! Pure decisions: (spec, status, what AWS reported, now) → next action, new status, next look.
//!
//! Nothing here performs I/O or reads a clock: the controllers fetch, call these functions,
//! perform the action they return and patch the status they return. That keeps every case of
//! DESIGN.md section 3 testable as a row in a table.

pub mod datastore;
pub mod job;
pub mod stall;

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{ConditionStatus, ConditionType, set_condition};
use crate::healthlake::HealthLakeError;

/// When the controller should look at the object again, in terms the controller maps to its
/// configured intervals (with jitter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    /// Something just changed: look again soon.
    Soon,
    /// A long operation is under way (creating, deleting, a job running): poll at the long
    /// interval.
    LongOperation,
    /// Everything is in sync: re-check at the idle resync interval.
    Resync,
    /// Back off exponentially (with jitter) because a call failed in a way that may pass.
    Backoff,
    /// Look again after this long (a TTL running out), or at the resync interval if sooner.
    After(Duration),
    /// The rate limiter has budget for this object after this long (its turn in the queue): look
    /// again then, or at the resync interval if that comes first. Looking sooner would cost
    /// calls (a datastore with no id is listed by name before each create) and no progress.
    Quota(Duration),
    /// A call failed in a way only a change outside Kubernetes fixes (permissions, a key, a
    /// bucket, a quota): try again on the slow schedule of Stalled objects
    /// ([`stall::RetrySchedule`]), or at once when the object changes.
    SlowRetry,
    /// Nothing will change until the object changes: wait for a watch event.
    AwaitChange,
}

/// Which part of a reconcile a failed HealthLake call belonged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Reading what AWS holds (Describe, List, ListTags). A read that waits or fails says nothing
    /// about the resource, so it leaves `Ready` as it was.
    Observe,
    /// Changing something in AWS (Create, Delete, Start, tags).
    Act,
}

/// Identity of the Kubernetes object a decision is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.uid`: the ClientToken of every create or start.
    pub uid: String,
    /// `metadata.generation`.
    pub generation: Option<i64>,
}

/// What the controller should tell users about a decision, as a Kubernetes event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Warning or Normal.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

impl Notice {
    /// A Normal event.
    pub fn normal(reason: &str, message: impl Into<String>) -> Self {
        Self {
            warning: false,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    /// A Warning event.
    pub fn warning(reason: &str, message: impl Into<String>) -> Self {
        Self {
            warning: true,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// The three kstatus conditions at once, so that no decision forgets one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Ready=True, Reconciling=False, Stalled=False.
    Ready,
    /// Ready=False, Reconciling=True, Stalled=False.
    Progressing,
    /// Ready=False, Reconciling=False, Stalled=True.
    Stalled,
}

/// Sets Ready, Reconciling and Stalled for `phase`, with `reason` and `message` on the condition
/// that holds and on Ready.
pub(crate) fn set_phase(
    conditions: &mut Vec<Condition>,
    phase: Phase,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let now = Time(now);
    let (ready, reconciling, stalled) = match phase {
        Phase::Ready => (
            ConditionStatus::True,
            ConditionStatus::False,
            ConditionStatus::False,
        ),
        Phase::Progressing => (
            ConditionStatus::False,
            ConditionStatus::True,
            ConditionStatus::False,
        ),
        Phase::Stalled => (
            ConditionStatus::False,
            ConditionStatus::False,
            ConditionStatus::True,
        ),
    };
    set_condition(
        conditions,
        ConditionType::Ready,
        ready,
        reason,
        message,
        generation,
        &now,
    );
    let (reconciling_reason, reconciling_message) = if reconciling == ConditionStatus::True {
        (reason, message)
    } else {
        (reason, "")
    };
    set_condition(
        conditions,
        ConditionType::Reconciling,
        reconciling,
        reconciling_reason,
        reconciling_message,
        generation,
        &now,
    );
    let (stalled_reason, stalled_message) = if stalled == ConditionStatus::True {
        (reason, message)
    } else {
        (reason, "")
    };
    set_condition(
        conditions,
        ConditionType::Stalled,
        stalled,
        stalled_reason,
        stalled_message,
        generation,
        &now,
    );
}

/// The reason of the Warning a phase that lasts far longer than HealthLake takes gets, once.
pub(crate) const TAKING_LONG: &str = "TakingLong";

/// Whether a decision's event is worth sending: a change of phase, or the one-time warning that
/// the phase lasts far longer than usual (the phase itself does not change then; the warning's
/// producer sends it once).
pub(crate) fn worth_sending(notice: &Notice, old: &[Condition], new: &[Condition]) -> bool {
    notice.reason == TAKING_LONG || phase_changed(old, new)
}

/// Puts back the `lastTransitionTime` of every condition whose status is the one it had in
/// `previous`. A decision and the outcome of its action are settled in one step and may pass
/// through another status on the way (Stalled, then Reconciling for the retry, then Stalled
/// again); only what is written is a transition.
pub(crate) fn keep_transition_times(previous: &[Condition], next: &mut [Condition]) {
    for condition in next.iter_mut() {
        if let Some(old) = previous
            .iter()
            .find(|old| old.type_ == condition.type_ && old.status == condition.status)
        {
            condition
                .last_transition_time
                .clone_from(&old.last_transition_time);
        }
    }
}

/// True when a condition's status or reason changed: only then is a Normal event worth sending.
pub(crate) fn phase_changed(old: &[Condition], new: &[Condition]) -> bool {
    fn key(condition: &Condition) -> (&str, &str, &str) {
        (&condition.type_, &condition.status, &condition.reason)
    }
    !old.iter().map(key).eq(new.iter().map(key))
}

/// Shows that something is under way without touching `Ready`: the last observation stands
/// while the operator waits to look again. Without a Ready observation yet, it is plain progress.
fn set_waiting(
    conditions: &mut Vec<Condition>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let ready = conditions.iter().any(|condition| {
        condition.type_ == ConditionType::Ready.as_str() && condition.status == "True"
    });
    if !ready {
        set_phase(
            conditions,
            Phase::Progressing,
            reason,
            message,
            generation,
            now,
        );
        return;
    }
    let now = Time(now);
    set_condition(
        conditions,
        ConditionType::Reconciling,
        ConditionStatus::True,
        reason,
        message,
        generation,
        &now,
    );
    set_condition(
        conditions,
        ConditionType::Stalled,
        ConditionStatus::False,
        reason,
        "",
        generation,
        &now,
    );
}

/// Settles a failed call on `conditions` (which were `prior` before the reconcile): the new
/// conditions, the requeue, and the events that still go out. Of the decision's own `notices`
/// only warnings stay (what was about to happen did not); the failure's event goes out when it is
/// a warning or the phase changed. One step for every kind, after a read or an action. A held
/// object whose retry waits for the operator's own request quota keeps its conditions.
pub(crate) fn settle_failure(
    prior: &[Condition],
    conditions: &mut Vec<Condition>,
    notices: &mut Vec<Notice>,
    failure: (&HealthLakeError, &str, Step),
    generation: Option<i64>,
    now: Timestamp,
) -> Requeue {
    let (error, action, step) = failure;
    if let HealthLakeError::WaitingForQuota { retry_after } = error
        && stall::held_since(prior, generation).is_some()
    {
        // A slow retry of a held object (Stalled, or waiting for an account quota) that waits for
        // the operator's own request budget has not happened yet: the stall stands as it was, and
        // with it the retry schedule anchored on its conditions.
        prior.clone_into(conditions);
        notices.retain(|notice| notice.warning);
        return Requeue::Quota(*retry_after);
    }
    let (requeue, notice) = on_error(conditions, error, action, step, generation, now);
    notices.retain(|notice| notice.warning);
    notices.extend(notice.filter(|notice| notice.warning || phase_changed(prior, conditions)));
    requeue
}

/// How a failed HealthLake call changes the conditions, and when to try again.
///
/// `action` says what was attempted, for the message: "create datastore patients". A read
/// ([`Step::Observe`]) that waits for quota or fails transiently keeps `Ready` as it was; a
/// terminal error stalls the object and is retried on the slow schedule; an account quota keeps
/// it `Reconciling` on the same slow schedule.
pub fn on_error(
    conditions: &mut Vec<Condition>,
    error: &HealthLakeError,
    action: &str,
    step: Step,
    generation: Option<i64>,
    now: Timestamp,
) -> (Requeue, Option<Notice>) {
    let waiting = |conditions: &mut Vec<Condition>, reason: &str, message: &str| match step {
        Step::Observe => set_waiting(conditions, reason, message, generation, now),
        Step::Act => set_phase(
            conditions,
            Phase::Progressing,
            reason,
            message,
            generation,
            now,
        ),
    };
    match error {
        HealthLakeError::WaitingForQuota { retry_after } => {
            let message = format!("waiting for request quota to {action}");
            waiting(conditions, "WaitingForQuota", &message);
            // The operator's own pacing, shown in Reconciling: no event, so that the happy path
            // stays at one event per object when many objects share a quota.
            (Requeue::Quota(*retry_after), None)
        }
        HealthLakeError::Terminal { reason, message } => {
            let text = format!(
                "failed to {action}: {message}; fix the cause, the operator tries again on a slow schedule \
                 (or at once when the object changes or its {} annotation is set)",
                stall::RETRY_AT_ANNOTATION
            );
            set_phase(conditions, Phase::Stalled, reason, &text, generation, now);
            (Requeue::SlowRetry, Some(Notice::warning(reason, text)))
        }
        HealthLakeError::AccountQuota { message } => {
            let text = format!(
                "failed to {action}: the account's HealthLake quota is used up ({message}); \
                 delete a datastore in this region or ask AWS to raise the quota, the operator tries again on a slow schedule"
            );
            set_phase(
                conditions,
                Phase::Progressing,
                stall::ACCOUNT_QUOTA_REASON,
                &text,
                generation,
                now,
            );
            (
                Requeue::SlowRetry,
                Some(Notice::warning(stall::ACCOUNT_QUOTA_REASON, text)),
            )
        }
        HealthLakeError::Throttled { message } => {
            let text = format!("failed to {action}: throttled by HealthLake: {message}");
            waiting(conditions, "Throttled", &text);
            (Requeue::Backoff, Some(Notice::warning("Throttled", text)))
        }
        HealthLakeError::Conflict { message } => {
            let text = format!("failed to {action}: {message}");
            waiting(conditions, "Conflict", &text);
            (Requeue::Backoff, Some(Notice::warning("Conflict", text)))
        }
        HealthLakeError::Retryable { message } => {
            let text = format!("failed to {action}: {message}");
            waiting(conditions, "Retrying", &text);
            (
                Requeue::Backoff,
                Some(Notice::warning("HealthLakeError", text)),
            )
        }
        HealthLakeError::Unrecognized { code, message } => {
            let text = format!(
                "failed to {action}: HealthLake answered {code}, an error this operator does not know; \
                 retrying with backoff: {message}"
            );
            waiting(conditions, "Retrying", &text);
            (Requeue::Backoff, Some(Notice::warning(code, text)))
        }
        HealthLakeError::NotFound { message } => {
            let text = format!("failed to {action}: not found: {message}");
            waiting(conditions, "NotFound", &text);
            (Requeue::Backoff, Some(Notice::warning("NotFound", text)))
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Builders shared by the decision tables.

    use jiff::Timestamp;

    use super::ObjectMeta;

    /// A fixed "now" for every table.
    pub fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).expect("valid timestamp")
    }

    /// Object identity for a test object named `name` at generation 1.
    pub fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: name.to_owned(),
            namespace: "clinical".to_owned(),
            uid: format!("uid-{name}"),
            generation: Some(1),
        }
    }

    /// The status of the condition `type_`, or "absent".
    pub fn condition(
        conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
        type_: &str,
    ) -> (String, String) {
        conditions
            .iter()
            .find(|condition| condition.type_ == type_)
            .map(|condition| (condition.status.clone(), condition.reason.clone()))
            .unwrap_or_else(|| ("absent".to_owned(), String::new()))
    }
}

#[cfg(test)]
mod tests;
