//! aws-sdk-healthlake adapter (to be written).
