//! `make bench`: the operator's benchmarks (issue 11), run against the release binary.
//!
//! The operator runs as its own process (`healthlake-operator run`), so that the RSS and CPU
//! time read from /proc are its own, against the in-memory Kubernetes API
//! (`healthlake-operator sandbox`) and the HealthLake emulator (`healthlake-operator emulator`),
//! each in another process on loopback. Prints one table and writes `target/bench/results.json`.
//!
//! Environment:
//! - `BENCH_OBJECTS` (default 10000): objects of the scale run (80 % datastores, 20 % jobs).
//! - `BENCH_CONCURRENCY` (default 64): the operator's `--concurrency` in the scale run.
//! - `BENCH_JOBS` (default 1000): finished jobs of the API-economy run, over 10 datastores.
//! - `BENCH_FUZZ_CASES` (default 2000): random inputs per fuzzed decide function.
//! - `BENCH_LATENCY_OBJECTS` (default 100): datastores and jobs whose status latency is measured.
//! - `BENCH_CRASH_RUNS` (default 200): crash-drill runs (a datastore, a job, their deletion).
//! - `BENCH_CRASH_SEED` (default: the time): the seed of the crash drill's kill moments.
//! - `BENCH_QUOTA_JOBS` (default 500): import jobs of the quota run, over 10 datastores.
//! - `BENCH_QUOTA_SPEED` (default 250): how many times faster than real time the emulator's
//!   clock runs in the quota run (the operator's intervals and limiter are scaled to match).
//! - `BENCH_FAULT_OBJECTS` (default 50): datastores, and import and export jobs, of each run of
//!   the fault drill.
//! - `BENCH_FAULT_SPEED` (default 10): the emulator's clock speed in the fault drill.
//! - `BENCH_ONLY` (default all): a comma-separated subset of
//!   `scale,economy,fuzz,quota,latency,crash,faults,baseline` (`baseline` reruns economy, quota
//!   and faults with the limiter lifted and a fixed 5 s requeue).
//! - `BENCH_OPERATOR_BINARY` (default `target/release/healthlake-operator`).
//! - `BENCH_RUN_BINARY` (default `BENCH_OPERATOR_BINARY`): the binary run as the operator, such as
//!   a production build (`cargo build --release`, no test features); the in-memory API and the
//!   emulator still come from `BENCH_OPERATOR_BINARY`.

mod crash;
mod economy;
mod faults;
mod flags;
mod fuzz;
mod latency;
mod objects;
mod processes;
mod quota;
mod report;
mod scale;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use processes::Workspace;

fn env_number(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .with_context(|| format!("{name}={value:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let binary = std::env::var_os("BENCH_OPERATOR_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/healthlake-operator"));
    anyhow::ensure!(
        binary.exists(),
        "no operator binary at {}: run `cargo build --release --features trial` first",
        binary.display()
    );
    let directory = root.join("target/bench");
    std::fs::create_dir_all(&directory)
        .with_context(|| format!("failed to create {}", directory.display()))?;
    let run_binary = std::env::var_os("BENCH_RUN_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| binary.clone());
    anyhow::ensure!(
        run_binary.exists(),
        "no operator binary at {} (BENCH_RUN_BINARY)",
        run_binary.display()
    );
    let workspace = Workspace {
        binary,
        run_binary,
        directory,
    };
    let only = std::env::var("BENCH_ONLY")
        .unwrap_or_else(|_| "scale,economy,fuzz,quota,latency,crash,faults,baseline".to_owned());
    let selected = |part: &str| only.split(',').any(|chosen| chosen.trim() == part);

    let mut results = json!({
        "machine": report::machine(),
        "date": report::date(),
        "command": "make bench",
        "operator_binary": workspace.binary.display().to_string(),
        "run_binary": workspace.run_binary.display().to_string(),
    });
    if selected("scale") {
        let settings = scale::ScaleSettings {
            objects: env_number("BENCH_OBJECTS", 10_000)?,
            in_flight: 64,
            idle_wait: Duration::from_secs(5),
            steady_wait: Duration::from_secs(10),
            concurrency: env_number("BENCH_CONCURRENCY", 64)?,
        };
        results["scale"] = scale::run(&workspace, &settings).await?;
    }
    if selected("economy") {
        let settings = economy::EconomySettings {
            datastores: 10,
            jobs: env_number("BENCH_JOBS", 1_000)?,
            scale: 100.0,
        };
        results["api_economy"] = economy::run(
            &workspace,
            &settings,
            &flags::OperatorFlags::default_intervals_limiter_lifted(),
        )
        .await?;
    }
    if selected("fuzz") {
        results["fuzz"] = fuzz::run(env_number("BENCH_FUZZ_CASES", 2_000)?);
    }
    if selected("latency") {
        let settings = latency::LatencySettings {
            objects: env_number("BENCH_LATENCY_OBJECTS", 100)?,
            clock_speed: 20,
            stagger: Duration::from_secs(30),
        };
        results["latency"] = latency::run(&workspace, &settings).await?;
    }
    if selected("crash") {
        let settings = crash::CrashSettings {
            runs: env_number("BENCH_CRASH_RUNS", 200)?,
            seed: crash::seed_from_env()?,
            clock_speed: 10,
            in_flight: 6,
            longest_life: Duration::from_millis(1200),
        };
        results["crash_drill"] = crash::run(&workspace, &settings).await?;
    }
    if selected("quota") {
        let settings = quota::QuotaSettings {
            datastores: 10,
            jobs: env_number("BENCH_QUOTA_JOBS", 500)?,
            speed: u32::try_from(env_number("BENCH_QUOTA_SPEED", 250)?)?,
        };
        results["quota_use"] =
            quota::run(&workspace, &settings, &flags::OperatorFlags::shipped()).await?;
    }
    if selected("faults") {
        let settings = faults::FaultSettings {
            objects: env_number("BENCH_FAULT_OBJECTS", 50)?,
            speed: u32::try_from(env_number("BENCH_FAULT_SPEED", 10)?)?,
        };
        // The emulator has no request quotas here: the limiter is lifted (see faults.rs).
        let operator = flags::OperatorFlags::default_intervals_limiter_lifted();
        results["fault_drill"] = faults::run(&workspace, &settings, &operator).await?;
    }
    if selected("baseline") {
        // Item 7: the same runs with the limiter lifted and a fixed 5 s requeue.
        let baseline = flags::OperatorFlags::baseline();
        let economy_settings = economy::EconomySettings {
            datastores: 10,
            jobs: env_number("BENCH_JOBS", 1_000)?,
            scale: 100.0,
        };
        // A fifth of the quota run's imports: the rates it compares do not depend on the count,
        // and the whole of `make bench` has to fit in 30 minutes on two cores.
        let quota_settings = quota::QuotaSettings {
            datastores: 10,
            jobs: (env_number("BENCH_QUOTA_JOBS", 500)? / 5).max(20),
            speed: u32::try_from(env_number("BENCH_QUOTA_SPEED", 250)?)?,
        };
        let fault_settings = faults::FaultSettings {
            objects: env_number("BENCH_FAULT_OBJECTS", 50)?,
            speed: u32::try_from(env_number("BENCH_FAULT_SPEED", 10)?)?,
        };
        results["baseline"] = json!({
            "operator_flags": "limiter lifted; poll soon, poll long, resync, backoff base and max, stalled retries all 5 s (scaled by each run's clock speed)",
            "api_economy": economy::run(&workspace, &economy_settings, &baseline).await?,
            "api_economy_note": "at interval scale 100 the operator's 200 ms reconcile debounce (real time) is 20 emulated seconds, so the 5 s requeue ran about every 25 s: its Describes are a lower bound; at real speed a 5 s requeue (10% jitter) makes about 600 / 5.25 = 114 Describes per datastore per 600 s",
            "quota_use": quota::run(&workspace, &quota_settings, &baseline).await?,
            "fault_drill": faults::run(&workspace, &fault_settings, &baseline).await?,
        });
    }
    print!("{}", report::table(&results));
    let path = workspace.directory.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results)? + "\n")
        .with_context(|| format!("failed to write {}", path.display()))?;
    println!("written to {}", path.display());
    Ok(())
}
