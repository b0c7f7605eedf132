//! failure-notifier: turns validation failure records and dead letters into SNS alerts.
//!
//! [`alert`] composes subject and message (pure); [`handler`] publishes them and reports
//! publish failures as batch item failures so no alert is ever dropped; [`ledger`] keeps a
//! replayed or duplicate record from alerting twice.

pub mod alert;
pub mod handler;
pub mod ledger;

pub use alert::{compose, Alert, Origin};
pub use handler::{LedgerUse, Notifier, NotifierConfig, NotifyReport};
