//! apply, settle and unobserved over every prior: what AWS reported and what came of the
//! action → conditions, next look, events, ids and managed tags.

use super::*;

/// What happens to `status.managedTags`.
#[derive(Clone, Copy, Debug)]
enum Managed {
    /// Left as the prior had it.
    Prior,
    /// The spec's keys: the operator now set them.
    Spec,
}

struct ApplyRow {
    name: &'static str,
    adopted: bool,
    observed: Observed,
    action: &'static str,
    /// Tags to set and remove, for a tag sync.
    sync: (&'static [&'static str], &'static [&'static str]),
    phase: (Phase, &'static str),
    /// The reason instead, when the prior never saw the datastore in AWS.
    unseen_reason: Option<&'static str>,
    requeue: Requeue,
    /// The event, sent only when the conditions change.
    notice: Option<(&'static str, bool)>,
    managed: Managed,
}

fn apply_rows() -> Vec<ApplyRow> {
    let gone = || Observed::Gone {
        datastore_id: ID.to_owned(),
    };
    let row = |name, adopted, observed, action, phase, requeue, notice| ApplyRow {
        name,
        adopted,
        observed,
        action,
        sync: (&[], &[]),
        phase,
        unseen_reason: None,
        requeue,
        notice,
        managed: Managed::Prior,
    };
    vec![
        row(
            "nothing in aws: create",
            false,
            Observed::Absent,
            "create",
            (Phase::Progressing, "Creating"),
            Requeue::Soon,
            None,
        ),
        row(
            "left behind by an earlier object: refuse to create a second",
            false,
            Observed::LeftBehind {
                datastore_id: "retained".to_owned(),
            },
            "none",
            (Phase::Stalled, "RetainedDatastoreExists"),
            Requeue::SlowRetry,
            Some(("RetainedDatastoreExists", true)),
        ),
        row(
            "creating",
            false,
            present(DatastoreStatus::Creating, owned_tags()),
            "none",
            (Phase::Progressing, "Creating"),
            Requeue::LongOperation,
            None,
        ),
        ApplyRow {
            managed: Managed::Spec,
            ..row(
                "active, in sync, an aws: tag beside ours",
                false,
                present(DatastoreStatus::Active, owned_tags()),
                "none",
                (Phase::Ready, "Active"),
                Requeue::Resync,
                None,
            )
        },
        ApplyRow {
            sync: (&["team"], &["added-in-console"]),
            ..row(
                "created, tags drifted: put ours back, drop the foreign one, keep aws:",
                false,
                present(DatastoreStatus::Active, drifted_owned_tags()),
                "sync-tags",
                (Phase::Progressing, "SyncingTags"),
                Requeue::Soon,
                Some(("SyncingTags", false)),
            )
        },
        ApplyRow {
            managed: Managed::Spec,
            ..row(
                "adopted, in sync, others' and aws: tags beside ours",
                true,
                present(DatastoreStatus::Active, adopted_tags("clinical")),
                "none",
                (Phase::Ready, "Active"),
                Requeue::Resync,
                None,
            )
        },
        ApplyRow {
            sync: (&["team"], &[]),
            ..row(
                "adopted, tags drifted: put ours back, remove nobody else's, add no owner tag",
                true,
                present(DatastoreStatus::Active, adopted_tags("someone-else")),
                "sync-tags",
                (Phase::Progressing, "SyncingTags"),
                Requeue::Soon,
                Some(("SyncingTags", false)),
            )
        },
        row(
            "create failed",
            false,
            create_failed(),
            "none",
            (Phase::Stalled, "CreateFailed"),
            Requeue::AwaitChange,
            Some(("CreateFailed", true)),
        ),
        row(
            "being deleted outside kubernetes",
            false,
            present(DatastoreStatus::Deleting, owned_tags()),
            "none",
            (Phase::Stalled, "DatastoreGone"),
            Requeue::Resync,
            Some(("DatastoreGone", true)),
        ),
        row(
            "deleted outside kubernetes",
            false,
            present(DatastoreStatus::Deleted, owned_tags()),
            "none",
            (Phase::Stalled, "DatastoreGone"),
            Requeue::Resync,
            Some(("DatastoreGone", true)),
        ),
        row(
            "a status aws added later",
            false,
            present(
                DatastoreStatus::Unknown("UPDATING".to_owned()),
                owned_tags(),
            ),
            "none",
            (Phase::Progressing, "UnknownStatus"),
            Requeue::LongOperation,
            Some(("UnknownStatus", true)),
        ),
        row(
            "created, then not found",
            false,
            gone(),
            "none",
            (Phase::Stalled, "DatastoreGone"),
            Requeue::Resync,
            Some(("DatastoreGone", true)),
        ),
        ApplyRow {
            unseen_reason: Some("DatastoreNotFound"),
            ..row(
                "adopted id not found",
                true,
                gone(),
                "none",
                (Phase::Stalled, "DatastoreGone"),
                Requeue::Resync,
                Some(("DatastoreGone", true)),
            )
        },
    ]
}

#[test]
fn apply_table_every_prior_by_every_observation() {
    let meta = meta("patients");
    let mut cells = 0;
    for row in apply_rows() {
        let spec = spec_for(row.adopted);
        for which in PRIORS {
            let before = prior(which);
            let case = format!("{} after {which:?}", row.name);
            let (decision, settled) = reconcile(
                apply,
                &meta,
                &spec,
                &before,
                &row.observed,
                &Outcome::Nothing,
                now(),
            );
            assert_eq!(
                settled,
                Settled {
                    status: decision.status.clone(),
                    requeue: decision.requeue,
                    notices: decision.notice.iter().cloned().collect(),
                },
                "{case}: an action that needed no call settles as decided"
            );
            let status = &settled.status;

            assert_eq!(action_name(&decision.action), row.action, "{case}: action");
            if let DatastoreAction::SyncTags { add, remove, .. } = &decision.action {
                let added: Vec<&str> = add.keys().map(String::as_str).collect();
                assert_eq!(added, row.sync.0, "{case}: tags set");
                assert_eq!(remove, &row.sync.1, "{case}: tags removed");
                assert!(
                    add.values().all(|value| value == "clinical"),
                    "{case}: the spec's values: {add:?}"
                );
            }
            if let DatastoreAction::Create(request) = &decision.action {
                assert_eq!(request.client_token, meta.uid, "{case}: ClientToken");
            }

            let reason = match row.unseen_reason {
                Some(unseen) if before.datastore_status.is_none() => unseen,
                _ => row.phase.1,
            };
            // A tag sync is the operator's own fix-up: a Ready datastore stays Ready meanwhile.
            let phase = if reason == "SyncingTags" {
                expected_phase(
                    Effect::Sync(reason),
                    Step::Act,
                    &phase_of(&before.conditions),
                )
            } else {
                phase_is(row.phase.0, reason)
            };
            assert_eq!(phase_of(&status.conditions), phase, "{case}: conditions");
            assert_transitions(&before.conditions, &status.conditions, now(), &case);
            assert_eq!(settled.requeue, row.requeue, "{case}: requeue");

            let changed = phase_of(&before.conditions) != phase;
            // The event names the reason the conditions show.
            let expected = row.notice.filter(|_| changed).map(|(notice, warning)| {
                (
                    if notice == row.phase.1 {
                        reason
                    } else {
                        notice
                    },
                    warning,
                )
            });
            assert_eq!(
                notices(&settled),
                expect_notices(expected.as_slice()),
                "{case}: events (only when the conditions change)"
            );

            assert_kept(&case, &before, status, row.adopted);
            assert_eq!(status.region.as_deref(), Some(REGION), "{case}: region");
            assert_eq!(status.observed_generation, Some(1), "{case}");
            if let Observed::Present { datastore, tags } = &row.observed {
                assert_eq!(status.datastore_id.as_deref(), Some(ID), "{case}");
                assert_eq!(status.datastore_status.as_ref(), Some(&datastore.status));
                assert_eq!(
                    status.tags.as_ref(),
                    tags.as_ref(),
                    "{case}: tags as AWS has them"
                );
            }
            let managed = match row.managed {
                Managed::Prior => before.managed_tags.clone(),
                Managed::Spec => Some(vec!["team".to_owned()]),
            };
            assert_eq!(status.managed_tags, managed, "{case}: managedTags");
            cells += 1;
        }
    }
    assert_eq!(cells, 13 * PRIORS.len());
}

/// A reconcile whose action was called, and how its outcome settles on every prior.
struct OutcomeRow {
    name: String,
    decide_with: DecideWith,
    adopted: bool,
    observed: Observed,
    outcome: Outcome,
    /// What the conditions become, given the prior's.
    effect: Effect,
    requeue: Requeue,
    /// The decision's own event (sent when the conditions change) and the outcome's events.
    decided: Option<(&'static str, bool)>,
    events: Vec<(&'static str, bool)>,
    /// The id, and the datastore status, the settled status holds when the prior had none.
    recorded: Option<DatastoreStatus>,
    managed: Managed,
}

fn outcome_rows() -> Vec<OutcomeRow> {
    let absent = || Observed::Absent;
    let drifted = || present(DatastoreStatus::Active, drifted_owned_tags());
    let adopted_drifted = || present(DatastoreStatus::Active, adopted_tags("someone-else"));
    let active = || present(DatastoreStatus::Active, owned_tags());
    let mut rows = vec![
        OutcomeRow {
            name: "created".to_owned(),
            decide_with: apply,
            adopted: false,
            observed: absent(),
            outcome: Outcome::Created(summary(DatastoreStatus::Creating)),
            effect: Effect::Progress("Creating"),
            requeue: Requeue::Soon,
            decided: None,
            events: vec![("Created", false)],
            recorded: Some(DatastoreStatus::Creating),
            managed: Managed::Prior,
        },
        OutcomeRow {
            name: "tags synced".to_owned(),
            decide_with: apply,
            adopted: false,
            observed: drifted(),
            outcome: Outcome::TagsSynced,
            effect: Effect::Sync("SyncingTags"),
            requeue: Requeue::Soon,
            decided: Some(("SyncingTags", false)),
            events: vec![],
            recorded: Some(DatastoreStatus::Active),
            managed: Managed::Spec,
        },
        OutcomeRow {
            name: "adopted tags synced".to_owned(),
            decide_with: apply,
            adopted: true,
            observed: adopted_drifted(),
            outcome: Outcome::TagsSynced,
            effect: Effect::Sync("SyncingTags"),
            requeue: Requeue::Soon,
            decided: Some(("SyncingTags", false)),
            events: vec![],
            recorded: Some(DatastoreStatus::Active),
            managed: Managed::Spec,
        },
        OutcomeRow {
            name: "delete accepted".to_owned(),
            decide_with: cleanup,
            adopted: false,
            observed: active(),
            outcome: Outcome::DeleteAccepted(summary(DatastoreStatus::Deleting)),
            effect: Effect::Progress("Deleting"),
            requeue: Requeue::Soon,
            decided: None,
            events: vec![("Deleting", false)],
            recorded: Some(DatastoreStatus::Deleting),
            managed: Managed::Prior,
        },
    ];
    let calls: [(&str, DecideWith, bool, Observed, Option<_>); 4] = [
        ("create", apply, false, absent(), None),
        (
            "sync tags",
            apply,
            false,
            drifted(),
            Some(DatastoreStatus::Active),
        ),
        (
            "sync adopted tags",
            apply,
            true,
            adopted_drifted(),
            Some(DatastoreStatus::Active),
        ),
        (
            "delete",
            cleanup,
            false,
            active(),
            Some(DatastoreStatus::Active),
        ),
    ];
    for (call, decide_with, adopted, observed, recorded) in calls {
        for error in error_rows() {
            rows.push(OutcomeRow {
                name: format!("{call} failed: {:?}", error.error),
                decide_with,
                adopted,
                observed: observed.clone(),
                outcome: failed(error.error, call),
                effect: error.effect,
                requeue: error.requeue,
                decided: None,
                events: error.notice.into_iter().collect(),
                recorded: recorded.clone(),
                managed: Managed::Prior,
            });
        }
    }
    rows
}

#[test]
fn outcome_table_every_prior_by_every_outcome() {
    let meta = meta("patients");
    let mut cells = 0;
    for row in outcome_rows() {
        let spec = spec_for(row.adopted);
        for which in PRIORS {
            let before = prior(which);
            let case = format!("{} after {which:?}", row.name);
            let (_, settled) = reconcile(
                row.decide_with,
                &meta,
                &spec,
                &before,
                &row.observed,
                &row.outcome,
                now(),
            );
            let status = &settled.status;
            let phase =
                expected_settled_phase(row.effect, Step::Act, &phase_of(&before.conditions));
            assert_eq!(phase_of(&status.conditions), phase, "{case}: conditions");
            assert_transitions(&before.conditions, &status.conditions, now(), &case);
            assert_eq!(settled.requeue, row.requeue, "{case}: requeue");

            let changed = phase_of(&before.conditions) != phase;
            let mut expected: Vec<(&str, bool)> =
                row.decided.filter(|_| changed).into_iter().collect();
            // A Normal event about a failed call only when the conditions change.
            let outcome_failed = matches!(row.outcome, Outcome::Failed { .. });
            expected.extend(
                row.events
                    .iter()
                    .copied()
                    .filter(|(_, warning)| *warning || changed || !outcome_failed),
            );
            assert_eq!(
                notices(&settled),
                expect_notices(&expected),
                "{case}: events"
            );

            assert_kept(&case, &before, status, row.adopted);
            match &row.recorded {
                Some(recorded) => {
                    assert_eq!(status.datastore_id.as_deref(), Some(ID), "{case}: id");
                    assert_eq!(status.datastore_status.as_ref(), Some(recorded), "{case}");
                }
                None => assert_eq!(
                    status.datastore_id, before.datastore_id,
                    "{case}: a failed create records no id, and drops none"
                ),
            }
            let managed = match row.managed {
                Managed::Prior => before.managed_tags.clone(),
                Managed::Spec => Some(vec!["team".to_owned()]),
            };
            assert_eq!(status.managed_tags, managed, "{case}: managedTags");
            cells += 1;
        }
    }
    assert_eq!(cells, (4 + 4 * 9) * PRIORS.len());
}

#[test]
fn unobserved_table_every_prior_by_every_error_class() {
    let meta = meta("patients");
    let mut cells = 0;
    for row in error_rows() {
        for which in PRIORS {
            let before = prior(which);
            let case = format!("reading failed with {:?} after {which:?}", row.error);
            let settled = unobserved(
                &before,
                &row.error,
                "look up datastore of patients",
                &meta,
                now(),
            );
            let status = &settled.status;
            let phase =
                expected_settled_phase(row.effect, Step::Observe, &phase_of(&before.conditions));
            assert_eq!(phase_of(&status.conditions), phase, "{case}: conditions");
            assert_transitions(&before.conditions, &status.conditions, now(), &case);
            assert_eq!(settled.requeue, row.requeue, "{case}: requeue");
            let changed = phase_of(&before.conditions) != phase;
            let expected = row.notice.filter(|(_, warning)| *warning || changed);
            assert_eq!(
                notices(&settled),
                expect_notices(expected.as_slice()),
                "{case}: events"
            );
            assert_eq!(
                FHIRDatastoreStatus {
                    conditions: before.conditions.clone(),
                    observed_generation: before.observed_generation,
                    ..status.clone()
                },
                before,
                "{case}: nothing but the conditions changes"
            );
            cells += 1;
        }
    }
    assert_eq!(cells, 9 * PRIORS.len());
}

#[test]
fn a_read_that_waits_keeps_ready_true_and_its_transition_time() {
    let meta = meta("patients");
    let ready = prior(Prior::Ready);
    for error in [
        HealthLakeError::WaitingForQuota {
            retry_after: Duration::from_secs(5),
        },
        HealthLakeError::Throttled {
            message: "slow down".to_owned(),
        },
        HealthLakeError::Retryable {
            message: "connection reset".to_owned(),
        },
    ] {
        let settled = unobserved(&ready, &error, "describe datastore", &meta, now());
        let read = |status: &FHIRDatastoreStatus| {
            status
                .conditions
                .iter()
                .find(|condition| condition.type_ == "Ready")
                .cloned()
        };
        assert_eq!(read(&settled.status), read(&ready), "{error:?}");
    }
}

#[test]
fn a_long_creation_warns_once_while_polling_goes_on() {
    let meta = meta("patients");
    let spec = created_spec();
    let mut slow = aws(DatastoreStatus::Creating);
    slow.created_at = Some(now() - SignedDuration::from_hours(3));
    let observed = Observed::Present {
        datastore: slow,
        tags: Some(owned_tags()),
    };
    let (_, first) = reconcile(
        apply,
        &meta,
        &spec,
        &prior(Prior::Creating),
        &observed,
        &Outcome::Nothing,
        now(),
    );
    let message = |status: &FHIRDatastoreStatus| {
        status
            .conditions
            .iter()
            .find(|condition| condition.type_ == "Reconciling")
            .map(|condition| condition.message.clone())
            .unwrap_or_default()
    };
    assert!(
        message(&first.status).contains("longer than HealthLake usually takes"),
        "{}",
        message(&first.status)
    );
    assert_eq!(first.requeue, Requeue::LongOperation, "polling goes on");
    assert_eq!(
        notices(&first),
        expect_notices(&[("TakingLong", true)]),
        "one warning"
    );
    let later = now() + SignedDuration::from_mins(10);
    let (_, second) = reconcile(
        apply,
        &meta,
        &spec,
        &first.status,
        &observed,
        &Outcome::Nothing,
        later,
    );
    assert!(message(&second.status).contains("longer than HealthLake usually takes"));
    assert_eq!(notices(&second), vec![], "not again");

    // Without a creation time from AWS, the phase's own start counts.
    let mut undated = aws(DatastoreStatus::Creating);
    undated.created_at = None;
    let observed = Observed::Present {
        datastore: undated,
        tags: Some(owned_tags()),
    };
    for (hours, warned) in [(0, false), (2, true)] {
        let at = now() + SignedDuration::from_hours(hours);
        let (_, settled) = reconcile(
            apply,
            &meta,
            &spec,
            &prior(Prior::Creating),
            &observed,
            &Outcome::Nothing,
            at,
        );
        assert_eq!(
            !settled.notices.is_empty(),
            warned,
            "{hours} h after the hour-old Creating phase began"
        );
    }
}

#[test]
fn pin_writes_region_and_policy_once() {
    let meta = meta("patients");
    let rows = [
        (created_spec(), "us-east-1", DeletionPolicy::Delete),
        (
            FHIRDatastoreSpec {
                region: Some("eu-west-1".to_owned()),
                ..adopted_spec()
            },
            "eu-west-1",
            DeletionPolicy::Retain,
        ),
    ];
    for (spec, region, policy) in rows {
        let pinned = pin(
            &spec,
            &FHIRDatastoreStatus::default(),
            "us-east-1",
            &meta,
            now(),
        )
        .expect("an empty status is pinned");
        assert_eq!(pinned.region.as_deref(), Some(region));
        assert_eq!(pinned.deletion_policy, Some(policy));
        assert_eq!(
            phase_of(&pinned.conditions),
            phase_is(Phase::Progressing, "Creating")
        );
        assert_eq!(
            pin(&spec, &pinned, "ap-southeast-2", &meta, now()),
            None,
            "a pinned region is never re-derived from a new default"
        );
    }
    for which in PRIORS.into_iter().filter(|which| *which != Prior::Nothing) {
        assert_eq!(
            pin(&created_spec(), &prior(which), "eu-west-1", &meta, now()),
            None,
            "{which:?}"
        );
    }
}
