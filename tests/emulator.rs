//! The HealthLake emulator, driven through the real aws-sdk-healthlake client over HTTP.

#[path = "emulator/support.rs"]
mod support;

#[path = "emulator/datastores.rs"]
mod datastores;
#[path = "emulator/faults.rs"]
mod faults;
#[path = "emulator/jobs.rs"]
mod jobs;
#[path = "emulator/wire.rs"]
mod wire;
