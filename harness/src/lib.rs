//! The local-first harness for the event-driven S3 backup system.
//!
//! | module | owns |
//! |---|---|
//! | [`engine`] | installing, starting, identifying local AWS engines; [`engine::gaps`] normalises what they do differently from AWS |
//! | [`topology`] | the seed deployment as data, provisioning and teardown |
//! | [`replication`] | native vs emulated replication, the harness replicator |
//! | [`history`] | what the fidelity layer remembers of every version: in memory, or a redb file for `harness up` |
//! | [`esm`] | the SQS event source mapping that runs the real handlers |
//! | [`system`] | the running system: functions, mappings, replicator, alert sink |
//! | [`package`] | the functions' deployment zips (`cargo lambda build`) and their `provided.al2023` check |
//! | [`deployed`] | `--functions deployed`: the zips run by the engine's own Lambda service and event source mappings, decisions read from their logs |
//! | [`scenario`] | scenario files, the runner, the transcript |
//! | [`posture`] | posture checks of a provisioned topology (`harness gate`) |
//! | [`report`] | the judged case, redaction, snapshots, JUnit, the gate's summary and HTML report |
//! | [`redrive`] | DLQ redrive |
//! | [`agent`] | the backup agent inside scenarios: generated trees, backup, restore and cost runs |
//! | [`cli`] | the `harness` command |

pub mod agent;
pub mod aws;
pub mod bench;
pub mod cli;
pub mod deployed;
pub mod engine;
pub mod errors;
pub mod esm;
pub mod history;
pub mod observe;
pub mod package;
pub mod paths;
pub mod posture;
pub mod redrive;
pub mod replication;
pub mod report;
pub mod s3util;
pub mod scenario;
pub mod system;
pub mod topology;
pub mod up;
