//! ClientToken idempotency and pagination.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_healthlake::primitives::DateTime;
use aws_sdk_healthlake::types::{DatastoreFilter, FhirVersion};

use crate::support::{
    ROLE_ARN, active_datastore, error_code, fixture, input_config, output_config, start_import,
};

#[tokio::test]
async fn the_same_token_and_request_answer_the_first_result_and_create_nothing_new() {
    let fixture = fixture().await;
    let create = || {
        fixture
            .client
            .create_fhir_datastore()
            .datastore_name("once")
            .datastore_type_version(FhirVersion::R4)
            .client_token("token-1")
    };
    let first = create().send().await.expect("first create");
    fixture.emulator.advance_clock(Duration::from_secs(60));
    let second = create().send().await.expect("repeated create");
    assert_eq!(first.datastore_id, second.datastore_id);
    assert_eq!(first.datastore_status, second.datastore_status);
    assert_eq!(fixture.emulator.state().datastores.len(), 1);

    let different = fixture
        .client
        .create_fhir_datastore()
        .datastore_name("another")
        .datastore_type_version(FhirVersion::R4)
        .client_token("token-1")
        .send()
        .await
        .expect_err("the token was used for another request");
    assert_eq!(
        error_code(&different).as_deref(),
        Some("ValidationException")
    );
    assert_eq!(fixture.emulator.state().datastores.len(), 1);
}

#[tokio::test]
async fn requests_without_an_explicit_token_get_a_fresh_one_from_the_sdk() {
    let fixture = fixture().await;
    let first = crate::support::create_datastore(&fixture.client, "same-name").await;
    let second = crate::support::create_datastore(&fixture.client, "same-name").await;
    assert_ne!(first, second);
}

#[tokio::test]
async fn a_repeated_start_import_with_the_same_token_starts_one_job() {
    let fixture = fixture().await;
    let datastore = active_datastore(&fixture, "jobs").await;
    let start = || {
        fixture
            .client
            .start_fhir_import_job()
            .datastore_id(&datastore)
            .input_data_config(input_config())
            .job_output_data_config(output_config())
            .data_access_role_arn(ROLE_ARN)
            .client_token("import-token")
    };
    let first = start().send().await.expect("first start");
    let second = start().send().await.expect("repeated start");
    assert_eq!(first.job_id, second.job_id);
    assert_eq!(fixture.emulator.state().jobs.len(), 1);
}

#[tokio::test]
async fn two_hundred_fifty_datastores_are_listed_in_pages_without_gaps_or_repeats() {
    let fixture = fixture().await;
    let mut created = BTreeSet::new();
    for index in 0..250 {
        created.insert(
            crate::support::create_datastore(&fixture.client, &format!("ds-{index}")).await,
        );
    }
    let mut sizes = Vec::new();
    let mut listed = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = fixture
            .client
            .list_fhir_datastores()
            .max_results(100)
            .set_next_token(token.clone())
            .send()
            .await
            .expect("list page");
        sizes.push(page.datastore_properties_list.len());
        listed.extend(
            page.datastore_properties_list
                .into_iter()
                .map(|d| d.datastore_id),
        );
        match page.next_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(sizes, vec![100, 100, 50]);
    assert_eq!(listed.len(), 250);
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), created);

    let through_paginator: Vec<String> = fixture
        .client
        .list_fhir_datastores()
        .max_results(64)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("paginator")
        .into_iter()
        .flat_map(|page| page.datastore_properties_list)
        .map(|d| d.datastore_id)
        .collect();
    assert_eq!(through_paginator, listed);
}

#[tokio::test]
async fn import_jobs_are_paged_and_filtered_by_submit_time_and_status() {
    let fixture = fixture().await;
    let datastore = active_datastore(&fixture, "many-jobs").await;
    let early = start_import(&fixture.client, &datastore, "early").await;
    fixture.emulator.advance_clock(Duration::from_secs(100));
    let boundary = DateTime::from(fixture.emulator.now());
    fixture.emulator.advance_clock(Duration::from_secs(1));
    let mut late = Vec::new();
    for index in 0..250 {
        late.push(start_import(&fixture.client, &datastore, &format!("late-{index}")).await);
    }
    let before: Vec<String> = fixture
        .client
        .list_fhir_import_jobs()
        .datastore_id(&datastore)
        .submitted_before(boundary)
        .send()
        .await
        .expect("list")
        .import_job_properties_list
        .into_iter()
        .map(|job| job.job_id)
        .collect();
    assert_eq!(before, vec![early.clone()]);

    let after: Vec<String> = fixture
        .client
        .list_fhir_import_jobs()
        .datastore_id(&datastore)
        .submitted_after(boundary)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("paginator")
        .into_iter()
        .flat_map(|page| page.import_job_properties_list)
        .map(|job| job.job_id)
        .collect();
    assert_eq!(after, late);

    let completed: Vec<String> = fixture
        .client
        .list_fhir_import_jobs()
        .datastore_id(&datastore)
        .job_status(aws_sdk_healthlake::types::JobStatus::Completed)
        .send()
        .await
        .expect("list")
        .import_job_properties_list
        .into_iter()
        .map(|job| job.job_id)
        .collect();
    assert_eq!(completed, vec![early]);

    let named = fixture
        .client
        .list_fhir_import_jobs()
        .datastore_id(&datastore)
        .job_name("late-7")
        .send()
        .await
        .expect("list")
        .import_job_properties_list;
    assert_eq!(named.len(), 1);
    assert_eq!(named[0].job_id, late[7]);
}

#[tokio::test]
async fn datastores_are_filtered_by_creation_time() {
    let fixture = fixture().await;
    let first = crate::support::create_datastore(&fixture.client, "first").await;
    fixture.emulator.advance_clock(Duration::from_secs(10));
    let boundary = DateTime::from(fixture.emulator.now());
    fixture.emulator.advance_clock(Duration::from_secs(10));
    let second = crate::support::create_datastore(&fixture.client, "second").await;
    let ids = |filter: DatastoreFilter| {
        let client = fixture.client.clone();
        async move {
            client
                .list_fhir_datastores()
                .filter(filter)
                .send()
                .await
                .expect("list")
                .datastore_properties_list
                .into_iter()
                .map(|d| d.datastore_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        ids(DatastoreFilter::builder().created_before(boundary).build()).await,
        vec![first]
    );
    assert_eq!(
        ids(DatastoreFilter::builder().created_after(boundary).build()).await,
        vec![second]
    );
}
