//! Two replicas without POD_NAME: exactly one acts, a shutdown hands over at once, and a leader
//! whose lease is taken stops with one clear error.

use healthlake_operator::api::FHIRDatastore;
use healthlake_operator::run::RunError;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};

use super::support::{Cluster, LEASE, NAMESPACE, eventually};

fn datastore(name: &str) -> FHIRDatastore {
    serde_saphyr::from_str(&format!(
        "apiVersion: healthlake.fhir-operator.io/v1alpha1\nkind: FHIRDatastore\nmetadata:\n  name: {name}\nspec:\n  datastoreTypeVersion: R4\n"
    ))
    .expect("test manifest parses")
}

const DATASTORE_RECONCILES: &str =
    r#"healthlake_operator_reconciles_total{kind="FHIRDatastore",outcome="ok"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_and_a_shutdown_hands_over_at_once() {
    assert!(
        std::env::var_os("POD_NAME").is_none(),
        "this test checks identities made without POD_NAME"
    );
    let cluster = Cluster::start(true).await;
    let first = cluster.operator(&[]).await;
    eventually("the first replica leads", || async {
        first.get("/readyz").await == (200, "ready: leader, caches synced".to_owned())
    })
    .await;
    let second = cluster.operator(&[]).await;
    assert_ne!(
        first.identity, second.identity,
        "two processes on one host need two identities"
    );
    eventually("the second replica stands by", || async {
        second.get("/readyz").await
            == (
                200,
                "ready: standby, another replica holds the lease".to_owned(),
            )
    })
    .await;
    assert_eq!(cluster.lease_holder().await, Some(first.identity.clone()));
    assert_eq!(
        first.metric("healthlake_operator_is_leader").await,
        Some(1.0)
    );
    assert_eq!(
        second.metric("healthlake_operator_is_leader").await,
        Some(0.0)
    );

    // Only the leader reconciles.
    let datastores: Api<FHIRDatastore> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    datastores
        .create(&PostParams::default(), &datastore("patients"))
        .await
        .expect("admitted");
    eventually("the leader reconciles the datastore", || async {
        first.metric(DATASTORE_RECONCILES).await.is_some()
    })
    .await;
    eventually("the leader creates the datastore in AWS", || async {
        cluster.emulator.state().datastores.len() == 1
    })
    .await;
    assert_eq!(second.metric(DATASTORE_RECONCILES).await, None);

    // SIGTERM: in-flight reconciles finish, then the lease is released, not left to expire.
    first.shut_down().await.expect("a clean shutdown");
    assert_eq!(
        cluster.lease_holder().await,
        None,
        "the lease is released as the leader stops"
    );
    eventually("the standby takes over", || async {
        second.get("/readyz").await == (200, "ready: leader, caches synced".to_owned())
    })
    .await;
    assert_eq!(cluster.lease_holder().await, Some(second.identity.clone()));
    eventually("the new leader reconciles", || async {
        second.metric(DATASTORE_RECONCILES).await.is_some()
    })
    .await;
    assert_eq!(
        cluster.emulator.state().datastores.len(),
        1,
        "the new leader adopts the datastore instead of creating another"
    );
    second.shut_down().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_is_taken_stops_with_one_clear_error() {
    let cluster = Cluster::start(true).await;
    let leader = cluster.operator(&[]).await;
    eventually("the replica leads", || async {
        leader.get("/readyz").await.0 == 200
    })
    .await;

    // Another holder takes the lease over (as a replica would after a network partition).
    let now = jiff::Timestamp::now();
    let taken = serde_json::json!({
        "spec": {
            "holderIdentity": "intruder",
            "leaseDurationSeconds": 3600,
            "acquireTime": now.to_string(),
            "renewTime": now.to_string(),
        }
    });
    Api::<Lease>::namespaced(cluster.client.clone(), "default")
        .patch(LEASE, &PatchParams::default(), &Patch::Merge(&taken))
        .await
        .expect("lease patched");

    let error = leader
        .finished()
        .await
        .expect_err("losing the lease stops the replica with an error");
    assert!(matches!(&error, RunError::LostLease { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("lost the leader-election lease healthlake-operator"),
        "{error}"
    );
    assert_eq!(cluster.lease_holder().await.as_deref(), Some("intruder"));
}
