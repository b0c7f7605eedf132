//! Reports: redaction for stable output, the snapshot files, JUnit output.

pub mod junit;
pub mod redact;
pub mod snapshot;
