//! healthlake-operator: manage Amazon HealthLake FHIR datastores, import jobs and export jobs
//! from Kubernetes.
//!
//! The parts, each depending only on those listed before it:
//! - [`api`]: the custom resources and their validation rules;
//! - [`healthlake`]: the HealthLake port, its SDK adapter and rate limiter;
//! - [`decide`]: pure decisions, (spec, status, what AWS reported, now) → action and status;
//! - [`controller`]: kube-runtime controllers that read, decide, act and patch status;
//! - [`run`]: the `run` command: flags, logs, leader election, health and metrics.
//!
//! Beside them, standing for the outside world in tests and the local trial, and left out of
//! the production build (default features):
//! - `emulator` (feature `emulator`): a HealthLake emulator that imports nothing from the operator;
//! - `admission` (feature `admission`): the validator that applies a CRD's schema and CEL rules
//!   to an object;
//! - `apiserver` (feature `test-apiserver`): an in-memory Kubernetes API server that knows
//!   nothing of HealthLake beyond loading CRDs and running the admission validator.

pub mod api;
pub mod controller;
pub mod decide;
pub mod healthlake;
pub mod run;

#[cfg(feature = "admission")]
pub mod admission;
#[cfg(feature = "test-apiserver")]
pub mod apiserver;
#[cfg(feature = "emulator")]
pub mod emulator;
