//! Fault hooks and the served (HTTP) API.

use std::time::{Duration, Instant};

use healthlake_operator::apiserver::{ApiServer, Verb};
use kube::Api;
use kube::api::PostParams;

use super::support::{Cluster, Widget, api_error, real_cluster, widget};

#[tokio::test]
async fn the_next_matching_requests_fail_with_the_injected_status() {
    if real_cluster() {
        return;
    }
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    cluster.server().fail_next(Verb::Create, "widgets", 503, 2);
    for _ in 0..2 {
        let failed = api_error(
            widgets
                .create(&PostParams::default(), &widget("flaky", 1))
                .await
                .unwrap_err(),
        );
        assert_eq!(failed.code, 503);
    }
    // Other verbs were never affected, and the rule is used up.
    assert_eq!(api_error(widgets.get("flaky").await.unwrap_err()).code, 404);
    widgets
        .create(&PostParams::default(), &widget("flaky", 1))
        .await
        .unwrap();
    cluster
        .server()
        .fail_next(Verb::Patch, "widgets/status", 500, 1);
    let status = kube::api::Patch::Merge(serde_json::json!({"status": {"phase": "x"}}));
    let failed = api_error(
        widgets
            .patch_status("flaky", &Default::default(), &status)
            .await
            .unwrap_err(),
    );
    assert_eq!(failed.code, 500);
    widgets
        .patch_status("flaky", &Default::default(), &status)
        .await
        .unwrap();
    cluster.finish().await;
}

#[tokio::test]
async fn latency_delays_every_request() {
    if real_cluster() {
        return;
    }
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    cluster.server().set_latency(Duration::from_millis(200));
    let started = Instant::now();
    widgets
        .create(&PostParams::default(), &widget("slow", 1))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    cluster.server().clear_faults();
    cluster.finish().await;
}

#[tokio::test]
async fn the_served_api_answers_a_client_built_from_its_kubeconfig() {
    let server = ApiServer::new();
    let loaded = server
        .load_crds_yaml(super::support::WIDGET_CRD, "the widget crd")
        .unwrap();
    assert_eq!(loaded, vec!["widgets.conformance.example.com".to_string()]);
    let served = server.serve("127.0.0.1:0").await.unwrap();
    assert!(served.address().ip().is_loopback());
    let client = served.client().await.unwrap();
    let widgets: Api<Widget> = Api::namespaced(client, "default");
    widgets
        .create(&PostParams::default(), &widget("remote", 1))
        .await
        .unwrap();
    // The in-process client sees what the HTTP client wrote: one store.
    let local: Api<Widget> = Api::namespaced(server.client(), "default");
    assert_eq!(local.get("remote").await.unwrap().spec.size, 1);
    let path = served.kubeconfig_path().to_path_buf();
    assert!(path.exists());
    drop(served);
    assert!(!path.exists(), "the kubeconfig goes with the listener");
}

#[tokio::test]
async fn serving_refuses_addresses_outside_loopback() {
    let server = ApiServer::new();
    let refused = server.serve("0.0.0.0:0").await;
    assert!(
        matches!(
            refused,
            Err(healthlake_operator::apiserver::ApiServerError::NotLoopback(
                _
            ))
        ),
        "only loopback may be served"
    );
}

#[tokio::test]
async fn the_repository_crds_load_from_their_directory() {
    let server = ApiServer::new();
    let mut names = server
        .load_crds_from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/crds"))
        .unwrap();
    names.sort();
    assert_eq!(
        names,
        vec![
            "fhirdatastores.healthlake.fhir-operator.io",
            "fhirexportjobs.healthlake.fhir-operator.io",
            "fhirimportjobs.healthlake.fhir-operator.io",
        ]
    );
    let discovery = kube::Discovery::new(server.client()).run().await.unwrap();
    let group = discovery
        .get("healthlake.fhir-operator.io")
        .expect("the group is discovered");
    let kinds: Vec<String> = group
        .recommended_resources()
        .into_iter()
        .map(|(resource, _)| resource.kind)
        .collect();
    assert!(kinds.contains(&"FHIRDatastore".to_string()), "{kinds:?}");
    let missing = api_error(
        Api::<Widget>::namespaced(server.client(), "default")
            .get("x")
            .await
            .unwrap_err(),
    );
    assert_eq!(
        missing.code, 404,
        "widgets are not served without their crd"
    );
}

#[tokio::test]
async fn a_watcher_rides_out_failed_lists_and_watches() {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    if real_cluster() {
        return;
    }
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    widgets
        .create(&PostParams::default(), &widget("present", 1))
        .await
        .unwrap();
    cluster.server().fail_next(Verb::List, "widgets", 500, 2);
    cluster.server().fail_next(Verb::Watch, "widgets", 503, 1);
    let mut objects = watcher(widgets.clone(), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    let mut errors = 0;
    let first = tokio::time::timeout(super::support::PATIENCE, async {
        loop {
            match objects.next().await {
                Some(Ok(object)) => break object,
                Some(Err(_)) => errors += 1,
                None => panic!("the watcher stream ended"),
            }
        }
    })
    .await
    .expect("the watcher recovers within the patience");
    assert_eq!(first.spec.size, 1);
    assert_eq!(errors, 2, "each injected list failure surfaces once");
    widgets
        .create(&PostParams::default(), &widget("later", 1))
        .await
        .unwrap();
    let later = tokio::time::timeout(super::support::PATIENCE, async {
        loop {
            if let Some(Ok(object)) = objects.next().await {
                break object;
            }
        }
    })
    .await
    .expect("the watch resumes after the injected watch failure");
    assert_eq!(kube::ResourceExt::name_any(&later), "later");
    cluster.finish().await;
}
