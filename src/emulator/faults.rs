//! Fault injection: errors, latency and failing lifecycles that tests and benchmarks ask for.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::operation::Operation;
use super::wire::{AwsError, ErrorType};

/// The two kinds of job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// A FHIR import job.
    Import,
    /// A FHIR export job.
    Export,
}

/// `ErrorCause.ErrorCategory`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCategory {
    /// `RETRYABLE_ERROR`.
    #[serde(rename = "RETRYABLE_ERROR")]
    Retryable,
    /// `NON_RETRYABLE_ERROR`.
    #[serde(rename = "NON_RETRYABLE_ERROR")]
    NonRetryable,
}

impl ErrorCategory {
    /// The AWS value.
    pub fn aws_name(self) -> &'static str {
        match self {
            ErrorCategory::Retryable => "RETRYABLE_ERROR",
            ErrorCategory::NonRetryable => "NON_RETRYABLE_ERROR",
        }
    }
}

/// How an injected job ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InjectedJobOutcome {
    /// The job ends FAILED with this message.
    Failed {
        /// The job's `Message`.
        message: String,
    },
    /// The job ends COMPLETED_WITH_ERRORS with these error counts.
    CompletedWithErrors {
        /// `TotalNumberOfResourcesWithCustomerError`.
        resources_with_error: u64,
        /// `TotalNumberOfFilesReadWithCustomerError`.
        files_with_error: u64,
    },
}

/// One fault to inject; the admin API takes the same JSON (`{"kind": "fail_next", ...}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// The next `count` calls of `operation` fail with `error`.
    FailNext {
        /// The operation.
        operation: Operation,
        /// The error answered.
        error: ErrorType,
        /// How many calls fail.
        count: u32,
        /// The error message; a generic one when absent.
        #[serde(default)]
        message: Option<String>,
    },
    /// The next `count` calls of `operation` take effect but are answered with
    /// InternalServerException, as when AWS acts on a request and the answer is lost; a retry
    /// with the same ClientToken then gets the first result.
    LoseNextResponse {
        /// The operation.
        operation: Operation,
        /// How many answers are lost.
        count: u32,
    },
    /// Each call of `operation` fails at random with these probabilities (0.0 to 1.0).
    ErrorProbability {
        /// The operation.
        operation: Operation,
        /// Probability of ThrottlingException.
        #[serde(default)]
        throttling: f64,
        /// Probability of InternalServerException.
        #[serde(default)]
        internal_server: f64,
    },
    /// Every call of `operation` (of every operation when absent) is answered this much later.
    Latency {
        /// The operation, or all.
        #[serde(default)]
        operation: Option<Operation>,
        /// The added latency in milliseconds.
        millis: u64,
    },
    /// Every call of `operation` is refused with AccessDeniedException.
    AccessDenied {
        /// The operation.
        operation: Operation,
    },
    /// The next datastore created (with this name, when given) ends CREATE_FAILED.
    DatastoreCreationFailure {
        /// Only a datastore of this name; any when absent.
        #[serde(default)]
        datastore_name: Option<String>,
        /// The `ErrorCause.ErrorCategory`.
        error_category: ErrorCategory,
        /// The `ErrorCause.ErrorMessage`.
        error_message: String,
    },
    /// The next job started (of this kind and name, when given) ends as `outcome`.
    JobOutcome {
        /// Only jobs of this kind; any when absent.
        #[serde(default)]
        job_kind: Option<JobKind>,
        /// Only a job of this name; any when absent.
        #[serde(default)]
        job_name: Option<String>,
        /// How the job ends.
        outcome: InjectedJobOutcome,
    },
}

/// A planned datastore creation failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCause {
    /// `ErrorCategory`.
    pub category: ErrorCategory,
    /// `ErrorMessage`.
    pub message: String,
}

/// The faults currently armed.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    fail_next: BTreeMap<Operation, Vec<(AwsError, u32)>>,
    lost_responses: BTreeMap<Operation, u32>,
    probabilities: BTreeMap<Operation, (f64, f64)>,
    latency_all: Option<Duration>,
    latency: BTreeMap<Operation, Duration>,
    access_denied: Vec<Operation>,
    creation_failures: Vec<(Option<String>, ErrorCause)>,
    job_outcomes: Vec<(Option<JobKind>, Option<String>, InjectedJobOutcome)>,
}

impl Faults {
    /// Arms a fault.
    pub fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::FailNext {
                operation,
                error,
                count,
                message,
            } => {
                let message =
                    message.unwrap_or_else(|| format!("injected {} for {operation}", error.name()));
                self.fail_next
                    .entry(operation)
                    .or_default()
                    .push((AwsError::new(error, message), count));
            }
            Fault::LoseNextResponse { operation, count } => {
                *self.lost_responses.entry(operation).or_default() += count;
            }
            Fault::ErrorProbability {
                operation,
                throttling,
                internal_server,
            } => {
                self.probabilities.insert(
                    operation,
                    (throttling.clamp(0.0, 1.0), internal_server.clamp(0.0, 1.0)),
                );
            }
            Fault::Latency { operation, millis } => {
                let latency = Duration::from_millis(millis);
                match operation {
                    Some(operation) => {
                        self.latency.insert(operation, latency);
                    }
                    None => self.latency_all = Some(latency),
                }
            }
            Fault::AccessDenied { operation } => {
                if !self.access_denied.contains(&operation) {
                    self.access_denied.push(operation);
                }
            }
            Fault::DatastoreCreationFailure {
                datastore_name,
                error_category,
                error_message,
            } => self.creation_failures.push((
                datastore_name,
                ErrorCause {
                    category: error_category,
                    message: error_message,
                },
            )),
            Fault::JobOutcome {
                job_kind,
                job_name,
                outcome,
            } => self.job_outcomes.push((job_kind, job_name, outcome)),
        }
    }

    /// The latency to add before answering a call of `operation`.
    pub fn latency(&self, operation: Option<Operation>) -> Option<Duration> {
        operation
            .and_then(|operation| self.latency.get(&operation).copied())
            .or(self.latency_all)
    }

    /// AccessDeniedException when the operation is denied: authorisation comes before quotas.
    pub fn call_error_before_quota(&self, operation: Operation) -> Option<AwsError> {
        self.access_denied.contains(&operation).then(|| {
            AwsError::new(
                ErrorType::AccessDeniedException,
                format!("User is not authorized to perform: healthlake:{operation}"),
            )
        })
    }

    /// The error a call of `operation` must fail with, if a fault says so; consumes one use
    /// of a fail-next fault.
    pub fn call_error(&mut self, operation: Operation) -> Option<AwsError> {
        if let Some(queue) = self.fail_next.get_mut(&operation)
            && let Some((error, remaining)) = queue.first_mut()
        {
            let error = error.clone();
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                queue.remove(0);
            }
            return Some(error);
        }
        if let Some(&(throttling, internal_server)) = self.probabilities.get(&operation) {
            let draw: f64 = rand::random();
            if draw < throttling {
                return Some(AwsError::new(
                    ErrorType::ThrottlingException,
                    "Rate exceeded",
                ));
            }
            if draw < throttling + internal_server {
                return Some(AwsError::new(
                    ErrorType::InternalServerException,
                    "An internal error occurred",
                ));
            }
        }
        None
    }

    /// The error that replaces the answer of a call that took effect, if its answer is to be
    /// lost; consumes one use.
    pub fn lost_response(&mut self, operation: Operation) -> Option<AwsError> {
        let remaining = self.lost_responses.get_mut(&operation)?;
        if *remaining == 0 {
            return None;
        }
        *remaining -= 1;
        Some(AwsError::new(
            ErrorType::InternalServerException,
            format!("injected lost response for {operation}"),
        ))
    }

    /// Takes the planned failure for a new datastore of this name, if one is armed.
    pub fn take_creation_failure(&mut self, name: Option<&str>) -> Option<ErrorCause> {
        let position = self
            .creation_failures
            .iter()
            .position(|(wanted, _)| wanted.is_none() || wanted.as_deref() == name)?;
        Some(self.creation_failures.remove(position).1)
    }

    /// Takes the planned outcome for a new job of this kind and name, if one is armed.
    pub fn take_job_outcome(
        &mut self,
        kind: JobKind,
        name: Option<&str>,
    ) -> Option<InjectedJobOutcome> {
        let position = self
            .job_outcomes
            .iter()
            .position(|(wanted_kind, wanted_name, _)| {
                wanted_kind.is_none_or(|wanted| wanted == kind)
                    && (wanted_name.is_none() || wanted_name.as_deref() == name)
            })?;
        Some(self.job_outcomes.remove(position).2)
    }
}
