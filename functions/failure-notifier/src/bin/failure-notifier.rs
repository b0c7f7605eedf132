//! The Lambda binary: wires the library's handler to `lambda_runtime`.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use failure_notifier::{Notifier, NotifierConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    checksum_validator::init_lambda_logging();
    // An invalid configuration ends the Init phase: logged as one structured line first, so
    // it reads in CloudWatch Logs as what it is (the runtime reports the exit as an error).
    let config = NotifierConfig::from_env().inspect_err(
        |e| tracing::error!(error = %e, "invalid configuration; the function cannot start"),
    )?;
    let sdk = checksum_validator::lambda_sdk_config().await;
    let notifier = Notifier::new(config, &sdk);
    let notifier = &notifier;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = checksum_validator::deadline_of(event.context.deadline);
        Ok::<SqsBatchResponse, Error>(notifier.handle(event.payload, Some(deadline)).await)
    }))
    .await
}
