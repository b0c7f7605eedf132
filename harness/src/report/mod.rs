//! Reports: a judged case ([`case`]), the snapshot files, and
//! the renderers of a gate run: JUnit, the Markdown summary ([`summary`]), the HTML report
//! ([`html`]) with its per-object timeline ([`timeline`]).
//!
//! Floor 7: may import floors 0-6 (up to scenario play).

pub mod case;
pub mod html;
pub mod junit;
pub mod snapshot;
pub mod summary;
pub mod timeline;
