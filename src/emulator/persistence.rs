//! The state file: the account's clock and each region's state as JSON, written atomically
//! after every change.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::EmulatorError;
use super::clock::Clock;
use super::state::State;

/// What the state file holds: the clock and each region's state.
pub struct Account {
    /// The emulator's clock.
    pub clock: Clock,
    /// Each region's state, by region name.
    pub regions: BTreeMap<String, State>,
}

/// The file's layout; `version` lets a later emulator refuse a file it cannot read.
#[derive(Serialize)]
struct StateFileOut<'a> {
    version: u32,
    clock: Clock,
    regions: BTreeMap<&'a str, &'a State>,
}

/// Version 2: `{"version": 2, "clock", "regions": {"<region>": <state>}}`.
const VERSION: u32 = 2;

/// Reads version 1 (one region, the clock inside it) or 2.
fn parse(value: Value, default_region: &str) -> Result<Account, String> {
    let version = value.get("version").and_then(Value::as_u64);
    match version {
        Some(1) => {
            let state = value.get("state").cloned().unwrap_or(Value::Null);
            let clock: Clock =
                serde_json::from_value(state.get("clock").cloned().unwrap_or(Value::Null))
                    .map_err(|error| error.to_string())?;
            let state: State = serde_json::from_value(state).map_err(|error| error.to_string())?;
            let regions = BTreeMap::from([(default_region.to_string(), state)]);
            Ok(Account { clock, regions })
        }
        Some(2) => {
            let clock: Clock =
                serde_json::from_value(value.get("clock").cloned().unwrap_or(Value::Null))
                    .map_err(|error| error.to_string())?;
            let regions: BTreeMap<String, State> =
                serde_json::from_value(value.get("regions").cloned().unwrap_or(Value::Null))
                    .map_err(|error| error.to_string())?;
            Ok(Account { clock, regions })
        }
        Some(other) => Err(format!("unsupported version {other}")),
        None => Err("no version number".to_string()),
    }
}

/// Reads the state file; `None` when it does not exist yet. A version 1 file (one region) is
/// read as the state of `default_region`.
pub fn load(path: &Path, default_region: &str) -> Result<Option<Account>, EmulatorError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(EmulatorError::StateFile {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let format_error = |reason: String| EmulatorError::StateFormat {
        path: path.to_path_buf(),
        reason,
    };
    let value: Value =
        serde_json::from_str(&text).map_err(|source| format_error(source.to_string()))?;
    parse(value, default_region).map(Some).map_err(format_error)
}

/// Writes the state file through a temporary file in the same directory and a rename, so a
/// crash leaves either the old or the new file, never half of one.
pub fn save(
    path: &Path,
    clock: Clock,
    regions: BTreeMap<&str, &State>,
) -> Result<(), EmulatorError> {
    let io_error = |source| EmulatorError::StateFile {
        path: path.to_path_buf(),
        source,
    };
    let text = serde_json::to_vec_pretty(&StateFileOut {
        version: VERSION,
        clock,
        regions,
    })
    .map_err(|source| EmulatorError::StateFormat {
        path: path.to_path_buf(),
        reason: source.to_string(),
    })?;
    let suffix: u64 = rand::random();
    let mut temporary_name = path.file_name().unwrap_or_default().to_os_string();
    temporary_name.push(format!(".{suffix:016x}.tmp"));
    let temporary = path.with_file_name(temporary_name);
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if let Err(source) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(io_error(source));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_file_is_read_as_the_default_region() {
        let file = serde_json::json!({
            "version": 1,
            "state": {
                "datastores": {}, "jobs": {}, "client_tokens": {}, "next_sequence": 7,
                "clock": {"mode": "frozen", "at_millis": 1000}
            }
        });
        let account = parse(file, "eu-west-1").unwrap_or_else(|reason| panic!("{reason}"));
        assert_eq!(account.clock, Clock::Frozen { at_millis: 1000 });
        assert_eq!(account.regions["eu-west-1"].next_sequence, 7);
        assert!(parse(serde_json::json!({"version": 3}), "eu-west-1").is_err());
    }
}
