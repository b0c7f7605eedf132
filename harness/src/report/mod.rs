//! Reports: a judged case ([`case`]), redaction for stable output, the snapshot files, and
//! the renderers of a gate run: JUnit, the Markdown summary ([`summary`]), the HTML report
//! ([`html`]) with its per-object timeline ([`timeline`]).

pub mod case;
pub mod html;
pub mod junit;
pub mod redact;
pub mod snapshot;
pub mod summary;
pub mod timeline;
