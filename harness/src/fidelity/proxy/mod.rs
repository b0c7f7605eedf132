//! The fidelity layer: a loopback HTTP proxy between every client (the functions, the
//! harness's own steps, a user's AWS CLI) and the engine, which makes what clients see of
//! S3 replication what AWS shows, and injects outages. Everything else passes through
//! byte for byte, bodies streamed.
//!
//! Where the harness replicator stands in for S3 replication ([`Replicator`]):
//! - **Replica version ids.** S3 replicas keep the source's version id ("Replicas have the
//!   same key names and the same metadata, for example creation time, user-defined metadata,
//!   and version ID", S3 User Guide, Replication). Engines give copies new ids, so on a
//!   replica bucket the layer maps `versionId` (and `version-id-marker`) in requests from
//!   the source id to the engine's, answers `404 NoSuchVersion` for a version not
//!   replicated (yet), and maps `x-amz-version-id` headers and the `<VersionId>` elements of
//!   `ListObjectVersions` back to source ids.
//! - **Replication status.** `x-amz-replication-status` on `HeadObject`/`GetObject` comes
//!   from the replicator: PENDING / COMPLETED / FAILED for eligible primary versions, none
//!   for a version no rule covers ("Amazon S3 returns the x-amz-replication-status header if
//!   the object in your request is eligible for replication", "Getting replication status
//!   information"), REPLICA on replicas. An engine's own header is dropped.
//! - **Configuration.** `GetBucketReplication` on a primary answers the rules the replicator
//!   applies (the engine holds none, so it cannot replicate on its own).
//!
//! - **Default checksums** ([`super::checksums`]): an object uploaded without a checksum
//!   gets S3's default full-object CRC64NVME, computed as the body streams through.
//!
//! API faults ([`super::faults`]): throttling, server errors, latency and connection resets
//! per service and operation, in each service's wire format. The service of a request is
//! read from its SigV4 credential scope. With no fault installed a request is not inspected
//! for them (one atomic load). Rewriting a query changes what was signed; neither local
//! engine verifies signatures (`../shared/notes/engines.md`), and real AWS is never proxied.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::checksums::{self, Crc64, DefaultChecksums};
use super::faults::{self, FaultSpec, Faults, Protocol, Service};
use super::target::S3Target;
use crate::engine::listing;
use crate::fidelity::replicator::Replicator;

type Body = BoxBody<Bytes, std::io::Error>;

/// Shared state of the proxy.
pub struct ProxyState {
    upstream: String,
    /// The `Host` a client of this proxy sends (`127.0.0.1:<port>`, or `localhost:<port>`).
    port: u16,
    limits: Limits,
    http: reqwest::Client,
    replicator: Mutex<Option<Arc<Replicator>>>,
    faults: Faults,
    checksums: Arc<DefaultChecksums>,
    stats: LayerStats,
}

/// The proxy's own bounds: a stalled or slow client or upstream never holds it.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A client must send its request head within this (slow clients, idle connections).
    pub header_read: std::time::Duration,
    /// Connecting to the engine.
    pub upstream_connect: std::time::Duration,
    /// The longest silence while reading the engine's answer (long polls wait 20 s).
    pub upstream_read: std::time::Duration,
    /// The largest query-protocol body (SQS, SNS) read whole while a fault is armed (to
    /// find its `Action`); larger ones get 413. SQS and SNS take at most 1 MiB and 256 KiB.
    pub query_body: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read: std::time::Duration::from_secs(30),
            upstream_connect: std::time::Duration::from_secs(5),
            upstream_read: std::time::Duration::from_secs(120),
            query_body: 8 * 1024 * 1024,
        }
    }
}

/// What the layer itself costs: requests served, and the time spent in the layer on each
/// (before the request goes upstream, and from the upstream's answer to ours; streamed
/// bodies pass through and are not counted).
#[derive(Debug, Default)]
pub struct LayerStats {
    requests: std::sync::atomic::AtomicU64,
    overhead_ns: std::sync::atomic::AtomicU64,
}

impl LayerStats {
    fn add(&self, overhead: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        self.requests.fetch_add(1, Relaxed);
        self.overhead_ns
            .fetch_add(overhead.as_nanos().min(u64::MAX as u128) as u64, Relaxed);
    }

    /// (requests, total time spent in the layer).
    pub fn read(&self) -> (u64, std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.requests.load(Relaxed),
            std::time::Duration::from_nanos(self.overhead_ns.load(Relaxed)),
        )
    }
}

/// A running fidelity layer; stops when dropped.
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
        Self::start_with(upstream, DefaultChecksums::default()).await
    }

    /// [`GapProxy::start`] keeping the default checksums in `checksums` (a file for
    /// `harness up`: see [`crate::history`]).
    pub async fn start_with(
        upstream: &str,
        checksums: DefaultChecksums,
    ) -> std::io::Result<GapProxy> {
        Self::start_limited(upstream, checksums, Limits::default()).await
    }

    /// [`GapProxy::start_with`] within `limits`.
    pub async fn start_limited(
        upstream: &str,
        checksums: DefaultChecksums,
        limits: Limits,
    ) -> std::io::Result<GapProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            port,
            limits,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(32)
                .tcp_nodelay(true)
                .connect_timeout(limits.upstream_connect)
                .read_timeout(limits.upstream_read)
                .build()
                .map_err(std::io::Error::other)?,
            replicator: Mutex::new(None),
            faults: Faults::default(),
            checksums: Arc::new(checksums),
            stats: LayerStats::default(),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            let mut backoff = AcceptBackoff::default();
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => {
                        backoff.reset();
                        stream
                    }
                    // Out of descriptors (EMFILE) or a transient error: wait before the next
                    // accept instead of spinning on the same error.
                    Err(_) => {
                        tokio::time::sleep(backoff.next()).await;
                        continue;
                    }
                };
                // Small request/response pairs (SQS, HEAD) would otherwise wait on Nagle's
                // algorithm against the client's delayed ACKs (~40 ms a round trip).
                let _ = stream.set_nodelay(true);
                let st = st.clone();
                tokio::spawn(async move {
                    let header_read = st.limits.header_read;
                    let service = hyper::service::service_fn(move |req| handle(req, st.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(header_read)
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

    /// Serves replication as this replicator performs it.
    pub async fn set_replicator(&self, r: Arc<Replicator>) {
        r.use_default_checksums(self.state.checksums.clone());
        *self.state.replicator.lock().await = Some(r);
    }

    /// Installs an API fault.
    pub async fn fault(&self, spec: FaultSpec) {
        self.state.faults.install(spec).await;
    }

    /// Removes every fault still armed (see [`faults::Faults::disarm`]).
    pub async fn disarm_faults(&self) {
        self.state.faults.disarm().await;
    }

    /// Every fault installed and its firings.
    pub async fn fault_report(&self) -> Vec<(FaultSpec, Vec<faults::Firing>)> {
        self.state.faults.report().await
    }

    /// Requests failed, delayed or reset on purpose so far.
    pub async fn injected_failures(&self) -> usize {
        self.state.faults.fired().await
    }

    /// What the layer has cost so far.
    pub fn stats(&self) -> (u64, std::time::Duration) {
        self.state.stats.read()
    }
}

/// The service name in a SigV4 `Authorization` header's credential scope.
pub fn signing_service(authorization: &str) -> Option<&str> {
    let scope = authorization.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    scope.split('/').nth(3)
}

/// Whether a successful S3 request makes a new version (or delete marker) of an object:
/// PutObject/CopyObject, CompleteMultipartUpload, DeleteObject; not part uploads, not the
/// start of a multipart upload.
pub fn writes_a_version(method: &hyper::Method, target: &S3Target) -> bool {
    if !target.has_key {
        return false;
    }
    let upload = target.flag("uploadId");
    match *method {
        hyper::Method::PUT => !upload && !target.flag("tagging") && !target.flag("acl"),
        hyper::Method::POST => upload,
        hyper::Method::DELETE => !upload && !target.flag("tagging"),
        _ => false,
    }
}

/// A request the layer does not answer: an injected connection reset.
#[derive(Debug, thiserror::Error)]
#[error("connection reset (fault injected by the harness fidelity layer)")]
pub struct InjectedReset;

/// The wait before the next `accept()` after a failed one: 10 ms doubling to 1 s.
#[derive(Debug, Default)]
struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    fn next(&mut self) -> std::time::Duration {
        let wait = std::time::Duration::from_millis(10 << self.failures.min(7));
        self.failures = self.failures.saturating_add(1);
        wait.min(std::time::Duration::from_secs(1))
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Whether a request's `Host` names this proxy: a web page that rebinds a name of its own
/// to 127.0.0.1 sends that name, and is refused (clients here use the endpoint as given).
fn host_is_ours(host: Option<&str>, port: u16) -> bool {
    let Some(host) = host else {
        return false;
    };
    [format!("127.0.0.1:{port}"), format!("localhost:{port}")]
        .iter()
        .any(|ours| host.eq_ignore_ascii_case(ours))
}

async fn handle(
    req: Request<Incoming>,
    st: Arc<ProxyState>,
) -> Result<Response<Body>, InjectedReset> {
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok());
    if !host_is_ours(host, st.port) {
        return Ok(Response::builder()
            .status(403)
            .body(full(format!(
                "fidelity layer: Host {:?} is not this proxy (127.0.0.1:{})",
                host.unwrap_or(""),
                st.port
            )))
            .expect("valid response"));
    }
    match forward(req, &st).await {
        Ok(r) => Ok(r),
        Err(Forward::Reset) => Err(InjectedReset),
        Err(Forward::Failed(e)) => Ok(Response::builder()
            .status(502)
            .body(full(format!("fidelity layer: {e}")))
            .expect("valid response")),
    }
}

enum Forward {
    Reset,
    Failed(String),
}

impl From<String> for Forward {
    fn from(e: String) -> Forward {
        Forward::Failed(e)
    }
}

fn full(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).map_err(|never| match never {}).boxed()
}

async fn forward(req: Request<Incoming>, st: &ProxyState) -> Result<Response<Body>, Forward> {
    let arrived = std::time::Instant::now();
    let service = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(signing_service)
        .unwrap_or("")
        .to_string();
    let (parts, incoming) = req.into_parts();
    let source = if st.faults.armed() {
        match inject(&parts, incoming, &service, st).await? {
            (Some(answer), _) => return Ok(answer),
            (None, source) => source,
        }
    } else {
        Source::Stream(incoming)
    };
    let method = parts.method.clone();
    let mut path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let replicator = if service == "s3" {
        st.replicator.lock().await.clone()
    } else {
        None
    };
    // Which side of replication this request touches, if any.
    let mut side = Side::None;
    let mut target = S3Target::parse(&path_and_query);
    if service == "s3" && creates_an_object(&method, &target) && target.key.len() > MAX_KEY_BYTES {
        return Ok(key_too_long(target.key.len()));
    }
    if let Some(r) = &replicator {
        if r.is_primary(&target.bucket) {
            side = Side::Primary;
            if method == hyper::Method::GET && !target.has_key && target.flag("replication") {
                if let Some(c) = r.config(&target.bucket) {
                    return Ok(xml(200, c.to_xml()));
                }
            }
        } else if r.is_replica(&target.bucket) {
            side = Side::Replica;
            for param in ["versionId", "version-id-marker"] {
                let Some(source) = target.param(param).map(str::to_string) else {
                    continue;
                };
                match r.engine_id(&target.bucket, &source).await {
                    Some(engine) => target.set(param, engine),
                    None if param == "versionId" => {
                        return Ok(no_such_version(method == hyper::Method::HEAD, &source))
                    }
                    None => {}
                }
            }
            let path = path_and_query
                .split_once('?')
                .map(|(p, _)| p.to_string())
                .unwrap_or_else(|| path_and_query.clone());
            let q = target.query_string();
            path_and_query = if q.is_empty() {
                path
            } else {
                format!("{path}?{q}")
            };
        }
    }
    let headers = parts.headers;
    let uploading = if service != "s3" || !target.has_key {
        Uploading::None
    } else if method == hyper::Method::PUT
        && !target.flag("uploadId")
        && !headers.contains_key("x-amz-copy-source")
        && !checksums::declares_checksum(&headers)
    {
        Uploading::Put
    } else if method == hyper::Method::POST
        && target.flag("uploads")
        && !checksums::declares_checksum(&headers)
    {
        Uploading::Create
    } else if method == hyper::Method::POST
        && target
            .param("uploadId")
            .is_some_and(|id| st.checksums.take_upload(id))
    {
        Uploading::Complete
    } else {
        Uploading::None
    };
    let digest: Option<Digest> = (uploading == Uploading::Put).then(Default::default);
    let body = source.into_reqwest(digest.clone());
    let url = format!("{}{path_and_query}", st.upstream);
    let mut out = st.http.request(
        reqwest::Method::from_bytes(method.as_str().as_bytes()).map_err(|e| e.to_string())?,
        &url,
    );
    for (name, value) in headers.iter() {
        if matches!(name.as_str(), "host" | "connection") {
            continue;
        }
        out = out.header(name.as_str(), value.as_bytes());
    }
    let before = arrived.elapsed();
    let answer = out.body(body).send().await.map_err(|e| e.to_string())?;
    let answered = std::time::Instant::now();
    let status = answer.status().as_u16();
    if let Some(r) = replicator.as_ref().filter(|_| side == Side::Primary) {
        if (200..300).contains(&status) && writes_a_version(&method, &target) {
            r.written(&target.bucket, &target.key);
        }
    }
    let version_listing =
        method == hyper::Method::GET && !target.has_key && target.flag("versions") && status == 200;
    // Replica listings show source version ids; listings that asked for URL-encoded keys
    // get them encoded where the engine wrote them raw (`engine::listing`).
    let encode_keys = service == "s3" && target.param("encoding-type") == Some("url");
    let rewrite_listing = version_listing && (side == Side::Replica || encode_keys);
    let engine_version = answer
        .headers()
        .get("x-amz-version-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let (Some(d), Some(v), 200) = (&digest, &engine_version, status) {
        let d = d.lock().expect("not poisoned");
        let declared = headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_none_or(|n| n == d.bytes()) {
            st.checksums.record(&target.bucket, v, d.base64());
        }
    }
    // The default checksum of the version read, if the layer keeps one: it replaces the
    // engine's checksum headers, as S3 would have stored only it.
    let object_read = (method == hyper::Method::HEAD || method == hyper::Method::GET)
        && target.has_key
        && !target.flag("partNumber")
        && status == 200;
    let default_checksum = match (&engine_version, object_read) {
        (Some(v), true) => st.checksums.get(&target.bucket, v),
        _ => None,
    };
    let mut builder = Response::builder().status(status);
    let mut version: Option<String> = None;
    for (name, value) in answer.headers() {
        match name.as_str() {
            "transfer-encoding" | "connection" => continue,
            n if default_checksum.is_some() && n.starts_with("x-amz-checksum-") => continue,
            "content-length" if rewrite_listing => continue,
            "x-amz-replication-status" if side != Side::None => continue,
            "x-amz-version-id" if side != Side::None => {
                version = value.to_str().ok().map(str::to_string);
                continue;
            }
            _ => {}
        }
        builder = builder.header(name.as_str(), value.as_bytes());
    }
    if let Some(crc) = &default_checksum {
        let enabled = headers
            .get("x-amz-checksum-mode")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("enabled"));
        if enabled {
            builder = builder
                .header("x-amz-checksum-crc64nvme", crc.as_str())
                .header("x-amz-checksum-type", "FULL_OBJECT");
        }
    }
    if matches!(uploading, Uploading::Create | Uploading::Complete) && status == 200 {
        let bytes = answer.bytes().await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&bytes);
        match uploading {
            Uploading::Create => {
                if let Some(id) = checksums::upload_id_of(&text) {
                    st.checksums.upload_without_checksum(id);
                }
            }
            _ if !text.contains("<Error>") => {
                if let Some(v) = &engine_version {
                    match digest_upstream(st, &path_and_query, v, &headers).await {
                        Ok(crc) => st.checksums.record(&target.bucket, v, crc),
                        Err(e) => {
                            tracing::warn!(error = %e, "reading a completed upload for its default checksum failed")
                        }
                    }
                }
            }
            _ => {}
        }
        st.stats.add(before + answered.elapsed());
        return builder
            .body(full(bytes))
            .map_err(|e| Forward::Failed(e.to_string()));
    }
    if let (Some(r), Some(v)) = (&replicator, version) {
        let shown = match side {
            Side::Replica => r.source_id(&target.bucket, &v).await.unwrap_or(v.clone()),
            _ => v.clone(),
        };
        builder = builder.header("x-amz-version-id", shown);
        if object_read {
            if side == Side::Primary {
                r.ensure_known(&target.bucket, &target.key, &v).await;
            }
            if let Some(s) = r.status(&target.bucket, &v).await {
                builder = builder.header("x-amz-replication-status", s);
            }
        }
    }
    if rewrite_listing {
        let bytes = answer.bytes().await.map_err(|e| e.to_string())?;
        let map = match &replicator {
            Some(r) => {
                let text = String::from_utf8_lossy(&bytes);
                r.id_map(&target.bucket, version_ids(&text)).await
            }
            None => HashMap::new(),
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut text = rewrite_version_ids(&text, &map);
        if encode_keys && listing::needs_encoding(&text) {
            text = listing::encode_listing(&text);
        }
        st.stats.add(before + answered.elapsed());
        return builder
            .body(full(text))
            .map_err(|e| Forward::Failed(e.to_string()));
    }
    st.stats.add(before + answered.elapsed());
    let stream = answer
        .bytes_stream()
        .map_ok(Frame::data)
        .map_err(std::io::Error::other);
    builder
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .map_err(|e| Forward::Failed(e.to_string()))
}

/// The CRC64NVME of an object version as the engine stores it, streamed from upstream (the
/// request's own credentials: engines route by them and check no signature).
async fn digest_upstream(
    st: &ProxyState,
    path_and_query: &str,
    version: &str,
    headers: &hyper::HeaderMap,
) -> Result<String, String> {
    let path = path_and_query.split('?').next().unwrap_or(path_and_query);
    let url = format!(
        "{}{path}?versionId={}",
        st.upstream,
        percent_encoding::utf8_percent_encode(version, percent_encoding::NON_ALPHANUMERIC)
    );
    let mut get = st.http.get(url);
    for name in ["authorization", "x-amz-date", "x-amz-security-token"] {
        if let Some(v) = headers.get(name) {
            get = get.header(name, v.as_bytes());
        }
    }
    let answer = get
        .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !answer.status().is_success() {
        return Err(format!("HTTP {}", answer.status()));
    }
    let mut crc = Crc64::default();
    let mut stream = answer.bytes_stream();
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        crc.update(&chunk.map_err(|e| e.to_string())?);
    }
    Ok(crc.base64())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    None,
    Primary,
    Replica,
}

/// Replaces engine version ids by source ids in a `ListObjectVersions` body.
/// The version ids a listing shows (`<VersionId>` and the markers), in order.
pub fn version_ids(xml: &str) -> Vec<&str> {
    let mut ids = Vec::new();
    let mut rest = xml;
    loop {
        let next = ["<VersionId>", "<NextVersionIdMarker>", "<VersionIdMarker>"]
            .iter()
            .filter_map(|open| rest.find(open).map(|i| i + open.len()))
            .min();
        let Some(start) = next else {
            return ids;
        };
        rest = &rest[start..];
        let end = rest.find('<').unwrap_or(rest.len());
        ids.push(&rest[..end]);
        rest = &rest[end..];
    }
}

pub fn rewrite_version_ids(xml: &str, map: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    loop {
        let next = ["<VersionId>", "<NextVersionIdMarker>", "<VersionIdMarker>"]
            .iter()
            .filter_map(|open| rest.find(open).map(|i| (i, *open)))
            .min_by_key(|(i, _)| *i);
        let Some((i, open)) = next else {
            out.push_str(rest);
            return out;
        };
        let start = i + open.len();
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find('<').unwrap_or(rest.len());
        let id = &rest[..end];
        out.push_str(map.get(id).map(String::as_str).unwrap_or(id));
        rest = &rest[end..];
    }
}

fn xml(status: u16, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(full(body))
        .expect("valid response")
}

/// "The object key name is a sequence of Unicode characters with UTF-8 encoding of up to
/// 1,024 bytes long" (S3 User Guide, "Naming Amazon S3 objects").
pub const MAX_KEY_BYTES: usize = 1024;

/// Whether the request would store an object under its key: PutObject and CopyObject (a
/// PUT that is not a part, nor a subresource such as `?tagging`), CreateMultipartUpload.
pub fn creates_an_object(method: &hyper::Method, target: &S3Target) -> bool {
    if !target.has_key {
        return false;
    }
    const SUBRESOURCES: [&str; 6] = [
        "uploadId",
        "tagging",
        "acl",
        "retention",
        "legal-hold",
        "restore",
    ];
    match *method {
        hyper::Method::PUT => !SUBRESOURCES.iter().any(|s| target.flag(s)),
        hyper::Method::POST => target.flag("uploads"),
        _ => false,
    }
}

/// S3's answer to a write whose key is over [`MAX_KEY_BYTES`]: `KeyTooLongError`, "Your key
/// is too long", 400 Bad Request (S3 API Reference, "Error responses", list of error codes).
fn key_too_long(size: usize) -> Response<Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>KeyTooLongError</Code>\
         <Message>Your key is too long</Message><Size>{size}</Size>\
         <MaxSizeAllowed>{MAX_KEY_BYTES}</MaxSizeAllowed><RequestId>harness-fidelity</RequestId></Error>"
    );
    Response::builder()
        .status(400)
        .header("content-type", "application/xml")
        .header("x-amz-error-code", "KeyTooLongError")
        .body(full(body))
        .expect("valid response")
}

/// S3's answer for a version id the bucket does not hold.
fn no_such_version(head: bool, version: &str) -> Response<Body> {
    let body = if head {
        String::new()
    } else {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchVersion</Code>\
             <Message>The specified version does not exist.</Message><VersionId>{version}</VersionId>\
             <RequestId>harness-fidelity</RequestId></Error>"
        )
    };
    Response::builder()
        .status(404)
        .header("content-type", "application/xml")
        .header("x-amz-error-code", "NoSuchVersion")
        .body(full(body))
        .expect("valid response")
}

/// A request body: still streaming, or read already (to learn an `awsQuery` operation).
enum Source {
    Stream(Incoming),
    Read(Bytes),
}

type Digest = Arc<std::sync::Mutex<Crc64>>;

impl Source {
    /// The body for the upstream request; `digest` sees every byte on the way.
    fn into_reqwest(self, digest: Option<Digest>) -> reqwest::Body {
        match (self, digest) {
            (Source::Stream(b), None) => reqwest::Body::wrap_stream(b.into_data_stream()),
            (Source::Stream(b), Some(d)) => {
                reqwest::Body::wrap_stream(b.into_data_stream().inspect_ok(move |chunk| {
                    d.lock().expect("not poisoned").update(chunk);
                }))
            }
            (Source::Read(bytes), d) => {
                if let Some(d) = d {
                    d.lock().expect("not poisoned").update(&bytes);
                }
                reqwest::Body::from(bytes)
            }
        }
    }
}

/// What a request means for default checksums.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Uploading {
    None,
    /// `PutObject` without a checksum: digest the body.
    Put,
    /// `CreateMultipartUpload` without a checksum algorithm: remember the upload id.
    Create,
    /// `CompleteMultipartUpload` of such an upload: digest the object once completed.
    Complete,
}

/// Applies the first installed fault that takes this request: `Some` answer, or the body
/// to forward.
async fn inject(
    parts: &hyper::http::request::Parts,
    body: Incoming,
    signing: &str,
    st: &ProxyState,
) -> Result<(Option<Response<Body>>, Source), Forward> {
    let Some(service) = Service::from_signing_name(signing) else {
        return Ok((None, Source::Stream(body)));
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let protocol = Protocol::of(service, &header("content-type"));
    let mut source = Source::Stream(body);
    let (operation, key) = match protocol {
        Protocol::RestXml => faults::s3_request(
            parts.method.as_str(),
            parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/"),
            parts.headers.contains_key("x-amz-copy-source"),
        ),
        Protocol::Json(_) => (
            faults::json_operation(&header("x-amz-target"))
                .unwrap_or("")
                .to_string(),
            None,
        ),
        Protocol::Query if st.faults.needs_operation(service).await => {
            let Source::Stream(body) = source else {
                unreachable!("the body is still streaming here")
            };
            let limit = st.limits.query_body;
            let bytes = match http_body_util::Limited::new(body, limit).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return Ok((
                        Some(
                            Response::builder()
                                .status(413)
                                .body(full(format!(
                                    "fidelity layer: a {service:?} request body over {limit} bytes while a fault is armed"
                                )))
                                .expect("valid response"),
                        ),
                        Source::Read(Bytes::new()),
                    ))
                }
                Err(e) => return Err(Forward::Failed(e.to_string())),
            };
            let op = faults::query_action(&bytes).unwrap_or_default();
            source = Source::Read(bytes);
            (op, None)
        }
        Protocol::Query => (String::new(), None),
    };
    match st.faults.take(service, &operation, key.as_deref()).await {
        None => Ok((None, source)),
        Some(faults::Action::Delay(d)) => {
            tokio::time::sleep(d).await;
            Ok((None, source))
        }
        Some(faults::Action::Reset) => Err(Forward::Reset),
        Some(faults::Action::Fail { status, code }) => {
            let head = parts.method == hyper::Method::HEAD;
            let (status, headers, body) =
                faults::error_answer(service, protocol, head, status, &code);
            let mut b = Response::builder().status(status);
            if head {
                // A HEAD answer has no body; S3 carries the code in a header instead.
                b = b.header("x-amz-error-code", code.as_str());
            }
            for (k, v) in headers {
                b = b.header(k, v);
            }
            Ok((Some(b.body(full(body)).expect("valid response")), source))
        }
    }
}

#[cfg(test)]
mod tests;
