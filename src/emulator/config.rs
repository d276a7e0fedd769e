//! How an emulator is set up: region, account, phase durations, quotas, clock, state file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::operation::Operation;

/// Everything that shapes one emulator instance.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// The AWS region the emulator pretends to be, used in ARNs and endpoints.
    pub region: String,
    /// The twelve-digit account id used in ARNs.
    pub account_id: String,
    /// How long each asynchronous phase takes on the emulator's clock.
    pub phases: PhaseDurations,
    /// Request-rate quotas per operation.
    pub quotas: Quotas,
    /// Whether the clock starts running or frozen.
    pub clock: ClockMode,
    /// Where state is kept across restarts; `None` keeps it in memory only.
    pub state_file: Option<PathBuf>,
    /// How long a DELETED datastore stays describable; `None` keeps it forever.
    pub deleted_retention: Option<Duration>,
    /// The data store quota: at most this many datastores that are not DELETED per account
    /// and region (AWS's default is 10, adjustable); `None` sets no limit. A
    /// CreateFHIRDatastore beyond it is refused with a ValidationException.
    pub max_datastores: Option<u32>,
    /// Which jobs wait for which: one running import and one running export per region
    /// (AWS's quota), or one running job per datastore.
    pub job_concurrency: JobConcurrency,
}

/// AWS's default data store quota per account and region.
pub const DEFAULT_MAX_DATASTORES: u32 = 10;

impl Default for EmulatorConfig {
    /// us-east-1, account 123456789012, the fast profile, default quotas, a running clock.
    fn default() -> Self {
        EmulatorConfig {
            region: "us-east-1".to_string(),
            account_id: "123456789012".to_string(),
            phases: Profile::Fast.phases(),
            quotas: Quotas::Default,
            clock: ClockMode::Running,
            state_file: None,
            deleted_retention: Some(Duration::from_secs(3600)),
            max_datastores: Some(DEFAULT_MAX_DATASTORES),
            job_concurrency: JobConcurrency::Account,
        }
    }
}

impl EmulatorConfig {
    /// The configuration tests want: fast profile, frozen clock, no request quotas, no data
    /// store quota, no state file; jobs wait as on AWS ([`JobConcurrency::Account`]).
    pub fn for_tests() -> Self {
        EmulatorConfig {
            quotas: Quotas::Off,
            clock: ClockMode::Frozen,
            max_datastores: None,
            ..EmulatorConfig::default()
        }
    }

    /// Sets the data store quota per region (`None`: no limit).
    pub fn with_max_datastores(mut self, max: Option<u32>) -> Self {
        self.max_datastores = max;
        self
    }

    /// Sets which jobs wait for which.
    pub fn with_job_concurrency(mut self, concurrency: JobConcurrency) -> Self {
        self.job_concurrency = concurrency;
        self
    }

    /// Replaces the phase durations with a profile's.
    pub fn with_profile(mut self, profile: Profile) -> Self {
        self.phases = profile.phases();
        self
    }

    /// Replaces the quotas.
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    /// Replaces the clock mode.
    pub fn with_clock(mut self, clock: ClockMode) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the phase durations.
    pub fn with_phases(mut self, phases: PhaseDurations) -> Self {
        self.phases = phases;
        self
    }

    /// Sets the region used in ARNs and endpoints.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// Sets the twelve-digit account id used in ARNs.
    pub fn with_account_id(mut self, account_id: impl Into<String>) -> Self {
        self.account_id = account_id.into();
        self
    }

    /// Sets how long a DELETED datastore stays describable (`None`: forever).
    pub fn with_deleted_retention(mut self, retention: Option<Duration>) -> Self {
        self.deleted_retention = retention;
        self
    }

    /// Keeps state in this file across restarts.
    pub fn with_state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }
}

/// Which jobs may run at the same time, in one region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum JobConcurrency {
    /// AWS's quota: one running import job and one running export job per account and
    /// region, and one running job per datastore; the rest wait QUEUED, first in, first out
    /// in submission order across datastores.
    #[default]
    Account,
    /// One running job per datastore (import or export), any number across datastores.
    Datastore,
}

impl JobConcurrency {
    /// The name used by the `--job-concurrency` flag and the admin API.
    pub fn name(self) -> &'static str {
        match self {
            JobConcurrency::Account => "account",
            JobConcurrency::Datastore => "datastore",
        }
    }
}

/// A named set of phase durations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Profile {
    /// Seconds: good for tests and laptops.
    #[default]
    Fast,
    /// Minutes, roughly as AWS takes them.
    Realistic,
}

impl Profile {
    /// The phase durations of this profile.
    pub fn phases(self) -> PhaseDurations {
        match self {
            Profile::Fast => PhaseDurations {
                datastore_creation: Duration::from_secs(5),
                datastore_deletion: Duration::from_secs(5),
                job_submission: Duration::from_secs(1),
                job_queued: Duration::from_secs(1),
                job_run: Duration::from_secs(10),
            },
            Profile::Realistic => PhaseDurations {
                datastore_creation: Duration::from_secs(25 * 60),
                datastore_deletion: Duration::from_secs(18 * 60),
                job_submission: Duration::from_secs(30),
                job_queued: Duration::from_secs(60),
                job_run: Duration::from_secs(15 * 60),
            },
        }
    }
}

/// How long each asynchronous phase lasts on the emulator's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseDurations {
    /// CREATING until ACTIVE (or CREATE_FAILED).
    pub datastore_creation: Duration,
    /// DELETING until DELETED.
    pub datastore_deletion: Duration,
    /// SUBMITTED until QUEUED.
    pub job_submission: Duration,
    /// The least time a job stays QUEUED, even when its datastore runs nothing else.
    pub job_queued: Duration,
    /// IN_PROGRESS until the job ends.
    pub job_run: Duration,
}

/// A request rate: at most `requests` calls in any `per` window, refilled continuously.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// Calls allowed per window (also the burst size).
    pub requests: u32,
    /// The window.
    pub per: Duration,
}

impl Rate {
    /// `requests` calls per second.
    pub fn per_second(requests: u32) -> Self {
        Rate {
            requests,
            per: Duration::from_secs(1),
        }
    }

    /// `requests` calls per minute.
    pub fn per_minute(requests: u32) -> Self {
        Rate {
            requests,
            per: Duration::from_secs(60),
        }
    }
}

/// Request-rate quotas.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Quotas {
    /// AWS's published quotas: Create/Delete datastore and Start*Job 1/min, the rest 10/s.
    #[default]
    Default,
    /// No quotas at all.
    Off,
    /// Only these operations are limited, at these rates.
    Custom(BTreeMap<Operation, Rate>),
}

impl Quotas {
    /// The rate for each limited operation.
    pub fn rates(&self) -> BTreeMap<Operation, Rate> {
        match self {
            Quotas::Off => BTreeMap::new(),
            Quotas::Custom(rates) => rates.clone(),
            Quotas::Default => Operation::ALL
                .into_iter()
                .map(|operation| {
                    let rate = match operation {
                        Operation::CreateFhirDatastore
                        | Operation::DeleteFhirDatastore
                        | Operation::StartFhirImportJob
                        | Operation::StartFhirExportJob => Rate::per_minute(1),
                        _ => Rate::per_second(10),
                    };
                    (operation, rate)
                })
                .collect(),
        }
    }
}

/// How the emulator's clock starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClockMode {
    /// Follows real time (plus whatever the clock is advanced by).
    #[default]
    Running,
    /// Starts at real time and runs this many times faster (quotas, phases and the admin
    /// API's clock all follow it), so that a benchmark fits an hour of HealthLake into a minute.
    Accelerated(u32),
    /// Frozen at the real time of start-up; moves only when advanced.
    Frozen,
    /// Frozen at this instant; moves only when advanced.
    FrozenAt(SystemTime),
}
