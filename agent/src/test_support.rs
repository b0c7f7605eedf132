//! Test helpers shared by the unit tests.
//!
//! Floor 3: may import modules of floors 0 to 2 only; it imports `aws`.

/// For tests about permissions, which root bypasses: returns `true` when the calling test
/// should run its body in this process (not root, or already the re-run). As root it
/// re-runs `test` (its full path, e.g. `archive::tests::name`) from this test binary as
/// user and group 65534 (nobody), asserts that the re-run passed, and returns `false`.
pub fn runs_as_non_root(test: &str) -> bool {
    const ENV: &str = "AUTOBACKUP_TEST_AS_NOBODY";
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 || std::env::var_os(ENV).is_some() {
        return true;
    }
    use std::os::unix::process::CommandExt;
    let exe = runnable_by_nobody();
    let out = std::process::Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ENV, "1")
        .uid(65534)
        .gid(65534)
        .output()
        .expect("re-run the test as nobody");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} as nobody: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// A copy of this test binary that uid 65534 can execute: the build directory usually sits
/// under root's 0700 home. Copied once per binary version (a temporary name renamed into
/// place, so concurrent test processes never see a half-written file).
fn runnable_by_nobody() -> std::path::PathBuf {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    static COPY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        let meta = std::fs::metadata(&exe).expect("test binary metadata");
        let dir = std::env::temp_dir().join("autobackup-tests-as-nobody");
        std::fs::create_dir_all(&dir).expect("create the copy directory");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .expect("open the copy directory");
        let name = format!(
            "{}-{}-{}",
            exe.file_name().unwrap_or_default().to_string_lossy(),
            meta.size(),
            meta.mtime()
        );
        let copy = dir.join(&name);
        if !copy.is_file() {
            let partial = dir.join(format!("{name}.{}", std::process::id()));
            std::fs::copy(&exe, &partial).expect("copy the test binary");
            std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))
                .expect("make the copy executable");
            std::fs::rename(&partial, &copy).expect("move the copy into place");
        }
        copy
    })
    .clone()
}

/// A stub S3 endpoint on 127.0.0.1 for unit tests: every request is recorded (method,
/// path, query, headers, body) and answered by a handler, so a test can make one call fail
/// (an AccessDenied, an UploadPart error) or hang, and inspect what the agent sent.
pub mod stub {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use http_body_util::combinators::BoxBody;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;

    /// One request as the stub received it.
    #[derive(Debug, Clone)]
    pub struct Seen {
        pub method: String,
        /// Path without the query, e.g. `/bucket/backups/x.tar.gz`.
        pub path: String,
        /// Raw query string (may be empty).
        pub query: String,
        /// Header names are lower case.
        pub headers: Vec<(String, String)>,
        pub body: Bytes,
    }

    impl Seen {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        /// Whether the query has parameter `name` (with or without a value).
        pub fn has_query(&self, name: &str) -> bool {
            self.query_value(name).is_some()
        }

        pub fn query_value(&self, name: &str) -> Option<String> {
            self.query
                .split('&')
                .filter(|p| !p.is_empty())
                .find_map(|p| match p.split_once('=') {
                    Some((k, v)) if k == name => Some(v.to_string()),
                    None if p == name => Some(String::new()),
                    _ => None,
                })
        }

        /// The S3 operation this request is, as far as the stub cares.
        pub fn op(&self) -> &'static str {
            let m = self.method.as_str();
            // `/b` and `/b/` are the bucket, `/b/k` an object.
            let object = self
                .path
                .trim_start_matches('/')
                .trim_end_matches('/')
                .contains('/');
            match m {
                "POST" if self.path == "/" && self.form_has("Action=GetCallerIdentity") => {
                    "GetCallerIdentity"
                }
                "GET" if self.path == "/" => "ListBuckets",
                "HEAD" if !object => "HeadBucket",
                "HEAD" => "HeadObject",
                "POST" if self.has_query("uploads") => "CreateMultipartUpload",
                "POST" if self.has_query("uploadId") => "CompleteMultipartUpload",
                "POST" if self.has_query("delete") => "DeleteObjects",
                "PUT"
                    if self.has_query("partNumber")
                        && self.header("x-amz-copy-source").is_some() =>
                {
                    "UploadPartCopy"
                }
                "PUT" if self.has_query("partNumber") => "UploadPart",
                "PUT" if self.header("x-amz-copy-source").is_some() => "CopyObject",
                "PUT" => "PutObject",
                "DELETE" if self.has_query("uploadId") => "AbortMultipartUpload",
                "DELETE" => "DeleteObject",
                "GET" if self.has_query("uploadId") => "ListParts",
                "GET" if self.has_query("lifecycle") => "GetBucketLifecycleConfiguration",
                "GET" if self.has_query("versioning") => "GetBucketVersioning",
                "GET" if self.has_query("versions") => "ListObjectVersions",
                "GET" if !object => "ListObjectsV2",
                "GET" => "GetObject",
                _ => "Unknown",
            }
        }

        /// Whether the (form-encoded) body contains `needle`.
        pub fn form_has(&self, needle: &str) -> bool {
            self.body
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
        }

        /// Size of the payload the client meant (aws-chunked bodies carry it in a header).
        pub fn payload_len(&self) -> u64 {
            self.header("x-amz-decoded-content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(self.body.len() as u64)
        }
    }

    /// How the stub answers one request.
    #[derive(Debug, Clone)]
    pub enum Reply {
        Answer {
            status: u16,
            headers: Vec<(String, String)>,
            body: String,
        },
        /// Never answers (until the client gives up or the stub is dropped).
        Hang,
        /// Sends the status, headers and the first bytes of a body, then stalls (a download
        /// that stops in the middle).
        Stall {
            status: u16,
            headers: Vec<(String, String)>,
            first: Bytes,
        },
    }

    impl Reply {
        pub fn status(status: u16) -> Reply {
            Reply::Answer {
                status,
                headers: Vec::new(),
                body: String::new(),
            }
        }

        pub fn xml(status: u16, body: impl Into<String>) -> Reply {
            Reply::Answer {
                status,
                headers: vec![("content-type".into(), "application/xml".into())],
                body: body.into(),
            }
        }

        /// An S3 error document.
        pub fn error(status: u16, code: &str, message: &str) -> Reply {
            Reply::xml(
                status,
                format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message><RequestId>stub</RequestId></Error>"),
            )
        }

        pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
            if let Reply::Answer { headers, .. } = &mut self {
                headers.push((name.to_string(), value.into()));
            }
            self
        }
    }

    /// Answers `seen` given every earlier request (`earlier`, oldest first).
    pub type Handler = Arc<dyn Fn(&Seen, &[Seen]) -> Reply + Send + Sync>;

    /// A running stub; stops when dropped.
    pub struct StubS3 {
        pub endpoint: String,
        seen: Arc<Mutex<Vec<Seen>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for StubS3 {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl StubS3 {
        /// Starts a stub answering with `handler` (see [`happy`] for a working S3).
        pub async fn start(
            handler: impl Fn(&Seen, &[Seen]) -> Reply + Send + Sync + 'static,
        ) -> StubS3 {
            let handler: Handler = Arc::new(handler);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the stub");
            let endpoint = format!("http://{}", listener.local_addr().expect("stub address"));
            let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
            let log = seen.clone();
            let task = tokio::spawn(async move {
                let mut connections = tokio::task::JoinSet::new();
                while let Ok((stream, _)) = listener.accept().await {
                    let (handler, log) = (handler.clone(), log.clone());
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (handler, log) = (handler.clone(), log.clone());
                        async move { Ok::<_, Infallible>(answer(req, &handler, &log).await) }
                    });
                    connections.spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
            StubS3 {
                endpoint,
                seen,
                task,
            }
        }

        /// Every request so far, oldest first.
        pub fn seen(&self) -> Vec<Seen> {
            self.seen.lock().map(|s| s.clone()).unwrap_or_default()
        }

        /// The requests of one operation (see [`Seen::op`]).
        pub fn of(&self, op: &str) -> Vec<Seen> {
            self.seen().into_iter().filter(|s| s.op() == op).collect()
        }

        /// An S3 client for the stub: path style, test credentials, no retries.
        pub fn client(&self) -> aws_sdk_s3::Client {
            aws_sdk_s3::Client::from_conf(self.config().build())
        }

        /// Agent clients (S3, SNS, STS) for the stub, loaded as [`crate::aws::Aws::connect`]
        /// loads them, with test credentials and no retries.
        pub async fn aws(&self) -> crate::aws::Aws {
            let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    "test", "test", None, None, "stub",
                ))
                .endpoint_url(&self.endpoint)
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .load()
                .await;
            crate::aws::Aws::from_config(sdk, true, self.endpoint.clone())
        }

        /// The configuration behind [`StubS3::client`], to add to.
        pub fn config(&self) -> aws_sdk_s3::config::Builder {
            aws_sdk_s3::config::Builder::new()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    "test", "test", None, None, "stub",
                ))
                .endpoint_url(&self.endpoint)
                .force_path_style(true)
                .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        }
    }

    async fn answer(
        req: Request<Incoming>,
        handler: &Handler,
        log: &Arc<Mutex<Vec<Seen>>>,
    ) -> Response<BoxBody<Bytes, Infallible>> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let seen = Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or_default().to_string(),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_ascii_lowercase(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body,
        };
        let reply = {
            let mut all = log.lock().expect("stub log");
            let r = handler(&seen, &all);
            all.push(seen);
            r
        };
        match reply {
            Reply::Hang => {
                std::future::pending::<()>().await;
                unreachable!()
            }
            Reply::Answer {
                status,
                headers,
                body,
            } => respond(status, headers, Full::new(Bytes::from(body)).boxed()),
            Reply::Stall {
                status,
                headers,
                first,
            } => respond(status, headers, Stalling(Some(first)).boxed()),
        }
    }

    fn respond(
        status: u16,
        headers: Vec<(String, String)>,
        body: BoxBody<Bytes, Infallible>,
    ) -> Response<BoxBody<Bytes, Infallible>> {
        let mut b = Response::builder().status(status);
        for (n, v) in headers {
            b = b.header(n, v);
        }
        b.body(body).expect("a valid stub response")
    }

    /// A body that yields its first bytes and then never ends.
    struct Stalling(Option<Bytes>);

    impl hyper::body::Body for Stalling {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
            match self.0.take() {
                Some(b) => std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(b)))),
                None => std::task::Poll::Pending,
            }
        }
    }

    /// A working versioned S3 for one object: multipart uploads (id `u1`), copies (the
    /// copy is version `v2`, the first write `v1`), aborts, deletes, ListParts (no parts
    /// after an abort), `HeadObject` answering the size of what was uploaded.
    pub fn happy(seen: &Seen, earlier: &[Seen]) -> Reply {
        match seen.op() {
            "ListBuckets" => Reply::xml(200, "<ListAllMyBucketsResult><Buckets></Buckets></ListAllMyBucketsResult>"),
            "HeadBucket" => Reply::status(200),
            "CreateMultipartUpload" => Reply::xml(
                200,
                "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>",
            )
            .header("x-amz-checksum-algorithm", "CRC64NVME")
            .header("x-amz-checksum-type", "FULL_OBJECT"),
            "UploadPart" => Reply::status(200).header(
                "etag",
                format!("\"etag{}\"", seen.query_value("partNumber").unwrap_or_default()),
            ),
            "CompleteMultipartUpload" => Reply::xml(
                200,
                "<CompleteMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><ETag>\"e-2\"</ETag></CompleteMultipartUploadResult>",
            )
            .header("x-amz-version-id", "v1"),
            "CopyObject" => Reply::xml(
                200,
                "<CopyObjectResult><ETag>\"c\"</ETag></CopyObjectResult>",
            )
            .header("x-amz-version-id", "v2"),
            "PutObject" => Reply::status(200).header("x-amz-version-id", "v1"),
            "AbortMultipartUpload" | "DeleteObject" => Reply::status(204),
            "ListParts" => {
                if earlier.iter().any(|s| s.op() == "AbortMultipartUpload") {
                    Reply::error(404, "NoSuchUpload", "The specified upload does not exist.")
                } else {
                    Reply::xml(200, "<ListPartsResult><Bucket>b</Bucket><Key>k</Key><UploadId>u1</UploadId></ListPartsResult>")
                }
            }
            "GetBucketLifecycleConfiguration" => Reply::error(
                404,
                "NoSuchLifecycleConfiguration",
                "The lifecycle configuration does not exist",
            ),
            "HeadObject" => {
                let stored: u64 = if earlier.iter().any(|s| s.op() == "CompleteMultipartUpload") {
                    earlier
                        .iter()
                        .filter(|s| s.op() == "UploadPart")
                        .map(Seen::payload_len)
                        .sum()
                } else {
                    earlier
                        .iter()
                        .rev()
                        .find(|s| s.op() == "PutObject")
                        .map(Seen::payload_len)
                        .unwrap_or(0)
                };
                Reply::status(200)
                    .header("content-length", stored.to_string())
                    .header("x-amz-version-id", "v2")
            }
            _ => Reply::error(501, "NotImplemented", "the stub does not do this"),
        }
    }
}
