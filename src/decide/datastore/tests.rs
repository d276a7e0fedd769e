//! Every row of the datastore lifecycle: (spec, status, what AWS reported) → action, conditions,
//! next look.

use std::collections::BTreeMap;

use super::*;
use crate::api::{ErrorCategory, ErrorCause, FhirVersion};
use crate::decide::fixtures::{condition, meta, now};

/// Prior status × what AWS reported × what came of the action.
mod tables;

fn spec() -> FHIRDatastoreSpec {
    FHIRDatastoreSpec {
        datastore_name: None,
        datastore_type_version: FhirVersion::R4,
        sse_configuration: None,
        preload_data_config: None,
        identity_provider_configuration: None,
        tags: BTreeMap::from([("team".to_owned(), "clinical".to_owned())]),
        deletion_policy: None,
        datastore_id: None,
        region: None,
    }
}

fn datastore(status: DatastoreStatus) -> Datastore {
    Datastore {
        id: "0123456789abcdef0123456789abcdef".to_owned(),
        arn: "arn:aws:healthlake:us-east-1:123456789012:datastore/fhir/0123456789abcdef0123456789abcdef".to_owned(),
        endpoint: "https://healthlake.us-east-1.amazonaws.com/datastore/0123456789abcdef0123456789abcdef/r4/".to_owned(),
        name: Some("patients".to_owned()),
        status,
        type_version: "R4".to_owned(),
        created_at: Some(now()),
        error_cause: None,
        encryption: None,
        preload: None,
        identity_provider: None,
    }
}

fn owned_tags() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("team".to_owned(), "clinical".to_owned()),
        (OWNER_UID_TAG.to_owned(), "uid-patients".to_owned()),
        (OWNER_NAME_TAG.to_owned(), "clinical/patients".to_owned()),
    ])
}

fn present(status: DatastoreStatus) -> Observed {
    Observed::Present {
        datastore: datastore(status),
        tags: Some(owned_tags()),
    }
}

fn decide_apply(spec: &FHIRDatastoreSpec, observed: Observed) -> Decision {
    let meta = meta("patients");
    let status = FHIRDatastoreStatus::default();
    apply(&DatastoreInput {
        meta: &meta,
        spec,
        status: &status,
        region: "us-east-1",
        observed: &observed,
        stuck_after: Duration::from_secs(7200),
        now: now(),
    })
}

fn decide_cleanup(spec: &FHIRDatastoreSpec, observed: Observed) -> Decision {
    let meta = meta("patients");
    let status = FHIRDatastoreStatus::default();
    cleanup(&DatastoreInput {
        meta: &meta,
        spec,
        status: &status,
        region: "us-east-1",
        observed: &observed,
        stuck_after: Duration::from_secs(7200),
        now: now(),
    })
}

/// (Ready, Reconciling, Stalled) as (status, reason) of each.
fn phase(decision: &Decision) -> [(String, String); 3] {
    let conditions = &decision.status.conditions;
    [
        condition(conditions, "Ready"),
        condition(conditions, "Reconciling"),
        condition(conditions, "Stalled"),
    ]
}

fn is(status: &str, reason: &str) -> (String, String) {
    (status.to_owned(), reason.to_owned())
}

#[test]
fn apply_table() {
    let mut failed = datastore(DatastoreStatus::CreateFailed);
    failed.error_cause = Some(ErrorCause {
        error_category: Some(ErrorCategory::NonRetryable),
        error_message: Some("kms key is disabled".to_owned()),
    });
    let mut drifted = owned_tags();
    drifted.insert("team".to_owned(), "someone-else".to_owned());
    drifted.insert("added-in-console".to_owned(), "x".to_owned());

    struct Row {
        name: &'static str,
        observed: Observed,
        action: &'static str,
        ready: (&'static str, &'static str),
        stalled: &'static str,
        requeue: Requeue,
    }
    let rows = [
        Row {
            name: "nothing in aws: create",
            observed: Observed::Absent,
            action: "create",
            ready: ("False", "Creating"),
            stalled: "False",
            requeue: Requeue::Soon,
        },
        Row {
            name: "creating",
            observed: present(DatastoreStatus::Creating),
            action: "none",
            ready: ("False", "Creating"),
            stalled: "False",
            requeue: Requeue::LongOperation,
        },
        Row {
            name: "active and in sync",
            observed: present(DatastoreStatus::Active),
            action: "none",
            ready: ("True", "Active"),
            stalled: "False",
            requeue: Requeue::Resync,
        },
        Row {
            name: "active with drifted tags",
            observed: Observed::Present {
                datastore: datastore(DatastoreStatus::Active),
                tags: Some(drifted),
            },
            action: "sync-tags",
            ready: ("False", "SyncingTags"),
            stalled: "False",
            requeue: Requeue::Soon,
        },
        Row {
            name: "create failed",
            observed: Observed::Present {
                datastore: failed,
                tags: Some(owned_tags()),
            },
            action: "none",
            ready: ("False", "CreateFailed"),
            stalled: "True",
            requeue: Requeue::AwaitChange,
        },
        Row {
            name: "deleted outside kubernetes",
            observed: present(DatastoreStatus::Deleted),
            action: "none",
            ready: ("False", "DatastoreGone"),
            stalled: "True",
            requeue: Requeue::Resync,
        },
        Row {
            name: "being deleted outside kubernetes",
            observed: present(DatastoreStatus::Deleting),
            action: "none",
            ready: ("False", "DatastoreGone"),
            stalled: "True",
            requeue: Requeue::Resync,
        },
        Row {
            name: "not found any more",
            observed: Observed::Gone {
                datastore_id: "0123456789abcdef0123456789abcdef".to_owned(),
            },
            action: "none",
            ready: ("False", "DatastoreGone"),
            stalled: "True",
            requeue: Requeue::Resync,
        },
        Row {
            name: "status aws added later",
            observed: present(DatastoreStatus::Unknown("UPDATING".to_owned())),
            action: "none",
            ready: ("False", "UnknownStatus"),
            stalled: "False",
            requeue: Requeue::LongOperation,
        },
    ];
    for row in rows {
        let decision = decide_apply(&spec(), row.observed);
        let action = match &decision.action {
            DatastoreAction::None => "none",
            DatastoreAction::Create(_) => "create",
            DatastoreAction::SyncTags { .. } => "sync-tags",
            DatastoreAction::Delete { .. } => "delete",
            DatastoreAction::ReleaseFinalizer => "release",
        };
        assert_eq!(action, row.action, "{}: action", row.name);
        let [ready, _, stalled] = phase(&decision);
        assert_eq!(ready, is(row.ready.0, row.ready.1), "{}: Ready", row.name);
        assert_eq!(stalled.0, row.stalled, "{}: Stalled", row.name);
        assert_eq!(decision.requeue, row.requeue, "{}: requeue", row.name);
        assert_eq!(
            decision.status.observed_generation,
            Some(1),
            "{}: observedGeneration",
            row.name
        );
    }
}

#[test]
fn create_request_carries_uid_token_owner_tag_and_every_setting() {
    let mut spec = spec();
    spec.datastore_name = Some("patients-prod".to_owned());
    spec.sse_configuration = Some(crate::api::SseConfiguration {
        kms_encryption_config: crate::api::KmsEncryptionConfig {
            cmk_type: crate::api::CmkType::CustomerManagedKmsKey,
            kms_key_id: Some("alias/fhir".to_owned()),
        },
    });
    spec.preload_data_config = Some(crate::api::PreloadDataConfig {
        preload_data_type: crate::api::PreloadDataType::Synthea,
    });
    let mut metadata = serde_json::Map::new();
    metadata.insert(
        "issuer".to_owned(),
        serde_json::json!("https://idp.example.com"),
    );
    spec.identity_provider_configuration = Some(crate::api::IdentityProviderConfiguration {
        authorization_strategy: crate::api::AuthorizationStrategy::SmartOnFhir,
        fine_grained_authorization_enabled: Some(true),
        metadata: Some(metadata),
        idp_lambda_arn: Some(
            "arn:aws:lambda:us-east-1:123456789012:function:decode-token".to_owned(),
        ),
    });

    let decision = decide_apply(&spec, Observed::Absent);
    let DatastoreAction::Create(request) = decision.action else {
        panic!("expected a create")
    };
    assert_eq!(request.client_token, "uid-patients");
    assert_eq!(request.name, "patients-prod");
    assert_eq!(
        request.tags.get(OWNER_UID_TAG).map(String::as_str),
        Some("uid-patients")
    );
    assert_eq!(
        request.tags.get("team").map(String::as_str),
        Some("clinical")
    );
    assert_eq!(
        request.encryption.and_then(|e| e.kms_key_id).as_deref(),
        Some("alias/fhir")
    );
    assert_eq!(request.preload, Some(crate::api::PreloadDataType::Synthea));
    let idp = request.identity_provider.expect("identity provider");
    assert_eq!(
        idp.metadata.as_deref(),
        Some(r#"{"issuer":"https://idp.example.com"}"#)
    );
    assert_eq!(idp.fine_grained_authorization_enabled, Some(true));
}

#[test]
fn datastore_name_defaults_to_the_object_name() {
    let DatastoreAction::Create(request) = decide_apply(&spec(), Observed::Absent).action else {
        panic!("expected a create")
    };
    assert_eq!(request.name, "patients");
}

#[test]
fn lookup_prefers_adopted_id_then_status_id_then_owner_tag() {
    let meta = meta("patients");
    let mut adopted = spec();
    adopted.datastore_id = Some("adopted".to_owned());
    let mut status = FHIRDatastoreStatus {
        datastore_id: Some("created".to_owned()),
        ..Default::default()
    };
    assert_eq!(
        lookup(&adopted, &status, &meta),
        Lookup::Describe {
            datastore_id: "adopted".to_owned()
        }
    );
    assert_eq!(
        lookup(&spec(), &status, &meta),
        Lookup::Describe {
            datastore_id: "created".to_owned()
        }
    );
    status.datastore_id = None;
    assert_eq!(
        lookup(&spec(), &status, &meta),
        Lookup::FindOwned {
            name: "patients".to_owned()
        }
    );
}

fn found_id(observed: Observed) -> Option<String> {
    match observed {
        Observed::Present { datastore, .. } => Some(datastore.id),
        _ => None,
    }
}

#[test]
fn find_owned_picks_the_uid_tagged_datastore_and_prefers_live_ones() {
    let meta = meta("patients");
    let mut deleted = datastore(DatastoreStatus::Deleted);
    deleted.id = "deleted".to_owned();
    let mut live = datastore(DatastoreStatus::Creating);
    live.id = "live".to_owned();
    let mut stranger = datastore(DatastoreStatus::Active);
    stranger.id = "stranger".to_owned();
    let stranger_tags = BTreeMap::from([(OWNER_UID_TAG.to_owned(), "uid-other".to_owned())]);

    let found = find_owned(
        vec![
            (deleted.clone(), owned_tags()),
            (stranger.clone(), stranger_tags.clone()),
            (live, owned_tags()),
        ],
        &meta,
    );
    assert_eq!(found_id(found), Some("live".to_owned()));
    assert_eq!(
        find_owned(vec![(stranger, stranger_tags)], &meta),
        Observed::Absent,
        "a same-named datastore of another object is not ours, and not left behind by us"
    );
    let only_deleted = find_owned(vec![(deleted, owned_tags())], &meta);
    assert_eq!(found_id(only_deleted), Some("deleted".to_owned()));
}

#[test]
fn a_datastore_left_behind_by_an_earlier_object_of_the_same_name_is_found() {
    let meta = meta("patients");
    let mut retained = datastore(DatastoreStatus::Active);
    retained.id = "retained".to_owned();
    let earlier = BTreeMap::from([
        (OWNER_UID_TAG.to_owned(), "uid-earlier".to_owned()),
        (OWNER_NAME_TAG.to_owned(), "clinical/patients".to_owned()),
    ]);
    assert_eq!(
        find_owned(vec![(retained.clone(), earlier.clone())], &meta),
        Observed::LeftBehind {
            datastore_id: "retained".to_owned()
        }
    );
    let mut gone = retained.clone();
    gone.status = DatastoreStatus::Deleted;
    assert_eq!(
        find_owned(vec![(gone, earlier.clone())], &meta),
        Observed::Absent,
        "a deleted one is no reason to refuse"
    );
    let decision = decide_apply(
        &spec(),
        Observed::LeftBehind {
            datastore_id: "retained".to_owned(),
        },
    );
    assert_eq!(decision.action, DatastoreAction::None);
    assert_eq!(
        condition(&decision.status.conditions, "Stalled"),
        ("True".to_owned(), "RetainedDatastoreExists".to_owned())
    );
    let stalled = decision
        .status
        .conditions
        .iter()
        .find(|condition| condition.type_ == "Stalled")
        .expect("stalled");
    assert!(
        stalled.message.contains(
            "delete this FHIRDatastore and create it again with spec.datastoreId retained"
        ),
        "{}",
        stalled.message
    );
}

#[test]
fn tag_sync_adds_changes_removes_but_never_touches_reserved_or_aws_tags() {
    let desired = BTreeMap::from([
        ("team".to_owned(), "clinical".to_owned()),
        ("cost-center".to_owned(), "42".to_owned()),
        (OWNER_UID_TAG.to_owned(), "uid".to_owned()),
    ]);
    let observed = BTreeMap::from([
        ("team".to_owned(), "other".to_owned()),
        ("stale".to_owned(), "x".to_owned()),
        ("aws:cloudformation:stack-name".to_owned(), "ehr".to_owned()),
        ("AWS:odd-case".to_owned(), "x".to_owned()),
        (OWNER_UID_TAG.to_owned(), "uid".to_owned()),
        (
            "healthlake.fhir-operator.io/other".to_owned(),
            "kept".to_owned(),
        ),
    ]);
    let (add, remove) = tag_changes(&desired, &observed, None);
    assert_eq!(
        add,
        BTreeMap::from([
            ("cost-center".to_owned(), "42".to_owned()),
            ("team".to_owned(), "clinical".to_owned())
        ])
    );
    assert_eq!(remove, vec!["stale".to_owned()]);
}

#[test]
fn on_an_adopted_datastore_only_tags_the_operator_set_are_removed() {
    let desired = BTreeMap::from([("team".to_owned(), "clinical".to_owned())]);
    let observed = BTreeMap::from([
        ("team".to_owned(), "clinical".to_owned()),
        ("cost-center".to_owned(), "finance".to_owned()),
        ("owner".to_owned(), "terraform".to_owned()),
        ("aws:cloudformation:stack-name".to_owned(), "ehr".to_owned()),
    ]);
    // "owner" was set by the operator from an earlier spec; "cost-center" never was.
    let managed = vec!["team".to_owned(), "owner".to_owned()];
    let (add, remove) = tag_changes(&desired, &observed, Some(&managed));
    assert!(add.is_empty());
    assert_eq!(remove, vec!["owner".to_owned()]);
    let (_, remove) = tag_changes(&desired, &observed, Some(&[]));
    assert!(
        remove.is_empty(),
        "nothing set by the operator, nothing removed"
    );
}

#[test]
fn the_deletion_policy_in_force_retains_adopted_datastores() {
    let mut adopted = spec();
    adopted.datastore_id = Some("0123456789abcdef0123456789abcdef".to_owned());
    let rows = [
        (None, false, DeletionPolicy::Delete),
        (None, true, DeletionPolicy::Retain),
        (Some(DeletionPolicy::Delete), true, DeletionPolicy::Delete),
        (Some(DeletionPolicy::Retain), false, DeletionPolicy::Retain),
    ];
    for (policy, is_adopted, expected) in rows {
        let mut spec = if is_adopted { adopted.clone() } else { spec() };
        spec.deletion_policy = policy;
        assert_eq!(
            deletion_policy(&spec),
            expected,
            "{policy:?}, adopted {is_adopted}"
        );
    }
}

#[test]
fn adopted_datastores_get_no_owner_tag() {
    let mut spec = spec();
    spec.datastore_id = Some("0123456789abcdef0123456789abcdef".to_owned());
    let tags = BTreeMap::from([("team".to_owned(), "clinical".to_owned())]);
    let decision = decide_apply(
        &spec,
        Observed::Present {
            datastore: datastore(DatastoreStatus::Active),
            tags: Some(tags),
        },
    );
    assert_eq!(decision.action, DatastoreAction::None);
    assert_eq!(phase(&decision)[0], is("True", "Active"));
}

#[test]
fn adopting_an_unknown_id_says_so() {
    let mut spec = spec();
    spec.datastore_id = Some("0123456789abcdef0123456789abcdef".to_owned());
    let decision = decide_apply(
        &spec,
        Observed::Gone {
            datastore_id: "0123456789abcdef0123456789abcdef".to_owned(),
        },
    );
    assert_eq!(phase(&decision)[2], is("True", "DatastoreNotFound"));
    assert!(
        decision.status.conditions[0]
            .message
            .contains("spec.datastoreId")
    );
}

#[test]
fn create_failed_copies_the_error_cause() {
    let mut failed = datastore(DatastoreStatus::CreateFailed);
    failed.error_cause = Some(ErrorCause {
        error_category: Some(ErrorCategory::NonRetryable),
        error_message: Some("kms key is disabled".to_owned()),
    });
    let decision = decide_apply(
        &spec(),
        Observed::Present {
            datastore: failed,
            tags: Some(owned_tags()),
        },
    );
    let cause = decision
        .status
        .error_cause
        .clone()
        .expect("error cause copied");
    assert_eq!(cause.error_category, Some(ErrorCategory::NonRetryable));
    let stalled = decision
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .expect("stalled");
    assert!(
        stalled
            .message
            .contains("NON_RETRYABLE_ERROR: kms key is disabled"),
        "{}",
        stalled.message
    );
    assert!(decision.notice.is_some_and(|notice| notice.warning));
}

#[test]
fn cleanup_table() {
    let mut retain = spec();
    retain.deletion_policy = Some(DeletionPolicy::Retain);
    let rows: [(&str, FHIRDatastoreSpec, Observed, &str, Requeue); 8] = [
        (
            "retain leaves aws alone",
            retain.clone(),
            present(DatastoreStatus::Active),
            "release",
            Requeue::AwaitChange,
        ),
        (
            "retain even while creating",
            retain,
            present(DatastoreStatus::Creating),
            "release",
            Requeue::AwaitChange,
        ),
        (
            "nothing was created",
            spec(),
            Observed::Absent,
            "release",
            Requeue::AwaitChange,
        ),
        (
            "wait out creating",
            spec(),
            present(DatastoreStatus::Creating),
            "none",
            Requeue::LongOperation,
        ),
        (
            "delete an active datastore",
            spec(),
            present(DatastoreStatus::Active),
            "delete",
            Requeue::Soon,
        ),
        (
            "delete a failed datastore",
            spec(),
            present(DatastoreStatus::CreateFailed),
            "delete",
            Requeue::Soon,
        ),
        (
            "poll while deleting",
            spec(),
            present(DatastoreStatus::Deleting),
            "none",
            Requeue::LongOperation,
        ),
        (
            "deleted: release",
            spec(),
            present(DatastoreStatus::Deleted),
            "release",
            Requeue::AwaitChange,
        ),
    ];
    for (name, spec, observed, expected, requeue) in rows {
        let decision = decide_cleanup(&spec, observed);
        let action = match decision.action {
            DatastoreAction::None => "none",
            DatastoreAction::Delete { .. } => "delete",
            DatastoreAction::ReleaseFinalizer => "release",
            _ => "other",
        };
        assert_eq!(action, expected, "{name}");
        assert_eq!(decision.requeue, requeue, "{name}");
    }
    let gone = decide_cleanup(
        &spec(),
        Observed::Gone {
            datastore_id: "x".to_owned(),
        },
    );
    assert_eq!(
        gone.action,
        DatastoreAction::ReleaseFinalizer,
        "not found during cleanup means done"
    );
}

#[test]
fn after_create_saves_the_id_at_once() {
    let summary = DatastoreSummary {
        id: "0123456789abcdef0123456789abcdef".to_owned(),
        arn: "arn".to_owned(),
        endpoint: "endpoint".to_owned(),
        status: DatastoreStatus::Creating,
    };
    let meta = meta("patients");
    let observed = Observed::Absent;
    let input = DatastoreInput {
        meta: &meta,
        spec: &spec(),
        status: &FHIRDatastoreStatus::default(),
        region: "us-east-1",
        observed: &observed,
        stuck_after: Duration::from_secs(7200),
        now: now(),
    };
    let status = settle(&apply(&input), &Outcome::Created(summary), &input).status;
    assert_eq!(
        status.datastore_id.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(status.datastore_status, Some(DatastoreStatus::Creating));
}

#[test]
fn unchanged_phase_sends_no_event_and_keeps_transition_times() {
    let meta = meta("patients");
    // A phase that sends an event when entered (a Warning): CREATE_FAILED.
    let observed = present(DatastoreStatus::CreateFailed);
    let first = apply(&DatastoreInput {
        meta: &meta,
        spec: &spec(),
        status: &FHIRDatastoreStatus::default(),
        region: "us-east-1",
        observed: &observed,
        stuck_after: Duration::from_secs(7200),
        now: now(),
    });
    assert!(first.notice.is_some());
    let later = now() + jiff::SignedDuration::from_secs(600);
    let second = apply(&DatastoreInput {
        meta: &meta,
        spec: &spec(),
        status: &first.status,
        region: "us-east-1",
        observed: &observed,
        stuck_after: Duration::from_secs(7200),
        now: later,
    });
    assert_eq!(second.notice, None);
    assert_eq!(
        second.status, first.status,
        "nothing changed, so no status patch"
    );
}

#[test]
fn a_ready_datastore_stays_ready_while_its_tags_sync() {
    let meta = meta("patients");
    let in_sync = present(DatastoreStatus::Active);
    let ready = apply(&DatastoreInput {
        meta: &meta,
        spec: &spec(),
        status: &FHIRDatastoreStatus::default(),
        region: "us-east-1",
        observed: &in_sync,
        stuck_after: Duration::from_secs(7200),
        now: now(),
    });
    let mut changed = spec();
    changed
        .tags
        .insert("project".to_owned(), "migration".to_owned());
    let syncing = apply(&DatastoreInput {
        meta: &meta,
        spec: &changed,
        status: &ready.status,
        region: "us-east-1",
        observed: &in_sync,
        stuck_after: Duration::from_secs(7200),
        now: now() + jiff::SignedDuration::from_secs(60),
    });
    assert!(matches!(syncing.action, DatastoreAction::SyncTags { .. }));
    assert_eq!(
        phase(&syncing),
        [
            is("True", "Active"),
            is("True", "SyncingTags"),
            is("False", "SyncingTags"),
        ]
    );
}

/// The status a reconcile writes for an ACTIVE datastore in sync.
fn in_sync_status() -> FHIRDatastoreStatus {
    let meta = meta("patients");
    let observed = present(DatastoreStatus::Active);
    let decision = apply(&DatastoreInput {
        meta: &meta,
        spec: &spec(),
        status: &FHIRDatastoreStatus::default(),
        region: "us-east-1",
        observed: &observed,
        stuck_after: Duration::from_secs(7200),
        now: now(),
    });
    assert_eq!(decision.action, DatastoreAction::None);
    decision.status
}

#[test]
fn tags_are_read_only_when_the_status_cannot_vouch_for_them() {
    let meta = meta("patients");
    let synced = in_sync_status();
    let active = DatastoreStatus::Active;
    // In sync at this generation: polls need no ListTagsForResource, until the drift check.
    assert!(!tags_needed(&active, &synced, &meta, false));
    assert!(tags_needed(&active, &synced, &meta, true));
    // Only an ACTIVE datastore's tags are compared with the spec.
    for other in [
        DatastoreStatus::Creating,
        DatastoreStatus::Deleting,
        DatastoreStatus::CreateFailed,
    ] {
        assert!(!tags_needed(
            &other,
            &FHIRDatastoreStatus::default(),
            &meta,
            true
        ));
    }
    // A new generation (the spec's tags may have changed), no reading yet, a status that is not
    // Ready or still Reconciling (tags being synced): read them.
    let newer = ObjectMeta {
        generation: Some(2),
        ..meta.clone()
    };
    assert!(tags_needed(&active, &synced, &newer, false));
    let unread = FHIRDatastoreStatus {
        tags: None,
        ..synced.clone()
    };
    assert!(tags_needed(&active, &unread, &meta, false));
    assert!(tags_needed(
        &active,
        &FHIRDatastoreStatus::default(),
        &meta,
        false
    ));
    let mut syncing = synced.clone();
    set_waiting(
        &mut syncing.conditions,
        "SyncingTags",
        "syncing",
        Some(1),
        now(),
    );
    assert!(tags_needed(&active, &syncing, &meta, false));
}

#[test]
fn an_unread_poll_keeps_the_last_reading_and_stays_in_sync() {
    let meta = meta("patients");
    let synced = in_sync_status();
    let observed = Observed::Present {
        datastore: datastore(DatastoreStatus::Active),
        tags: None,
    };
    let decision = apply(&DatastoreInput {
        meta: &meta,
        spec: &spec(),
        status: &synced,
        region: "us-east-1",
        observed: &observed,
        stuck_after: Duration::from_secs(7200),
        now: now(),
    });
    assert_eq!(decision.action, DatastoreAction::None);
    assert_eq!(decision.status.tags, Some(owned_tags()));
    assert_eq!(decision.status, synced);
}

#[test]
fn the_annotated_region_fills_an_unpinned_status_only() {
    let meta = meta("patients");
    let annotated = region_annotation("eu-west-1", &meta);
    assert_eq!(annotated, "eu-west-1/uid-patients");
    let unpinned = FHIRDatastoreStatus::default();
    let filled = with_annotated_region(&spec(), unpinned.clone(), Some(&annotated), &meta);
    assert_eq!(filled.region.as_deref(), Some("eu-west-1"));
    assert_eq!(filled.deletion_policy, Some(DeletionPolicy::Delete));
    // Nothing annotated (an object from before the annotation): the pin write does it.
    assert_eq!(
        with_annotated_region(&spec(), unpinned.clone(), None, &meta),
        unpinned
    );
    assert!(pin(&spec(), &unpinned, "us-east-1", &meta, now()).is_some());
    assert!(pin(&spec(), &filled, "us-east-1", &meta, now()).is_none());
    // A value copied from another object's manifest, or without the uid, pins nothing.
    for foreign in [
        "eu-west-1/uid-someone-else",
        "eu-west-1",
        "/uid-patients",
        "",
    ] {
        assert_eq!(
            with_annotated_region(&spec(), unpinned.clone(), Some(foreign), &meta),
            unpinned,
            "{foreign:?}"
        );
    }
    // A pinned status is never moved, whatever the annotation says.
    let pinned = FHIRDatastoreStatus {
        region: Some("us-east-1".to_owned()),
        ..Default::default()
    };
    assert_eq!(
        with_annotated_region(&spec(), pinned.clone(), Some(&annotated), &meta),
        pinned
    );
    // A `spec.region` added after the annotation was written (the status had no region yet,
    // so admission allowed it) does not move the datastore: the annotation was there first.
    let in_spec = FHIRDatastoreSpec {
        region: Some("ap-south-1".to_owned()),
        ..spec()
    };
    let filled = with_annotated_region(&in_spec, unpinned, Some(&annotated), &meta);
    assert_eq!(filled.region.as_deref(), Some("eu-west-1"));
}
