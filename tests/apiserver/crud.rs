//! Create, get, list, replace and delete; metadata the server owns; errors as `Status` bodies;
//! finalizers; owner references; namespaces.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Event, Namespace, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};

use serde_json::json;

use super::support::{
    Cluster, Gizmo, GizmoSpec, PATIENCE, WidgetStatus, api_error, eventually, widget,
};

#[tokio::test]
async fn create_assigns_uid_creation_time_resource_version_and_generation() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let first = widgets
        .create(&PostParams::default(), &widget("first", 1))
        .await
        .unwrap();
    let second = widgets
        .create(&PostParams::default(), &widget("second", 1))
        .await
        .unwrap();
    assert!(first.uid().is_some_and(|uid| !uid.is_empty()));
    assert_ne!(first.uid(), second.uid());
    assert!(first.metadata.creation_timestamp.is_some());
    assert_eq!(first.metadata.generation, Some(1));
    let first_version: u64 = first.resource_version().unwrap().parse().unwrap();
    let second_version: u64 = second.resource_version().unwrap().parse().unwrap();
    assert!(
        second_version > first_version,
        "one counter orders every write"
    );
    let fetched = widgets.get("first").await.unwrap();
    assert_eq!(fetched.spec, first.spec);
    assert_eq!(fetched.resource_version(), first.resource_version());
    cluster.finish().await;
}

#[tokio::test]
async fn errors_come_as_status_bodies_with_the_real_reasons() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let missing = api_error(widgets.get("absent").await.unwrap_err());
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(
        missing.message,
        "widgets.conformance.example.com \"absent\" not found"
    );

    widgets
        .create(&PostParams::default(), &widget("taken", 1))
        .await
        .unwrap();
    let duplicate = api_error(
        widgets
            .create(&PostParams::default(), &widget("taken", 1))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (duplicate.code, duplicate.reason.as_str()),
        (409, "AlreadyExists")
    );

    let mut stale = widgets.get("taken").await.unwrap();
    let mut fresh = stale.clone();
    fresh.spec.size = 2;
    widgets
        .replace("taken", &PostParams::default(), &fresh)
        .await
        .unwrap();
    stale.spec.size = 3;
    let conflict = api_error(
        widgets
            .replace("taken", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(
        conflict.message.contains("the object has been modified"),
        "{}",
        conflict.message
    );
    assert_eq!(widgets.get("taken").await.unwrap().spec.size, 2);
    cluster.finish().await;
}

#[tokio::test]
async fn generation_counts_spec_changes_only() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    widgets
        .create(&PostParams::default(), &widget("counted", 1))
        .await
        .unwrap();
    let patch = |value: serde_json::Value| Patch::Merge(value);
    let labelled = widgets
        .patch(
            "counted",
            &PatchParams::default(),
            &patch(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );
    let with_status = widgets
        .patch_status(
            "counted",
            &PatchParams::default(),
            &patch(json!({"status": {"phase": "Ready"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        with_status.metadata.generation,
        Some(1),
        "status changes keep the generation"
    );
    let resized = widgets
        .patch(
            "counted",
            &PatchParams::default(),
            &patch(json!({"spec": {"size": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(resized.metadata.generation, Some(2));
    let unchanged = widgets
        .patch(
            "counted",
            &PatchParams::default(),
            &patch(json!({"spec": {"size": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(unchanged.metadata.generation, Some(2));
    assert_eq!(
        unchanged.resource_version(),
        resized.resource_version(),
        "a no-op write changes nothing"
    );
    cluster.finish().await;
}

#[tokio::test]
async fn the_status_subresource_alone_changes_status() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let mut object = widget("split", 1);
    object.status = Some(WidgetStatus {
        phase: Some("Ignored".into()),
        ..WidgetStatus::default()
    });
    let created = widgets
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    assert_eq!(created.status, None, "create ignores status");

    let mut replaced = created.clone();
    replaced.spec.size = 2;
    replaced.status = Some(WidgetStatus {
        phase: Some("AlsoIgnored".into()),
        ..WidgetStatus::default()
    });
    let replaced = widgets
        .replace("split", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(replaced.spec.size, 2);
    assert_eq!(replaced.status, None, "the main endpoint ignores status");

    let status_patch = json!({"spec": {"size": 50}, "status": {"phase": "Ready"}});
    let patched = widgets
        .patch_status(
            "split",
            &PatchParams::default(),
            &Patch::Merge(status_patch),
        )
        .await
        .unwrap();
    assert_eq!(patched.status.unwrap().phase.as_deref(), Some("Ready"));
    assert_eq!(patched.spec.size, 2, "the status endpoint ignores spec");

    let mut current = widgets.get_status("split").await.unwrap();
    current.status = Some(WidgetStatus {
        phase: Some("Replaced".into()),
        ..WidgetStatus::default()
    });
    let replaced = widgets
        .replace_status("split", &PostParams::default(), &current)
        .await
        .unwrap();
    assert_eq!(replaced.status.unwrap().phase.as_deref(), Some("Replaced"));
    cluster.finish().await;
}

#[tokio::test]
async fn finalizers_keep_a_deleted_object_until_the_last_one_goes() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let mut object = widget("held", 1);
    object.metadata.finalizers = Some(vec!["conformance.example.com/hold".into()]);
    widgets
        .create(&PostParams::default(), &object)
        .await
        .unwrap();

    let deleting = widgets
        .delete("held", &DeleteParams::default())
        .await
        .unwrap();
    let deleting = deleting.left().expect("the object is still there");
    assert!(deleting.metadata.deletion_timestamp.is_some());
    let kept = widgets.get("held").await.unwrap();
    assert!(kept.metadata.deletion_timestamp.is_some());
    assert_eq!(
        kept.metadata.generation,
        Some(2),
        "marking for deletion bumps the generation"
    );

    let added = json!({"metadata": {"finalizers": ["conformance.example.com/hold", "conformance.example.com/late"]}});
    let refused = api_error(
        widgets
            .patch("held", &PatchParams::default(), &Patch::Merge(added))
            .await
            .unwrap_err(),
    );
    assert_eq!(refused.code, 422);
    assert!(
        refused.message.contains("no new finalizers can be added"),
        "{}",
        refused.message
    );

    let cleared = json!({"metadata": {"finalizers": null}});
    widgets
        .patch("held", &PatchParams::default(), &Patch::Merge(cleared))
        .await
        .unwrap();
    let gone = api_error(widgets.get("held").await.unwrap_err());
    assert_eq!(gone.code, 404);
    cluster.finish().await;
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    for (name, tier) in [
        ("web-1", "front"),
        ("web-2", "front"),
        ("db-1", "back"),
        ("plain", ""),
    ] {
        let mut object = widget(name, 1);
        if !tier.is_empty() {
            object.metadata.labels = Some(BTreeMap::from([("tier".to_string(), tier.to_string())]));
        }
        widgets
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }
    let names = |list: kube::core::ObjectList<super::support::Widget>| {
        let mut names: Vec<String> = list.items.iter().map(ResourceExt::name_any).collect();
        names.sort();
        names
    };
    let cases = [
        (
            ListParams::default().labels("tier=front"),
            vec!["web-1", "web-2"],
        ),
        (
            ListParams::default().labels("tier!=front"),
            vec!["db-1", "plain"],
        ),
        (
            ListParams::default().labels("tier in (front,back)"),
            vec!["db-1", "web-1", "web-2"],
        ),
        (
            ListParams::default().labels("tier notin (front)"),
            vec!["db-1", "plain"],
        ),
        (
            ListParams::default().labels("tier"),
            vec!["db-1", "web-1", "web-2"],
        ),
        (ListParams::default().labels("!tier"), vec!["plain"]),
        (
            ListParams::default().fields("metadata.name=db-1"),
            vec!["db-1"],
        ),
        (
            ListParams::default()
                .fields("metadata.name!=db-1")
                .labels("tier"),
            vec!["web-1", "web-2"],
        ),
        (
            ListParams::default().fields(&format!("metadata.namespace={}", cluster.namespace)),
            vec!["db-1", "plain", "web-1", "web-2"],
        ),
    ];
    for (params, expected) in cases {
        let listed = widgets.list(&params).await.unwrap();
        assert_eq!(
            names(listed),
            expected,
            "{:?} {:?}",
            params.label_selector,
            params.field_selector
        );
    }
    cluster.finish().await;
}

#[tokio::test]
async fn lists_page_with_limit_and_continue() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    for index in 0..7 {
        widgets
            .create(&PostParams::default(), &widget(&format!("page-{index}"), 1))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut params = ListParams::default().limit(3);
        if let Some(token) = &token {
            params = params.continue_token(token);
        }
        let page = widgets.list(&params).await.unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(ResourceExt::name_any));
        pages += 1;
        token = page.metadata.continue_.filter(|token| !token.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..7).map(|index| format!("page-{index}")).collect();
    assert_eq!(seen, expected);
    cluster.finish().await;
}

#[tokio::test]
async fn cluster_scoped_resources_have_no_namespace() {
    let cluster = Cluster::start().await;
    let gizmos: Api<Gizmo> = Api::all(cluster.client.clone());
    let name = format!("{}-gizmo", cluster.namespace);
    let created = gizmos
        .create(
            &PostParams::default(),
            &Gizmo::new(&name, GizmoSpec { value: "a".into() }),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.namespace, None);
    // Without a status subresource, the whole object but metadata is spec-like: status counts.
    let patched = gizmos
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"value": "b"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.value, "b");
    assert_eq!(patched.metadata.generation, Some(2));
    assert!(
        gizmos
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|g| g.name_any() == name)
    );
    gizmos
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_error(gizmos.get(&name).await.unwrap_err()).code, 404);
    cluster.finish().await;
}

#[tokio::test]
async fn deleting_an_owner_deletes_its_dependents_in_the_background() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let owner = widgets
        .create(&PostParams::default(), &widget("owner", 1))
        .await
        .unwrap();
    let reference: OwnerReference = owner.controller_owner_ref(&()).unwrap();
    for name in ["child-a", "child-b"] {
        let mut child = widget(name, 1);
        child.metadata.owner_references = Some(vec![reference.clone()]);
        widgets
            .create(&PostParams::default(), &child)
            .await
            .unwrap();
    }
    widgets
        .create(&PostParams::default(), &widget("bystander", 1))
        .await
        .unwrap();
    widgets
        .delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually("the dependents to be deleted", PATIENCE, || {
        let widgets = widgets.clone();
        async move {
            let names: Vec<String> = widgets
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .iter()
                .map(ResourceExt::name_any)
                .collect();
            (names == vec!["bystander".to_string()]).then_some(())
        }
    })
    .await;
    cluster.finish().await;
}

#[tokio::test]
async fn leases_and_events_are_stored_like_any_object() {
    let cluster = Cluster::start().await;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let mut lease = Lease::default();
    lease.metadata.name = Some("leader".into());
    lease.spec = Some(LeaseSpec {
        holder_identity: Some("replica-a".into()),
        lease_duration_seconds: Some(15),
        ..LeaseSpec::default()
    });
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut taken = created.clone();
    taken.spec.as_mut().unwrap().holder_identity = Some("replica-b".into());
    leases
        .replace("leader", &PostParams::default(), &taken)
        .await
        .unwrap();
    // A second replica still holding the first version loses the race.
    let conflict = api_error(
        leases
            .replace("leader", &PostParams::default(), &created)
            .await
            .unwrap_err(),
    );
    assert_eq!(conflict.code, 409);
    assert_eq!(
        leases
            .get("leader")
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity
            .as_deref(),
        Some("replica-b")
    );

    let events: Api<Event> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let mut event = Event::default();
    event.metadata.generate_name = Some("widget.".into());
    event.reason = Some("Created".into());
    event.message = Some("widget created".into());
    event.involved_object = ObjectReference {
        kind: Some("Widget".into()),
        name: Some("w".into()),
        namespace: Some(cluster.namespace.clone()),
        ..ObjectReference::default()
    };
    let created = events.create(&PostParams::default(), &event).await.unwrap();
    assert!(created.name_any().starts_with("widget."));
    let modern: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let mut modern_event = k8s_openapi::api::events::v1::Event::default();
    modern_event.metadata.name = Some("modern".into());
    modern_event.reason = Some("Ready".into());
    modern_event.action = Some("Reconcile".into());
    modern_event.reporting_controller = Some("conformance".into());
    modern_event.reporting_instance = Some("conformance-1".into());
    modern_event.event_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        jiff::Timestamp::now(),
    ));
    modern_event.type_ = Some("Normal".into());
    modern_event.regarding = Some(ObjectReference {
        kind: Some("Widget".into()),
        name: Some("w".into()),
        namespace: Some(cluster.namespace.clone()),
        ..ObjectReference::default()
    });
    modern_event.note = Some("widget w is ready".into());
    modern
        .create(&PostParams::default(), &modern_event)
        .await
        .unwrap();
    assert_eq!(
        modern.get("modern").await.unwrap().reason.as_deref(),
        Some("Ready")
    );
    // One storage, two views: the events.k8s.io/v1 Event is a core v1 Event too.
    let as_core = events.get("modern").await.unwrap();
    assert_eq!(as_core.message.as_deref(), Some("widget w is ready"));
    assert_eq!(as_core.involved_object.name.as_deref(), Some("w"));
    assert_eq!(as_core.reporting_component.as_deref(), Some("conformance"));
    cluster.finish().await;
}

#[tokio::test]
async fn deleting_a_namespace_deletes_what_it_holds() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    widgets
        .create(&PostParams::default(), &widget("inside", 1))
        .await
        .unwrap();
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    namespaces
        .delete(&cluster.namespace, &DeleteParams::default())
        .await
        .unwrap();
    eventually("the namespace to be gone", PATIENCE * 3, || {
        let namespaces = namespaces.clone();
        let name = cluster.namespace.clone();
        async move {
            namespaces
                .get_opt(&name)
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    assert_eq!(
        api_error(widgets.get("inside").await.unwrap_err()).code,
        404
    );
}

#[tokio::test]
async fn a_foreground_delete_keeps_the_owner_until_its_dependents_are_gone() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let owner = widgets
        .create(&PostParams::default(), &widget("parent", 1))
        .await
        .unwrap();
    let reference: OwnerReference = owner.controller_owner_ref(&()).unwrap();
    let mut held = widget("held-child", 1);
    held.metadata.owner_references = Some(vec![OwnerReference {
        block_owner_deletion: Some(true),
        ..reference.clone()
    }]);
    held.metadata.finalizers = Some(vec!["conformance.example.com/hold".into()]);
    widgets.create(&PostParams::default(), &held).await.unwrap();

    widgets
        .delete("parent", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually("the dependent to be marked for deletion", PATIENCE, || {
        let widgets = widgets.clone();
        async move {
            let child = widgets.get("held-child").await.ok()?;
            child.metadata.deletion_timestamp.map(|_| ())
        }
    })
    .await;
    let parent = widgets.get("parent").await.unwrap();
    assert!(parent.metadata.deletion_timestamp.is_some());
    assert!(
        parent
            .finalizers()
            .iter()
            .any(|f| f == "foregroundDeletion"),
        "{:?}",
        parent.finalizers()
    );

    let release = json!({"metadata": {"finalizers": null}});
    widgets
        .patch(
            "held-child",
            &PatchParams::default(),
            &Patch::Merge(release),
        )
        .await
        .unwrap();
    eventually("the owner to go after its dependent", PATIENCE, || {
        let widgets = widgets.clone();
        async move {
            widgets
                .get_opt("parent")
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_no_update_with_optimistic_concurrency() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    widgets
        .create(&PostParams::default(), &widget("counter", 1))
        .await
        .unwrap();
    let writers = 4;
    let increments = 10;
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let widgets = widgets.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for _ in 0..increments {
                loop {
                    let mut current = widgets.get("counter").await.unwrap();
                    current.spec.size += 1;
                    match widgets
                        .replace("counter", &PostParams::default(), &current)
                        .await
                    {
                        Ok(_) => break,
                        Err(kube::Error::Api(status)) if status.code == 409 => conflicts += 1,
                        Err(other) => panic!("unexpected error {other}"),
                    }
                }
            }
            conflicts
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let last = widgets.get("counter").await.unwrap();
    assert_eq!(last.spec.size, 1 + writers * increments);
    assert_eq!(last.metadata.generation, Some(1 + writers * increments));
    cluster.finish().await;
}
