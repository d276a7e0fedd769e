//! Quotas and the limiter's settings, as the CLI gives them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::healthlake::OperationClass;

/// A request quota: `requests` per `per`, with at most `burst` requests back to back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Requests allowed per period.
    pub requests: u32,
    /// The period.
    pub per: Duration,
    /// Requests that may go back to back after a quiet spell; 1 spaces every request evenly.
    pub burst: u32,
}

impl Quota {
    /// `requests` a second, evenly spaced.
    pub const fn per_second(requests: u32) -> Self {
        Self {
            requests,
            per: Duration::from_secs(1),
            burst: 1,
        }
    }

    /// `requests` a minute, evenly spaced.
    pub const fn per_minute(requests: u32) -> Self {
        Self {
            requests,
            per: Duration::from_secs(60),
            burst: 1,
        }
    }

    /// The same quota allowing `burst` requests back to back.
    pub const fn with_burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s".to_owned(),
            60 => "min".to_owned(),
            3600 => "h".to_owned(),
            _ => format!("{}ms", self.per.as_millis()),
        };
        write!(formatter, "{}/{unit}", self.requests)?;
        if self.burst != 1 {
            write!(formatter, ",burst={}", self.burst)?;
        }
        Ok(())
    }
}

/// Why a quota or limiter configuration was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RateLimitConfigError {
    /// A quota string could not be read.
    #[error(
        "failed to parse quota {input:?}: {problem} (expected <requests>/<s|min|h>, optionally ,burst=<n>, e.g. 1/min or 10/s,burst=5)"
    )]
    Parse {
        /// What was given.
        input: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A quota allows no request at all, or no period.
    #[error("invalid quota for {class:?}: {problem}")]
    Quota {
        /// The operation class.
        class: OperationClass,
        /// What is wrong with it.
        problem: String,
    },
    /// The safety margin is not a fraction in [0, 1).
    #[error("invalid safety margin {0}: it must be at least 0 and below 1")]
    SafetyMargin(f64),
}

impl FromStr for Quota {
    type Err = RateLimitConfigError;

    fn from_str(input: &str) -> std::result::Result<Self, Self::Err> {
        let parse_error = |problem: &str| RateLimitConfigError::Parse {
            input: input.to_owned(),
            problem: problem.to_owned(),
        };
        let (rate, burst) = match input.split_once(',') {
            Some((rate, burst)) => {
                let burst = burst
                    .trim()
                    .strip_prefix("burst=")
                    .ok_or_else(|| parse_error("the part after ',' must be burst=<n>"))?;
                let burst = burst
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| parse_error("burst is not a whole number"))?;
                (rate, burst)
            }
            None => (input, 1),
        };
        let (requests, unit) = rate
            .split_once('/')
            .ok_or_else(|| parse_error("no '/' between requests and unit"))?;
        let requests = requests
            .trim()
            .parse::<u32>()
            .map_err(|_| parse_error("requests is not a whole number"))?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(parse_error("unit must be s, min or h")),
        };
        if requests == 0 {
            return Err(parse_error("requests must be at least 1"));
        }
        if burst == 0 {
            return Err(parse_error("burst must be at least 1"));
        }
        Ok(Self {
            requests,
            per,
            burst,
        })
    }
}

/// The limiter's settings; the CLI fills this from flags.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimitConfig {
    /// CreateFHIRDatastore and DeleteFHIRDatastore.
    pub datastore_lifecycle: Quota,
    /// StartFHIRImportJob and StartFHIRExportJob.
    pub job_start: Quota,
    /// Describe, List and tag operations.
    pub read: Quota,
    /// The fraction of each quota left unused, for other clients in the account and for clock
    /// drift: 0.1 runs at 90% of the quota.
    pub safety_margin: f64,
    /// How long past its turn a waiting caller's place is kept; a caller coming back later
    /// queues anew.
    pub ticket_retention: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            datastore_lifecycle: Quota::per_minute(1),
            job_start: Quota::per_minute(1),
            read: Quota::per_second(10),
            safety_margin: 0.03,
            ticket_retention: Duration::from_secs(600),
        }
    }
}

impl RateLimitConfig {
    /// The quota of an operation class, before the safety margin.
    pub fn quota(&self, class: OperationClass) -> Quota {
        match class {
            OperationClass::DatastoreLifecycle => self.datastore_lifecycle,
            OperationClass::JobStart => self.job_start,
            OperationClass::Read => self.read,
        }
    }

    /// The time between two requests of a class once the safety margin is taken off.
    pub fn interval(
        &self,
        class: OperationClass,
    ) -> std::result::Result<Duration, RateLimitConfigError> {
        if !(0.0..1.0).contains(&self.safety_margin) {
            return Err(RateLimitConfigError::SafetyMargin(self.safety_margin));
        }
        let quota = self.quota(class);
        let problem = |problem: &str| RateLimitConfigError::Quota {
            class,
            problem: problem.to_owned(),
        };
        if quota.requests == 0 {
            return Err(problem("requests must be at least 1"));
        }
        if quota.burst == 0 {
            return Err(problem("burst must be at least 1"));
        }
        if quota.per.is_zero() {
            return Err(problem("the period must be longer than zero"));
        }
        let seconds =
            quota.per.as_secs_f64() / f64::from(quota.requests) / (1.0 - self.safety_margin);
        let interval = Duration::try_from_secs_f64(seconds)
            .map_err(|error| problem(&format!("the interval is not a duration: {error}")))?;
        if interval.is_zero() {
            return Err(problem(
                "more than a billion requests a second cannot be paced",
            ));
        }
        Ok(interval)
    }

    /// Checks every quota and the safety margin.
    pub fn validate(&self) -> std::result::Result<(), RateLimitConfigError> {
        for class in [
            OperationClass::DatastoreLifecycle,
            OperationClass::JobStart,
            OperationClass::Read,
        ] {
            self.interval(class)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_are_read_from_flag_values() {
        let cases = [
            ("1/min", Ok(Quota::per_minute(1))),
            ("10/s", Ok(Quota::per_second(10))),
            ("10/second", Ok(Quota::per_second(10))),
            (" 2 / minute ", Ok(Quota::per_minute(2))),
            (
                "100/h",
                Ok(Quota {
                    requests: 100,
                    per: Duration::from_secs(3600),
                    burst: 1,
                }),
            ),
            ("10/s,burst=5", Ok(Quota::per_second(10).with_burst(5))),
            ("0/min", Err("requests must be at least 1")),
            ("1/min,burst=0", Err("burst must be at least 1")),
            ("1/fortnight", Err("unit must be s, min or h")),
            ("ten/s", Err("requests is not a whole number")),
            ("10", Err("no '/' between requests and unit")),
            ("10/s,5", Err("the part after ',' must be burst=<n>")),
            ("-1/s", Err("requests is not a whole number")),
        ];
        for (input, expected) in cases {
            let parsed = input.parse::<Quota>();
            match (parsed, expected) {
                (Ok(quota), Ok(expected)) => assert_eq!(quota, expected, "{input}"),
                (Err(RateLimitConfigError::Parse { problem, .. }), Err(expected)) => {
                    assert_eq!(problem, expected, "{input}")
                }
                (other, expected) => panic!("{input}: got {other:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn quotas_print_the_way_they_are_read() {
        for text in ["1/min", "10/s", "100/h", "10/s,burst=5"] {
            let quota: Quota = text.parse().unwrap_or_else(|error| panic!("{error}"));
            assert_eq!(quota.to_string(), text);
        }
    }

    #[test]
    fn invalid_configurations_are_refused() {
        let with = |change: fn(&mut RateLimitConfig)| {
            let mut config = RateLimitConfig::default();
            change(&mut config);
            config.validate()
        };
        assert_eq!(with(|_| {}), Ok(()));
        assert_eq!(with(|config| config.safety_margin = 0.0), Ok(()));
        assert_eq!(
            with(|config| config.safety_margin = 1.0),
            Err(RateLimitConfigError::SafetyMargin(1.0))
        );
        assert_eq!(
            with(|config| config.safety_margin = -0.1),
            Err(RateLimitConfigError::SafetyMargin(-0.1))
        );
        assert!(matches!(
            with(|config| config.safety_margin = f64::NAN),
            Err(RateLimitConfigError::SafetyMargin(_))
        ));
        assert_eq!(
            with(|config| config.job_start.requests = 0),
            Err(RateLimitConfigError::Quota {
                class: OperationClass::JobStart,
                problem: "requests must be at least 1".into()
            })
        );
        assert_eq!(
            with(|config| config.read.per = Duration::ZERO),
            Err(RateLimitConfigError::Quota {
                class: OperationClass::Read,
                problem: "the period must be longer than zero".into()
            })
        );
        assert_eq!(
            with(|config| {
                config.read = Quota {
                    requests: u32::MAX,
                    per: Duration::from_nanos(1),
                    burst: 1,
                }
            }),
            Err(RateLimitConfigError::Quota {
                class: OperationClass::Read,
                problem: "more than a billion requests a second cannot be paced".into()
            })
        );
        assert_eq!(
            with(|config| config.datastore_lifecycle.burst = 0),
            Err(RateLimitConfigError::Quota {
                class: OperationClass::DatastoreLifecycle,
                problem: "burst must be at least 1".into()
            })
        );
    }
}
