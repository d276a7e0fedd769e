//! The HealthLake port through the real aws-sdk-healthlake client, against the emulator over
//! HTTP: every operation's round trip, every error class, and the rate limiter in front.

#[path = "healthlake/support.rs"]
mod support;

#[path = "healthlake/errors.rs"]
mod errors;
#[path = "healthlake/jobs.rs"]
mod jobs;
#[path = "healthlake/limiter.rs"]
mod limiter;
#[path = "healthlake/round_trips.rs"]
mod round_trips;
#[path = "healthlake/wire.rs"]
mod wire;
