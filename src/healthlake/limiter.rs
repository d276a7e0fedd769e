//! Client-side rate limiter (to be written).
