//! `EncodingType=url` on `ListObjectVersions`, as S3 answers it: an engine that ignores the
//! request writes keys raw into its XML, characters XML 1.0 cannot carry (`\x01`) among
//! them, and no client can parse the answer. The proxy re-encodes such answers
//! (`engine::gaps` lists the gap).
//!
//! S3 encodes `Delimiter`, `KeyMarker`, `Prefix`, `NextKeyMarker` and `Key` when asked (S3
//! API Reference, `ListObjectVersions`, `EncodingType`). The form is AWS's as measured:
//! form encoding (space `+`, `+` `%2B`, `/` kept, UTF-8 as percent escapes).
//!
//! Floor 3: imports floors 0-2 only.

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
