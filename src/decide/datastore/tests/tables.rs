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
    Effect, assert_transitions, error_rows, expected_phase, expected_settled_phase, phase_is,
    phase_of,
};
use crate::decide::{ObjectMeta, Phase, Requeue, Step};
use crate::healthlake::{Datastore, DatastoreSummary, HealthLakeError};

mod apply;
mod cleanup;

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
        tags: Some(tags),
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
        tags: Some(owned_tags()),
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
            [
                is("True", "Active"),
                is("True", "SyncingTags"),
                is("False", "SyncingTags"),
            ],
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

fn action_name(action: &DatastoreAction) -> &'static str {
    match action {
        DatastoreAction::None => "none",
        DatastoreAction::Create(_) => "create",
        DatastoreAction::SyncTags { .. } => "sync-tags",
        DatastoreAction::Delete { .. } => "delete",
        DatastoreAction::ReleaseFinalizer => "release",
    }
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
