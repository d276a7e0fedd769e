//! Logs: readable lines by default, one JSON object per line with `--log-format json`, always on
//! stderr, with colour only when stderr is a terminal.
//!
//! What never reaches a log: credentials (the SDK adapter's `Debug` shows none) and FHIR payloads,
//! SMART configuration documents included (the HealthLake port's `Debug` impls redact them).

use std::io::IsTerminal;

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event: time, level, message, fields.
    #[default]
    Text,
    /// One JSON object per event, for log pipelines.
    Json,
}

/// The filter when `RUST_LOG` is unset: the operator's own lines, and only warnings from the
/// libraries that otherwise report every watch restart and credential lookup.
pub const DEFAULT_FILTER: &str = "info,kube_runtime=warn,kube_lease_manager=warn,aws_config=warn";

/// Installs the process's log subscriber; `RUST_LOG` overrides [`DEFAULT_FILTER`]. A second call
/// (tests) changes nothing.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}
