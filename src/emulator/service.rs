//! The emulator's core: one lock around the account, the faults, the quotas and the call log,
//! and the awsJson1_0 request path that runs an operation through them.

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
use super::faults::{Fault, Faults};
use super::operation::Operation;
use super::operations::{Context, execute};
use super::persistence;
use super::quotas::QuotaBuckets;
use super::state::State;
use super::wire::{
    AwsError, ErrorType, TARGET_PREFIX, check_signature, error_response, new_request_id,
    success_response,
};

struct Core {
    state: State,
    faults: Faults,
    quotas: QuotaBuckets,
    log: CallLog,
}

impl Core {
    fn settle(&mut self, config: &EmulatorConfig) {
        let now = self.state.clock.now();
        let retention = config.deleted_retention.map(duration_millis);
        self.state.settle(now, &config.phases, retention);
    }
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
    Ok(())
}

/// A HealthLake emulator without a listening socket: the shared core behind the HTTP
/// server and the in-process admin methods. Cloning it shares the same account.
#[derive(Clone)]
pub struct Emulator {
    config: Arc<EmulatorConfig>,
    core: Arc<Mutex<Core>>,
}

/// The outcome of one AWS call, before it becomes an HTTP response.
struct Answer {
    operation: String,
    parameters: Value,
    result: Result<Value, AwsError>,
}

impl Emulator {
    /// Builds an emulator; loads the state file when the configuration names one that exists.
    pub fn new(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        check_config(&config)?;
        let clock = match config.clock {
            ClockMode::Running => Clock::Running { offset_millis: 0 },
            ClockMode::Frozen => Clock::Frozen {
                at_millis: to_epoch_millis(SystemTime::now()),
            },
            ClockMode::FrozenAt(at) => Clock::Frozen {
                at_millis: to_epoch_millis(at),
            },
        };
        let state = match &config.state_file {
            Some(path) => persistence::load(path)?.unwrap_or_else(|| State::new(clock)),
            None => State::new(clock),
        };
        let quotas = QuotaBuckets::new(&config.quotas, state.clock.now());
        let core = Core {
            state,
            faults: Faults::default(),
            quotas,
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

        let answer = Answer {
            operation: operation_name,
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
        check_signature(headers)?;
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
        let mut core = self.lock();
        let core = &mut *core;
        core.settle(&self.config);
        let now = core.state.clock.now();
        if let Some(error) = core.faults.call_error_before_quota(operation) {
            return Err(error);
        }
        if !core.quotas.try_acquire(operation, now) {
            return Err(AwsError::new(
                ErrorType::ThrottlingException,
                "Rate exceeded",
            ));
        }
        if let Some(error) = core.faults.call_error(operation) {
            return Err(error);
        }
        let mut context = Context {
            state: &mut core.state,
            faults: &mut core.faults,
            config: &self.config,
            now,
        };
        let result = execute(&mut context, operation, &parameters);
        if result.is_ok() && operation.mutates() {
            self.persist(&core.state);
        }
        match core.faults.lost_response(operation) {
            Some(error) if result.is_ok() => Err(error),
            _ => result,
        }
    }

    fn persist(&self, state: &State) {
        if let Some(path) = &self.config.state_file
            && let Err(error) = persistence::save(path, state)
        {
            tracing::error!(%error, "failed to write the emulator state file");
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
            status,
            error_type = error_type.as_deref().unwrap_or("-"),
            request_id,
            "healthlake call"
        );
        let mut core = self.lock();
        let time_millis = core.state.clock.now();
        core.log.push(CallRecord {
            sequence: 0,
            time_millis,
            operation: answer.operation,
            parameters: answer.parameters,
            status,
            error_type,
            request_id: request_id.to_string(),
        });
        response
    }

    /// The emulator's current time.
    pub fn now(&self) -> SystemTime {
        to_system_time(self.lock().state.clock.now())
    }

    /// Whether the clock is frozen.
    pub fn is_clock_frozen(&self) -> bool {
        self.lock().state.clock.is_frozen()
    }

    /// Moves the clock forward and applies every transition that came due.
    pub fn advance_clock(&self, by: Duration) {
        let mut core = self.lock();
        core.state.clock.advance(by);
        core.settle(&self.config);
        self.persist(&core.state);
    }

    /// Stops the clock; from now on only [`Emulator::advance_clock`] moves it.
    pub fn freeze_clock(&self) {
        let mut core = self.lock();
        core.state.clock.freeze();
        self.persist(&core.state);
    }

    /// Lets the clock follow real time again, from the time it shows now.
    pub fn unfreeze_clock(&self) {
        let mut core = self.lock();
        core.state.clock.unfreeze();
        self.persist(&core.state);
    }

    /// Arms a fault.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.inject(fault);
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.lock().faults = Faults::default();
    }

    /// Every call answered so far, oldest first.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.lock().log.records().cloned().collect()
    }

    /// The calls of one operation, oldest first.
    pub fn calls_of(&self, operation: Operation) -> Vec<CallRecord> {
        self.lock()
            .log
            .records()
            .filter(|record| record.operation == operation.aws_name())
            .cloned()
            .collect()
    }

    /// Counters by operation name.
    pub fn counters(&self) -> BTreeMap<String, OperationCounters> {
        self.lock().log.counters().clone()
    }

    /// The account's state after applying every transition due now (a copy).
    pub fn state(&self) -> State {
        let mut core = self.lock();
        core.settle(&self.config);
        core.state.clone()
    }

    /// Forgets every datastore, job, token, fault, quota use and logged call; keeps the clock.
    pub fn reset(&self) {
        let mut core = self.lock();
        let clock = core.state.clock;
        core.state = State::new(clock);
        core.faults = Faults::default();
        core.quotas = QuotaBuckets::new(&self.config.quotas, clock.now());
        core.log = CallLog::default();
        self.persist(&core.state);
    }
}
