//! Test modules; `support` holds the shared cluster setup and polling helpers.

mod support;

mod admission;
mod crud;
mod faults;
mod kubectl;
mod patches;
mod runtime;
mod watch;
