//! The checksum validator: its configuration, AWS clients and per-queue caches. What it does
//! lives by role: [`crate::handler`] runs a batch, [`crate::judge`] gathers an object's facts
//! and decides, [`crate::act`] carries out the decision.
//!
//! Floor 4: may import floors 0-3.

use std::collections::HashMap;

use tokio::sync::Mutex;

use crate::config::ValidatorConfig;
use crate::s3::S3Lookup;

/// The checksum validator with its AWS clients and caches.
pub struct Validator {
    pub(crate) config: ValidatorConfig,
    pub(crate) s3: S3Lookup,
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) queue_urls: Mutex<HashMap<String, String>>,
    /// Queue ARN -> the `maxReceiveCount` of its redrive policy (`None`: no policy).
    pub(crate) receive_limits: Mutex<HashMap<String, Option<u32>>>,
}

impl Validator {
    /// Builds the validator from a loaded AWS configuration.
    pub fn new(config: ValidatorConfig, sdk: &aws_config::SdkConfig) -> Validator {
        Validator {
            s3: S3Lookup::new(
                sdk,
                config.force_path_style,
                config.replica_region.clone(),
                config.replica_bucket_map.clone(),
            ),
            sqs: aws_sdk_sqs::Client::new(sdk),
            queue_urls: Mutex::new(HashMap::new()),
            receive_limits: Mutex::new(HashMap::new()),
            config,
        }
    }

    pub fn config(&self) -> &ValidatorConfig {
        &self.config
    }
}
