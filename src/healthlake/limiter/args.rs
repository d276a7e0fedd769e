//! The limiter's command-line flags, for `healthlake-operator run` to flatten into its own.

use std::time::Duration;

use super::{Quota, RateLimitConfig, RateLimitConfigError};

/// Rate-limit flags; each can also be set through its environment variable.
#[derive(Clone, Debug, PartialEq, clap::Args)]
pub struct RateLimitArgs {
    /// Client-side quota of CreateFHIRDatastore and DeleteFHIRDatastore per region, as
    /// `<requests>/<s|min|h>[,burst=<n>]`.
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_RATE_LIMIT_DATASTORE_LIFECYCLE",
        default_value = "1/min"
    )]
    pub rate_limit_datastore_lifecycle: Quota,
    /// Client-side quota of StartFHIRImportJob and StartFHIRExportJob per region.
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_RATE_LIMIT_JOB_START",
        default_value = "1/min"
    )]
    pub rate_limit_job_start: Quota,
    /// Client-side quota of Describe, List and tag calls per region.
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_RATE_LIMIT_READ",
        default_value = "10/s"
    )]
    pub rate_limit_read: Quota,
    /// Fraction of each quota left unused (0 to below 1): slack for the time between the
    /// operator's clock and AWS's token bucket, so that a start paced at the quota is not
    /// throttled. A throttled call costs the class one interval either way.
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_RATE_LIMIT_SAFETY_MARGIN",
        default_value_t = 0.03
    )]
    pub rate_limit_safety_margin: f64,
    /// Seconds a waiting object keeps its place in the queue after its turn has come.
    #[arg(
        long,
        env = "HEALTHLAKE_OPERATOR_RATE_LIMIT_TICKET_RETENTION_SECONDS",
        default_value_t = 600
    )]
    pub rate_limit_ticket_retention_seconds: u64,
}

impl RateLimitArgs {
    /// The limiter configuration these flags describe, checked.
    pub fn config(&self) -> Result<RateLimitConfig, RateLimitConfigError> {
        let config = RateLimitConfig {
            datastore_lifecycle: self.rate_limit_datastore_lifecycle,
            job_start: self.rate_limit_job_start,
            read: self.rate_limit_read,
            safety_margin: self.rate_limit_safety_margin,
            ticket_retention: Duration::from_secs(self.rate_limit_ticket_retention_seconds),
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        limits: RateLimitArgs,
    }

    fn parse(arguments: &[&str]) -> Result<RateLimitConfig, String> {
        let command =
            Command::try_parse_from(std::iter::once("run").chain(arguments.iter().copied()))
                .map_err(|error| error.kind().to_string())?;
        command.limits.config().map_err(|error| error.to_string())
    }

    #[test]
    fn defaults_are_healthlakes_published_quotas_with_a_ten_percent_margin() {
        assert_eq!(parse(&[]), Ok(RateLimitConfig::default()));
    }

    #[test]
    fn flags_override_each_quota() {
        let config = parse(&[
            "--rate-limit-datastore-lifecycle",
            "2/min",
            "--rate-limit-job-start",
            "30/h",
            "--rate-limit-read",
            "5/s,burst=5",
            "--rate-limit-safety-margin",
            "0",
            "--rate-limit-ticket-retention-seconds",
            "60",
        ]);
        assert_eq!(
            config,
            Ok(RateLimitConfig {
                datastore_lifecycle: Quota::per_minute(2),
                job_start: Quota {
                    requests: 30,
                    per: Duration::from_secs(3600),
                    burst: 1,
                },
                read: Quota::per_second(5).with_burst(5),
                safety_margin: 0.0,
                ticket_retention: Duration::from_secs(60),
            })
        );
    }

    #[test]
    fn invalid_flags_are_refused() {
        assert!(parse(&["--rate-limit-read", "fast"]).is_err());
        assert_eq!(
            parse(&["--rate-limit-safety-margin", "1.5"]),
            Err("invalid safety margin 1.5: it must be at least 0 and below 1".to_owned())
        );
    }
}
