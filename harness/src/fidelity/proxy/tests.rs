//! The fidelity proxy's unit tests.

use super::*;

/// A proxy in front of an upstream that accepts connections and never answers.
async fn silent_upstream() -> (String, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    (url, task)
}

fn quick() -> Limits {
    Limits {
        header_read: std::time::Duration::from_millis(300),
        upstream_connect: std::time::Duration::from_millis(300),
        upstream_read: std::time::Duration::from_millis(300),
        query_body: 1024,
    }
}

/// Security review 2, M1/L2: a request naming another host (a rebound DNS name, a web
/// page's form post) is refused; the proxy's own address passes on upstream.
#[tokio::test]
async fn a_foreign_host_is_refused() {
    let p = GapProxy::start_limited("http://127.0.0.1:9", DefaultChecksums::default(), quick())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let foreign = http
        .post(format!("{}/", p.endpoint))
        .header(hyper::header::HOST, "evil.example")
        .body("Action=ListQueues")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    let rebound = http
        .get(format!("{}/", p.endpoint))
        .header(
            hyper::header::HOST,
            format!("attacker.example:{}", p.state.port),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    // Our own Host goes upstream (which is not there: 502 from the layer, not 403).
    let ours = http.get(format!("{}/", p.endpoint)).send().await.unwrap();
    assert_eq!(ours.status(), 502);
    let local = http
        .get(format!("{}/", p.endpoint))
        .header(hyper::header::HOST, format!("localhost:{}", p.state.port))
        .send()
        .await
        .unwrap();
    assert_eq!(local.status(), 502);
}

/// Finding 8 (partial) and L2: an engine that accepts and never answers does not hold a
/// request longer than the upstream read timeout.
#[tokio::test]
async fn a_silent_upstream_is_cut_by_the_read_timeout() {
    let (upstream, _task) = silent_upstream().await;
    let p = GapProxy::start_limited(&upstream, DefaultChecksums::default(), quick())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let r = reqwest::Client::new()
        .get(format!("{}/b/k", p.endpoint))
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .expect("the layer answers");
    assert_eq!(r.status(), 502);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the layer waited {:?} on a silent engine",
        started.elapsed()
    );
}

/// L2: a client that never finishes its request head is dropped after the header read
/// timeout, and the proxy keeps serving others.
#[tokio::test]
async fn a_client_that_never_finishes_its_head_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let p = GapProxy::start_limited("http://127.0.0.1:9", DefaultChecksums::default(), quick())
        .await
        .unwrap();
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(
            tokio::net::TcpStream::connect(("127.0.0.1", p.state.port))
                .await
                .unwrap(),
        );
    }
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", p.state.port))
        .await
        .unwrap();
    slow.write_all(format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n", p.state.port).as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    // Without a header read timeout this read waits forever.
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        slow.read_to_end(&mut buf),
    )
    .await
    .expect("the proxy closes a connection whose head never ends")
    .ok();
    // Others are still served.
    let r = reqwest::Client::new()
        .get(format!("{}/", p.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    drop(idle);
}

/// Finding 17 (partial) and L2: with a fault armed, a query-protocol body is read whole
/// to find its `Action`, but never past the limit: a larger one gets 413.
#[tokio::test]
async fn an_armed_fault_refuses_an_oversized_query_body() {
    let p = GapProxy::start_limited("http://127.0.0.1:9", DefaultChecksums::default(), quick())
        .await
        .unwrap();
    let spec: FaultSpec = serde_json::from_value(serde_json::json!({
        "service": "sqs", "operation": "SendMessage", "effect": "throttle", "count": 1
    }))
    .unwrap();
    p.fault(spec).await;
    let auth = "AWS4-HMAC-SHA256 Credential=test/20261207/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=abc";
    let send = |body: String| {
        reqwest::Client::new()
            .post(format!("{}/", p.endpoint))
            .header("authorization", auth)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let big = send(format!(
        "Action=SendMessage&MessageBody={}",
        "x".repeat(4096)
    ))
    .await
    .unwrap();
    assert_eq!(big.status(), 413);
    // A small one is read and matched: the armed throttle answers it.
    let small = send("Action=SendMessage&MessageBody=x".into())
        .await
        .unwrap();
    assert_eq!(small.status(), 400, "{:?}", small.text().await);
}

#[test]
fn failed_accepts_back_off_to_a_second_and_reset() {
    let mut b = AcceptBackoff::default();
    let waits: Vec<_> = (0..10).map(|_| b.next()).collect();
    assert_eq!(waits[0], std::time::Duration::from_millis(10));
    assert!(waits.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(waits[9], std::time::Duration::from_secs(1));
    b.reset();
    assert_eq!(b.next(), std::time::Duration::from_millis(10));
}

/// Finding 17: the writes that make a version trigger discovery of their key (no full
/// re-list); part uploads, tagging and reads do not.
#[test]
fn knows_which_requests_write_a_version() {
    use hyper::Method;
    let t = S3Target::parse;
    assert!(writes_a_version(
        &Method::PUT,
        &t("/b/dir/a%20b.txt?x-id=PutObject")
    ));
    assert_eq!(t("/b/dir/a%20b.txt").key, "dir/a b.txt");
    assert!(writes_a_version(&Method::POST, &t("/b/k?uploadId=1")));
    assert!(writes_a_version(&Method::DELETE, &t("/b/k")));
    assert!(!writes_a_version(
        &Method::PUT,
        &t("/b/k?partNumber=1&uploadId=1")
    ));
    assert!(!writes_a_version(&Method::POST, &t("/b/k?uploads")));
    assert!(!writes_a_version(&Method::PUT, &t("/b/k?tagging")));
    assert!(!writes_a_version(&Method::GET, &t("/b/k")));
    assert!(!writes_a_version(&Method::PUT, &t("/b")));
}

#[test]
fn reads_the_signing_service() {
    let h = "AWS4-HMAC-SHA256 Credential=test/20261122/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=abc";
    assert_eq!(signing_service(h), Some("sns"));
    assert_eq!(signing_service("Bearer x"), None);
}

#[test]
fn parses_path_style_targets() {
    let t = S3Target::parse("/b/some/key.txt?versionId=v1&x-id=GetObject");
    assert_eq!(t.bucket, "b");
    assert!(t.has_key);
    assert_eq!(t.param("versionId"), Some("v1"));
    let l = S3Target::parse("/b?versions&prefix=a");
    assert!(!l.has_key);
    assert!(l.flag("versions"));
    assert_eq!(l.query_string(), "versions&prefix=a");
}

#[test]
fn listing_ids_become_source_ids() {
    let map = HashMap::from([("e1".to_string(), "s1".to_string())]);
    let xml = "<Version><Key>k</Key><VersionId>e1</VersionId></Version><DeleteMarker><VersionId>e2</VersionId></DeleteMarker><NextVersionIdMarker>e1</NextVersionIdMarker>";
    assert_eq!(
        rewrite_version_ids(xml, &map),
        "<Version><Key>k</Key><VersionId>s1</VersionId></Version><DeleteMarker><VersionId>e2</VersionId></DeleteMarker><NextVersionIdMarker>s1</NextVersionIdMarker>"
    );
    // The replicator is asked only for the ids the listing shows, in order.
    assert_eq!(version_ids(xml), ["e1", "e2", "e1"]);
    assert_eq!(version_ids("<ListVersionsResult/>"), Vec::<&str>::new());
}

/// Issue 24 item 3: a write of a key over 1,024 bytes is refused as S3 refuses it, before
/// any engine sees it; a key of exactly 1,024 bytes goes on upstream (absent here: 502).
#[tokio::test]
async fn keys_over_1024_bytes_are_refused_with_key_too_long() {
    let p = GapProxy::start_limited("http://127.0.0.1:9", DefaultChecksums::default(), quick())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let auth = "AWS4-HMAC-SHA256 Credential=test/20261207/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abc";
    // 'é' is two bytes: 512 of them are 1,024 bytes, though only 512 characters.
    let at_limit = "é".repeat(512);
    let over = format!("{at_limit}x");
    let put = |key: &str, query: &str| {
        http.put(format!("{}/b/{}{query}", p.endpoint, urlencoding(key)))
            .header("authorization", auth)
            .body("x")
            .send()
    };
    let refused = put(&over, "").await.unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(refused.headers()["x-amz-error-code"], "KeyTooLongError");
    let body = refused.text().await.unwrap();
    assert!(body.contains("<Size>1025</Size>"), "{body}");
    let start = http
        .post(format!("{}/b/{}?uploads", p.endpoint, urlencoding(&over)))
        .header("authorization", auth)
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 400);
    assert_eq!(put(&at_limit, "").await.unwrap().status(), 502);
    // Not a write of a new object under the key: a part, a read.
    assert_eq!(
        put(&over, "?partNumber=1&uploadId=u")
            .await
            .unwrap()
            .status(),
        502
    );
    let read = http
        .get(format!("{}/b/{}", p.endpoint, urlencoding(&over)))
        .header("authorization", auth)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 502);
}

fn urlencoding(key: &str) -> String {
    percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[test]
fn knows_which_requests_create_an_object() {
    use hyper::Method;
    let t = S3Target::parse;
    assert!(creates_an_object(&Method::PUT, &t("/b/k?x-id=PutObject")));
    assert!(creates_an_object(&Method::POST, &t("/b/k?uploads")));
    assert!(!creates_an_object(&Method::POST, &t("/b/k?uploadId=1")));
    assert!(!creates_an_object(
        &Method::PUT,
        &t("/b/k?partNumber=1&uploadId=1")
    ));
    assert!(!creates_an_object(&Method::PUT, &t("/b/k?tagging")));
    assert!(!creates_an_object(&Method::GET, &t("/b/k")));
    assert!(!creates_an_object(&Method::PUT, &t("/b")));
}
