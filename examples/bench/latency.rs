//! Item 4 of issue 11: how long after HealthLake changes state the status lands in Kubernetes,
//! with the operator's default intervals.
//!
//! The emulator runs the `realistic` profile (a datastore is CREATING 25 minutes, a job takes
//! about 16), so that the operator reaches its long poll as it would against AWS and the state
//! change falls anywhere between two polls. To fit that into a minute or two, the emulator's
//! clock runs `clock_speed` times faster than real time, every operator interval flag is divided
//! by the same factor, and every measured duration is read on the emulator's clock (real
//! durations times the factor). The price: the few milliseconds a status takes from the
//! operator's Describe to the bench's watch are magnified by the factor too; they are reported
//! on their own, in real milliseconds.
//!
//! The state change is the emulator's own record of it (the datastore's `status_since`, the
//! job's `end_time`, from `GET /_emulator/state`); the landing is the moment the bench's watch
//! sees `Ready=True`, converted to the emulator's clock.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use kube::api::ListParams;
use serde_json::{Value, json};

use crate::flags;
use crate::objects::{self, Kind, Sleep, Tracker};
use crate::processes::{Emulator, LIMITER_LIFTED, Operator, Sandbox, Workspace};

/// Settings of the latency run.
pub struct LatencySettings {
    /// Objects measured: half FHIRDatastores, half jobs (imports and exports).
    pub objects: usize,
    /// How many times faster than real time the emulator's clock and the operator's intervals run.
    pub clock_speed: u32,
    /// Real time over which the objects are created, one after the other.
    pub stagger: Duration,
}

/// Default interval flags besides [`flags::DEFAULT_INTERVALS`] that these runs scale too, so
/// that the stuck warnings come at the emulated times they would come at in real time.
const STUCK_INTERVALS: [(&str, f64); 2] = [
    ("--datastore-stuck-seconds", 7200.0),
    ("--job-stuck-seconds", 86400.0),
];

/// The default long poll: the interval that applies while a datastore is CREATING or a job runs.
const POLL_LONG_SECONDS: f64 = 45.0;

/// The realistic profile's datastore creation and job phases (submitted, queued, running).
const REALISTIC_CREATION_SECONDS: f64 = 25.0 * 60.0;
const REALISTIC_JOB_SECONDS: f64 = 30.0 + 60.0 + 15.0 * 60.0;

/// Every default interval flag divided by `speed`.
pub fn scaled_intervals(speed: f64) -> Vec<String> {
    flags::DEFAULT_INTERVALS
        .iter()
        .chain(&STUCK_INTERVALS)
        .flat_map(|(flag, seconds)| [(*flag).to_owned(), (seconds / speed).to_string()])
        .collect()
}

/// Maps system time to the emulator's clock, which runs `speed` times faster.
struct EmulatedClock {
    at_millis: f64,
    at: SystemTime,
    speed: f64,
}

impl EmulatedClock {
    fn millis(&self, time: SystemTime) -> f64 {
        let real = match time.duration_since(self.at) {
            Ok(after) => after.as_secs_f64(),
            Err(before) => -before.duration().as_secs_f64(),
        };
        self.at_millis + real * 1000.0 * self.speed
    }
}

/// One measured object.
struct Sample {
    /// Landing minus state change, in emulated seconds.
    latency: f64,
    /// The Describe that first saw the change minus the change, in emulated seconds: the
    /// operator's poll wait.
    poll_wait: Option<f64>,
    /// Landing minus the Describe that first saw the change, in real milliseconds.
    overhead_real_ms: Option<f64>,
}

/// Runs item 4; answers the `latency` object of results.json.
pub async fn run(workspace: &Workspace, settings: &LatencySettings) -> anyhow::Result<Value> {
    let speed = f64::from(settings.clock_speed.max(1));
    let datastores = settings.objects.div_ceil(2).max(1);
    let jobs = settings.objects.saturating_sub(datastores).max(1);
    let (sandbox, client) = Sandbox::start(workspace, "latency").await?;
    let max_datastores = (datastores + jobs + 10).to_string();
    let clock_speed = settings.clock_speed.max(1).to_string();
    let emulator = Emulator::start_with_profile(
        workspace,
        "latency",
        "realistic",
        &[
            "--no-quotas",
            "--max-datastores",
            &max_datastores,
            "--job-concurrency",
            "datastore",
            "--clock-speed",
            &clock_speed,
        ],
    )
    .await?;
    // Each job runs on a datastore of its own, already ACTIVE, so that no job waits for another.
    let mut seeded = Vec::with_capacity(jobs);
    for index in 0..jobs {
        seeded.push(
            emulator
                .seed_datastore(&format!("latency-seed-{index:03}"))
                .await?,
        );
    }
    let scaled = scaled_intervals(speed);
    let mut flags: Vec<&str> = scaled.iter().map(String::as_str).collect();
    flags.extend(LIMITER_LIFTED);
    flags.push("--allow-datastore-id-refs");
    let operator = Operator::start(workspace, "latency", &sandbox, &emulator, &flags).await?;

    let tracker = Tracker::default();
    for kind in [Kind::Datastore, Kind::Import, Kind::Export] {
        tracker.watch(&client, kind).await?;
    }
    let mut plan = Vec::with_capacity(datastores + jobs);
    for index in 0..datastores.max(jobs) {
        if index < datastores {
            let name = format!("latency-ds-{index:03}");
            plan.push((Kind::Datastore, objects::datastore(&name)?));
        }
        if let Some(datastore_id) = seeded.get(index) {
            let kind = if index % 2 == 0 {
                Kind::Import
            } else {
                Kind::Export
            };
            let name = format!("latency-job-{index:03}");
            plan.push((kind, job_on_id(kind, &name, datastore_id)?));
        }
    }
    eprintln!(
        "latency: {datastores} datastores and {jobs} jobs over {:.0} s, emulator realistic at clock speed {}",
        settings.stagger.as_secs_f64(),
        settings.clock_speed
    );
    let pause = settings.stagger / u32::try_from(plan.len()).unwrap_or(u32::MAX);
    for (kind, object) in plan {
        if let Some(failure) = objects::create_all(&client, vec![(kind, object)], 1)
            .await
            .into_iter()
            .next()
        {
            anyhow::bail!("failed to create a latency object: {failure}");
        }
        tokio::time::sleep(pause).await;
    }
    let timeout = Duration::from_secs_f64(
        (REALISTIC_CREATION_SECONDS.max(REALISTIC_JOB_SECONDS) + 4.0 * POLL_LONG_SECONDS) / speed
            + 30.0,
    );
    tracker
        .wait_ready(Kind::Datastore, datastores, timeout, Sleep)
        .await?;
    let imports = jobs.div_ceil(2);
    tracker
        .wait_ready(Kind::Import, imports, timeout, Sleep)
        .await?;
    tracker
        .wait_ready(Kind::Export, jobs - imports, timeout, Sleep)
        .await?;
    // Let the last Describes reach the call log before reading it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (at_millis, at) = emulator.clock_reading().await?;
    let clock = EmulatedClock {
        at_millis,
        at,
        speed,
    };
    let state = emulator.state().await?;
    let region = &state["regions"]["us-east-1"];

    let mut datastore_samples = Vec::new();
    let ids = aws_ids(&client, Kind::Datastore, "datastoreId").await?;
    let describes = describe_times(&emulator, "DescribeFHIRDatastore", "DatastoreId").await?;
    for (name, landed) in tracker.ready_times(Kind::Datastore) {
        let Some(id) = ids.get(&name) else { continue };
        let record = &region["datastores"][id];
        if record["status"] != "ACTIVE" {
            continue;
        }
        let Some(changed) = record["status_since"].as_f64() else {
            continue;
        };
        datastore_samples.push(sample(&clock, changed, landed, describes.get(id)));
    }
    let mut job_samples = Vec::new();
    for (kind, operation) in [
        (Kind::Import, "DescribeFHIRImportJob"),
        (Kind::Export, "DescribeFHIRExportJob"),
    ] {
        let ids = aws_ids(&client, kind, "jobId").await?;
        let describes = describe_times(&emulator, operation, "JobId").await?;
        for (name, landed) in tracker.ready_times(kind) {
            let Some(id) = ids.get(&name) else { continue };
            let Some(changed) = region["jobs"][id]["end_time"].as_f64() else {
                continue;
            };
            job_samples.push(sample(&clock, changed, landed, describes.get(id)));
        }
    }
    tracker.stop();
    operator.kill().await?;

    let all: Vec<&Sample> = datastore_samples.iter().chain(&job_samples).collect();
    let latencies: Vec<f64> = all.iter().map(|sample| sample.latency).collect();
    let overheads: Vec<f64> = all
        .iter()
        .filter_map(|sample| sample.overhead_real_ms)
        .collect();
    let waits: Vec<f64> = all.iter().filter_map(|sample| sample.poll_wait).collect();
    let of = |samples: &[Sample]| {
        let latencies: Vec<f64> = samples.iter().map(|sample| sample.latency).collect();
        json!({
            "samples": latencies.len(),
            "p50_seconds": quantile(&latencies, 0.50),
            "p99_seconds": quantile(&latencies, 0.99),
            "max_seconds": quantile(&latencies, 1.0),
        })
    };
    eprintln!(
        "latency: {} samples, p50 {:.1} s, p99 {:.1} s (emulated), landing overhead p99 {:.1} ms real",
        latencies.len(),
        quantile(&latencies, 0.50).unwrap_or(f64::NAN),
        quantile(&latencies, 0.99).unwrap_or(f64::NAN),
        quantile(&overheads, 0.99).unwrap_or(f64::NAN),
    );
    Ok(json!({
        "poll_interval_seconds": POLL_LONG_SECONDS,
        "poll_interval_note": "the long poll (--poll-long-seconds, plus 0-20% jitter) applies: the operator polls soon (5 s) once after a create or start, then every 45-54 s while a datastore is CREATING or a job runs",
        "p50_seconds": quantile(&latencies, 0.50),
        "p99_seconds": quantile(&latencies, 0.99),
        "max_seconds": quantile(&latencies, 1.0),
        "samples": latencies.len(),
        "target_p99_seconds": POLL_LONG_SECONDS + 1.0,
        "datastores_creating_to_active": of(&datastore_samples),
        "jobs_to_completed": of(&job_samples),
        "emulator_profile": "realistic",
        "clock_speed": settings.clock_speed,
        "seconds_note": "emulated seconds: real seconds times clock_speed, the operator's intervals divided by clock_speed",
        "poll_wait_p50_seconds": quantile(&waits, 0.50),
        "poll_wait_p99_seconds": quantile(&waits, 0.99),
        "poll_wait_note": "emulated seconds from the state change to the operator's Describe that saw it",
        "landing_overhead_real_ms_p50": quantile(&overheads, 0.50),
        "landing_overhead_real_ms_p99": quantile(&overheads, 0.99),
        "landing_overhead_note": "real milliseconds from the Describe that first saw the change to the bench's watch seeing Ready; counted clock_speed times in the latency",
    }))
}

/// A job of `kind` on the datastore with this HealthLake id (needs `--allow-datastore-id-refs`).
fn job_on_id(
    kind: Kind,
    name: &str,
    datastore_id: &str,
) -> anyhow::Result<kube::api::DynamicObject> {
    let mut object = objects::job(kind, name, "unused")?;
    let spec = object
        .data
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .context("a job object has no spec")?;
    spec.remove("datastoreRef");
    spec.insert("datastoreId".to_owned(), json!(datastore_id));
    Ok(object)
}

/// The HealthLake id in each object's status (`field`), by object name.
async fn aws_ids(
    client: &kube::Client,
    kind: Kind,
    field: &str,
) -> anyhow::Result<HashMap<String, String>> {
    let list = kind.api(client).list(&ListParams::default()).await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|object| {
            let id = object.data["status"][field].as_str()?.to_owned();
            Some((object.metadata.name?, id))
        })
        .collect())
}

/// The emulator times (epoch milliseconds) of the successful calls of `operation`, by the id in
/// their `parameter`, oldest first.
async fn describe_times(
    emulator: &Emulator,
    operation: &str,
    parameter: &str,
) -> anyhow::Result<HashMap<String, Vec<f64>>> {
    let mut times: HashMap<String, Vec<f64>> = HashMap::new();
    for call in emulator.calls(operation).await? {
        if !call["error_type"].is_null() {
            continue;
        }
        let (Some(id), Some(time)) = (
            call["parameters"][parameter].as_str(),
            call["time_millis"].as_f64(),
        ) else {
            continue;
        };
        times.entry(id.to_owned()).or_default().push(time);
    }
    Ok(times)
}

fn sample(
    clock: &EmulatedClock,
    changed_millis: f64,
    landed: SystemTime,
    describes: Option<&Vec<f64>>,
) -> Sample {
    let landed_millis = clock.millis(landed);
    let seen_by = describes.and_then(|times| {
        times
            .iter()
            .copied()
            .find(|time| *time >= changed_millis && *time <= landed_millis)
    });
    Sample {
        latency: (landed_millis - changed_millis) / 1000.0,
        poll_wait: seen_by.map(|describe| (describe - changed_millis) / 1000.0),
        overhead_real_ms: seen_by.map(|describe| (landed_millis - describe) / clock.speed),
    }
}

/// The nearest-rank quantile `q` (0..=1) of `values`; `None` without values.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
}
