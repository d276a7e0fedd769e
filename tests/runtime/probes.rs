//! `/healthz`, `/readyz` and `/metrics` over HTTP, as the kubelet and Prometheus see them.

use healthlake_operator::api::FHIRDatastore;
use kube::api::{Api, PostParams};
use std::time::Duration;

use super::support::{Cluster, NAMESPACE, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_working_operator_is_live_ready_and_counts_what_it_does() {
    let cluster = Cluster::start(true).await;
    let operator = cluster.operator(&["--leader-election", "false"]).await;
    assert_eq!(operator.get("/healthz").await, (200, "ok".to_owned()));
    eventually("the caches sync", || async {
        operator.get("/readyz").await == (200, "ready: leader, caches synced".to_owned())
    })
    .await;

    let datastores: Api<FHIRDatastore> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let manifest = "apiVersion: healthlake.fhir-operator.io/v1alpha1\nkind: FHIRDatastore\nmetadata:\n  name: patients\nspec:\n  datastoreTypeVersion: R4\n";
    datastores
        .create(
            &PostParams::default(),
            &serde_saphyr::from_str(manifest).expect("test manifest parses"),
        )
        .await
        .expect("admitted");
    eventually("the datastore is created in AWS", || async {
        cluster.emulator.state().datastores.len() == 1
    })
    .await;
    cluster.emulator.advance_clock(Duration::from_secs(60));
    eventually("the objects gauge shows it Ready", || async {
        operator
            .metric(r#"healthlake_operator_objects{kind="FHIRDatastore",condition="Ready"}"#)
            .await
            == Some(1.0)
    })
    .await;

    let (status, text) = operator.get("/metrics").await;
    assert_eq!(status, 200);
    for expected in [
        r#"healthlake_operator_aws_calls_total{operation="CreateFHIRDatastore",outcome="ok"} 1"#,
        r#"healthlake_operator_aws_call_duration_seconds_count{operation="CreateFHIRDatastore"} 1"#,
        r#"healthlake_operator_rate_limit_wait_seconds_count{operation="CreateFHIRDatastore"} 1"#,
        r#"healthlake_operator_objects{kind="FHIRDatastore",condition="Stalled"} 0"#,
        r#"healthlake_operator_objects{kind="FHIRImportJob",condition="Ready"} 0"#,
        "healthlake_operator_is_leader 1",
        concat!(
            r#"healthlake_operator_build_info{version=""#,
            env!("CARGO_PKG_VERSION"),
            r#""} 1"#
        ),
    ] {
        assert!(
            text.contains(expected),
            "no {expected:?} in /metrics:\n{text}"
        );
    }
    assert!(
        text.lines().any(|line| line.starts_with(
            r#"healthlake_operator_reconciles_total{kind="FHIRDatastore",outcome="ok"}"#
        )),
        "{text}"
    );
    operator.shut_down().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_keeps_failing_fails_liveness_and_readiness() {
    // No CRDs: every watch fails, as with CRDs missing or RBAC forbidding the list.
    let cluster = Cluster::start(false).await;
    let operator = cluster
        .operator(&[
            "--leader-election",
            "false",
            "--watch-failure-seconds",
            "0.001",
        ])
        .await;
    eventually("liveness fails", || async {
        let (status, body) = operator.get("/healthz").await;
        status == 503 && body.contains("watch has failed")
    })
    .await;
    let (status, body) = operator.get("/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("has not synced yet"), "{body}");
    operator.shut_down().await.expect("a clean shutdown");
}
