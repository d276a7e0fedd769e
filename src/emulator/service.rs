//! The emulator's core: one lock around the account (the clock and each region's state and
//! request quotas), the faults and the call log, and the awsJson1_0 request path that runs an
//! operation through them in the region the request was signed for.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;

use super::EmulatorError;
use super::call_log::{CallLog, CallRecord, OperationCounters};
use super::clock::{Clock, duration_millis, to_epoch_millis, to_system_time};
use super::config::{ClockMode, EmulatorConfig};
use super::faults::{Fault, Faults, JobKind};
use super::operation::Operation;
use super::operations::{Context, datastore_arn, datastore_endpoint, execute};
use super::persistence;
use super::quotas::QuotaBuckets;
use super::seed::{DatastoreSeed, SeededDatastore};
use super::state::State;
use super::wire::{
    AwsError, ErrorType, TARGET_PREFIX, check_signature, error_response, new_request_id,
    success_response,
};

/// One region of the account: its state and its request quotas.
struct Region {
    state: State,
    quotas: QuotaBuckets,
}

struct Core {
    clock: Clock,
    regions: BTreeMap<String, Region>,
    faults: Faults,
    log: CallLog,
}

impl Core {
    /// A region, created empty (with full quotas) the first time it is named.
    fn region(&mut self, name: &str, config: &EmulatorConfig) -> &mut Region {
        let now = self.clock.now();
        region_entry(&mut self.regions, name, config, now)
    }

    /// A region with every transition due now applied.
    fn settled(&mut self, name: &str, config: &EmulatorConfig) -> &mut Region {
        let now = self.clock.now();
        let region = self.region(name, config);
        settle(&mut region.state, now, config);
        region
    }

    fn settle_all(&mut self, config: &EmulatorConfig) {
        let now = self.clock.now();
        for region in self.regions.values_mut() {
            settle(&mut region.state, now, config);
        }
    }

    fn states(&self) -> BTreeMap<&str, &State> {
        self.regions
            .iter()
            .map(|(name, region)| (name.as_str(), &region.state))
            .collect()
    }
}

/// A region, created empty (with full quotas) the first time it is named.
fn region_entry<'a>(
    regions: &'a mut BTreeMap<String, Region>,
    name: &str,
    config: &EmulatorConfig,
    now: i64,
) -> &'a mut Region {
    regions.entry(name.to_string()).or_insert_with(|| Region {
        state: State::new(),
        quotas: QuotaBuckets::new(&config.quotas, now),
    })
}

fn settle(state: &mut State, now: i64, config: &EmulatorConfig) {
    let retention = config.deleted_retention.map(duration_millis);
    state.settle(now, &config.phases, retention, config.job_concurrency);
}

/// Refuses a region or account id that would make ARNs AWS would never produce.
fn check_config(config: &EmulatorConfig) -> Result<(), EmulatorError> {
    if config.account_id.len() != 12 || !config.account_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(EmulatorError::Config(format!(
            "account id {:?} is not twelve digits",
            config.account_id
        )));
    }
    let region_ok = !config.region.is_empty()
        && config
            .region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !region_ok {
        return Err(EmulatorError::Config(format!(
            "region {:?} is not lowercase letters, digits and dashes",
            config.region
        )));
    }
    if config.max_datastores == Some(0) {
        return Err(EmulatorError::Config(
            "the data store quota must allow at least one data store".to_string(),
        ));
    }
    Ok(())
}

/// A HealthLake emulator without a listening socket: the shared core behind the HTTP
/// server and the in-process admin methods. Cloning it shares the same account.
///
/// Each region (taken from a request's SigV4 credential scope) has its own datastores, jobs,
/// ClientTokens and quotas; the in-process methods without a region argument act on the
/// configured region ([`EmulatorConfig::region`]).
#[derive(Clone)]
pub struct Emulator {
    config: Arc<EmulatorConfig>,
    core: Arc<Mutex<Core>>,
}

/// The outcome of one AWS call, before it becomes an HTTP response.
struct Answer {
    operation: String,
    region: Option<String>,
    parameters: Value,
    result: Result<Value, AwsError>,
}

impl Emulator {
    /// Builds an emulator; loads the state file when the configuration names one that exists.
    pub fn new(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        check_config(&config)?;
        let clock = match config.clock {
            ClockMode::Running => Clock::real_time(),
            ClockMode::Accelerated(speed) => Clock::accelerated(speed),
            ClockMode::Frozen => Clock::Frozen {
                at_millis: to_epoch_millis(SystemTime::now()),
            },
            ClockMode::FrozenAt(at) => Clock::Frozen {
                at_millis: to_epoch_millis(at),
            },
        };
        let (clock, states) = match &config.state_file {
            Some(path) => match persistence::load(path, &config.region)? {
                Some(account) => (account.clock, account.regions),
                None => (clock, BTreeMap::new()),
            },
            None => (clock, BTreeMap::new()),
        };
        let now = clock.now();
        let mut regions: BTreeMap<String, Region> = states
            .into_iter()
            .map(|(name, state)| {
                let quotas = QuotaBuckets::new(&config.quotas, now);
                (name, Region { state, quotas })
            })
            .collect();
        region_entry(&mut regions, &config.region, &config, now);
        let core = Core {
            clock,
            regions,
            faults: Faults::default(),
            log: CallLog::default(),
        };
        Ok(Emulator {
            config: Arc::new(config),
            core: Arc::new(Mutex::new(core)),
        })
    }

    /// The configuration the emulator runs with.
    pub fn config(&self) -> &EmulatorConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic while the lock was held cannot leave the account half-changed in a way
        // that matters more than stopping the whole emulator would, so keep serving.
        self.core
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Answers one awsJson1_0 request (`POST /`).
    pub async fn handle_aws_request(&self, headers: &HeaderMap, body: &Bytes) -> Response {
        let request_id = new_request_id();
        let target = headers
            .get("x-amz-target")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let operation_name = target
            .strip_prefix(TARGET_PREFIX)
            .unwrap_or(&target)
            .to_string();
        let parameters: Option<Value> = if body.is_empty() {
            Some(Value::Object(Default::default()))
        } else {
            serde_json::from_slice(body).ok()
        };
        let operation = target
            .strip_prefix(TARGET_PREFIX)
            .and_then(|name| name.parse::<Operation>().ok());

        let latency = self.lock().faults.latency(operation);
        if let Some(latency) = latency {
            tokio::time::sleep(latency).await;
        }

        let region = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(super::wire::signing_region);
        let answer = Answer {
            operation: operation_name,
            region,
            parameters: parameters.clone().unwrap_or(Value::Null),
            result: self.run(headers, operation, parameters),
        };
        self.finish(answer, &request_id)
    }

    fn run(
        &self,
        headers: &HeaderMap,
        operation: Option<Operation>,
        parameters: Option<Value>,
    ) -> Result<Value, AwsError> {
        let region_name = check_signature(headers)?;
        let Some(operation) = operation else {
            return Err(AwsError::new(
                ErrorType::UnknownOperationException,
                "The X-Amz-Target header does not name a HealthLake operation",
            ));
        };
        let Some(parameters) = parameters else {
            return Err(AwsError::new(
                ErrorType::SerializationException,
                "The request body is not valid JSON",
            ));
        };
        let mut guard = self.lock();
        let core = &mut *guard;
        let now = core.clock.now();
        core.settled(&region_name, &self.config);
        if let Some(error) = core.faults.call_error_before_quota(operation) {
            return Err(error);
        }
        let Core {
            regions, faults, ..
        } = core;
        let region = region_entry(regions, &region_name, &self.config, now);
        if !region.quotas.try_acquire(operation, now) {
            return Err(AwsError::new(
                ErrorType::ThrottlingException,
                "Rate exceeded",
            ));
        }
        if let Some(error) = faults.call_error(operation) {
            return Err(error);
        }
        let mut context = Context {
            region: &region_name,
            state: &mut region.state,
            faults,
            config: &self.config,
            now,
        };
        let result = execute(&mut context, operation, &parameters);
        if result.is_ok() && operation.mutates() {
            self.persist(core);
        }
        match core.faults.lost_response(operation) {
            Some(error) if result.is_ok() => Err(error),
            _ => result,
        }
    }

    fn persist(&self, core: &Core) {
        if let Some(path) = &self.config.state_file {
            let regions = core.states();
            if let Err(error) = persistence::save(path, core.clock, regions) {
                tracing::error!(%error, "failed to write the emulator state file");
            }
        }
    }

    fn finish(&self, answer: Answer, request_id: &str) -> Response {
        let (response, status, error_type) = match &answer.result {
            Ok(body) => (success_response(body, request_id), 200, None),
            Err(error) => (
                error_response(error, request_id),
                error.kind.status().as_u16(),
                Some(error.kind.name().to_string()),
            ),
        };
        tracing::info!(
            operation = %answer.operation,
            region = %answer.region.as_deref().unwrap_or("-"),
            status,
            error_type = error_type.as_deref().unwrap_or("-"),
            request_id,
            "healthlake call"
        );
        let mut core = self.lock();
        let time_millis = core.clock.now();
        core.log.push(CallRecord {
            sequence: 0,
            time_millis,
            operation: answer.operation,
            region: answer.region,
            parameters: answer.parameters,
            status,
            error_type,
            request_id: request_id.to_string(),
        });
        response
    }

    /// The emulator's current time.
    pub fn now(&self) -> SystemTime {
        to_system_time(self.lock().clock.now())
    }

    /// Whether the clock is frozen.
    pub fn is_clock_frozen(&self) -> bool {
        self.lock().clock.is_frozen()
    }

    /// Moves the clock forward and applies every transition that came due, in every region.
    pub fn advance_clock(&self, by: Duration) {
        let mut core = self.lock();
        core.clock.advance(by);
        core.settle_all(&self.config);
        self.persist(&core);
    }

    /// Stops the clock; from now on only [`Emulator::advance_clock`] moves it.
    pub fn freeze_clock(&self) {
        let mut core = self.lock();
        core.clock.freeze();
        self.persist(&core);
    }

    /// Lets the clock follow real time again, from the time it shows now.
    pub fn unfreeze_clock(&self) {
        let mut core = self.lock();
        core.clock.unfreeze();
        self.persist(&core);
    }

    /// Arms a fault (faults apply to calls in every region).
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.inject(fault);
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.lock().faults = Faults::default();
    }

    /// Every call answered so far, oldest first, in every region.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.lock().log.records().cloned().collect()
    }

    /// The calls of one operation, oldest first, in every region.
    pub fn calls_of(&self, operation: Operation) -> Vec<CallRecord> {
        self.lock()
            .log
            .records()
            .filter(|record| record.operation == operation.aws_name())
            .cloned()
            .collect()
    }

    /// The calls of one operation signed for one region, oldest first.
    pub fn calls_of_in(&self, region: &str, operation: Operation) -> Vec<CallRecord> {
        self.lock()
            .log
            .records()
            .filter(|record| {
                record.operation == operation.aws_name() && record.region.as_deref() == Some(region)
            })
            .cloned()
            .collect()
    }

    /// Counters by operation name, over every region.
    pub fn counters(&self) -> BTreeMap<String, OperationCounters> {
        self.lock().log.counters().clone()
    }

    /// The configured region's state after applying every transition due now (a copy).
    pub fn state(&self) -> State {
        self.state_in(&self.config.region)
    }

    /// One region's state after applying every transition due now (a copy; empty for a
    /// region no call has named yet).
    pub fn state_in(&self, region: &str) -> State {
        let mut core = self.lock();
        core.settled(region, &self.config).state.clone()
    }

    /// The regions that hold state: the configured one and every one a call was signed for.
    pub fn regions(&self) -> Vec<String> {
        self.lock().regions.keys().cloned().collect()
    }

    /// Every region's state and quota use after applying every transition due now, as
    /// `GET /_emulator/state` answers it.
    pub fn state_view(&self) -> Value {
        let mut core = self.lock();
        core.settle_all(&self.config);
        let regions: serde_json::Map<String, Value> = core
            .regions
            .iter()
            .map(|(name, region)| {
                let mut view = serde_json::to_value(&region.state).unwrap_or(Value::Null);
                if let Value::Object(object) = &mut view {
                    object.insert("quotas".into(), quota_view(&region.state, &self.config));
                }
                (name.clone(), view)
            })
            .collect();
        serde_json::json!({
            "default_region": self.config.region,
            "clock": core.clock,
            "max_datastores": self.config.max_datastores,
            "job_concurrency": self.config.job_concurrency.name(),
            "regions": regions,
        })
    }

    /// Adds a datastore as if it had been made outside the operator (by CloudFormation, the
    /// console, another tool), with any tags, `aws:` keys included, and any status. It does
    /// not count against the request quotas and is not refused by the data store quota.
    pub fn seed_datastore(&self, seed: DatastoreSeed) -> Result<String, EmulatorError> {
        self.seed(seed).map(|seeded| seeded.id)
    }

    /// [`Emulator::seed_datastore`], answering the datastore's id, ARN and endpoint.
    pub fn seed(&self, seed: DatastoreSeed) -> Result<SeededDatastore, EmulatorError> {
        let region_name = seed
            .region
            .clone()
            .unwrap_or_else(|| self.config.region.clone());
        seed.check(&region_name)?;
        let mut core = self.lock();
        let now = core.clock.now();
        let region = core.settled(&region_name, &self.config);
        let id = region.state.new_id();
        let record = seed.into_record(id.clone(), region.state.take_sequence(), now);
        let status = record.status;
        region.state.insert_datastore(record);
        self.persist(&core);
        Ok(SeededDatastore {
            arn: datastore_arn(&region_name, &self.config.account_id, &id),
            endpoint: datastore_endpoint(&region_name, &id),
            id,
            region: region_name,
            status,
        })
    }

    /// Forgets every datastore, job, token, fault, quota use and logged call in every region;
    /// keeps the clock.
    pub fn reset(&self) {
        let mut core = self.lock();
        let now = core.clock.now();
        core.regions.clear();
        region_entry(&mut core.regions, &self.config.region, &self.config, now);
        core.faults = Faults::default();
        core.log = CallLog::default();
        self.persist(&core);
    }
}

/// A region's data store quota and job concurrency, with what counts against them now.
fn quota_view(state: &State, config: &EmulatorConfig) -> Value {
    serde_json::json!({
        "max_datastores": config.max_datastores,
        "datastores": state.live_datastores(),
        "job_concurrency": config.job_concurrency.name(),
        "import_jobs": state.open_job_counts(JobKind::Import),
        "export_jobs": state.open_job_counts(JobKind::Export),
    })
}
