//! Test modules; `support` holds the shared cluster setup and polling helpers.

mod support;

mod admission;
mod crud;
mod deletion;
mod faults;
mod kubectl;
mod patches;
mod preconditions;
mod runtime;
mod shared;
mod watch;
