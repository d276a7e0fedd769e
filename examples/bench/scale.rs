//! Item 1 of issue 11: N objects of the three kinds created at once (80 % FHIRDatastores, 10 %
//! imports, 10 % exports, each job on its own datastore), then the operator restarted with them.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::objects::{self, Kind, Sleep, Tracker};
use crate::processes::{Emulator, LIMITER_LIFTED, Operator, Sandbox, Workspace, mib};

/// Settings of the scale run.
pub struct ScaleSettings {
    /// FHIRDatastores to create.
    pub objects: usize,
    /// Create requests in flight at once.
    pub in_flight: usize,
    /// Seconds to wait after the idle operator is ready before sampling its RSS.
    pub idle_wait: Duration,
    /// Seconds to wait after the last object is Ready before sampling the steady RSS.
    pub steady_wait: Duration,
    /// The operator's `--concurrency`: reconciles at once, per kind.
    pub concurrency: usize,
}

/// How much faster than real time the emulator's clock runs in the scale run: a fast-profile
/// creation (5 s) and job (12 s) end within the operator's first poll (5 s after the create or
/// start) and the poll after it, so that the run measures the operator's throughput at its
/// default intervals rather than its waits.
const CLOCK_SPEED: &str = "5";

/// Runs item 1; answers the `scale` object of results.json.
pub async fn run(workspace: &Workspace, settings: &ScaleSettings) -> anyhow::Result<Value> {
    let n = settings.objects;
    // A tenth of the objects are imports and a tenth exports, each on its own datastore.
    let jobs_each = n / 10;
    let datastores = n - 2 * jobs_each;
    let (sandbox, client) = Sandbox::start(workspace, "scale").await?;
    let max_datastores = (datastores + 10).to_string();
    let emulator_flags = [
        "--no-quotas",
        "--max-datastores",
        &max_datastores,
        "--job-concurrency",
        "datastore",
        "--clock-speed",
        CLOCK_SPEED,
    ];
    let emulator = Emulator::start(workspace, "scale", &emulator_flags).await?;
    let concurrency = settings.concurrency.to_string();
    let flags: Vec<&str> = LIMITER_LIFTED
        .iter()
        .copied()
        .chain(["--concurrency", &concurrency])
        .collect();
    let operator = Operator::start(workspace, "scale", &sandbox, &emulator, &flags).await?;

    // Idle: no objects.
    tokio::time::sleep(settings.idle_wait).await;
    let idle = operator.sample()?;
    eprintln!("scale: idle rss {:.1} MiB", mib(idle.rss_kib));

    // N objects created at once.
    let tracker = Tracker::default();
    for kind in [Kind::Datastore, Kind::Import, Kind::Export] {
        tracker.watch(&client, kind).await?;
    }
    let name = |index: usize| format!("bench-{index:05}");
    let mut objects = Vec::with_capacity(n);
    for index in 0..datastores {
        objects.push((Kind::Datastore, objects::datastore(&name(index))?));
    }
    for index in 0..jobs_each {
        let on = name(index);
        objects.push((Kind::Import, objects::job(Kind::Import, &on, &on)?));
        objects.push((Kind::Export, objects::job(Kind::Export, &on, &on)?));
    }
    let calls_before = emulator.counters().await?;
    let started = Instant::now();
    let failures = objects::create_all(&client, objects, settings.in_flight).await;
    let created_in = started.elapsed();
    if let Some(first) = failures.first() {
        anyhow::bail!("{} creates failed, the first: {first}", failures.len());
    }
    eprintln!("scale: {n} created in {:.1} s", created_in.as_secs_f64());
    let timeout = Duration::from_secs(120 + n as u64 / 5);
    let mut last_ready = started;
    for (kind, expected) in [
        (Kind::Datastore, datastores),
        (Kind::Import, jobs_each),
        (Kind::Export, jobs_each),
    ] {
        let at = tracker.wait_ready(kind, expected, timeout, Sleep).await?;
        last_ready = last_ready.max(at);
    }
    let seconds_to_ready = last_ready.duration_since(started).as_secs_f64();
    let at_ready = operator.sample()?;
    let calls_to_ready = emulator.counters().await?.since(&calls_before);
    eprintln!("scale: {n} Ready after {seconds_to_ready:.1} s");

    tokio::time::sleep(settings.steady_wait).await;
    let steady = operator.sample()?;
    let mut writes = serde_json::Map::new();
    let mut events = serde_json::Map::new();
    for (kind, key) in KINDS {
        let (to_ready, in_all) = tracker.writes(kind);
        let (published, occurrences) = objects::events_about(&client, kind).await?;
        let count = match kind {
            Kind::Datastore => datastores,
            _ => jobs_each,
        }
        .max(1) as f64;
        writes.insert(
            key.to_owned(),
            json!({"to_ready": to_ready, "until_steady": in_all}),
        );
        events.insert(
            key.to_owned(),
            json!({"events": published as f64 / count, "occurrences": occurrences as f64 / count}),
        );
    }
    let calls_after_steady = emulator.counters().await?.since(&calls_before);

    tracker.stop();
    // Restart with the N objects present.
    operator.kill().await?;
    let calls_before_restart = emulator.counters().await?;
    let restarted_at = Instant::now();
    let operator = Operator::start(workspace, "scale-restart", &sandbox, &emulator, &flags).await?;
    let deadline = Instant::now() + timeout;
    for (kind, expected) in [
        ("FHIRDatastore", datastores),
        ("FHIRImportJob", jobs_each),
        ("FHIRExportJob", jobs_each),
    ] {
        while operator.reconciles(kind).await? < expected as f64 {
            if Instant::now() > deadline {
                anyhow::bail!("the restarted operator did not reconcile {expected} {kind} in time");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let seconds_to_reconciled = restarted_at.elapsed().as_secs_f64();
    let restart = operator.sample()?;
    let calls_on_restart = emulator.counters().await?.since(&calls_before_restart);
    operator.kill().await?;

    // Calls per object of the kind each operation serves.
    let per_kind = |counters: &crate::processes::Counters, jobs: bool| -> f64 {
        let calls: u64 = counters
            .by_operation
            .iter()
            .filter(|(operation, _)| operation.contains("Job") == jobs)
            .map(|(_, calls)| calls)
            .sum();
        let count = if jobs { 2 * jobs_each } else { datastores };
        calls as f64 / count.max(1) as f64
    };
    let by_operation: serde_json::Map<String, Value> = calls_to_ready
        .by_operation
        .iter()
        .map(|(operation, calls)| {
            let count = if operation.contains("Job") {
                2 * jobs_each
            } else {
                datastores
            };
            (
                operation.clone(),
                json!(*calls as f64 / count.max(1) as f64),
            )
        })
        .collect();
    let cpu_seconds = at_ready.cpu_seconds - idle.cpu_seconds;
    let datastore_writes = tracker.writes(Kind::Datastore).0;
    let datastore_events = events["FHIRDatastore"]["events"].clone();
    Ok(json!({
        "kinds": {"FHIRDatastore": datastores, "FHIRImportJob": jobs_each, "FHIRExportJob": jobs_each},
        "operator_flags": flags.join(" "),
        "emulator_flags": format!("--profile fast {}", emulator_flags.join(" ")),
        "objects": n,
        "create_seconds": created_in.as_secs_f64(),
        "seconds_to_ready": seconds_to_ready,
        "objects_per_second": n as f64 / seconds_to_ready,
        "rss_idle_mib": mib(idle.rss_kib),
        "rss_peak_mib": mib(at_ready.rss_peak_kib),
        "rss_steady_mib": mib(steady.rss_kib),
        "steady_after_seconds": settings.steady_wait.as_secs_f64(),
        "cpu_seconds": cpu_seconds,
        "cpu_ms_per_object": cpu_seconds * 1000.0 / n as f64,
        "aws_calls_per_datastore_to_ready": per_kind(&calls_to_ready, false),
        "aws_calls_per_job_to_ready": per_kind(&calls_to_ready, true),
        "aws_calls_per_object_to_ready_by_operation": by_operation,
        "aws_errors_to_ready": calls_to_ready.errors,
        "aws_calls_per_datastore_until_steady": per_kind(&calls_after_steady, false),
        "aws_calls_per_job_until_steady": per_kind(&calls_after_steady, true),
        "kubernetes_writes_per_datastore_to_ready": datastore_writes,
        "kubernetes_writes_per_object": writes,
        "kubernetes_watch_relists": tracker.gaps(),
        "events_per_datastore": datastore_events,
        "events_per_object": events,
        "restart": {
            "rss_peak_at_start_mib": mib(restart.rss_peak_kib),
            "seconds_until_reconciled": seconds_to_reconciled,
            "aws_calls": calls_on_restart.total(),
            "aws_calls_by_operation": calls_on_restart.by_operation,
            "cpu_seconds": restart.cpu_seconds,
        },
        "rss_peak_at_start_mib": mib(restart.rss_peak_kib),
    }))
}

/// The kinds of the scale run and their keys in results.json.
const KINDS: [(Kind, &str); 3] = [
    (Kind::Datastore, "FHIRDatastore"),
    (Kind::Import, "FHIRImportJob"),
    (Kind::Export, "FHIRExportJob"),
];
