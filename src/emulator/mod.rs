//! The HealthLake emulator (to be written): a real HTTP server speaking HealthLake's wire protocol.
