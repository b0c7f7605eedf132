//! The engines' health routes: which engine answers at an endpoint, and whether it is ready.

use std::time::Duration;

use super::error::EngineError;
use super::kind::{EngineKind, Flavor};

/// Asks an endpoint which engine it is, through each engine's health route.
pub async fn identify(endpoint: &str) -> Result<Flavor, EngineError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| EngineError::Unreachable {
            endpoint: endpoint.into(),
            why: e.to_string(),
        })?;
    let base = endpoint.trim_end_matches('/');
    if let Ok(r) = http.get(format!("{base}/_localstack/health")).send().await {
        if r.status().is_success() {
            return Ok(Flavor::Localstack);
        }
    }
    match http.get(format!("{base}/_ministack/health")).send().await {
        Ok(r) if r.status().is_success() => Ok(Flavor::Ministack),
        Ok(_) => Ok(Flavor::Aws),
        Err(e) if e.is_connect() || e.is_timeout() => Err(EngineError::Unreachable {
            endpoint: endpoint.into(),
            why: crate::errors::sdk(e),
        }),
        Err(_) => Ok(Flavor::Aws),
    }
}

/// Whether `endpoint` answers its health route with a ready engine.
pub async fn healthy(kind: EngineKind, endpoint: &str) -> Result<(), String> {
    let path = match kind {
        EngineKind::Localstack => "/_localstack/health",
        EngineKind::Ministack => "/_ministack/health",
        EngineKind::External => return Ok(()),
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| e.to_string())?;
    let r = http
        .get(format!("{}{path}", endpoint.trim_end_matches('/')))
        .send()
        .await
        .map_err(crate::errors::sdk)?;
    if !r.status().is_success() {
        return Err(format!("health answered {}", r.status()));
    }
    let body: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
    for svc in ["s3", "sqs", "sns", "events"] {
        let st = body["services"][svc].as_str().unwrap_or("missing");
        if !matches!(st, "available" | "running") {
            return Err(format!("service {svc} is {st}"));
        }
    }
    Ok(())
}
