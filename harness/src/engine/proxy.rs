//! The gap proxy: a loopback HTTP proxy between the functions and the engine that fills
//! two gaps in one place, and changes nothing else (requests and responses pass through
//! byte for byte):
//!
//! - **Replication status.** Where the harness replicator stands in for S3 replication, the
//!   engine cannot report `x-amz-replication-status` on the source. The proxy adds it to
//!   `HeadObject`/`GetObject` answers for primary objects from the replicator's status table
//!   (PENDING until copied, COMPLETED, or FAILED for an injected failure), as S3 does.
//! - **Outages.** A scenario can make the next N requests to one service (e.g. `sns`) fail
//!   with HTTP 503 `ServiceUnavailable`, to prove the functions never drop an alert.
//!
//! The service of a request is read from its SigV4 credential scope.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::replication::Replicator;

/// Shared state of the proxy.
pub struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    replicator: Mutex<Option<Arc<Replicator>>>,
    outages: Mutex<HashMap<String, u32>>,
    injected: Mutex<u32>,
}

/// A running gap proxy; stops when dropped.
pub struct GapProxy {
    pub endpoint: String,
    pub state: Arc<ProxyState>,
    task: JoinHandle<()>,
}

impl Drop for GapProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GapProxy {
    /// Starts a proxy to `upstream` on a free loopback port.
    pub async fn start(upstream: &str) -> std::io::Result<GapProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(32)
                .build()
                .map_err(std::io::Error::other)?,
            replicator: Mutex::new(None),
            outages: Mutex::new(HashMap::new()),
            injected: Mutex::new(0),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(req, st.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(GapProxy {
            endpoint,
            state,
            task,
        })
    }

    /// Reports replication status for the primaries this replicator serves.
    pub async fn set_replicator(&self, r: Arc<Replicator>) {
        *self.state.replicator.lock().await = Some(r);
    }

    /// Makes the next `failures` requests to `service` fail with 503.
    pub async fn outage(&self, service: &str, failures: u32) {
        self.state
            .outages
            .lock()
            .await
            .insert(service.to_string(), failures);
    }

    /// Requests failed on purpose so far.
    pub async fn injected_failures(&self) -> u32 {
        *self.state.injected.lock().await
    }
}

/// The service name in a SigV4 `Authorization` header's credential scope.
pub fn signing_service(authorization: &str) -> Option<&str> {
    let scope = authorization.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    scope.split('/').nth(3)
}

async fn handle(
    req: Request<Incoming>,
    st: Arc<ProxyState>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    match forward(req, &st).await {
        Ok(r) => Ok(r),
        Err(e) => Ok(Response::builder()
            .status(502)
            .body(Full::new(Bytes::from(format!("gap proxy: {e}"))))
            .expect("valid response")),
    }
}

async fn forward(req: Request<Incoming>, st: &ProxyState) -> Result<Response<Full<Bytes>>, String> {
    let service = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(signing_service)
        .unwrap_or("")
        .to_string();
    {
        let mut outages = st.outages.lock().await;
        if let Some(left) = outages.get_mut(&service) {
            if *left > 0 {
                *left -= 1;
                *st.injected.lock().await += 1;
                return Ok(unavailable(&service));
            }
        }
    }
    let method = req.method().clone();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let headers = req.headers().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let url = format!("{}{path_and_query}", st.upstream);
    let mut out = st.http.request(
        reqwest::Method::from_bytes(method.as_str().as_bytes()).map_err(|e| e.to_string())?,
        &url,
    );
    for (name, value) in headers.iter() {
        if matches!(name.as_str(), "host" | "connection" | "content-length") {
            continue;
        }
        out = out.header(name.as_str(), value.as_bytes());
    }
    let answer = out.body(body).send().await.map_err(|e| e.to_string())?;
    let status = answer.status().as_u16();
    let mut builder = Response::builder().status(status);
    let mut has_status = false;
    let mut version: Option<String> = None;
    for (name, value) in answer.headers() {
        match name.as_str() {
            "transfer-encoding" | "connection" => continue,
            "x-amz-replication-status" => has_status = true,
            "x-amz-version-id" => version = value.to_str().ok().map(str::to_string),
            _ => {}
        }
        builder = builder.header(name.as_str(), value.as_bytes());
    }
    if service == "s3"
        && (method == hyper::Method::HEAD || method == hyper::Method::GET)
        && status == 200
        && !has_status
    {
        if let (Some(bucket), Some(v)) = (
            path_and_query
                .trim_start_matches('/')
                .split(['/', '?'])
                .next(),
            version,
        ) {
            if let Some(r) = st.replicator.lock().await.clone() {
                if let Some(s) = r.status(bucket, &v).await {
                    builder = builder.header("x-amz-replication-status", s);
                }
            }
        }
    }
    let bytes = answer.bytes().await.map_err(|e| e.to_string())?;
    builder.body(Full::new(bytes)).map_err(|e| e.to_string())
}

fn unavailable(service: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code>\
         <Message>{service} is unavailable (outage injected by the harness)</Message></Error>\
         <RequestId>harness-outage</RequestId></ErrorResponse>"
    );
    Response::builder()
        .status(503)
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_signing_service() {
        let h = "AWS4-HMAC-SHA256 Credential=test/20261122/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=abc";
        assert_eq!(signing_service(h), Some("sns"));
        assert_eq!(signing_service("Bearer x"), None);
    }
}
