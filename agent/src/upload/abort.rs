//! The multipart uploads a run has open ([`Uploads`]) and aborting one ([`abort`]).
//!
//! Floor 7: may import modules of floors 0 to 6 only; it imports `aws`, `upload::spec`.

use super::spec::UploadSpec;
use crate::aws::classify;

/// The multipart uploads (ids) an upload has created and neither completed nor aborted
/// yet: what a cancelled upload must abort.
#[derive(Debug, Default)]
pub struct Uploads(std::sync::Mutex<Vec<String>>);

impl Uploads {
    fn ids(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn add(&self, id: &str) {
        self.ids().push(id.to_string());
    }

    pub fn remove(&self, id: &str) {
        self.ids().retain(|i| i != id);
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.ids())
    }
}

/// Aborts a multipart upload, then checks with `ListParts`: parts whose requests were
/// still in flight can arrive after the abort (AWS documents that the abort may have to
/// be repeated), so when the abort failed or parts remain it is tried once more.
pub async fn abort(s3: &aws_sdk_s3::Client, spec: &UploadSpec, upload_id: &str) {
    for attempt in 1..=2 {
        let aborted = match s3
            .abort_multipart_upload()
            .bucket(&spec.bucket)
            .key(&spec.key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => {
                tracing::info!(upload_id, attempt, "multipart upload aborted");
                true
            }
            Err(e) => {
                let f = classify(&e);
                if f.code() == Some("NoSuchUpload") {
                    return;
                }
                tracing::warn!(upload_id, attempt, error = %f.text(), "could not abort the multipart upload");
                false
            }
        };
        let remaining = match s3
            .list_parts()
            .bucket(&spec.bucket)
            .key(&spec.key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(r) => Some(r.parts().len()),
            // Gone (NoSuchUpload) is what a successful abort leaves.
            Err(e)
                if classify(&e).is_not_found() || classify(&e).code() == Some("NoSuchUpload") =>
            {
                Some(0)
            }
            Err(_) => None,
        };
        match remaining {
            Some(0) | None if aborted => return,
            Some(n) if n > 0 && attempt == 1 => {
                tracing::warn!(
                    upload_id,
                    parts = n,
                    "the upload still has parts after the abort; aborting again"
                )
            }
            _ => {}
        }
    }
    tracing::warn!(
        upload_id,
        "the multipart upload may not be fully aborted; the bucket's AbortIncompleteMultipartUpload rule will clean it up"
    );
}
