//! Creating FHIR objects through the Kubernetes API and watching them become Ready, counting
//! the writes a watch sees on each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use healthlake_operator::api::{FHIRDatastore, FHIRExportJob, FHIRImportJob};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};

/// The namespace every benchmark object lives in.
pub const NAMESPACE: &str = "default";

/// The three kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// FHIRDatastore.
    Datastore,
    /// FHIRImportJob.
    Import,
    /// FHIRExportJob.
    Export,
}

impl Kind {
    fn resource(self) -> ApiResource {
        match self {
            Kind::Datastore => ApiResource::erase::<FHIRDatastore>(&()),
            Kind::Import => ApiResource::erase::<FHIRImportJob>(&()),
            Kind::Export => ApiResource::erase::<FHIRExportJob>(&()),
        }
    }

    /// The API of this kind in the benchmark namespace.
    pub fn api(self, client: &kube::Client) -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), NAMESPACE, &self.resource())
    }
}

/// A FHIRDatastore with a tag, as users write them.
pub fn datastore(name: &str) -> anyhow::Result<DynamicObject> {
    object(
        Kind::Datastore,
        name,
        json!({"datastoreTypeVersion": "R4", "tags": {"team": "bench"}}),
    )
}

/// An import or export job on the datastore `datastore`.
pub fn job(kind: Kind, name: &str, datastore: &str) -> anyhow::Result<DynamicObject> {
    let spec = match kind {
        Kind::Import => json!({
            "datastoreRef": {"name": datastore},
            "inputDataConfig": {"s3Uri": format!("s3://bench-input/{name}/")},
            "jobOutputDataConfig": {"s3Configuration": {
                "s3Uri": "s3://bench-output/import/", "kmsKeyId": "alias/bench"}},
            "dataAccessRoleArn": "arn:aws:iam::123456789012:role/BenchImport",
        }),
        Kind::Export => json!({
            "datastoreRef": {"name": datastore},
            "outputDataConfig": {"s3Configuration": {
                "s3Uri": format!("s3://bench-output/export/{name}/"), "kmsKeyId": "alias/bench"}},
            "dataAccessRoleArn": "arn:aws:iam::123456789012:role/BenchExport",
        }),
        Kind::Datastore => bail!("a datastore is not a job"),
    };
    object(kind, name, spec)
}

fn object(kind: Kind, name: &str, spec: Value) -> anyhow::Result<DynamicObject> {
    let resource = kind.resource();
    let value = json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    });
    Ok(serde_json::from_value(value)?)
}

/// Creates `objects` with up to `in_flight` requests at once; answers the failures.
pub async fn create_all(
    client: &kube::Client,
    objects: Vec<(Kind, DynamicObject)>,
    in_flight: usize,
) -> Vec<String> {
    futures::stream::iter(objects)
        .map(|(kind, object)| {
            let api = kind.api(client);
            async move {
                let name = object.metadata.name.clone().unwrap_or_default();
                api.create(&PostParams::default(), &object)
                    .await
                    .err()
                    .map(|error| format!("{kind:?} {name}: {error}"))
            }
        })
        .buffer_unordered(in_flight)
        .filter_map(|failure| async move { failure })
        .collect()
        .await
}

/// What a watch saw of one object.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Modifications seen (each a write that changed the object's resourceVersion).
    pub writes: u32,
    /// Modifications seen until the object first showed `Ready=True`.
    pub writes_to_ready: Option<u32>,
    /// When it first showed `Ready=True`.
    pub ready_at: Option<Instant>,
    /// The same moment on the system clock, comparable with the emulator's timestamps.
    pub ready_at_wall: Option<SystemTime>,
}

/// What the watches of a benchmark saw, shared with their tasks.
#[derive(Clone, Default)]
pub struct Tracker {
    seen: Arc<Mutex<HashMap<(Kind, String), Seen>>>,
    /// Set when a watch had to relist (410 Gone): write counts are then a lower bound.
    gaps: Arc<Mutex<u32>>,
    /// The watch tasks, stopped by [`Tracker::stop`].
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Tracker {
    /// Watches `kind` from now on in a background task.
    pub async fn watch(&self, client: &kube::Client, kind: Kind) -> anyhow::Result<()> {
        let api = kind.api(client);
        let list = api
            .list(&ListParams::default())
            .await
            .context("failed to list before watching")?;
        self.record_list(kind, &list.items, false);
        let resource_version = list.metadata.resource_version.unwrap_or_default();
        let tracker = self.clone();
        let task = tokio::spawn(async move { tracker.follow(api, kind, resource_version).await });
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task.abort_handle());
        Ok(())
    }

    /// Stops the watches (before their API server goes away).
    pub fn stop(&self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }

    async fn follow(self, api: Api<DynamicObject>, kind: Kind, mut resource_version: String) {
        loop {
            let params = WatchParams::default().timeout(290);
            let stream = match api.watch(&params, &resource_version).await {
                Ok(stream) => stream,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let mut stream = std::pin::pin!(stream);
            while let Ok(Some(event)) = stream.try_next().await {
                match event {
                    WatchEvent::Added(object) | WatchEvent::Modified(object) => {
                        if let Some(version) = &object.metadata.resource_version {
                            resource_version.clone_from(version);
                        }
                        self.record(kind, &object, true);
                    }
                    WatchEvent::Deleted(object) => {
                        if let Some(version) = &object.metadata.resource_version {
                            resource_version.clone_from(version);
                        }
                    }
                    WatchEvent::Bookmark(bookmark) => {
                        resource_version = bookmark.metadata.resource_version;
                    }
                    WatchEvent::Error(_) => {
                        // 410 Gone: start again from a fresh list; counts become lower bounds.
                        *self.gaps.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                        if let Ok(list) = api.list(&ListParams::default()).await {
                            self.record_list(kind, &list.items, true);
                            resource_version = list.metadata.resource_version.unwrap_or_default();
                        }
                        break;
                    }
                }
            }
        }
    }

    fn record_list(&self, kind: Kind, objects: &[DynamicObject], count: bool) {
        for object in objects {
            self.record(kind, object, count);
        }
    }

    fn record(&self, kind: Kind, object: &DynamicObject, modified: bool) {
        let name = object.metadata.name.clone().unwrap_or_default();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let known = seen.contains_key(&(kind, name.clone()));
        let entry = seen.entry((kind, name)).or_default();
        // The first sight of an object is its creation, not a write by the operator.
        if modified && known {
            entry.writes += 1;
        }
        if entry.ready_at.is_none() && is_ready(object) {
            entry.ready_at = Some(Instant::now());
            entry.ready_at_wall = Some(SystemTime::now());
            entry.writes_to_ready = Some(entry.writes);
        }
    }

    /// Objects of `kind` seen Ready so far.
    pub fn ready(&self, kind: Kind) -> usize {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter()
            .filter(|((k, _), seen)| *k == kind && seen.ready_at.is_some())
            .count()
    }

    /// Waits until `expected` objects of `kind` are Ready; answers when the last became Ready.
    pub async fn wait_ready(
        &self,
        kind: Kind,
        expected: usize,
        timeout: Duration,
        mut tick: impl AsyncTick,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.ready(kind) >= expected {
                let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                return seen
                    .iter()
                    .filter(|((k, _), _)| *k == kind)
                    .filter_map(|(_, seen)| seen.ready_at)
                    .max()
                    .context("no object became ready");
            }
            if Instant::now() > deadline {
                bail!(
                    "only {} of {expected} {kind:?} objects became Ready within {} s",
                    self.ready(kind),
                    timeout.as_secs()
                );
            }
            tick.tick().await?;
        }
    }

    /// The system-clock time each object of `kind` was first seen Ready, by name.
    pub fn ready_times(&self, kind: Kind) -> Vec<(String, SystemTime)> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter()
            .filter(|((k, _), _)| *k == kind)
            .filter_map(|((_, name), seen)| Some((name.clone(), seen.ready_at_wall?)))
            .collect()
    }

    /// Mean writes per object of `kind`: until Ready, and in all.
    pub fn writes(&self, kind: Kind) -> (f64, f64) {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let of_kind: Vec<&Seen> = seen
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|(_, seen)| seen)
            .collect();
        let count = of_kind.len().max(1) as f64;
        let to_ready: u32 = of_kind.iter().filter_map(|seen| seen.writes_to_ready).sum();
        let all: u32 = of_kind.iter().map(|seen| seen.writes).sum();
        (f64::from(to_ready) / count, f64::from(all) / count)
    }

    /// Waits until `expected` objects of each kind are Ready or `timeout` passes, printing
    /// progress to stderr about every 15 s under `label`; answers whether all became Ready
    /// (a run that misses some still has figures to report).
    pub async fn wait_all_ready(
        &self,
        expected: &[(Kind, usize)],
        timeout: Duration,
        label: &str,
    ) -> bool {
        let started = Instant::now();
        let mut reported = Instant::now();
        loop {
            let counts: Vec<(Kind, usize, usize)> = expected
                .iter()
                .map(|(kind, wanted)| (*kind, self.ready(*kind), *wanted))
                .collect();
            let done = counts.iter().all(|(_, ready, wanted)| ready >= wanted);
            let late = started.elapsed() > timeout;
            if done || late || reported.elapsed() > Duration::from_secs(15) {
                let text: Vec<String> = counts
                    .iter()
                    .map(|(kind, ready, wanted)| format!("{ready}/{wanted} {kind:?}"))
                    .collect();
                eprintln!(
                    "{label}: {} Ready after {:.0} s{}",
                    text.join(", "),
                    started.elapsed().as_secs_f64(),
                    if late && !done {
                        " (gave up waiting)"
                    } else {
                        ""
                    }
                );
                reported = Instant::now();
            }
            if done || late {
                return done;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// When each object of `kind` was first seen Ready (monotonic clock), by name.
    pub fn ready_instants(&self, kind: Kind) -> Vec<(String, Instant)> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter()
            .filter(|((k, _), _)| *k == kind)
            .filter_map(|((_, name), seen)| Some((name.clone(), seen.ready_at?)))
            .collect()
    }

    /// How many times a watch had to relist.
    pub fn gaps(&self) -> u32 {
        *self.gaps.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Something to do between two looks at the tracker (sleep, advance a clock).
pub trait AsyncTick {
    /// Waits a little.
    fn tick(&mut self) -> impl Future<Output = anyhow::Result<()>>;
}

/// Sleeps 100 ms per tick.
pub struct Sleep;

impl AsyncTick for Sleep {
    async fn tick(&mut self) -> anyhow::Result<()> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    }
}

/// Whether the object's `Ready` condition is True.
pub fn is_ready(object: &DynamicObject) -> bool {
    object.data["status"]["conditions"]
        .as_array()
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition["type"] == "Ready" && condition["status"] == "True")
        })
}

/// Events published about objects of `kind` (through events.k8s.io), and the occurrences they
/// stand for (an event patched as a series counts each repeat).
pub async fn events_about(client: &kube::Client, kind: Kind) -> anyhow::Result<(u64, u64)> {
    use k8s_openapi::api::events::v1::Event;
    let api: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    let events = api.list(&ListParams::default()).await?;
    let resource = kind.resource();
    let about: Vec<&Event> = events
        .items
        .iter()
        .filter(|event| {
            event
                .regarding
                .as_ref()
                .and_then(|regarding| regarding.kind.as_deref())
                == Some(resource.kind.as_str())
        })
        .collect();
    let occurrences = about
        .iter()
        .map(|event| {
            event
                .series
                .as_ref()
                .map_or(1, |series| u64::try_from(series.count).unwrap_or(1))
        })
        .sum();
    Ok((about.len() as u64, occurrences))
}
