//! Item 2 of issue 11: AWS calls per object over one simulated hour, with ACTIVE datastores and
//! finished jobs.
//!
//! The operator's intervals are real time, so the hour is simulated by dividing every interval
//! flag by `scale` (resync 600 s → 6 s at 100) and watching for 3600 / `scale` seconds, while
//! the emulator's clock is advanced by the same hour.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::flags::OperatorFlags;
use crate::objects::{self, AsyncTick, Kind, Sleep, Tracker};
use crate::processes::{Emulator, Operator, Sandbox, Workspace};

/// Settings of the economy run.
pub struct EconomySettings {
    /// ACTIVE datastores.
    pub datastores: usize,
    /// Finished jobs, half imports, half exports, spread over the datastores.
    pub jobs: usize,
    /// How much faster than real time the operator's intervals run.
    pub scale: f64,
}

const HOUR_SECONDS: f64 = 3600.0;

/// Advances the emulator's clock a minute per tick, so that queued jobs run and finish.
struct AdvanceClock<'a>(&'a Emulator);

impl AsyncTick for AdvanceClock<'_> {
    async fn tick(&mut self) -> anyhow::Result<()> {
        self.0.advance(60).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    }
}

/// Runs item 2 with the operator started with `operator`'s flags (scaled by `settings.scale`);
/// answers the `api_economy` object of results.json (or the baseline's, for item 7).
pub async fn run(
    workspace: &Workspace,
    settings: &EconomySettings,
    operator: &OperatorFlags,
) -> anyhow::Result<Value> {
    let name = match operator.name {
        "default" => "economy".to_owned(),
        other => format!("economy-{other}"),
    };
    let name = name.as_str();
    let (sandbox, client) = Sandbox::start(workspace, name).await?;
    let max_datastores = (settings.datastores + 10).to_string();
    let emulator = Emulator::start(
        workspace,
        name,
        &[
            "--no-quotas",
            "--max-datastores",
            &max_datastores,
            "--job-concurrency",
            "datastore",
        ],
    )
    .await?;
    let scaled = operator.scaled(settings.scale);
    let flags: Vec<&str> = scaled.iter().map(String::as_str).collect();
    let operator_flags = operator;
    let operator = Operator::start(workspace, name, &sandbox, &emulator, &flags).await?;

    let tracker = Tracker::default();
    for kind in [Kind::Datastore, Kind::Import, Kind::Export] {
        tracker.watch(&client, kind).await?;
    }
    let datastores: Vec<String> = (0..settings.datastores)
        .map(|index| format!("economy-{index:02}"))
        .collect();
    let objects = datastores
        .iter()
        .map(|name| Ok((Kind::Datastore, objects::datastore(name)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    fail_on(objects::create_all(&client, objects, 16).await)?;
    tracker
        .wait_ready(
            Kind::Datastore,
            datastores.len(),
            Duration::from_secs(120),
            Sleep,
        )
        .await?;

    let imports = settings.jobs / 2;
    let exports = settings.jobs - imports;
    let jobs = (0..settings.jobs)
        .map(|index| {
            let kind = if index < imports {
                Kind::Import
            } else {
                Kind::Export
            };
            let datastore = &datastores[index % datastores.len()];
            Ok((
                kind,
                objects::job(kind, &format!("job-{index:05}"), datastore)?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let calls_before_jobs = emulator.counters().await?;
    let started = Instant::now();
    fail_on(objects::create_all(&client, jobs, 32).await)?;
    let timeout = Duration::from_secs(300 + settings.jobs as u64);
    let clock = AdvanceClock(&emulator);
    tracker
        .wait_ready(Kind::Import, imports, timeout, clock)
        .await?;
    tracker
        .wait_ready(Kind::Export, exports, timeout, AdvanceClock(&emulator))
        .await?;
    let jobs_finished_in = started.elapsed().as_secs_f64();
    let calls_to_finish = emulator.counters().await?.since(&calls_before_jobs);
    eprintln!(
        "{name}: {} jobs finished in {jobs_finished_in:.1} s",
        settings.jobs
    );

    // Let the last status writes and their follow-up polls pass, then watch one simulated hour.
    tokio::time::sleep(Duration::from_secs_f64(60.0 / settings.scale)).await;
    let before = emulator.counters().await?;
    let hour = Duration::from_secs_f64(HOUR_SECONDS / settings.scale);
    let steps = 60u32;
    for _ in 0..steps {
        emulator
            .advance((HOUR_SECONDS as u64) / u64::from(steps))
            .await?;
        tokio::time::sleep(hour / steps).await;
    }
    let calls = emulator.counters().await?.since(&before);
    tracker.stop();
    operator.kill().await?;

    let jobs = settings.jobs.max(1) as f64;
    let datastores = settings.datastores.max(1) as f64;
    let is_job_operation = |operation: &str| operation.contains("Job");
    let job_calls: u64 = calls
        .by_operation
        .iter()
        .filter(|(operation, _)| is_job_operation(operation))
        .map(|(_, calls)| calls)
        .sum();
    let by_operation: serde_json::Map<String, Value> = calls
        .by_operation
        .iter()
        .map(|(operation, count)| {
            let per = if is_job_operation(operation) {
                jobs
            } else {
                datastores
            };
            (operation.clone(), json!(*count as f64 / per))
        })
        .collect();
    let resyncs = HOUR_SECONDS / 600.0;
    Ok(json!({
        "operator": operator_flags.name,
        "operator_flags": scaled.join(" "),
        "datastores": settings.datastores,
        "finished_jobs": settings.jobs,
        "interval_scale": settings.scale,
        "real_seconds_per_simulated_hour": hour.as_secs_f64(),
        "jobs_finished_in_seconds": jobs_finished_in,
        "calls_per_finished_job_per_hour": job_calls as f64 / jobs,
        "describes_per_datastore_per_resync":
            calls.matching("DescribeFHIRDatastore") as f64 / datastores / resyncs,
        "calls_per_datastore_per_hour":
            (calls.total() - job_calls) as f64 / datastores,
        "by_operation": by_operation,
        "by_operation_note": "calls per object per simulated hour: job operations per finished job, the others per datastore",
        "errors": calls.errors,
        "calls_while_jobs_ran": calls_to_finish.by_operation,
    }))
}

fn fail_on(failures: Vec<String>) -> anyhow::Result<()> {
    match failures.first() {
        None => Ok(()),
        Some(first) => anyhow::bail!("{} creates failed, the first: {first}", failures.len()),
    }
}
