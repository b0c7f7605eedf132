//! LocalStack through testcontainers, when a Docker engine answers.
//!
//! Tag `4.14.0` (the last free image); `LOCALSTACK_AUTH_TOKEN` is passed through for users
//! who choose a newer tag with `HARNESS_LOCALSTACK_TAG`.

use std::time::Duration;

/// Whether a Docker engine answers (`docker info`), within 5 s. `HARNESS_NO_DOCKER=1`
/// forces host mode.
pub async fn available() -> bool {
    if std::env::var("HARNESS_NO_DOCKER").is_ok_and(|v| v == "1") {
        return false;
    }
    let probe = tokio::process::Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    matches!(
        tokio::time::timeout(Duration::from_secs(5), probe).await,
        Ok(Ok(status)) if status.success()
    )
}

#[cfg(feature = "docker")]
pub async fn start_localstack() -> Result<super::Engine, crate::errors::EngineError> {
    use testcontainers_modules::localstack::LocalStack;
    use testcontainers_modules::testcontainers::runners::AsyncRunner;
    use testcontainers_modules::testcontainers::ImageExt;

    use crate::errors::EngineError;

    let started = std::time::Instant::now();
    let tag = std::env::var("HARNESS_LOCALSTACK_TAG").unwrap_or_else(|_| "4.14.0".into());
    let mut image = LocalStack::default()
        .with_tag(tag.clone())
        .with_env_var("SERVICES", "s3,sqs,sns,events,kms,iam,sts")
        .with_env_var("SQS_ENDPOINT_STRATEGY", "path");
    if let Ok(token) = std::env::var("LOCALSTACK_AUTH_TOKEN") {
        image = image.with_env_var("LOCALSTACK_AUTH_TOKEN", token);
    }
    let container = image
        .start()
        .await
        .map_err(|e| EngineError::Docker(e.to_string()))?;
    let port = container
        .get_host_port_ipv4(4566)
        .await
        .map_err(|e| EngineError::Docker(e.to_string()))?;
    let endpoint = format!("http://127.0.0.1:{port}");
    Ok(super::Engine {
        kind: super::EngineKind::Localstack,
        flavor: super::Flavor::Localstack,
        endpoint,
        how: format!("docker container localstack/localstack:{tag}"),
        install_time: None,
        start_time: started.elapsed(),
        log: None,
        probed: None,
        _guard: super::EngineGuard::Container(Box::new(container)),
    })
}
