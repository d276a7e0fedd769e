//! The state file: the account's state as JSON, written atomically after every change.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::EmulatorError;
use super::state::State;

/// The file's layout; `version` lets a later emulator refuse a file it cannot read.
#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    state: State,
}

const VERSION: u32 = 1;

/// Reads the state file; `None` when it does not exist yet.
pub fn load(path: &Path) -> Result<Option<State>, EmulatorError> {
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
    let file: StateFile =
        serde_json::from_str(&text).map_err(|source| EmulatorError::StateFormat {
            path: path.to_path_buf(),
            reason: source.to_string(),
        })?;
    if file.version != VERSION {
        return Err(EmulatorError::StateFormat {
            path: path.to_path_buf(),
            reason: format!("unsupported version {}", file.version),
        });
    }
    Ok(Some(file.state))
}

/// Writes the state file through a temporary file in the same directory and a rename, so a
/// crash leaves either the old or the new file, never half of one.
pub fn save(path: &Path, state: &State) -> Result<(), EmulatorError> {
    let io_error = |source| EmulatorError::StateFile {
        path: path.to_path_buf(),
        source,
    };
    let text = serde_json::to_vec_pretty(&StateFile {
        version: VERSION,
        state: state.clone(),
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
