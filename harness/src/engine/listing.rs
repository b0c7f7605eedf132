//! `EncodingType=url` on `ListObjectVersions`, as S3 answers it: an engine that ignores the
//! request writes keys raw into its XML, characters XML 1.0 cannot carry (`\x01`) among
//! them, and no client can parse the answer. Such answers are re-encoded in two places,
//! both from this room (`engine::gaps` lists the gap): the proxy, for every client through
//! it, and [`EncodeVersionListings`], an SDK interceptor on the harness's own engine-side
//! S3 clients ([`crate::engine::Engine::clients`]: the replicator's discovery, teardown).
//!
//! S3 encodes `Delimiter`, `KeyMarker`, `Prefix`, `NextKeyMarker` and `Key` when asked (S3
//! API Reference, `ListObjectVersions`, `EncodingType`). The form is AWS's as measured:
//! form encoding (space `+`, `+` `%2B`, `/` kept, UTF-8 as percent escapes).
//!
//! Floor 1: imports floor 0 only.

use std::pin::Pin;
use std::task::{Context, Poll};

use aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use hyper::body::{Body, Frame};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// The elements S3 encodes under `EncodingType=url`.
const ENCODED: [&str; 5] = ["Key", "KeyMarker", "NextKeyMarker", "Prefix", "Delimiter"];

/// What stays as it is: the unreserved characters and `/`; a space becomes `+` apart.
const KEPT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/')
    .remove(b' ');

/// Whether a `ListObjectVersions` answer to a request asking for `EncodingType=url` must be
/// re-encoded: the engine left the `EncodingType` element out, so it wrote keys raw.
pub fn needs_encoding(xml: &str) -> bool {
    xml.contains("<ListVersionsResult") && !xml.contains("<EncodingType>")
}

/// The answer with every encoded element's text URL-encoded and `<EncodingType>url` added,
/// as S3 would have answered. Entities in the engine's text (`&amp;`, `&#1;`) are read first.
pub fn encode_listing(xml: &str) -> String {
    let mut out = xml.to_string();
    for tag in ENCODED {
        out = encode_elements(&out, tag);
    }
    match out.find("</Name>") {
        Some(at) => out.insert_str(at + "</Name>".len(), "<EncodingType>url</EncodingType>"),
        None => {
            if let Some(at) = out
                .find("<ListVersionsResult")
                .and_then(|s| out[s..].find('>').map(|e| s + e + 1))
            {
                out.insert_str(at, "<EncodingType>url</EncodingType>");
            }
        }
    }
    out
}

fn encode_elements(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let text_at = start + open.len();
        let Some(len) = rest[text_at..].find(&close) else {
            break;
        };
        out.push_str(&rest[..text_at]);
        out.push_str(&url_encode(&unescape(&rest[text_at..text_at + len])));
        out.push_str(&close);
        rest = &rest[text_at + len + close.len()..];
    }
    out.push_str(rest);
    out
}

/// An SDK interceptor that re-encodes a `ListObjectVersions` answer the engine wrote raw
/// ([`needs_encoding`]), before the SDK parses it, so the harness's engine-side listings read
/// what S3 would have answered. Any other answer passes through untouched; on AWS, which
/// encodes when asked, it never changes anything.
#[derive(Debug, Default)]
pub struct EncodeVersionListings;

impl Intercept for EncodeVersionListings {
    fn name(&self) -> &'static str {
        "EncodeVersionListings"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map(Metadata::name);
        if operation != Some("ListObjectVersions") {
            return Ok(());
        }
        let body = context.response_mut().body_mut();
        let inner = std::mem::replace(body, SdkBody::taken());
        *body = SdkBody::from_body_1_x(Reencoded {
            inner,
            read: Vec::new(),
            done: false,
        });
        Ok(())
    }
}

/// A response body read to its end, then handed on whole: re-encoded when it is a raw
/// version listing, as it was otherwise. Listings are small (1,000 keys a page at most).
struct Reencoded {
    inner: SdkBody,
    read: Vec<u8>,
    done: bool,
}

impl Body for Reencoded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.read.extend_from_slice(&data);
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    this.done = true;
                    let read = std::mem::take(&mut this.read);
                    let whole = match std::str::from_utf8(&read) {
                        Ok(text) if needs_encoding(text) => Bytes::from(encode_listing(text)),
                        _ => Bytes::from(read),
                    };
                    return Poll::Ready(Some(Ok(Frame::data(whole))));
                }
            }
        }
    }
}

/// S3's form of URL encoding for a listed key.
pub fn url_encode(key: &str) -> String {
    percent_encoding::utf8_percent_encode(key, KEPT)
        .to_string()
        .replace(' ', "+")
}

/// The text of an XML element: the five predefined entities and character references.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let Some(semi) = after.find(';').filter(|&s| s <= 10) else {
            out.push('&');
            rest = after;
            continue;
        };
        let name = &after[..semi];
        let c = match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            n if n.starts_with("#x") || n.starts_with("#X") => u32::from_str_radix(&n[2..], 16)
                .ok()
                .and_then(char::from_u32),
            n if n.starts_with('#') => n[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3util::listed_key;
    use aws_sdk_s3::types::EncodingType;
    use proptest::prelude::*;
    use rstest::rstest;

    // AWS's answers as measured: space `+`, `+` `%2B`, `%` `%25`, UTF-8 escaped, `/` kept.
    #[rstest]
    #[case("a b.txt", "a+b.txt")]
    #[case("a+b.txt", "a%2Bb.txt")]
    #[case("100%.csv", "100%25.csv")]
    #[case("한글/x.txt", "%ED%95%9C%EA%B8%80/x.txt")]
    #[case("run books/x.txt", "run+books/x.txt")]
    #[case("a\u{1}b\u{1f}c", "a%01b%1Fc")]
    fn keys_are_encoded_as_aws_encodes_them(#[case] key: &str, #[case] encoded: &str) {
        assert_eq!(url_encode(key), encoded);
    }

    /// MiniStack 1.5.33's answer to `?versions&encoding-type=url`, as measured: raw keys,
    /// no `EncodingType`.
    #[test]
    fn a_raw_listing_is_encoded_as_s3_answers() {
        let raw = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListVersionsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><Prefix>ctrl/</Prefix><KeyMarker /><VersionIdMarker /><MaxKeys>1</MaxKeys><IsTruncated>true</IsTruncated><NextKeyMarker>ctrl/a\u{1}b</NextKeyMarker><Version><Key>ctrl/a\u{1}b\u{1f}c+d e &amp; f</Key><VersionId>v1</VersionId></Version><DeleteMarker><Key>x&#1;y</Key></DeleteMarker></ListVersionsResult>";
        assert!(needs_encoding(raw));
        let encoded = encode_listing(raw);
        assert!(!needs_encoding(&encoded));
        assert_eq!(
            encoded,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListVersionsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><EncodingType>url</EncodingType><Prefix>ctrl/</Prefix><KeyMarker /><VersionIdMarker /><MaxKeys>1</MaxKeys><IsTruncated>true</IsTruncated><NextKeyMarker>ctrl/a%01b</NextKeyMarker><Version><Key>ctrl/a%01b%1Fc%2Bd+e+%26+f</Key><VersionId>v1</VersionId></Version><DeleteMarker><Key>x%01y</Key></DeleteMarker></ListVersionsResult>"
        );
    }

    /// Serves `body` as the answer to one HTTP request on a loopback port; returns the
    /// endpoint.
    async fn answer_once(body: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 64 * 1024];
            let _ = conn.read(&mut request).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            conn.write_all(head.as_bytes()).await.unwrap();
            conn.write_all(body.as_bytes()).await.unwrap();
        });
        endpoint
    }

    async fn s3_at(endpoint: &str, encode: bool) -> aws_sdk_s3::Client {
        let sdk =
            crate::aws::sdk_config(endpoint, "us-east-1", crate::engine::EngineKind::Ministack)
                .await;
        let mut conf = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled());
        if encode {
            conf = conf.interceptor(EncodeVersionListings);
        }
        aws_sdk_s3::Client::from_conf(conf.build())
    }

    const RAW: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListVersionsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><Prefix>ctrl/</Prefix><KeyMarker /><VersionIdMarker /><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><Version><Key>ctrl/a\u{1}b\u{1f}c+d e.txt</Key><VersionId>v1</VersionId><IsLatest>true</IsLatest></Version></ListVersionsResult>";

    /// The SDK cannot read an engine's raw answer (`\x01` is not XML 1.0); through the
    /// interceptor it reads S3's encoded answer, and the harness's reader gets the key back.
    #[tokio::test]
    async fn the_interceptor_makes_a_raw_version_listing_readable() {
        let plain = s3_at(&answer_once(RAW).await, false).await;
        let refused = plain
            .list_object_versions()
            .bucket("b")
            .encoding_type(EncodingType::Url)
            .send()
            .await;
        assert!(refused.is_err(), "the raw answer parsed: {refused:?}");

        let encoding = s3_at(&answer_once(RAW).await, true).await;
        let listed = encoding
            .list_object_versions()
            .bucket("b")
            .encoding_type(EncodingType::Url)
            .send()
            .await
            .expect("the encoded answer parses");
        let keys: Vec<String> = listed
            .versions()
            .iter()
            .map(|v| listed_key(v.key().unwrap_or_default(), listed.encoding_type()))
            .collect();
        assert_eq!(keys, ["ctrl/a\u{1}b\u{1f}c+d e.txt"]);
    }

    /// Any other operation's answer passes as it came, unread by the interceptor.
    #[tokio::test]
    async fn other_answers_pass_untouched() {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult><Name>b</Name><Prefix></Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><Contents><Key>a+b</Key></Contents></ListBucketResult>";
        let s3 = s3_at(&answer_once(body).await, true).await;
        let listed = s3
            .list_objects_v2()
            .bucket("b")
            .send()
            .await
            .expect("parses");
        assert_eq!(listed.contents()[0].key(), Some("a+b"));
    }

    #[test]
    fn an_answer_that_encoded_already_is_left_alone() {
        let ls = "<ListVersionsResult><Name>b</Name><EncodingType>url</EncodingType><Version><Key>a%01b%2Bc%20d</Key></Version></ListVersionsResult>";
        assert!(!needs_encoding(ls));
    }

    #[test]
    fn stray_ampersands_survive() {
        assert_eq!(
            unescape("a & b &bogus; &#xZZ; &lt;"),
            "a & b &bogus; &#xZZ; <"
        );
    }

    proptest! {
        /// Whatever the key, the layer's encoding read back by the harness's listings is
        /// the key.
        #[test]
        fn encoding_round_trips_through_the_harness_reader(key in "\\PC{0,40}|[\\x01-\\x1f +%&/]{0,20}") {
            prop_assert_eq!(listed_key(&url_encode(&key), Some(&EncodingType::Url)), key);
        }
    }
}
