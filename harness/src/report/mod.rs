//! Reports: a judged case ([`case`]), redaction for stable output, the snapshot files, JUnit output.

pub mod case;
pub mod junit;
pub mod redact;
pub mod snapshot;
