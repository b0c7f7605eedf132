//! `autobackup`: a backup agent that streams a compressed tar of a directory straight into
//! S3, keeps the newest N backups, restores them with verification, and analyses what the
//! bucket costs under its lifecycle rules.
//!
//! ```text
//! autobackup backup  --source DIR --category documents|media|database [--keep 5] --bucket B
//! autobackup restore --category C [--at latest|KEY|VERSION] --to DIR [--force] --bucket B
//! autobackup cost    --bucket B [--history FILE] [--json] [--chart FILE.svg] [--prices FILE]
//! autobackup bench   --size-mb N --bucket B [--create-bucket]
//! ```
//!
//! A pure core, apart from the AWS adapters:
//!
//! | module | owns |
//! |---|---|
//! | [`cli`] | the command line: one module per command, each an `Args` struct with `run()` |
//! | [`errors`] | error types with context, their exit codes |
//! | [`layout`] | categories, key names, timestamps, metadata names (pure) |
//! | [`archive`] | streaming tar + gzip of a tree into a bounded chunk channel |
//! | [`digest`] | incremental SHA-256 and CRC64NVME (pure) |
//! | [`upload`] | streaming multipart upload, sealing metadata, verification |
//! | [`restore`] | finding, downloading, verifying and unpacking a backup |
//! | [`rotation`] | which backups to delete and what that means in a versioned bucket (pure) |
//! | [`anomaly`] | mean ± kσ statistics over history (pure) |
//! | [`history`] | the JSON-lines history file |
//! | [`cost`] | price table, per-class inventory, lifecycle projection, report, SVG (pure) |
//! | [`notify`] | notification texts (pure) and SNS publishing |
//! | [`preflight`] | source, endpoint, credentials and bucket checks |
//! | [`signals`] | SIGINT/SIGTERM: cancel the command, let it clean up, exit 130/143 |
//! | [`compat`] | the one place local-engine differences from AWS are handled |
//! | [`aws`], [`s3`] | SDK clients, error classification, S3 calls and type conversions |
//! | [`logging`], [`rss`], [`units`] | log setup, memory figures, human units |
//!
//! # Exit codes
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (anomalies are notified but do not fail the run) |
//! | 1 | unexpected internal error |
//! | 2 | invalid command line or configuration |
//! | 3 | source directory missing, not a directory or unreadable |
//! | 4 | the S3 endpoint does not answer |
//! | 5 | no credentials found, or the endpoint rejects them |
//! | 6 | the bucket does not exist |
//! | 7 | access to the bucket denied (or it is in another region) |
//! | 8 | reading the tree or streaming the archive into S3 failed |
//! | 9 | checksum mismatch (S3 or restore saw different bytes) |
//! | 10 | restore target exists and is not empty (use `--force`) |
//! | 11 | no backup matches |
//! | 12 | a local file (history, prices, log, chart) failed |
//! | 13 | backup stored but rotation failed |
//! | 14 | another S3 or SNS call failed |
//! | 15 | unpacking the downloaded archive failed |
//! | 130 | stopped by SIGINT (uploads aborted, restore staging removed) |
//! | 143 | stopped by SIGTERM (likewise) |

pub mod anomaly;
pub mod archive;
pub mod aws;
pub mod cli;
pub mod compat;
pub mod cost;
pub mod digest;
pub mod errors;
pub mod history;
pub mod layout;
pub mod logging;
pub mod notify;
pub mod preflight;
pub mod restore;
pub mod rotation;
pub mod rss;
pub mod s3;
pub mod signals;
#[cfg(test)]
mod test_support;
pub mod units;
pub mod upload;
