//! The printed table, and the machine and date the figures belong to.

use std::fmt::Write as _;

use serde_json::Value;

/// CPU model, cores, memory and kernel, from /proc.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown cpu", |(_, model)| model.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {cores} cores available, {:.1} GiB, Linux {}",
        memory_kib as f64 / 1024.0 / 1024.0,
        kernel.trim()
    )
}

/// Now, in RFC 3339 (UTC).
pub fn date() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map_or_else(
            |_| jiff::Timestamp::now().to_string(),
            |now| now.to_string(),
        )
}

/// One row per figure: section, figure (a dotted path inside the section), the target.
const ROWS: &[(&str, &str, &str)] = &[
    ("scale", "objects", ""),
    ("scale", "seconds_to_ready", ""),
    ("scale", "objects_per_second", ">= 500"),
    ("scale", "rss_idle_mib", "<= 16"),
    ("scale", "rss_peak_mib", ""),
    ("scale", "rss_steady_mib", "<= 32"),
    ("scale", "rss_peak_at_start_mib", "<= 64"),
    ("scale", "cpu_seconds", ""),
    ("scale", "cpu_ms_per_object", "<= 1.2"),
    ("scale", "aws_calls_per_datastore_to_ready", "<= 4"),
    ("scale", "aws_calls_per_job_to_ready", ""),
    ("scale", "kubernetes_writes_per_datastore_to_ready", "<= 3"),
    ("scale", "events_per_datastore", "<= 1"),
    ("api_economy", "calls_per_finished_job_per_hour", "0"),
    ("api_economy", "describes_per_datastore_per_resync", "<= 1"),
    ("quota_use", "start_rate_fraction", ">= 0.95"),
    ("quota_use", "start_rate_fraction_of_limiter_budget", ""),
    ("quota_use", "describe_rate_fraction", ""),
    ("quota_use", "throttled_calls", "0"),
    ("latency", "poll_interval_seconds", ""),
    ("latency", "samples", ""),
    ("quota_use", "imports_started", ""),
    ("quota_use", "emulated_seconds", ""),
    ("latency", "p50_seconds", ""),
    ("latency", "p99_seconds", "<= poll + 1"),
    ("latency", "landing_overhead_real_ms_p99", ""),
    ("crash_drill", "runs", "200"),
    ("crash_drill", "kills", ""),
    ("crash_drill", "duplicate_datastores", "0"),
    ("crash_drill", "duplicate_jobs", "0"),
    ("crash_drill", "orphaned_datastores", "0"),
    ("crash_drill", "stuck_finalizers", "0"),
    ("crash_drill", "unconverged", "0"),
    ("fault_drill", "converged", "1"),
    ("fault_drill", "calls_ratio_vs_fault_free", "<= 1.5"),
    ("fault_drill", "backoff_violations", "0"),
    (
        "baseline",
        "api_economy.calls_per_finished_job_per_hour",
        "",
    ),
    (
        "baseline",
        "api_economy.describes_per_datastore_per_resync",
        "",
    ),
    ("baseline", "quota_use.start_rate_fraction", ""),
    ("baseline", "quota_use.describe_rate_fraction", ""),
    ("baseline", "quota_use.throttled_calls", ""),
    ("baseline", "fault_drill.converged", ""),
    ("baseline", "fault_drill.calls_ratio_vs_fault_free", ""),
    ("baseline", "fault_drill.backoff_violations", ""),
    ("fuzz", "iterations", ""),
    ("fuzz", "panics", "0"),
];

/// The table `make bench` prints.
pub fn table(results: &Value) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "machine: {}",
        results["machine"].as_str().unwrap_or("")
    );
    let _ = writeln!(text, "date:    {}", results["date"].as_str().unwrap_or(""));
    let _ = writeln!(
        text,
        "{:<12} {:<48} {:>14}  target",
        "section", "figure", "value"
    );
    let _ = writeln!(text, "{}", "-".repeat(88));
    for (section, figure, target) in ROWS {
        let value = match &results[*section] {
            Value::Null => "not measured yet".to_owned(),
            measured => match measured
                .pointer(&format!("/{}", figure.replace('.', "/")))
                .unwrap_or(&Value::Null)
            {
                Value::Number(number) => number
                    .as_u64()
                    .map(|whole| whole.to_string())
                    .or_else(|| number.as_f64().map(|real| format!("{real:.2}")))
                    .unwrap_or_default(),
                Value::Null => "not measured".to_owned(),
                other => other.to_string(),
            },
        };
        let _ = writeln!(text, "{section:<12} {figure:<48} {value:>14}  {target}");
    }
    text
}
