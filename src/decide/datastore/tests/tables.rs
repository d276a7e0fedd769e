//! The datastore decision tables: every kind of prior status × what AWS reported × what came of
//! the action → conditions, next look, events, ids, managed tags and deletion policy.
//!
//! Priors are built by running the decisions themselves from an empty status an hour ago, so
//! each is a status the operator really writes.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::api::{
    DatastoreStatus, DeletionPolicy, ErrorCategory, ErrorCause, FHIRDatastoreSpec,
    FHIRDatastoreStatus, FhirVersion, OWNER_NAME_TAG, OWNER_UID_TAG,
};
use crate::decide::datastore::*;
use crate::decide::fixtures::{meta, now};
use crate::decide::tests::{
    Effect, assert_transitions, error_rows, expected_phase, phase_is, phase_of,
};
use crate::decide::{ObjectMeta, Phase, Requeue, Step};
use crate::healthlake::{Datastore, DatastoreSummary, HealthLakeError};

const ID: &str = "0123456789abcdef0123456789abcdef";
const REGION: &str = "us-east-1";
const STUCK_AFTER: Duration = Duration::from_secs(2 * 3600);

/// When the priors were written.
fn an_hour_ago() -> Timestamp {
    now() - SignedDuration::from_hours(1)
}

fn created_spec() -> FHIRDatastoreSpec {
    FHIRDatastoreSpec {
        datastore_name: None,
        datastore_type_version: FhirVersion::R4,
        sse_configuration: None,
        preload_data_config: None,
        identity_provider_configuration: None,
        tags: tags(&[("team", "clinical")]),
        deletion_policy: None,
        datastore_id: None,
        region: None,
    }
}

fn adopted_spec() -> FHIRDatastoreSpec {
    FHIRDatastoreSpec {
        datastore_id: Some(ID.to_owned()),
        ..created_spec()
    }
}

fn spec_for(adopted: bool) -> FHIRDatastoreSpec {
    if adopted {
        adopted_spec()
    } else {
        created_spec()
    }
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

/// The tags of a datastore this object created, with an `aws:` tag CloudFormation added.
fn owned_tags() -> BTreeMap<String, String> {
    let mut owned = tags(&[
        ("team", "clinical"),
        ("aws:cloudformation:stack-name", "ehr"),
    ]);
    owned.insert(OWNER_UID_TAG.to_owned(), "uid-patients".to_owned());
    owned.insert(OWNER_NAME_TAG.to_owned(), "clinical/patients".to_owned());
    owned
}

/// Owned tags changed in the console: a value edited and a foreign tag added.
fn drifted_owned_tags() -> BTreeMap<String, String> {
    let mut drifted = owned_tags();
    drifted.insert("team".to_owned(), "someone-else".to_owned());
    drifted.insert("added-in-console".to_owned(), "x".to_owned());
    drifted
}

/// The tags of an adopted datastore: others' tags and AWS's, no owner tag.
fn adopted_tags(team: &str) -> BTreeMap<String, String> {
    tags(&[
        ("team", team),
        ("cost-center", "finance"),
        ("aws:cloudformation:stack-name", "ehr"),
    ])
}

fn aws(status: DatastoreStatus) -> Datastore {
    Datastore {
        id: ID.to_owned(),
        arn: format!("arn:aws:healthlake:{REGION}:123456789012:datastore/fhir/{ID}"),
        endpoint: format!("https://healthlake.{REGION}.amazonaws.com/datastore/{ID}/r4/"),
        name: Some("patients".to_owned()),
        status,
        type_version: "R4".to_owned(),
        created_at: Some(an_hour_ago()),
        error_cause: None,
        encryption: None,
        preload: None,
        identity_provider: None,
    }
}

fn present(status: DatastoreStatus, tags: BTreeMap<String, String>) -> Observed {
    Observed::Present {
        datastore: aws(status),
        tags,
    }
}

fn create_failed() -> Observed {
    let mut failed = aws(DatastoreStatus::CreateFailed);
    failed.error_cause = Some(ErrorCause {
        error_category: Some(ErrorCategory::NonRetryable),
        error_message: Some("kms key is disabled".to_owned()),
    });
    Observed::Present {
        datastore: failed,
        tags: owned_tags(),
    }
}

fn summary(status: DatastoreStatus) -> DatastoreSummary {
    let datastore = aws(status.clone());
    DatastoreSummary {
        id: datastore.id,
        arn: datastore.arn,
        endpoint: datastore.endpoint,
        status,
    }
}

fn failed(error: HealthLakeError, action: &str) -> Outcome {
    Outcome::Failed {
        error,
        action: action.to_owned(),
    }
}

fn access_denied() -> HealthLakeError {
    HealthLakeError::Terminal {
        reason: "AccessDenied".to_owned(),
        message: "not authorized to perform healthlake:CreateFHIRDatastore".to_owned(),
    }
}

fn input<'a>(
    meta: &'a ObjectMeta,
    spec: &'a FHIRDatastoreSpec,
    status: &'a FHIRDatastoreStatus,
    observed: &'a Observed,
    at: Timestamp,
) -> DatastoreInput<'a> {
    DatastoreInput {
        meta,
        spec,
        status,
        region: REGION,
        observed,
        stuck_after: STUCK_AFTER,
        now: at,
    }
}

/// `apply` or `cleanup`.
type DecideWith = fn(&DatastoreInput<'_>) -> Decision;

/// `decide` (apply or cleanup), then `settle` with `outcome`: one reconcile.
fn reconcile(
    decide_with: DecideWith,
    meta: &ObjectMeta,
    spec: &FHIRDatastoreSpec,
    status: &FHIRDatastoreStatus,
    observed: &Observed,
    outcome: &Outcome,
    at: Timestamp,
) -> (Decision, Settled<FHIRDatastoreStatus>) {
    let input = input(meta, spec, status, observed, at);
    let decision = decide_with(&input);
    let settled = settle(&decision, outcome, &input);
    (decision, settled)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prior {
    Nothing,
    PinnedOnly,
    Creating,
    Ready,
    StalledOnCreate,
    StalledOnTagSync,
    WaitingForQuotaWhileReady,
    SyncingTags,
}

const PRIORS: [Prior; 8] = [
    Prior::Nothing,
    Prior::PinnedOnly,
    Prior::Creating,
    Prior::Ready,
    Prior::StalledOnCreate,
    Prior::StalledOnTagSync,
    Prior::WaitingForQuotaWhileReady,
    Prior::SyncingTags,
];

/// The status the operator wrote an hour ago on the way to `which`.
fn prior(which: Prior) -> FHIRDatastoreStatus {
    let meta = meta("patients");
    let spec = created_spec();
    let pinned = || {
        pin(
            &spec,
            &FHIRDatastoreStatus::default(),
            REGION,
            &meta,
            an_hour_ago(),
        )
        .expect("an empty status is not pinned")
    };
    let step = |status: &FHIRDatastoreStatus, observed: Observed, outcome: Outcome| {
        let (_, settled) = reconcile(
            apply,
            &meta,
            &spec,
            status,
            &observed,
            &outcome,
            an_hour_ago(),
        );
        settled.status
    };
    let drifted = || present(DatastoreStatus::Active, drifted_owned_tags());
    match which {
        Prior::Nothing => FHIRDatastoreStatus::default(),
        Prior::PinnedOnly => pinned(),
        Prior::Creating => step(
            &pinned(),
            Observed::Absent,
            Outcome::Created(summary(DatastoreStatus::Creating)),
        ),
        Prior::Ready => step(
            &prior(Prior::Creating),
            present(DatastoreStatus::Active, owned_tags()),
            Outcome::Nothing,
        ),
        Prior::StalledOnCreate => step(
            &pinned(),
            Observed::Absent,
            failed(access_denied(), "create datastore patients in us-east-1"),
        ),
        Prior::StalledOnTagSync => step(
            &prior(Prior::Ready),
            drifted(),
            failed(access_denied(), "sync tags of datastore patients"),
        ),
        Prior::WaitingForQuotaWhileReady => {
            unobserved(
                &prior(Prior::Ready),
                &HealthLakeError::WaitingForQuota {
                    retry_after: Duration::from_secs(30),
                },
                "look up datastore of patients",
                &meta,
                an_hour_ago(),
            )
            .status
        }
        Prior::SyncingTags => step(&prior(Prior::Ready), drifted(), Outcome::Nothing),
    }
}

fn is(status: &str, reason: &str) -> (String, String) {
    (status.to_owned(), reason.to_owned())
}

#[test]
fn the_priors_are_what_their_names_say() {
    // prior → (Ready, Reconciling, Stalled), datastore id known
    let rows = [
        (
            Prior::Nothing,
            [is("absent", ""), is("absent", ""), is("absent", "")],
            false,
        ),
        (
            Prior::PinnedOnly,
            phase_is(Phase::Progressing, "Creating"),
            false,
        ),
        (
            Prior::Creating,
            phase_is(Phase::Progressing, "Creating"),
            true,
        ),
        (Prior::Ready, phase_is(Phase::Ready, "Active"), true),
        (
            Prior::StalledOnCreate,
            phase_is(Phase::Stalled, "AccessDenied"),
            false,
        ),
        (
            Prior::StalledOnTagSync,
            phase_is(Phase::Stalled, "AccessDenied"),
            true,
        ),
        (
            Prior::WaitingForQuotaWhileReady,
            [
                is("True", "Active"),
                is("True", "WaitingForQuota"),
                is("False", "WaitingForQuota"),
            ],
            true,
        ),
        (
            Prior::SyncingTags,
            phase_is(Phase::Progressing, "SyncingTags"),
            true,
        ),
    ];
    for (which, phase, has_id) in rows {
        let status = prior(which);
        assert_eq!(phase_of(&status.conditions), phase, "{which:?}");
        assert_eq!(status.datastore_id.is_some(), has_id, "{which:?}: id");
        let pinned = which != Prior::Nothing;
        assert_eq!(status.region.is_some(), pinned, "{which:?}: region");
    }
}

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

fn action_name(action: &DatastoreAction) -> &'static str {
    match action {
        DatastoreAction::None => "none",
        DatastoreAction::Create(_) => "create",
        DatastoreAction::SyncTags { .. } => "sync-tags",
        DatastoreAction::Delete { .. } => "delete",
        DatastoreAction::ReleaseFinalizer => "release",
    }
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
            Some(("Creating", false)),
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
                Some(("Active", false)),
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
                Some(("Active", false)),
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

/// Ids, region, deletion policy and generation every settled status must show.
fn assert_kept(
    case: &str,
    before: &FHIRDatastoreStatus,
    after: &FHIRDatastoreStatus,
    adopted: bool,
) {
    for (field, old, new) in [
        ("datastoreId", &before.datastore_id, &after.datastore_id),
        ("datastoreArn", &before.datastore_arn, &after.datastore_arn),
        (
            "datastoreEndpoint",
            &before.datastore_endpoint,
            &after.datastore_endpoint,
        ),
    ] {
        if old.is_some() {
            assert_eq!(new, old, "{case}: {field} is never dropped");
        }
    }
    if before.region.is_some() {
        assert_eq!(
            after.region, before.region,
            "{case}: the pinned region stays"
        );
    }
    let policy = if adopted {
        DeletionPolicy::Retain
    } else {
        DeletionPolicy::Delete
    };
    assert_eq!(
        after.deletion_policy,
        Some(policy),
        "{case}: deletionPolicy"
    );
}

fn notices(settled: &Settled<FHIRDatastoreStatus>) -> Vec<(String, bool)> {
    settled
        .notices
        .iter()
        .map(|notice| (notice.reason.clone(), notice.warning))
        .collect()
}

fn expect_notices(expected: &[(&str, bool)]) -> Vec<(String, bool)> {
    expected
        .iter()
        .map(|(reason, warning)| ((*reason).to_owned(), *warning))
        .collect()
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
            let phase = phase_is(row.phase.0, reason);
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
                    Some(tags),
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
            decided: Some(("Creating", false)),
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
            effect: Effect::Progress("SyncingTags"),
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
            effect: Effect::Progress("SyncingTags"),
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
                events: vec![error.notice],
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
            let phase = expected_phase(row.effect, Step::Act, &phase_of(&before.conditions));
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
            let phase = expected_phase(row.effect, Step::Observe, &phase_of(&before.conditions));
            assert_eq!(phase_of(&status.conditions), phase, "{case}: conditions");
            assert_transitions(&before.conditions, &status.conditions, now(), &case);
            assert_eq!(settled.requeue, row.requeue, "{case}: requeue");
            let changed = phase_of(&before.conditions) != phase;
            let expected = Some(row.notice).filter(|(_, warning)| *warning || changed);
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
fn a_long_creation_warns_once_while_polling_goes_on() {
    let meta = meta("patients");
    let spec = created_spec();
    let mut slow = aws(DatastoreStatus::Creating);
    slow.created_at = Some(now() - SignedDuration::from_hours(3));
    let observed = Observed::Present {
        datastore: slow,
        tags: owned_tags(),
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
        tags: owned_tags(),
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
