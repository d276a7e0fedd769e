//! kstatus-compatible conditions: `Ready`, `Reconciling` and `Stalled`.
//!
//! Flux, Argo CD and `kubectl wait` read these. Each condition's `lastTransitionTime` changes
//! only when its status changes, so that an unchanged status produces no patch.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The condition types the operator sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionType {
    /// The datastore is ACTIVE and in sync, or the job COMPLETED.
    Ready,
    /// Something is under way: the operator will act or look again by itself.
    Reconciling,
    /// Only a human can fix this; the operator waits for a change to the object.
    Stalled,
}

impl ConditionType {
    /// The condition type as written in `.status.conditions[].type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::Reconciling => "Reconciling",
            Self::Stalled => "Stalled",
        }
    }
}

/// A condition's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// The operator cannot tell yet.
    Unknown,
}

impl ConditionStatus {
    /// The status as written in `.status.conditions[].status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

/// Sets one condition in `conditions`, keeping its `lastTransitionTime` unless its status
/// changes. Conditions of other types are left as they are.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: ConditionType,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: &Time,
) {
    let existing = conditions
        .iter_mut()
        .find(|condition| condition.type_ == type_.as_str());
    match existing {
        Some(condition) => {
            if condition.status != status.as_str() {
                condition.status = status.as_str().to_owned();
                condition.last_transition_time = now.clone();
            }
            condition.reason = reason.to_owned();
            condition.message = message.to_owned();
            condition.observed_generation = observed_generation;
        }
        None => conditions.push(Condition {
            type_: type_.as_str().to_owned(),
            status: status.as_str().to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            observed_generation,
            last_transition_time: now.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let mut conditions = Vec::new();
        let ready = ConditionType::Ready;
        set_condition(
            &mut conditions,
            ready,
            ConditionStatus::False,
            "Creating",
            "a",
            Some(1),
            &time(10),
        );
        set_condition(
            &mut conditions,
            ready,
            ConditionStatus::False,
            "Creating",
            "b",
            Some(2),
            &time(20),
        );
        assert_eq!(conditions[0].last_transition_time, time(10));
        assert_eq!(conditions[0].message, "b");
        assert_eq!(conditions[0].observed_generation, Some(2));

        set_condition(
            &mut conditions,
            ready,
            ConditionStatus::True,
            "Active",
            "c",
            Some(2),
            &time(30),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, time(30));
        assert_eq!(conditions[0].status, "True");
    }

    #[test]
    fn other_condition_types_are_kept() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            ConditionType::Ready,
            ConditionStatus::True,
            "A",
            "",
            None,
            &time(1),
        );
        set_condition(
            &mut conditions,
            ConditionType::Stalled,
            ConditionStatus::False,
            "B",
            "",
            None,
            &time(2),
        );
        let types: Vec<_> = conditions
            .iter()
            .map(|condition| condition.type_.as_str())
            .collect();
        assert_eq!(types, ["Ready", "Stalled"]);
    }
}
