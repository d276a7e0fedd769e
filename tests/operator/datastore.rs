//! FHIRDatastore end to end: create, follow, sync tags, fail, delete, adopt.

use std::collections::BTreeMap;
use std::time::Duration;

use healthlake_operator::api::{FHIRDatastore, OWNER_NAME_TAG, OWNER_UID_TAG};
use healthlake_operator::emulator::{ErrorCategory, Fault, Operation};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};

use super::harness::{Rig, condition, eventually, is_true, wait_for, wait_gone};

/// A FHIRDatastore from a YAML spec, as a user would write it.
pub fn datastore(name: &str, yaml_spec: &str) -> FHIRDatastore {
    let manifest = format!(
        "apiVersion: healthlake.fhir-operator.io/v1alpha1\nkind: FHIRDatastore\nmetadata:\n  name: {name}\nspec:\n{yaml_spec}"
    );
    serde_saphyr::from_str(&manifest).expect("test manifest parses")
}

/// The emulator's fast profile: creating and deleting take five seconds of its clock.
pub const CREATION: Duration = Duration::from_secs(5);
const DELETION: Duration = Duration::from_secs(5);

pub fn ready(object: &FHIRDatastore) -> bool {
    object
        .status
        .as_ref()
        .is_some_and(|status| is_true(&status.conditions, "Ready"))
}

/// True once the datastore's id is in status.
pub fn has_id(object: &FHIRDatastore) -> bool {
    object
        .status
        .as_ref()
        .is_some_and(|status| status.datastore_id.is_some())
}

fn stalled_with(reason: &str) -> impl Fn(&FHIRDatastore) -> bool + '_ {
    move |object| {
        object.status.as_ref().is_some_and(|status| {
            condition(&status.conditions, "Stalled") == ("True".to_owned(), reason.to_owned())
        })
    }
}

fn aws_status(rig: &Rig, id: &str) -> Option<String> {
    rig.emulator
        .state()
        .datastores
        .get(id)
        .map(|record| record.status.aws_name().to_owned())
}

/// Creates `name` and waits until it is Ready.
pub async fn create_ready(rig: &Rig, name: &str, yaml_spec: &str) -> FHIRDatastore {
    let api = rig.api::<FHIRDatastore>();
    api.create(&PostParams::default(), &datastore(name, yaml_spec))
        .await
        .expect("admitted");
    wait_for(&api, name, "created", has_id).await;
    rig.advance(CREATION);
    wait_for(&api, name, "Ready", ready).await
}

fn id_of(object: &FHIRDatastore) -> String {
    object
        .status
        .as_ref()
        .and_then(|status| status.datastore_id.clone())
        .expect("datastore id in status")
}

fn aws_client(rig: &Rig) -> aws_sdk_healthlake::Client {
    aws_sdk_healthlake::Client::from_conf(rig.emulator.sdk_config_builder().build())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datastore_is_created_once_and_becomes_ready() {
    let rig = Rig::start().await;
    let api = rig.api::<FHIRDatastore>();
    api.create(
        &PostParams::default(),
        &datastore("patients", "  tags:\n    team: clinical\n"),
    )
    .await
    .expect("admitted");

    let creating = wait_for(&api, "patients", "creating with an id in status", has_id).await;
    let status = creating.status.expect("status");
    assert_eq!(
        status.datastore_status.map(|s| s.to_string()).as_deref(),
        Some("CREATING")
    );
    assert!(is_true(&status.conditions, "Reconciling"));
    assert_eq!(
        creating.metadata.finalizers.as_deref(),
        Some(&["healthlake.fhir-operator.io/datastore-cleanup".to_owned()][..])
    );

    rig.advance(CREATION);
    let ready = wait_for(&api, "patients", "Ready", ready).await;
    let status = ready.status.expect("status");
    let id = status.datastore_id.clone().expect("id");
    assert_eq!(
        status.datastore_status.map(|s| s.to_string()).as_deref(),
        Some("ACTIVE")
    );
    assert_eq!(status.datastore_name.as_deref(), Some("patients"));
    assert_eq!(status.region.as_deref(), Some("us-east-1"));
    assert!(
        status
            .datastore_arn
            .as_deref()
            .is_some_and(|arn| arn.ends_with(&format!("datastore/fhir/{id}")))
    );
    assert!(
        status
            .datastore_endpoint
            .as_deref()
            .is_some_and(|endpoint| endpoint.contains(&id))
    );
    assert!(status.created_at.is_some());
    assert_eq!(status.observed_generation, ready.metadata.generation);
    assert_eq!(condition(&status.conditions, "Stalled").0, "False");
    assert_eq!(condition(&status.conditions, "Reconciling").0, "False");
    let uid = ready.metadata.uid.clone().expect("uid");
    let expected_tags = BTreeMap::from([
        ("team".to_owned(), "clinical".to_owned()),
        (OWNER_UID_TAG.to_owned(), uid),
        (OWNER_NAME_TAG.to_owned(), "clinical/patients".to_owned()),
    ]);
    assert_eq!(status.tags.as_ref(), Some(&expected_tags));
    assert_eq!(rig.calls(Operation::CreateFhirDatastore), 1);
    let state = rig.emulator.state();
    assert_eq!(state.datastores.len(), 1);
    assert_eq!(state.datastores[&id].tags, expected_tags);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_preload_and_smart_settings_reach_aws_exactly_as_specified() {
    let rig = Rig::start().await;
    let spec = r#"  datastoreName: patients-prod
  sseConfiguration:
    kmsEncryptionConfig:
      cmkType: CUSTOMER_MANAGED_KMS_KEY
      kmsKeyId: alias/fhir-datastore
  preloadDataConfig:
    preloadDataType: SYNTHEA
  identityProviderConfiguration:
    authorizationStrategy: SMART_ON_FHIR
    fineGrainedAuthorizationEnabled: true
    idpLambdaArn: arn:aws:lambda:us-east-1:123456789012:function:smart-token-decoder
    metadata:
      issuer: https://idp.example.com
      authorization_endpoint: https://idp.example.com/authorize
      token_endpoint: https://idp.example.com/token
      grant_types_supported: [authorization_code, client_credentials]
      capabilities: [launch-standalone, client-confidential-symmetric]
      code_challenge_methods_supported: [S256]
"#;
    let object = create_ready(&rig, "smart", spec).await;
    let id = id_of(&object);
    let record = rig.emulator.state().datastores[&id].clone();
    assert_eq!(record.name.as_deref(), Some("patients-prod"));
    assert_eq!(
        record.sse_configuration["KmsEncryptionConfig"]["CmkType"],
        "CUSTOMER_MANAGED_KMS_KEY"
    );
    assert_eq!(
        record.sse_configuration["KmsEncryptionConfig"]["KmsKeyId"],
        "alias/fhir-datastore"
    );
    assert_eq!(
        record
            .preload_data_config
            .as_ref()
            .map(|preload| preload["PreloadDataType"].clone()),
        Some("SYNTHEA".into())
    );
    let idp = &record.identity_provider_configuration;
    assert_eq!(idp["AuthorizationStrategy"], "SMART_ON_FHIR");
    assert_eq!(idp["FineGrainedAuthorizationEnabled"], true);
    assert_eq!(
        idp["IdpLambdaArn"],
        "arn:aws:lambda:us-east-1:123456789012:function:smart-token-decoder"
    );
    let sent: serde_json::Value =
        serde_json::from_str(idp["Metadata"].as_str().expect("metadata is a JSON string"))
            .expect("metadata is JSON");
    let declared = serde_json::to_value(
        &object
            .spec
            .identity_provider_configuration
            .as_ref()
            .expect("idp")
            .metadata,
    )
    .expect("json");
    assert_eq!(sent, declared, "the SMART document reaches AWS unchanged");
    let reported = object
        .status
        .and_then(|status| status.identity_provider)
        .expect("identity provider in status");
    assert_eq!(
        reported.authorization_strategy.as_deref(),
        Some("SMART_ON_FHIR")
    );
    assert_eq!(reported.fine_grained_authorization_enabled, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_follow_the_spec_and_changes_made_in_aws_are_undone() {
    let rig = Rig::start().await;
    let api = rig.api::<FHIRDatastore>();
    let object = create_ready(
        &rig,
        "tagged",
        "  tags:\n    team: clinical\n    env: prod\n",
    )
    .await;
    let id = id_of(&object);
    let arn = object
        .status
        .as_ref()
        .and_then(|status| status.datastore_arn.clone())
        .expect("arn");
    let owner = (
        OWNER_UID_TAG.to_owned(),
        object.metadata.uid.clone().expect("uid"),
    );
    let owner_name = (OWNER_NAME_TAG.to_owned(), "clinical/tagged".to_owned());

    let patch = serde_json::json!({"spec": {"tags": {"team": "oncology", "cost-center": "42", "env": null}}});
    api.patch("tagged", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("tags patched");
    let expected = BTreeMap::from([
        ("team".to_owned(), "oncology".to_owned()),
        ("cost-center".to_owned(), "42".to_owned()),
        owner.clone(),
        owner_name.clone(),
    ]);
    let synced = wait_for(&api, "tagged", "tagged as the spec says", |object| {
        ready(object)
            && object
                .status
                .as_ref()
                .and_then(|status| status.tags.as_ref())
                == Some(&expected)
    })
    .await;
    assert_eq!(rig.emulator.state().datastores[&id].tags, expected);
    assert_eq!(
        synced.status.and_then(|status| status.observed_generation),
        synced.metadata.generation
    );

    // Someone changes the tags in the AWS console.
    let aws = aws_client(&rig);
    let rogue = aws_sdk_healthlake::types::Tag::builder()
        .key("rogue")
        .value("x")
        .build()
        .expect("tag");
    let changed = aws_sdk_healthlake::types::Tag::builder()
        .key("team")
        .value("hijacked")
        .build()
        .expect("tag");
    aws.tag_resource()
        .resource_arn(&arn)
        .tags(rogue)
        .tags(changed)
        .send()
        .await
        .expect("tagged behind the operator's back");
    aws.untag_resource()
        .resource_arn(&arn)
        .tag_keys("cost-center")
        .send()
        .await
        .expect("untagged behind the operator's back");
    // Polls of a datastore in sync describe it without reading its tags...
    let tag_reads = rig.calls(Operation::ListTagsForResource);
    let describes = rig.calls(Operation::DescribeFhirDatastore);
    eventually("the datastore is polled three more times", || async {
        rig.calls(Operation::DescribeFhirDatastore) >= describes + 3
    })
    .await;
    assert_eq!(rig.calls(Operation::ListTagsForResource), tag_reads);
    assert_eq!(
        rig.emulator.state().datastores[&id].tags["team"],
        "hijacked"
    );
    // ...until the resync interval (300 ms here) has passed on the operator's clock: the drift
    // check reads them and puts the declared ones back.
    rig.advance(Duration::from_secs(1));
    eventually("the operator restores the declared tags", || async {
        rig.emulator.state().datastores[&id].tags == expected
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_creation_stalls_with_the_error_cause() {
    let rig = Rig::start().await;
    rig.emulator.inject(Fault::DatastoreCreationFailure {
        datastore_name: Some("broken".to_owned()),
        error_category: ErrorCategory::NonRetryable,
        error_message: "the KMS key is disabled".to_owned(),
    });
    let api = rig.api::<FHIRDatastore>();
    api.create(
        &PostParams::default(),
        &datastore("broken", "  deletionPolicy: Delete\n"),
    )
    .await
    .expect("admitted");
    wait_for(&api, "broken", "created", has_id).await;
    rig.advance(CREATION);
    let stalled = wait_for(&api, "broken", "Stalled", stalled_with("CreateFailed")).await;
    let status = stalled.status.expect("status");
    let cause = status.error_cause.expect("error cause copied");
    assert_eq!(
        cause
            .error_category
            .map(|category| category.to_string())
            .as_deref(),
        Some("NON_RETRYABLE_ERROR")
    );
    assert_eq!(
        cause.error_message.as_deref(),
        Some("the KMS key is disabled")
    );
    assert_eq!(condition(&status.conditions, "Ready").0, "False");
    assert_eq!(
        rig.calls(Operation::CreateFhirDatastore),
        1,
        "never re-created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_waits_for_aws_to_confirm_before_the_finalizer_goes() {
    let rig = Rig::start().await;
    let api = rig.api::<FHIRDatastore>();
    let object = create_ready(&rig, "doomed", "  deletionPolicy: Delete\n").await;
    let id = id_of(&object);
    api.delete("doomed", &DeleteParams::default())
        .await
        .expect("delete accepted");

    let deleting = wait_for(&api, "doomed", "deleting in AWS", |object| {
        object
            .status
            .as_ref()
            .and_then(|status| status.datastore_status.as_ref())
            .map(|status| status.to_string())
            .as_deref()
            == Some("DELETING")
    })
    .await;
    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert!(
        !deleting.metadata.finalizers.unwrap_or_default().is_empty(),
        "finalizer held while AWS deletes"
    );
    assert_eq!(aws_status(&rig, &id).as_deref(), Some("DELETING"));

    rig.advance(DELETION);
    wait_gone(&api, "doomed").await;
    assert_eq!(aws_status(&rig, &id).as_deref(), Some("DELETED"));
    assert_eq!(rig.calls(Operation::DeleteFhirDatastore), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_leaves_the_datastore_in_aws() {
    let rig = Rig::start().await;
    let api = rig.api::<FHIRDatastore>();
    let object = create_ready(&rig, "kept", "  deletionPolicy: Retain\n").await;
    api.delete("kept", &DeleteParams::default())
        .await
        .expect("delete accepted");
    wait_gone(&api, "kept").await;
    assert_eq!(aws_status(&rig, &id_of(&object)).as_deref(), Some("ACTIVE"));
    assert_eq!(rig.calls(Operation::DeleteFhirDatastore), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_while_creating_waits_out_the_creation() {
    let rig = Rig::start().await;
    let api = rig.api::<FHIRDatastore>();
    api.create(
        &PostParams::default(),
        &datastore("hasty", "  deletionPolicy: Delete\n"),
    )
    .await
    .expect("admitted");
    let created = wait_for(&api, "hasty", "created", has_id).await;
    let id = id_of(&created);
    api.delete("hasty", &DeleteParams::default())
        .await
        .expect("delete accepted");
    wait_for(&api, "hasty", "waiting for the creation", |object| {
        object.status.as_ref().is_some_and(|status| {
            condition(&status.conditions, "Reconciling").1 == "WaitingForCreation"
        })
    })
    .await;
    assert_eq!(
        rig.calls(Operation::DeleteFhirDatastore),
        0,
        "no delete while CREATING"
    );

    rig.advance(CREATION);
    eventually("AWS deletes the datastore", || async {
        aws_status(&rig, &id).as_deref() == Some("DELETING")
    })
    .await;
    rig.advance(DELETION);
    wait_gone(&api, "hasty").await;
    assert_eq!(aws_status(&rig, &id).as_deref(), Some("DELETED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datastore_deleted_outside_kubernetes_is_reported_not_recreated() {
    let rig = Rig::start().await;
    let api = rig.api::<FHIRDatastore>();
    let object = create_ready(&rig, "orphaned", "  deletionPolicy: Delete\n").await;
    aws_client(&rig)
        .delete_fhir_datastore()
        .datastore_id(id_of(&object))
        .send()
        .await
        .expect("deleted in the console");
    rig.advance(DELETION);
    let gone = wait_for(
        &api,
        "orphaned",
        "Stalled as gone",
        stalled_with("DatastoreGone"),
    )
    .await;
    let message = gone
        .status
        .as_ref()
        .and_then(|status| status.conditions.iter().find(|c| c.type_ == "Stalled"))
        .map(|c| c.message.clone());
    assert!(message.is_some_and(|message| message.contains("deleted outside Kubernetes")));
    assert_eq!(
        rig.calls(Operation::CreateFhirDatastore),
        1,
        "never silently re-created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_datastore_is_adopted_by_id() {
    let rig = Rig::start().await;
    let api = rig.api::<FHIRDatastore>();
    let legacy_tag = aws_sdk_healthlake::types::Tag::builder()
        .key("team")
        .value("legacy")
        .build()
        .expect("tag");
    let created = aws_client(&rig)
        .create_fhir_datastore()
        .datastore_name("legacy")
        .datastore_type_version(aws_sdk_healthlake::types::FhirVersion::R4)
        .tags(legacy_tag)
        .send()
        .await
        .expect("created outside the operator");
    rig.advance(CREATION);
    let spec = format!(
        "  datastoreId: {}\n  deletionPolicy: Retain\n  tags:\n    team: clinical\n",
        created.datastore_id()
    );
    api.create(&PostParams::default(), &datastore("adopted", &spec))
        .await
        .expect("admitted");
    let adopted = wait_for(&api, "adopted", "Ready", ready).await;
    assert_eq!(id_of(&adopted), created.datastore_id());
    let expected = BTreeMap::from([("team".to_owned(), "clinical".to_owned())]);
    assert_eq!(
        adopted.status.and_then(|status| status.tags),
        Some(expected.clone()),
        "no owner tag on adopted datastores"
    );
    assert_eq!(
        rig.emulator.state().datastores[created.datastore_id()].tags,
        expected
    );
    assert_eq!(
        rig.calls(Operation::CreateFhirDatastore),
        1,
        "only the datastore created outside"
    );

    api.delete("adopted", &DeleteParams::default())
        .await
        .expect("delete accepted");
    wait_gone(&api, "adopted").await;
    assert_eq!(
        aws_status(&rig, created.datastore_id()).as_deref(),
        Some("ACTIVE")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_object_is_refused_at_admission_and_never_reaches_aws() {
    let rig = Rig::start().await;
    let api = rig.api::<FHIRDatastore>();
    let spec =
        "  sseConfiguration:\n    kmsEncryptionConfig:\n      cmkType: CUSTOMER_MANAGED_KMS_KEY\n";
    let refused = api
        .create(&PostParams::default(), &datastore("no-key", spec))
        .await
        .expect_err("refused");
    let kube::Error::Api(status) = refused else {
        panic!("expected an API error, got {refused:?}")
    };
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("spec.sseConfiguration.kmsEncryptionConfig.kmsKeyId"),
        "{}",
        status.message
    );
    assert!(
        status
            .message
            .contains("kmsKeyId is required when cmkType is CUSTOMER_MANAGED_KMS_KEY"),
        "{}",
        status.message
    );

    let object = create_ready(&rig, "fixed", "  deletionPolicy: Delete\n").await;
    let change = serde_json::json!({"spec": {"datastoreName": "renamed"}});
    let refused = api
        .patch("fixed", &PatchParams::default(), &Patch::Merge(&change))
        .await
        .expect_err("refused");
    let kube::Error::Api(status) = refused else {
        panic!("expected an API error, got {refused:?}")
    };
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains("datastoreName"),
        "{}",
        status.message
    );
    assert_eq!(
        rig.calls(Operation::CreateFhirDatastore),
        1,
        "only the valid object reached AWS"
    );
    assert_eq!(
        api.get("fixed").await.expect("kept").metadata.generation,
        object.metadata.generation
    );
}
