//! The HealthLake emulator, driven through the real aws-sdk-healthlake client over HTTP.

#[path = "emulator/support.rs"]
mod support;

#[path = "emulator/account_quotas.rs"]
mod account_quotas;
#[path = "emulator/admin.rs"]
mod admin;
#[path = "emulator/cli.rs"]
mod cli;
#[path = "emulator/datastores.rs"]
mod datastores;
#[path = "emulator/faults.rs"]
mod faults;
#[path = "emulator/idempotency.rs"]
mod idempotency;
#[path = "emulator/jobs.rs"]
mod jobs;
#[path = "emulator/properties.rs"]
mod properties;
#[path = "emulator/quotas.rs"]
mod quotas;
#[path = "emulator/regions.rs"]
mod regions;
#[path = "emulator/seeding.rs"]
mod seeding;
#[path = "emulator/state_file.rs"]
mod state_file;
#[path = "emulator/validation.rs"]
mod validation;
#[path = "emulator/wire.rs"]
mod wire;
