//! HealthLake's control-plane quotas: a burst of new objects waits politely for client-side
//! budget instead of provoking a ThrottlingException storm.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use healthlake_operator::api::FHIRDatastore;
use healthlake_operator::emulator::{EmulatorConfig, Operation, Quotas, Rate};
use healthlake_operator::healthlake::limiter::RateLimitConfig;
use kube::api::PostParams;

use super::datastore::datastore;
use super::harness::{Rig, condition, eventually, is_true, unlimited, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_datastores_waits_for_quota_instead_of_being_throttled() {
    // AWS's published CreateFHIRDatastore quota in the emulator; the operator's default limits
    // (1/min less a 10% margin for datastore creation) in front of it.
    let quotas = Quotas::Custom(BTreeMap::from([(
        Operation::CreateFhirDatastore,
        Rate::per_minute(1),
    )]));
    let rig = Rig::start_with(
        EmulatorConfig::for_tests().with_quotas(quotas),
        RateLimitConfig {
            read: unlimited().read,
            ..RateLimitConfig::default()
        },
        |_| {},
    )
    .await;
    let api = rig.api::<FHIRDatastore>();
    let names: Vec<String> = (0..3).map(|index| format!("burst-{index}")).collect();
    for name in &names {
        api.create(
            &PostParams::default(),
            &datastore(name, "  deletionPolicy: Delete\n"),
        )
        .await
        .expect("admitted");
    }

    // With the clock still, one create goes out and the other two settle waiting for budget.
    eventually("one datastore is created", || async {
        rig.emulator.state().datastores.len() == 1
    })
    .await;
    let mut waiting = BTreeSet::new();
    for name in &names {
        let object = wait_for(&api, name, "created or waiting for quota", |object| {
            object.status.as_ref().is_some_and(|status| {
                status.datastore_id.is_some()
                    || condition(&status.conditions, "Reconciling").1 == "WaitingForQuota"
            })
        })
        .await;
        if object
            .status
            .is_some_and(|status| status.datastore_id.is_none())
        {
            waiting.insert(name.clone());
        }
    }
    assert_eq!(
        waiting.len(),
        2,
        "two datastores wait for quota: {waiting:?}"
    );
    assert_eq!(
        rig.calls(Operation::CreateFhirDatastore),
        1,
        "the waiting ones sent nothing"
    );

    // Each minute of the emulator's clock (plus the margin) lets one more through.
    let converged = async {
        loop {
            let mut ready = 0;
            for name in &names {
                if let Ok(Some(object)) = api.get_opt(name).await
                    && object
                        .status
                        .as_ref()
                        .is_some_and(|status| is_true(&status.conditions, "Ready"))
                {
                    ready += 1;
                }
            }
            if ready == names.len() {
                return;
            }
            rig.advance(Duration::from_secs(5));
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), converged)
        .await
        .expect("every datastore created within the quota");

    assert_eq!(rig.emulator.state().datastores.len(), 3);
    assert_eq!(
        rig.calls(Operation::CreateFhirDatastore),
        3,
        "each create sent once, when budget allowed"
    );
    let throttled = rig
        .emulator
        .calls()
        .iter()
        .filter(|call| call.error_type.as_deref() == Some("ThrottlingException"))
        .count();
    assert_eq!(
        throttled, 0,
        "the client-side limiter kept every call within HealthLake's quota"
    );
    let creations: Vec<i64> = rig
        .emulator
        .calls_of(Operation::CreateFhirDatastore)
        .iter()
        .map(|call| call.time_millis)
        .collect();
    assert!(
        creations.windows(2).all(|pair| pair[1] - pair[0] >= 60_000),
        "creates at least a minute apart: {creations:?}"
    );
}
