//! Item 1 of issue 11: N FHIRDatastores created at once, then the operator restarted with them.

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
}

/// `run` flags of the scale run besides the lifted limiter: polls every second, so that the time
/// to Ready measures the operator's throughput rather than its 45 s poll interval (the emulator's
/// `fast` profile creates a datastore in 5 s).
const POLL_FLAGS: [&str; 4] = ["--poll-soon-seconds", "1", "--poll-long-seconds", "1"];

/// Runs item 1; answers the `scale` object of results.json.
pub async fn run(workspace: &Workspace, settings: &ScaleSettings) -> anyhow::Result<Value> {
    let n = settings.objects;
    let (sandbox, client) = Sandbox::start(workspace, "scale").await?;
    let max_datastores = (n + 10).to_string();
    let emulator = Emulator::start(
        workspace,
        "scale",
        &["--no-quotas", "--max-datastores", &max_datastores],
    )
    .await?;
    let flags: Vec<&str> = LIMITER_LIFTED.iter().chain(&POLL_FLAGS).copied().collect();
    let operator = Operator::start(workspace, "scale", &sandbox, &emulator, &flags).await?;

    // Idle: no objects.
    tokio::time::sleep(settings.idle_wait).await;
    let idle = operator.sample()?;
    eprintln!("scale: idle rss {:.1} MiB", mib(idle.rss_kib));

    // N objects created at once.
    let tracker = Tracker::default();
    tracker.watch(&client, Kind::Datastore).await?;
    let objects = (0..n)
        .map(|index| {
            Ok((
                Kind::Datastore,
                objects::datastore(&format!("bench-{index:05}"))?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let calls_before = emulator.counters().await?;
    let started = Instant::now();
    let failures = objects::create_all(&client, objects, settings.in_flight).await;
    let created_in = started.elapsed();
    if let Some(first) = failures.first() {
        anyhow::bail!("{} creates failed, the first: {first}", failures.len());
    }
    eprintln!("scale: {n} created in {:.1} s", created_in.as_secs_f64());
    let timeout = Duration::from_secs(120 + n as u64 / 5);
    let last_ready = tracker
        .wait_ready(Kind::Datastore, n, timeout, Sleep)
        .await?;
    let seconds_to_ready = last_ready.duration_since(started).as_secs_f64();
    let at_ready = operator.sample()?;
    let calls_to_ready = emulator.counters().await?.since(&calls_before);
    eprintln!("scale: {n} Ready after {seconds_to_ready:.1} s");

    tokio::time::sleep(settings.steady_wait).await;
    let steady = operator.sample()?;
    let (writes_to_ready, writes_in_all) = tracker.writes(Kind::Datastore);
    let (events, event_occurrences) = objects::events_about(&client, Kind::Datastore).await?;
    let calls_after_steady = emulator.counters().await?.since(&calls_before);

    tracker.stop();
    // Restart with the N objects present.
    operator.kill().await?;
    let calls_before_restart = emulator.counters().await?;
    let restarted_at = Instant::now();
    let operator = Operator::start(workspace, "scale-restart", &sandbox, &emulator, &flags).await?;
    let deadline = Instant::now() + timeout;
    while operator.reconciles("FHIRDatastore").await? < n as f64 {
        if Instant::now() > deadline {
            anyhow::bail!("the restarted operator did not reconcile {n} datastores in time");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seconds_to_reconciled = restarted_at.elapsed().as_secs_f64();
    let restart = operator.sample()?;
    let calls_on_restart = emulator.counters().await?.since(&calls_before_restart);
    operator.kill().await?;

    let per_object = |count: u64| count as f64 / n as f64;
    let by_operation: serde_json::Map<String, Value> = calls_to_ready
        .by_operation
        .iter()
        .map(|(operation, calls)| (operation.clone(), json!(per_object(*calls))))
        .collect();
    let cpu_seconds = at_ready.cpu_seconds - idle.cpu_seconds;
    Ok(json!({
        "kind": "FHIRDatastore",
        "operator_flags": flags.join(" "),
        "emulator_flags": format!("--profile fast --no-quotas --max-datastores {max_datastores}"),
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
        "aws_calls_per_object_to_ready": per_object(calls_to_ready.total()),
        "aws_calls_per_object_to_ready_by_operation": by_operation,
        "aws_errors_to_ready": calls_to_ready.errors,
        "aws_calls_per_object_until_steady": per_object(calls_after_steady.total()),
        "kubernetes_writes_per_object_to_ready": writes_to_ready,
        "kubernetes_writes_per_object_until_steady": writes_in_all,
        "kubernetes_watch_relists": tracker.gaps(),
        "events_per_object": per_object(events),
        "event_occurrences_per_object": per_object(event_occurrences),
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
