//! S3 upload helpers shared by scenario steps and the replicator.
//!
//! Floor 0: imports only other ground rooms (no domain types).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ServerSideEncryption,
};

use crate::errors::sdk;

/// Options of one upload.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub metadata: Option<std::collections::HashMap<String, String>>,
    pub content_type: Option<String>,
    /// SSE-KMS with this key (ARN or alias).
    pub kms_key: Option<String>,
    pub storage_class: Option<aws_sdk_s3::types::StorageClass>,
}

/// Uploads `bytes` as a multipart upload with parts of `part_size` bytes, each part and the
/// upload declaring `algorithm`, and the part checksums listed on completion (the form both
/// engines and AWS accept; see `../shared/notes/rust-deps.md`); with `None` no checksum is
/// declared (the client must then not add one: `request_checksum_calculation` when
/// required). Returns the new version id.
pub async fn put_multipart(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    bytes: &[u8],
    part_size: usize,
    algorithm: Option<ChecksumAlgorithm>,
    opts: &PutOptions,
) -> Result<Option<String>, String> {
    let mut upload = MultipartUpload::create(s3, bucket, key, algorithm, opts).await?;
    for chunk in bytes.chunks(part_size.max(1)) {
        if let Err(e) = upload.part(chunk.to_vec()).await {
            upload.abort().await;
            return Err(e);
        }
    }
    upload.complete().await
}

/// A multipart upload written one part at a time, so a caller holds one part in memory,
/// never the object (the replicator's copies, `replication::replicator`).
pub struct MultipartUpload<'a> {
    s3: &'a aws_sdk_s3::Client,
    bucket: String,
    key: String,
    id: String,
    algorithm: Option<ChecksumAlgorithm>,
    parts: Vec<CompletedPart>,
}

impl<'a> MultipartUpload<'a> {
    /// CreateMultipartUpload with the options and checksum algorithm of every part.
    pub async fn create(
        s3: &'a aws_sdk_s3::Client,
        bucket: &str,
        key: &str,
        algorithm: Option<ChecksumAlgorithm>,
        opts: &PutOptions,
    ) -> Result<MultipartUpload<'a>, String> {
        let mut create = s3
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .set_checksum_algorithm(algorithm.clone())
            .set_metadata(opts.metadata.clone())
            .set_content_type(opts.content_type.clone())
            .set_storage_class(opts.storage_class.clone());
        if let Some(k) = &opts.kms_key {
            create = create
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(k);
        }
        let upload = create.send().await.map_err(sdk)?;
        Ok(MultipartUpload {
            s3,
            bucket: bucket.to_string(),
            key: key.to_string(),
            id: upload.upload_id().unwrap_or_default().to_string(),
            algorithm,
            parts: Vec::new(),
        })
    }

    /// Uploads the next part.
    pub async fn part(&mut self, chunk: Vec<u8>) -> Result<(), String> {
        let n = self.parts.len() as i32 + 1;
        let out = self
            .s3
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.id)
            .part_number(n)
            .set_checksum_algorithm(self.algorithm.clone())
            .body(ByteStream::from(chunk))
            .send()
            .await
            .map_err(sdk)?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(n)
                .set_e_tag(out.e_tag().map(str::to_string))
                .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
                .set_checksum_crc32_c(out.checksum_crc32_c().map(str::to_string))
                .set_checksum_sha256(out.checksum_sha256().map(str::to_string))
                .set_checksum_sha1(out.checksum_sha1().map(str::to_string))
                .set_checksum_crc64_nvme(out.checksum_crc64_nvme().map(str::to_string))
                .build(),
        );
        Ok(())
    }

    /// CompleteMultipartUpload with every part's checksum; returns the new version id.
    pub async fn complete(self) -> Result<Option<String>, String> {
        self.s3
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(self.parts))
                    .build(),
            )
            .send()
            .await
            .map(|out| out.version_id().map(str::to_string))
            .map_err(sdk)
    }

    /// AbortMultipartUpload, best effort (a failed copy is retried as a whole).
    pub async fn abort(self) {
        if let Err(e) = self
            .s3
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.id)
            .send()
            .await
        {
            tracing::debug!(key = %self.key, error = %sdk(e), "abort of a failed upload failed");
        }
    }
}

/// The encoding every listing of the harness asks for. A key may hold characters XML 1.0
/// cannot carry (`\x01`, `\x1f`, ...): "For characters that aren't supported in XML 1.0,
/// you can add this parameter to request that Amazon S3 encode the keys in the response"
/// (S3 API Reference, `ListObjectVersions`, `encoding-type`). S3 then encodes `Key`,
/// `KeyMarker`, `NextKeyMarker`, `Prefix` and `Delimiter`.
pub const LISTING_ENCODING: aws_sdk_s3::types::EncodingType = aws_sdk_s3::types::EncodingType::Url;

/// A key (or marker) as a listing answered it, decoded when the answer says it encoded
/// (`EncodingType` = `url` in the response).
///
/// AWS documents only "URL encoding". Measured on AWS, it is form encoding: a space comes
/// back as `+`, a `+` as `%2B`, `%` as `%25`, UTF-8 as percent escapes, `/` as is. Reading
/// `+` as a space and then the escapes decodes that and RFC 3986 percent-encoding alike
/// (where a space is `%20`). An answer without `EncodingType` (an engine that ignores the
/// request) is taken as it is: decoding it would turn a literal `+` or `%41` into another
/// key. A decoding that is not UTF-8 is kept as answered.
pub fn listed_key(raw: &str, encoding: Option<&aws_sdk_s3::types::EncodingType>) -> String {
    if encoding != Some(&aws_sdk_s3::types::EncodingType::Url) {
        return raw.to_string();
    }
    let plus_as_space = raw.replace('+', " ");
    match percent_encoding::percent_decode_str(&plus_as_space).decode_utf8() {
        Ok(key) => key.into_owned(),
        Err(_) => raw.to_string(),
    }
}

/// Whether an XML 1.0 document can carry `key` (its `Char` production: tab, newline,
/// carriage return, and U+0020 up, without U+FFFE and U+FFFF). Keys that fail this cannot
/// be named in a `DeleteObjects` request body; they are deleted one by one instead.
pub fn xml_can_carry(key: &str) -> bool {
    key.chars().all(|c| {
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
    })
}

#[cfg(test)]
mod listing_tests {
    use super::{listed_key, xml_can_carry};
    use aws_sdk_s3::types::EncodingType;
    use rstest::rstest;

    // The first five rows are AWS's answers as measured (space `+`, `+` `%2B`); the next
    // ones the RFC 3986 form an engine may answer in; the last, control characters.
    #[rstest]
    #[case("a+b.txt", "a b.txt")]
    #[case("a%2Bb.txt", "a+b.txt")]
    #[case("100%25.csv", "100%.csv")]
    #[case("%ED%95%9C%EA%B8%80/x.txt", "한글/x.txt")]
    #[case("run+books/x.txt", "run books/x.txt")]
    #[case("a%20b.txt", "a b.txt")]
    #[case("a%2B%20b", "a+ b")]
    #[case("a%01b%1Fc", "a\u{1}b\u{1f}c")]
    fn url_encoded_listings_decode(#[case] raw: &str, #[case] key: &str) {
        assert_eq!(listed_key(raw, Some(&EncodingType::Url)), key);
    }

    #[rstest]
    #[case("a+b%41.txt")]
    #[case("100%.csv")]
    fn unencoded_answers_are_taken_as_they_are(#[case] raw: &str) {
        assert_eq!(listed_key(raw, None), raw);
    }

    #[test]
    fn a_decoding_that_is_not_utf8_is_kept() {
        assert_eq!(listed_key("a%FFb", Some(&EncodingType::Url)), "a%FFb");
    }

    #[rstest]
    #[case("plain/key.txt", true)]
    #[case("tab\tnewline\ncr\r", true)]
    #[case("日本語", true)]
    #[case("a\u{1}b", false)]
    #[case("a\u{1f}", false)]
    #[case("\u{0}", false)]
    #[case("a\u{FFFE}", false)]
    fn xml_carries_only_its_characters(#[case] key: &str, #[case] carried: bool) {
        assert_eq!(xml_can_carry(key), carried);
    }
}
