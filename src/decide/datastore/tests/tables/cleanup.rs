//! cleanup over every prior and every deletion policy, adopted or created: what AWS reported
//! → action, conditions, next look and events.

use super::*;

struct CleanupRow {
    name: &'static str,
    observed: Observed,
    action: &'static str,
    requeue: Requeue,
    /// The conditions, or `None` when they stay as they were.
    phase: Option<(Phase, &'static str)>,
    notice: Option<(&'static str, bool)>,
}

fn cleanup_rows() -> Vec<CleanupRow> {
    let release = |name, observed| CleanupRow {
        name,
        observed,
        action: "release",
        requeue: Requeue::AwaitChange,
        phase: None,
        notice: Some(("Deleted", false)),
    };
    vec![
        release("nothing was created", Observed::Absent),
        release(
            "only a datastore an earlier object left behind",
            Observed::LeftBehind {
                datastore_id: "retained".to_owned(),
            },
        ),
        CleanupRow {
            name: "wait out creating",
            observed: present(DatastoreStatus::Creating, owned_tags()),
            action: "none",
            requeue: Requeue::LongOperation,
            phase: Some((Phase::Progressing, "WaitingForCreation")),
            notice: None,
        },
        CleanupRow {
            name: "delete an active datastore",
            observed: present(DatastoreStatus::Active, owned_tags()),
            action: "delete",
            requeue: Requeue::Soon,
            phase: Some((Phase::Progressing, "Deleting")),
            notice: Some(("Deleting", false)),
        },
        CleanupRow {
            name: "delete a datastore whose creation failed",
            observed: create_failed(),
            action: "delete",
            requeue: Requeue::Soon,
            phase: Some((Phase::Progressing, "Deleting")),
            notice: Some(("Deleting", false)),
        },
        CleanupRow {
            name: "poll while deleting",
            observed: present(DatastoreStatus::Deleting, owned_tags()),
            action: "none",
            requeue: Requeue::LongOperation,
            phase: Some((Phase::Progressing, "Deleting")),
            notice: None,
        },
        release("deleted", present(DatastoreStatus::Deleted, owned_tags())),
        CleanupRow {
            name: "a status aws added later: wait, never delete on a guess",
            observed: present(
                DatastoreStatus::Unknown("UPDATING".to_owned()),
                owned_tags(),
            ),
            action: "none",
            requeue: Requeue::LongOperation,
            phase: Some((Phase::Progressing, "UnknownStatus")),
            notice: Some(("UnknownStatus", true)),
        },
        release(
            "not found",
            Observed::Gone {
                datastore_id: ID.to_owned(),
            },
        ),
    ]
}

#[test]
fn cleanup_table_every_policy_prior_and_observation() {
    // (spec, policy in force)
    let policies = [
        ("created, unset", false, None, DeletionPolicy::Delete),
        (
            "created, Delete",
            false,
            Some(DeletionPolicy::Delete),
            DeletionPolicy::Delete,
        ),
        (
            "created, Retain",
            false,
            Some(DeletionPolicy::Retain),
            DeletionPolicy::Retain,
        ),
        ("adopted, unset", true, None, DeletionPolicy::Retain),
        (
            "adopted, Delete",
            true,
            Some(DeletionPolicy::Delete),
            DeletionPolicy::Delete,
        ),
        (
            "adopted, Retain",
            true,
            Some(DeletionPolicy::Retain),
            DeletionPolicy::Retain,
        ),
    ];
    // Deletion sets metadata.deletionTimestamp, which moves metadata.generation on.
    let meta = ObjectMeta {
        generation: Some(2),
        ..meta("patients")
    };
    let mut cells = 0;
    for row in cleanup_rows() {
        for (policy_name, adopted, policy, in_force) in policies {
            let spec = FHIRDatastoreSpec {
                deletion_policy: policy,
                ..spec_for(adopted)
            };
            for which in PRIORS {
                let before = prior(which);
                let case = format!("{} ({policy_name}) after {which:?}", row.name);
                let input = input(&meta, &spec, &before, &row.observed, now());
                let decision = cleanup(&input);
                let (action, requeue, phase, notice) = match in_force {
                    DeletionPolicy::Delete => (row.action, row.requeue, row.phase, row.notice),
                    DeletionPolicy::Retain => (
                        "release",
                        Requeue::AwaitChange,
                        None,
                        Some(("Retained", false)),
                    ),
                };
                assert_eq!(action_name(&decision.action), action, "{case}: action");
                if let DatastoreAction::Delete { datastore_id } = &decision.action {
                    assert_eq!(datastore_id, ID, "{case}");
                }
                assert_eq!(decision.requeue, requeue, "{case}: requeue");
                let conditions = match phase {
                    Some((phase, reason)) => phase_is(phase, reason),
                    None => phase_of(&before.conditions),
                };
                assert_eq!(
                    phase_of(&decision.status.conditions),
                    conditions,
                    "{case}: conditions"
                );
                assert_transitions(
                    &before.conditions,
                    &decision.status.conditions,
                    now(),
                    &case,
                );
                assert_eq!(
                    decision
                        .notice
                        .map(|notice| (notice.reason, notice.warning)),
                    notice.map(|(reason, warning)| (reason.to_owned(), warning)),
                    "{case}: event"
                );
                assert_eq!(decision.status.deletion_policy, Some(in_force), "{case}");
                for (field, old, new) in [
                    (
                        "datastoreId",
                        &before.datastore_id,
                        &decision.status.datastore_id,
                    ),
                    (
                        "datastoreArn",
                        &before.datastore_arn,
                        &decision.status.datastore_arn,
                    ),
                ] {
                    if old.is_some() {
                        assert_eq!(new, old, "{case}: {field} is never dropped");
                    }
                }
                if phase.is_some() {
                    assert_eq!(
                        decision.status.observed_generation,
                        Some(2),
                        "{case}: observedGeneration follows the conditions"
                    );
                }
                cells += 1;
            }
        }
    }
    assert_eq!(cells, 9 * 6 * PRIORS.len());
}

#[test]
fn an_unknown_status_never_deletes() {
    let meta = meta("patients");
    for value in ["UPDATING", "RESTORING", "", "deleted", "active"] {
        for policy in [
            None,
            Some(DeletionPolicy::Delete),
            Some(DeletionPolicy::Retain),
        ] {
            for adopted in [false, true] {
                let spec = FHIRDatastoreSpec {
                    deletion_policy: policy,
                    ..spec_for(adopted)
                };
                for which in PRIORS {
                    let before = prior(which);
                    let observed = present(DatastoreStatus::from(value), owned_tags());
                    let decision = cleanup(&input(&meta, &spec, &before, &observed, now()));
                    assert!(
                        !matches!(decision.action, DatastoreAction::Delete { .. }),
                        "{value:?}, {policy:?}, adopted {adopted}, after {which:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_long_deletion_warns_once_while_polling_goes_on() {
    let meta = meta("patients");
    let spec = created_spec();
    let deleting = present(DatastoreStatus::Deleting, owned_tags());
    let (_, accepted) = reconcile(
        cleanup,
        &meta,
        &spec,
        &prior(Prior::Ready),
        &present(DatastoreStatus::Active, owned_tags()),
        &Outcome::DeleteAccepted(summary(DatastoreStatus::Deleting)),
        an_hour_ago(),
    );
    // (hours after the delete was accepted, status before) → warned
    let mut status = accepted.status;
    for (hours, warned) in [(1, false), (3, true), (4, false)] {
        let at = an_hour_ago() + SignedDuration::from_hours(hours);
        let (_, settled) = reconcile(
            cleanup,
            &meta,
            &spec,
            &status,
            &deleting,
            &Outcome::Nothing,
            at,
        );
        let expected: &[(&str, bool)] = if warned { &[("TakingLong", true)] } else { &[] };
        assert_eq!(
            notices(&settled),
            expect_notices(expected),
            "{hours} h into the deletion"
        );
        assert_eq!(settled.requeue, Requeue::LongOperation);
        status = settled.status;
    }
}
