//! Item 3 of issue 11: how much of HealthLake's published request quotas the operator uses, and
//! how often it is throttled, with 500 import jobs over 10 datastores.
//!
//! The emulator enforces its default quotas (1 CreateFHIRDatastore and 1 StartFHIRImportJob a
//! minute, 10 reads of each operation a second), 10 datastores, and one running import per
//! account-region, on a clock running `speed` times faster than real time; the operator's
//! intervals and limiter are scaled by the same factor (see [`crate::flags`]).
//!
//! **When a start is possible.** The emulator accepts a StartFHIRImportJob whenever its 1/min
//! bucket holds a token: while another import runs, the new job waits QUEUED (one running import
//! per account-region), so a running import never makes a start impossible; only the bucket does.
//! The bucket is full when the imports are created (nothing was started before), so from the
//! moment they exist (`t0`) until the last start was accepted (`t1`) a start is possible as often
//! as the bucket allows: at most `1 + (t1 - t0) / 60 s` starts. The start-rate fraction is the
//! accepted starts over that number: 1.0 means every token was used the moment it came back.
//! Accepted starts are the import jobs the emulator holds (a retried start with the same
//! ClientToken makes no second job), with their `SubmitTime` on the emulator's clock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::flags::{Limiter, OperatorFlags};
use crate::objects::{self, Kind, Tracker};
use crate::processes::{Emulator, Operator, Sandbox, Workspace};

/// What a start-rate fraction means, written next to it in results.json.
pub const START_RATE_DEFINITION: &str = "accepted StartFHIRImportJob calls / (1 + (t1 - t0) / 60 s): t0 = the imports exist in Kubernetes, t1 = the last start accepted; a start is possible whenever the emulator's 1/min bucket holds a token (a start while another import runs is accepted and queued, so only the bucket bounds starts)";

/// HealthLake's published StartFHIRImportJob quota, per emulated minute.
const STARTS_PER_MINUTE: f64 = 1.0;
/// HealthLake's published read quota, per emulated second.
const READS_PER_SECOND: f64 = 10.0;
/// The operator's default safety margin: its limiter aims at 97% of each quota.
const DEFAULT_SAFETY_MARGIN: f64 = 0.03;

/// Settings of the quota run.
pub struct QuotaSettings {
    /// Datastores (HealthLake's default data store quota is 10).
    pub datastores: usize,
    /// Import jobs, spread over the datastores.
    pub jobs: usize,
    /// How many times faster than real time the emulator's clock runs.
    pub speed: u32,
}

/// Runs item 3 with the operator started with `operator`'s flags; answers the `quota_use`
/// object of results.json (or the baseline's, for item 7).
pub async fn run(
    workspace: &Workspace,
    settings: &QuotaSettings,
    operator: &OperatorFlags,
) -> anyhow::Result<Value> {
    let name = match operator.name {
        "default" => "quota".to_owned(),
        other => format!("quota-{other}"),
    };
    let name = name.as_str();
    let speed = f64::from(settings.speed.max(1));
    let (sandbox, client) = Sandbox::start(workspace, name).await?;
    let max_datastores = settings.datastores.max(1).to_string();
    let speed_flag = settings.speed.max(1).to_string();
    let emulator = Emulator::start(
        workspace,
        name,
        &[
            "--max-datastores",
            &max_datastores,
            "--job-concurrency",
            "account",
            "--clock-speed",
            &speed_flag,
        ],
    )
    .await?;
    let flags = operator.scaled(speed);
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let operator_process =
        Operator::start(workspace, name, &sandbox, &emulator, &flag_refs).await?;
    let started = Instant::now();

    let tracker = Tracker::default();
    for kind in [Kind::Datastore, Kind::Import] {
        tracker.watch(&client, kind).await?;
    }
    let datastores: Vec<String> = (0..settings.datastores.max(1))
        .map(|index| format!("quota-{index:02}"))
        .collect();
    let objects = datastores
        .iter()
        .map(|name| Ok((Kind::Datastore, objects::datastore(name)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    fail_on(objects::create_all(&client, objects, 16).await)?;
    // One create a minute: the last datastore is created after (n - 1) emulated minutes.
    let create_minutes = datastores.len() as f64 + 2.0;
    let timeout = Duration::from_secs_f64(60.0 + 3.0 * create_minutes * 60.0 / speed);
    let datastores_ready = tracker
        .wait_all_ready(&[(Kind::Datastore, datastores.len())], timeout, name)
        .await;
    anyhow::ensure!(
        datastores_ready,
        "{name}: only {} of {} datastores became Ready, so no import could start",
        tracker.ready(Kind::Datastore),
        datastores.len()
    );

    let jobs = (0..settings.jobs)
        .map(|index| {
            let datastore = &datastores[index % datastores.len()];
            Ok((
                Kind::Import,
                objects::job(Kind::Import, &format!("import-{index:05}"), datastore)?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let before = emulator.counters().await?;
    let demand_at = emulator.clock_millis().await?;
    let demand_real = Instant::now();
    fail_on(objects::create_all(&client, jobs, 32).await)?;
    // One start a minute at 90% of the quota, and three times that before giving up.
    let timeout = Duration::from_secs_f64(
        120.0 + 3.0 * (settings.jobs as f64 + 2.0) * 60.0 / STARTS_PER_MINUTE / speed,
    );
    let all_ready = tracker
        .wait_all_ready(&[(Kind::Import, settings.jobs)], timeout, name)
        .await;
    let end_at = emulator.clock_millis().await?;
    let imports_real_seconds = demand_real.elapsed().as_secs_f64();
    let calls = emulator.counters().await?;
    let during = calls.since(&before);
    let counters = emulator.counters_json().await?;
    let state = emulator.state().await?;
    tracker.stop();
    operator_process.kill().await?;

    let mut submits = import_submit_times(&state);
    submits.sort_unstable();
    let starts = submits.len();
    let first = submits.first().copied().unwrap_or(demand_at);
    let last = submits.last().copied().unwrap_or(demand_at);
    let window_seconds = (last - demand_at).max(0) as f64 / 1000.0;
    let allowed = 1.0 + window_seconds * STARTS_PER_MINUTE / 60.0;
    let start_rate_fraction = starts as f64 / allowed;
    let mut gaps: Vec<f64> = submits
        .windows(2)
        .map(|pair| (pair[1] - pair[0]) as f64 / 1000.0)
        .collect();
    gaps.sort_by(f64::total_cmp);
    // How long the imports waited, in all, for their start to be accepted.
    let waited_seconds: f64 = submits
        .iter()
        .map(|submit| (submit - demand_at).max(0) as f64 / 1000.0)
        .sum();
    let emulated_seconds = ((end_at - demand_at).max(1) as f64) / 1000.0;
    let describes = during.matching("Describe");
    let reads = describes + during.matching("List");
    let describe_rate = describes as f64 / emulated_seconds;
    eprintln!(
        "{name}: {starts} imports started in {window_seconds:.0} emulated s \
         (start-rate fraction {start_rate_fraction:.3}), {} throttled calls, {:.0} s real",
        calls.throttled,
        started.elapsed().as_secs_f64()
    );

    let mut figures = json!({
        "operator": operator.name,
        "operator_flags": flags.join(" "),
        "clock_speed": settings.speed,
        // kube-runtime's 200 ms reconcile debounce in the operator is real time: sped up, it
        // delays every reconcile by this many emulated seconds.
        "operator_debounce_emulated_seconds": 0.2 * speed,
        "datastores": datastores.len(),
        "imports": settings.jobs,
        "imports_ready": tracker.ready(Kind::Import),
        "all_ready": all_ready,
        "imports_started": starts,
        "start_rate_fraction": start_rate_fraction,
        "start_rate_definition": START_RATE_DEFINITION,
        "start_window_emulated_seconds": window_seconds,
        "import_wait_emulated_seconds_total": waited_seconds,
        "starts_allowed_in_window": allowed,
        "first_start_after_emulated_seconds": (first - demand_at).max(0) as f64 / 1000.0,
        "start_gap_emulated_seconds": {
            "p50": percentile(&gaps, 0.5),
            "p99": percentile(&gaps, 0.99),
            "min": gaps.first().copied().unwrap_or(0.0),
            "max": gaps.last().copied().unwrap_or(0.0),
        },
        "describe_rate_fraction": describe_rate / READS_PER_SECOND,
        "describe_rate_definition": "Describe* calls per emulated second while the imports were started and run (t0 to all Ready), over the 10/s read quota",
        "describes": describes,
        "describes_per_emulated_second": describe_rate,
        "read_rate_fraction": reads as f64 / emulated_seconds / READS_PER_SECOND,
        "throttled_calls": calls.throttled,
        "throttled_by_operation": throttled_by_operation(&counters),
        "calls_by_operation": calls.by_operation,
        "calls_while_importing": during.by_operation,
        "emulated_seconds": emulated_seconds,
        "real_seconds": imports_real_seconds,
        "real_seconds_total": started.elapsed().as_secs_f64(),
    });
    let backoff = |flag: &str| {
        operator
            .intervals
            .iter()
            .find(|(name, _)| *name == flag)
            .map(|(_, seconds)| *seconds)
    };
    if operator.limiter == Limiter::Lifted
        && let (Some(base), Some(max)) = (
            backoff("--backoff-base-seconds"),
            backoff("--backoff-max-seconds"),
        )
        && base == max
    {
        // A fixed requeue retries a waiting import every 0.75 * max on average (equal jitter):
        // in real time it would make that many throttled starts while the imports wait. Sped
        // up, the operator cannot retry that often, so the measured count is a lower bound.
        figures["throttled_calls_estimate_at_real_speed"] = json!(waited_seconds / (0.75 * max));
        figures["throttled_calls_estimate_definition"] = json!(
            "the imports' total wait for an accepted start / the mean fixed requeue (0.75 * 5 s): the throttled starts a fixed requeue makes at clock speed 1; the measured throttled_calls is a lower bound because, sped up, the operator retries far less often than every 5 emulated seconds (its 200 ms reconcile debounce alone is 0.2 * clock_speed emulated seconds, and the CPU is shared)"
        );
    }
    if operator.limiter == Limiter::Default {
        // The shipped limiter aims at 97% of each quota: 0.97 is its ceiling.
        figures["limiter_safety_margin"] = json!(DEFAULT_SAFETY_MARGIN);
        figures["start_rate_fraction_of_limiter_budget"] =
            json!(start_rate_fraction / (1.0 - DEFAULT_SAFETY_MARGIN));
    }
    Ok(figures)
}

/// The `SubmitTime` (emulator epoch milliseconds) of every import job the emulator holds.
fn import_submit_times(state: &Value) -> Vec<i64> {
    state["regions"]
        .as_object()
        .into_iter()
        .flat_map(|regions| regions.values())
        .filter_map(|region| region["jobs"].as_object())
        .flat_map(|jobs| jobs.values())
        .filter(|job| job["kind"] == "import")
        .filter_map(|job| job["submit_time"].as_i64())
        .collect()
}

/// ThrottlingExceptions by operation, from the raw counters.
pub fn throttled_by_operation(counters: &Value) -> BTreeMap<String, u64> {
    counters
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(operation, counts)| {
            let throttled = counts["errors"]["ThrottlingException"].as_u64()?;
            Some((operation.clone(), throttled))
        })
        .filter(|(_, throttled)| *throttled > 0)
        .collect()
}

/// The `fraction` percentile of sorted `values` (0 when empty).
pub fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn fail_on(failures: Vec<String>) -> anyhow::Result<()> {
    match failures.first() {
        None => Ok(()),
        Some(first) => anyhow::bail!("{} creates failed, the first: {first}", failures.len()),
    }
}
