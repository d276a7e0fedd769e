//! Item 6 of issue 11: the same objects converged twice on fresh processes, once fault-free and
//! once with every HealthLake call failing at random (30% ThrottlingException, 5%
//! InternalServerException) and answered 200 ms late; the AWS calls of the two runs compared, and
//! the emulator's call log searched for retries sooner than the operator's backoff allows.
//!
//! The emulator's clock runs `speed` times faster than real time and the operator's intervals
//! are scaled to match (see [`crate::flags`]); the latency is scaled too (200 ms emulated is
//! 200 / `speed` ms real), and every time below is on the emulator's clock. The emulator runs
//! without request quotas, so the operator runs with its limiter lifted, as for an account whose
//! quotas are far above what the drill needs: the drill is about retries, and a 1/min start
//! budget would stretch it to hours of emulated time, forcing a speed at which the check below
//! goes blind.
//!
//! The check is only as fine as the operator's scheduler: kube-runtime debounces every reconcile
//! by 200 ms of real time (`src/controller/mod.rs`), which is `0.2 * speed` emulated seconds, so
//! a retry can never be seen sooner than that; a bound below it cannot be broken visibly. The
//! figures say how many checked retries had a bound above it.
//!
//! **Backoff violations.** The operator retries an object after a failed call no sooner than
//! half of `min(base * 2^(n - 1), max)` (exponential backoff with "equal jitter",
//! `src/controller/errors.rs`), `n` being the object's consecutive failures. The log's calls are
//! grouped by the object they are about (datastore name or id, job name or id, tagged ARN); after
//! each failed call, the object's next call must come at least that long after it. `n` counts the
//! failed calls since the object's last successful one, which never exceeds the operator's own
//! count, so the bound is never stricter than the operator's: every violation found is real.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::flags::{Limiter, OperatorFlags};
use crate::objects::{self, Kind, Tracker};
use crate::processes::{Emulator, Operator, Sandbox, Workspace};

/// Settings of the fault drill.
pub struct FaultSettings {
    /// Objects of each kind: datastores, import jobs, export jobs (one of each per datastore).
    pub objects: usize,
    /// How many times faster than real time the emulator's clock runs.
    pub speed: u32,
}

/// Probability that a call fails with ThrottlingException.
const THROTTLING: f64 = 0.30;
/// Probability that a call fails with InternalServerException.
const INTERNAL_SERVER: f64 = 0.05;
/// kube-runtime's debounce of every reconcile in the operator, in real seconds.
const DEBOUNCE_SECONDS: f64 = 0.2;
/// Latency added to every call, in emulated milliseconds.
const LATENCY_MILLIS: f64 = 200.0;
/// Every operation the emulator serves, by its AWS name.
const OPERATIONS: [&str; 13] = [
    "CreateFHIRDatastore",
    "DeleteFHIRDatastore",
    "DescribeFHIRDatastore",
    "DescribeFHIRExportJob",
    "DescribeFHIRImportJob",
    "ListFHIRDatastores",
    "ListFHIRExportJobs",
    "ListFHIRImportJobs",
    "ListTagsForResource",
    "StartFHIRExportJob",
    "StartFHIRImportJob",
    "TagResource",
    "UntagResource",
];

/// What one run of the drill measured.
struct Drill {
    objects: usize,
    ready: usize,
    calls: crate::processes::Counters,
    backoff: BackoffCheck,
    /// Calls about each object until it was Ready, summed (every call for one never Ready).
    calls_to_ready: u64,
    emulated_seconds: f64,
    real_seconds: f64,
    latency_real_millis: u64,
}

/// Runs item 6 with the operator started with `operator`'s flags; answers the `fault_drill`
/// object of results.json (or the baseline's, for item 7).
pub async fn run(
    workspace: &Workspace,
    settings: &FaultSettings,
    operator: &OperatorFlags,
) -> anyhow::Result<Value> {
    let clean = drill(workspace, settings, operator, false).await?;
    let faulty = drill(workspace, settings, operator, true).await?;
    let total = faulty.objects.max(1);
    let ratio = faulty.calls.total() as f64 / clean.calls.total().max(1) as f64;
    let extra: BTreeMap<String, i64> = faulty
        .calls
        .by_operation
        .iter()
        .map(|(operation, calls)| {
            let before = clean
                .calls
                .by_operation
                .get(operation)
                .copied()
                .unwrap_or(0);
            (operation.clone(), *calls as i64 - before as i64)
        })
        .collect();
    Ok(json!({
        "operator": operator.name,
        "operator_flags": operator.describe(f64::from(settings.speed.max(1))),
        "clock_speed": settings.speed,
        "faults": {
            "throttling_probability": THROTTLING,
            "internal_server_probability": INTERNAL_SERVER,
            "latency_emulated_millis": faulty.latency_real_millis * u64::from(settings.speed.max(1)),
            "latency_real_millis": faulty.latency_real_millis,
            "operations": "all",
        },
        "converged": faulty.ready as f64 / total as f64,
        "converged_objects": faulty.ready,
        "objects": faulty.objects,
        "calls_ratio_vs_fault_free": ratio,
        "calls_ratio_definition": "every AWS call of the faulty run until all objects were Ready / the same for the fault-free run; a longer run also makes more resync and poll calls of objects already Ready",
        "calls_to_ready_ratio_vs_fault_free":
            faulty.calls_to_ready as f64 / clean.calls_to_ready.max(1) as f64,
        // Even an operator that repeated only each failed call would make 1 / (1 - p) times
        // the calls, p being the chance that a call fails.
        "calls_ratio_floor": 1.0 / (1.0 - THROTTLING - INTERNAL_SERVER),
        "extra_calls_by_operation": extra,
        "backoff_violations": faulty.backoff.violations,
        "backoff_check_blind_below_emulated_seconds": DEBOUNCE_SECONDS * f64::from(settings.speed.max(1)),
        "backoff_definition": "a call about an object sooner after its failed call than half of min(base * 2^(n-1), max), n = failed calls since its last success (emulator clock)",
        "fault_free": summary(&clean),
        "faulty": summary(&faulty),
    }))
}

fn summary(drill: &Drill) -> Value {
    json!({
        "objects": drill.objects,
        "converged_objects": drill.ready,
        "calls": drill.calls.total(),
        "errors": drill.calls.errors,
        "throttled": drill.calls.throttled,
        "calls_by_operation": drill.calls.by_operation,
        "calls_to_ready": drill.calls_to_ready,
        "retries_checked": drill.backoff.checked,
        "retries_checked_with_bound_above_blind_spot": drill.backoff.sensitive,
        "backoff_violations": drill.backoff.violations,
        "worst_violations": drill.backoff.worst,
        "calls_not_about_one_object": drill.backoff.unattributed,
        "emulated_seconds_to_converge": drill.emulated_seconds,
        "real_seconds_to_converge": drill.real_seconds,
    })
}

async fn drill(
    workspace: &Workspace,
    settings: &FaultSettings,
    operator: &OperatorFlags,
    faulty: bool,
) -> anyhow::Result<Drill> {
    let name = format!(
        "faults-{}{}",
        if faulty { "faulty" } else { "clean" },
        match operator.name {
            "default" => String::new(),
            other => format!("-{other}"),
        }
    );
    let name = name.as_str();
    let speed = settings.speed.max(1);
    let count = settings.objects.max(1);
    let (sandbox, client) = Sandbox::start(workspace, name).await?;
    let max_datastores = (count + 10).to_string();
    let speed_flag = speed.to_string();
    let emulator = Emulator::start(
        workspace,
        name,
        &[
            "--no-quotas",
            "--max-datastores",
            &max_datastores,
            "--job-concurrency",
            "datastore",
            "--clock-speed",
            &speed_flag,
        ],
    )
    .await?;
    let latency_real_millis = (LATENCY_MILLIS / f64::from(speed)).round().max(1.0) as u64;
    if faulty {
        for operation in OPERATIONS {
            emulator
                .inject(&json!({
                    "kind": "error_probability",
                    "operation": operation,
                    "throttling": THROTTLING,
                    "internal_server": INTERNAL_SERVER,
                }))
                .await?;
        }
        emulator
            .inject(&json!({"kind": "latency", "millis": latency_real_millis}))
            .await?;
    }
    let flags = operator.scaled(f64::from(speed));
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let operator_process =
        Operator::start(workspace, name, &sandbox, &emulator, &flag_refs).await?;

    let tracker = Tracker::default();
    for kind in [Kind::Datastore, Kind::Import, Kind::Export] {
        tracker.watch(&client, kind).await?;
    }
    let mut created = Vec::with_capacity(3 * count);
    for index in 0..count {
        let datastore = format!("fault-{index:03}");
        created.push((
            Kind::Import,
            objects::job(
                Kind::Import,
                &format!("fault-import-{index:03}"),
                &datastore,
            )?,
        ));
        created.push((
            Kind::Export,
            objects::job(
                Kind::Export,
                &format!("fault-export-{index:03}"),
                &datastore,
            )?,
        ));
        created.push((Kind::Datastore, objects::datastore(&datastore)?));
    }
    let started_at = emulator.clock_millis().await?;
    let started = Instant::now();
    let failures = objects::create_all(&client, created, 32).await;
    if let Some(first) = failures.first() {
        anyhow::bail!(
            "{name}: {} creates failed, the first: {first}",
            failures.len()
        );
    }
    // With the shipped limiter, job starts share one bucket at 90% of 1/min and a throttled
    // call costs it another interval: four intervals a start is a generous bound. Without it,
    // an emulated hour is.
    let emulated_budget = match operator.limiter {
        Limiter::Default => 4.0 * (2.0 * count as f64 + 2.0) * 60.0 / 0.9,
        Limiter::Lifted => 3600.0,
    };
    let timeout = Duration::from_secs_f64(120.0 + emulated_budget / f64::from(speed));
    tracker
        .wait_all_ready(
            &[
                (Kind::Datastore, count),
                (Kind::Import, count),
                (Kind::Export, count),
            ],
            timeout,
            name,
        )
        .await;
    let real_seconds = started.elapsed().as_secs_f64();
    let ended_at = emulator.clock_millis().await?;
    let calls = emulator.counters().await?;
    let log = emulator.all_calls().await?;
    let state = emulator.state().await?;
    let ready =
        tracker.ready(Kind::Datastore) + tracker.ready(Kind::Import) + tracker.ready(Kind::Export);
    // When each object was first seen Ready, on the emulator's clock.
    let ready_at: HashMap<String, i64> = [
        (Kind::Datastore, "datastore"),
        (Kind::Import, "import"),
        (Kind::Export, "export"),
    ]
    .into_iter()
    .flat_map(|(kind, prefix)| {
        tracker
            .ready_instants(kind)
            .into_iter()
            .map(move |(name, at)| (format!("{prefix}:{name}"), at))
    })
    .map(|(object, at)| {
        let real = at.saturating_duration_since(started).as_secs_f64();
        (
            object,
            started_at + (real * f64::from(speed) * 1000.0) as i64,
        )
    })
    .collect();
    tracker.stop();
    operator_process.kill().await?;

    let seconds = |flag: &str| {
        operator
            .intervals
            .iter()
            .find(|(name, _)| *name == flag)
            .map_or(0.0, |(_, value)| *value)
    };
    let backoff = check_backoff(
        &log,
        &state,
        seconds("--backoff-base-seconds"),
        seconds("--backoff-max-seconds"),
        DEBOUNCE_SECONDS * f64::from(speed),
    );
    let names = Names::from_state(&state);
    let calls_to_ready = log
        .iter()
        .filter(|call| {
            let operation = call["operation"].as_str().unwrap_or_default();
            names
                .object_of(operation, &call["parameters"])
                .is_none_or(|object| {
                    let time = call["time_millis"].as_i64().unwrap_or(0);
                    ready_at.get(&object).is_none_or(|ready| time <= *ready)
                })
        })
        .count() as u64;
    eprintln!(
        "{name}: {ready}/{} Ready, {} calls ({} failed), {} backoff violations in {} retries, {real_seconds:.0} s real",
        3 * count,
        calls.total(),
        calls.errors,
        backoff.violations,
        backoff.checked
    );
    Ok(Drill {
        objects: 3 * count,
        ready,
        calls,
        backoff,
        calls_to_ready,
        emulated_seconds: (ended_at - started_at).max(0) as f64 / 1000.0,
        real_seconds,
        latency_real_millis: if faulty { latency_real_millis } else { 0 },
    })
}

/// What the call log says about retries after failed calls.
#[derive(Debug, Default)]
struct BackoffCheck {
    /// Calls that followed a failed call about the same object.
    checked: u64,
    /// Of those, the ones whose bound is above the blind spot (could be seen breaking it).
    sensitive: u64,
    /// Of those, the ones sooner than the backoff allows.
    violations: u64,
    /// The ten shortest violations: object, operation, gap and bound in emulated seconds.
    worst: Vec<Value>,
    /// Calls the check could not tie to one object (lists without a name filter).
    unattributed: u64,
}

/// Checks every retry in `log` against the backoff of `base` doubling to `max` (emulated
/// seconds), with equal jitter (the wait is at least half the ceiling); `blind` is the gap below
/// which no retry can be seen (the debounce).
fn check_backoff(log: &[Value], state: &Value, base: f64, max: f64, blind: f64) -> BackoffCheck {
    let names = Names::from_state(state);
    // Per object: the time of its last failed call and the failures since its last success.
    let mut failing: HashMap<String, (i64, u32)> = HashMap::new();
    let mut check = BackoffCheck::default();
    let mut violations: Vec<(f64, Value)> = Vec::new();
    for call in log {
        let operation = call["operation"].as_str().unwrap_or_default();
        let Some(object) = names.object_of(operation, &call["parameters"]) else {
            check.unattributed += 1;
            continue;
        };
        let time = call["time_millis"].as_i64().unwrap_or(0);
        if let Some((failed_at, failures)) = failing.get(&object).copied() {
            check.checked += 1;
            let exponent = failures.saturating_sub(1).min(16);
            let ceiling = (base * f64::from(1u32 << exponent)).min(max);
            let bound = ceiling / 2.0;
            if bound > blind {
                check.sensitive += 1;
            }
            let gap = (time - failed_at) as f64 / 1000.0;
            // One emulated millisecond of rounding in the log's times.
            if gap + 0.001 < bound {
                check.violations += 1;
                violations.push((
                    gap - bound,
                    json!({
                        "object": object,
                        "operation": operation,
                        "failures_before": failures,
                        "gap_seconds": gap,
                        "backoff_at_least_seconds": bound,
                    }),
                ));
            }
        }
        let retryable = matches!(
            call["error_type"].as_str(),
            Some("ThrottlingException" | "InternalServerException")
        );
        if retryable {
            let failures = failing.get(&object).map_or(0, |(_, failures)| *failures) + 1;
            failing.insert(object, (time, failures));
        } else if call["error_type"].is_null() {
            failing.remove(&object);
        }
    }
    violations.sort_by(|a, b| a.0.total_cmp(&b.0));
    check.worst = violations
        .into_iter()
        .take(10)
        .map(|(_, value)| value)
        .collect();
    check
}

/// Names of the emulator's datastores and jobs by id, to tie calls to objects.
struct Names {
    datastores: HashMap<String, String>,
    jobs: HashMap<String, String>,
}

impl Names {
    fn from_state(state: &Value) -> Self {
        let mut datastores = HashMap::new();
        let mut jobs = HashMap::new();
        for region in state["regions"].as_object().into_iter().flatten() {
            for (id, datastore) in region.1["datastores"].as_object().into_iter().flatten() {
                let name = datastore["name"].as_str().unwrap_or(id);
                datastores.insert(id.clone(), name.to_owned());
            }
            for (id, job) in region.1["jobs"].as_object().into_iter().flatten() {
                let name = job["name"].as_str().unwrap_or(id);
                jobs.insert(id.clone(), name.to_owned());
            }
        }
        Self { datastores, jobs }
    }

    /// The object a call is about: `datastore:<name>`, `import:<name>` or `export:<name>`.
    fn object_of(&self, operation: &str, parameters: &Value) -> Option<String> {
        let text = |key: &str| parameters[key].as_str();
        let job_kind = if operation.contains("Import") {
            Some("import")
        } else if operation.contains("Export") {
            Some("export")
        } else {
            None
        };
        if let Some(kind) = job_kind {
            let name = match text("JobId") {
                Some(id) => self.jobs.get(id).cloned().unwrap_or_else(|| id.to_owned()),
                None => text("JobName")?.to_owned(),
            };
            return Some(format!("{kind}:{name}"));
        }
        let datastore_id = text("DatastoreId").map(str::to_owned).or_else(|| {
            // arn:aws:healthlake:<region>:<account>:datastore/fhir/<id>
            text("ResourceARN").and_then(|arn| arn.rsplit('/').next().map(str::to_owned))
        });
        let name = match datastore_id {
            Some(id) => self.datastores.get(&id).cloned().unwrap_or(id),
            None => text("DatastoreName")
                .or_else(|| parameters["Filter"]["DatastoreName"].as_str())?
                .to_owned(),
        };
        Some(format!("datastore:{name}"))
    }
}
