//! checksum-validator: decides whether each S3 replica is an exact copy of its primary.
//!
//! Layout: [`event`] parses message bodies; [`facts`], [`coverage`] and [`decision`] are the
//! pure decision core; [`s3`] is the S3 adapter; [`validator`] holds the clients and caches,
//! [`handler`] runs a batch, [`judge`] gathers an object's facts and decides, [`act`] carries
//! out the decision, [`attempts`] reads where a record stands in its delivery, [`report`] is
//! what was done with each record; [`failure_record`] is the message a failure travels in;
//! [`config`] reads the environment; [`lambda`] is the glue both Lambda binaries share;
//! [`text`] makes untrusted text (keys, details, bodies) safe to show in alerts and logs.

pub mod act;
pub mod attempts;
pub mod aws_error;
pub mod config;
pub mod coverage;
pub mod decision;
pub mod event;
pub mod facts;
pub mod failure_record;
pub mod handler;
pub mod judge;
pub mod lambda;
pub mod report;
pub mod retry;
pub mod s3;
pub mod text;
pub mod validator;

pub use config::ValidatorConfig;
pub use decision::Outcome;
pub use lambda::{
    batch_origin, deadline_of, init_lambda_logging, lambda_sdk_config, DEFAULT_LOG_FILTER,
};
pub use report::{BatchReport, RecordReport};
pub use validator::Validator;
