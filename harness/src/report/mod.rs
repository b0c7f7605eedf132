//! Reports: a judged case ([`case`]), redaction for stable output, the snapshot files, JUnit
//! output, and the HTML report ([`html`]) with its per-object timeline ([`timeline`]).

pub mod case;
pub mod html;
pub mod junit;
pub mod redact;
pub mod snapshot;
pub mod timeline;
