//! Tests of the upload: part sizes, single and multipart uploads, sealing, verification and aborts.
//!
//! Floor 10: may import modules of floors 0 to 9 only; it imports `archive`, `archive::estimate`,
//! `digest`, `errors`, `layout`, `signals`, `signals::signal`, `test_support`, `upload`,
//! `upload::abort`, `upload::parts`, `upload::spec`.

use bytes::Bytes;
use tokio::sync::mpsc;

use super::spec::*;
use super::*;
use crate::errors::AgentError;
use crate::layout::meta;
use rstest::rstest;

#[rstest]
#[case(1, 8, 8)]
#[case(2000, 8, 8)]
#[case(2001, 8, 16)]
#[case(4001, 8, 32)]
#[case(10000, 8, 128)]
#[case(1, 1, 5)]
fn part_sizes(#[case] n: i32, #[case] base_mib: usize, #[case] expected_mib: usize) {
    assert_eq!(part_size_for(n, base_mib << 20), expected_mib << 20);
}

/// S3 parts are at most 5 GiB: the doubling schedule stops there.
#[test]
fn no_part_is_larger_than_s3_allows() {
    assert_eq!(part_size_for(10_000, 5120 << 20), MAX_PART_SIZE);
    assert_eq!(part_size_for(2001, 4096 << 20), MAX_PART_SIZE);
    assert_eq!(part_size_for(1, usize::MAX), MAX_PART_SIZE);
    assert_eq!(capacity(MAX_PART_SIZE), 10_000 * MAX_PART_SIZE as u64);
}

fn estimate_of(bytes: u64) -> crate::archive::Estimate {
    crate::archive::Estimate {
        entries: 1,
        files: 1,
        bytes,
        tar_bytes: bytes + 512,
    }
}

/// Finding 18: a source that 10,000 parts of the chosen size cannot hold gets a larger
/// part size before the upload starts; one S3 cannot store at all is refused.
#[rstest]
#[case(8, 1 << 30, 8)]
#[case(8, 400 << 30, 8)]
#[case(8, 600 << 30, 10)]
#[case(5, 1 << 40, 17)]
#[case(64, 4 << 40, 68)]
fn the_part_size_grows_with_the_estimate(
    #[case] base_mib: usize,
    #[case] bytes: u64,
    #[case] expected_mib: usize,
) {
    let est = estimate_of(bytes);
    let planned = plan_part_size(base_mib << 20, &est).unwrap();
    assert_eq!(planned >> 20, expected_mib);
    assert!(capacity(planned) >= est.archive_bound());
    if planned > base_mib << 20 {
        // The smallest whole MiB that is enough.
        assert!(capacity(planned - (1 << 20)) < est.archive_bound());
    }
}

#[test]
fn an_archive_above_five_tib_is_refused_before_uploading() {
    let e = plan_part_size(8 << 20, &estimate_of(MAX_OBJECT_SIZE)).unwrap_err();
    assert!(e.bound > MAX_OBJECT_SIZE);
    assert!(e.to_string().contains("5 TiB"), "{e}");
    let mut sp = spec(false);
    let err = size_for(&mut sp, &estimate_of(6 << 40)).unwrap_err();
    match &err {
        AgentError::Upload { step, why, .. } => {
            assert_eq!(*step, "size estimate");
            assert!(why.contains("largest object"), "{why}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(err.exit_code(), 8);
    let mut sp = spec(false);
    size_for(&mut sp, &estimate_of(600 << 30)).unwrap();
    assert_eq!(sp.part_size, 10 << 20);
}

#[test]
fn the_part_schedule_reaches_far_beyond_eighty_gib() {
    let total: u64 = (1..=MAX_PARTS)
        .map(|n| part_size_for(n, 8 << 20) as u64)
        .sum();
    assert_eq!(total, (2000 * (8 + 16 + 32 + 64 + 128)) << 20);
}

#[tokio::test]
async fn next_part_accumulates_until_size_or_end() {
    let (tx, mut rx) = mpsc::channel(8);
    for _ in 0..3 {
        tx.send(Bytes::from_static(b"abcd")).await.unwrap();
    }
    drop(tx);
    let (c, len, ended) = next_part(&mut rx, 6).await;
    assert_eq!((c.len(), len, ended), (2, 8, false));
    assert_eq!(concat(c, len), Bytes::from_static(b"abcdabcd"));
    let (c, len, ended) = next_part(&mut rx, 6).await;
    assert_eq!((c.len(), len, ended), (1, 4, true));
}

#[test]
fn final_metadata_has_every_field() {
    let s = ArchiveSummary {
        files: 3,
        dirs: 1,
        symlinks: 0,
        uncompressed_bytes: 99,
        checksums: crate::digest::Digests::new().finish(),
        skipped: vec![],
        changed: vec![],
        hard_links: 0,
        other_file_systems: vec![],
        vanished: vec![],
        unreadable: vec![],
        sparse: vec![],
    };
    let m = final_metadata(&[("category".into(), "media".into())], &s);
    for k in [
        meta::SHA256,
        meta::CRC64NVME,
        meta::FILES,
        meta::UNCOMPRESSED_BYTES,
        meta::TOOL,
        "category",
    ] {
        assert!(m.contains_key(k), "{k}");
    }
    assert_eq!(m[meta::FILES], "3");
    assert_eq!(m[meta::UNCOMPRESSED_BYTES], "99");
}

use crate::test_support::stub::{happy, Reply, Seen, StubS3};

fn spec(delete_intermediate: bool) -> UploadSpec {
    UploadSpec {
        bucket: "b".into(),
        key: "backups/documents/20260101T000000.000Z.tar.gz".into(),
        metadata: vec![],
        part_size: MIN_PART_SIZE,
        max_in_flight: 2,
        copy_object_limit: COPY_OBJECT_LIMIT,
        delete_intermediate,
    }
}

type ArchiveHandle = tokio::task::JoinHandle<Result<ArchiveSummary, AgentError>>;

/// An archive of `total` bytes sent in 1 MiB chunks, as `archive::spawn` would; the
/// handle fails like the real archiver (BrokenPipe) when the receiver goes away.
fn fake_archive(total: usize) -> (mpsc::Receiver<Bytes>, ArchiveHandle) {
    let (tx, rx) = mpsc::channel(2);
    let handle = tokio::spawn(async move {
        let mut digests = crate::digest::Digests::new();
        let mut sent = 0;
        while sent < total {
            let n = (1 << 20).min(total - sent);
            let chunk = Bytes::from(vec![(sent % 251) as u8; n]);
            digests.update(&chunk);
            if tx.send(chunk).await.is_err() {
                return Err(AgentError::ArchiveAbandoned {
                    path: "/src/some/file".into(),
                });
            }
            sent += n;
        }
        Ok(ArchiveSummary {
            files: 1,
            dirs: 0,
            symlinks: 0,
            uncompressed_bytes: total as u64,
            checksums: digests.finish(),
            skipped: vec![],
            changed: vec![],
            hard_links: 0,
            other_file_systems: vec![],
            vanished: vec![],
            unreadable: vec![],
            sparse: vec![],
        })
    });
    (rx, handle)
}

fn versioned_deletes(stub: &StubS3) -> Vec<Seen> {
    stub.of("DeleteObject")
        .into_iter()
        .filter(|s| s.has_query("versionId"))
        .collect()
}

/// Finding 15: by default the agent never deletes a version: the sealed upload's
/// intermediate version is left (for lifecycle) and reported.
#[tokio::test]
async fn the_intermediate_version_is_left_for_lifecycle_by_default() {
    let stub = StubS3::start(happy).await;
    let (rx, handle) = fake_archive(6 << 20);
    let u = upload_stream(&stub.client(), &spec(false), rx, handle, &Cancel::new())
        .await
        .unwrap();
    assert_eq!(u.method, Method::Multipart);
    assert_eq!(u.version_id.as_deref(), Some("v2"));
    assert_eq!(u.leftover_version.as_deref(), Some("v1"));
    assert!(versioned_deletes(&stub).is_empty(), "{:?}", stub.seen());
    assert_eq!(stub.of("CopyObject").len(), 1);
}

/// Finding 15: with --delete-intermediate, an AccessDenied on the versioned delete (a
/// bucket policy denying s3:DeleteObjectVersion) does not fail the backup; the version
/// is reported as left behind.
#[tokio::test]
async fn an_access_denied_versioned_delete_does_not_fail_the_backup() {
    let stub = StubS3::start(|s: &Seen, earlier: &[Seen]| {
        if s.op() == "DeleteObject" && s.has_query("versionId") {
            Reply::error(403, "AccessDenied", "Access Denied")
        } else {
            happy(s, earlier)
        }
    })
    .await;
    let (rx, handle) = fake_archive(6 << 20);
    let u = upload_stream(&stub.client(), &spec(true), rx, handle, &Cancel::new())
        .await
        .unwrap();
    assert_eq!(u.leftover_version.as_deref(), Some("v1"));
    let deletes = versioned_deletes(&stub);
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].query_value("versionId").as_deref(), Some("v1"));
}

/// Finding 15: a stored object that does not verify is hidden with a plain delete (a
/// delete marker), not by deleting its version, unless --delete-intermediate.
#[tokio::test]
async fn a_mismatching_object_is_hidden_without_deleting_a_version() {
    let stub = StubS3::start(|s: &Seen, earlier: &[Seen]| {
        if s.op() == "HeadObject" {
            Reply::status(200).header("content-length", "1")
        } else {
            happy(s, earlier)
        }
    })
    .await;
    let (rx, handle) = fake_archive(6 << 20);
    let e = upload_stream(&stub.client(), &spec(false), rx, handle, &Cancel::new())
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), 9, "{e}");
    let deletes = stub.of("DeleteObject");
    assert_eq!(deletes.len(), 1);
    assert!(!deletes[0].has_query("versionId"));
}

/// Finding 19: cancelling (a signal) while parts are in flight drops them, aborts the
/// multipart upload, checks ListParts, and ends in Interrupted (exit 130 for SIGINT).
#[tokio::test]
async fn a_cancelled_upload_aborts_its_multipart_upload() {
    use crate::signals::Signal;
    let stub = StubS3::start(|s: &Seen, earlier: &[Seen]| {
        if s.op() == "UploadPart" {
            Reply::Hang
        } else {
            happy(s, earlier)
        }
    })
    .await;
    let (rx, handle) = fake_archive(12 << 20);
    let (s3, sp, cancel) = (stub.client(), spec(false), Cancel::new());
    let up = upload_stream(&s3, &sp, rx, handle, &cancel);
    tokio::pin!(up);
    let started = std::time::Instant::now();
    while stub.of("UploadPart").is_empty() {
        assert!(started.elapsed().as_secs() < 20, "no part was sent");
        tokio::select! {
            r = &mut up => panic!("the upload ended: {r:?}"),
            _ = tokio::time::sleep(std::time::Duration::from_millis(10)) => {}
        }
    }
    cancel.trigger(Signal::Interrupt);
    let e = up.await.unwrap_err();
    assert!(matches!(e, AgentError::Interrupted { .. }), "{e}");
    assert_eq!(e.exit_code(), 130);
    let aborts = stub.of("AbortMultipartUpload");
    assert_eq!(aborts.len(), 1, "{:?}", stub.seen());
    assert_eq!(aborts[0].query_value("uploadId").as_deref(), Some("u1"));
    assert_eq!(stub.of("ListParts").len(), 1);
    assert!(stub.of("CompleteMultipartUpload").is_empty());
}

/// Finding 19: parts that arrive after the abort (requests still in flight) make the
/// agent abort once more.
#[tokio::test]
async fn abort_is_repeated_once_while_parts_remain() {
    let stub = StubS3::start(|s: &Seen, earlier: &[Seen]| {
        let listed = earlier.iter().filter(|e| e.op() == "ListParts").count();
        if s.op() == "ListParts" && listed == 0 {
            Reply::xml(
                200,
                "<ListPartsResult><Bucket>b</Bucket><Key>k</Key><UploadId>u1</UploadId>\
                 <Part><PartNumber>1</PartNumber><ETag>\"e\"</ETag><Size>5</Size></Part></ListPartsResult>",
            )
        } else {
            happy(s, earlier)
        }
    })
    .await;
    abort(&stub.client(), &spec(false), "u1").await;
    assert_eq!(stub.of("AbortMultipartUpload").len(), 2);
    assert_eq!(stub.of("ListParts").len(), 2);

    let clean = StubS3::start(happy).await;
    abort(&clean.client(), &spec(false), "u1").await;
    assert_eq!(clean.of("AbortMultipartUpload").len(), 1);
}

/// Finding 18: when UploadPart 2 of a larger tree fails, the upload error (with the
/// service's message) is reported, not the archive's "uploader stopped reading".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_part_failure_is_the_reported_root_cause() {
    let dir = tempfile::tempdir().unwrap();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let noise: Vec<u8> = (0..(24usize << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(dir.path().join("big"), noise).unwrap();
    let stub = StubS3::start(|s: &Seen, earlier: &[Seen]| {
        if s.op() == "UploadPart" && s.query_value("partNumber").as_deref() == Some("2") {
            Reply::error(403, "AccessDenied", "KMS key access denied")
        } else {
            happy(s, earlier)
        }
    })
    .await;
    let opts = crate::archive::ArchiveOptions {
        chunk_size: 1 << 20,
        level: 0,
        ..Default::default()
    };
    let (rx, handle) = crate::archive::spawn(dir.path().to_path_buf(), opts, 2);
    let sp = UploadSpec {
        max_in_flight: 1,
        ..spec(false)
    };
    let e = upload_stream(&stub.client(), &sp, rx, handle, &Cancel::new())
        .await
        .unwrap_err();
    match &e {
        AgentError::Upload { step, why, .. } => {
            assert_eq!(*step, "UploadPart");
            assert!(
                why.contains("part 2") && why.contains("AccessDenied"),
                "{why}"
            );
            assert!(why.contains("KMS key access denied"), "{why}");
        }
        other => panic!("expected the upload error, got: {other}"),
    }
    assert_eq!(stub.of("AbortMultipartUpload").len(), 1);
}

/// Security review 2, finding 8 (partial): a large part gets an attempt timeout that fits
/// its size, a small one the client's 300 s.
#[test]
fn part_attempt_timeouts_grow_with_the_part() {
    use std::time::Duration;
    assert_eq!(part_attempt_timeout(8 << 20), Duration::from_secs(300));
    assert_eq!(
        part_attempt_timeout(1 << 30),
        Duration::from_secs(60 + 1024)
    );
    assert_eq!(
        part_attempt_timeout(5 << 30),
        Duration::from_secs(60 + 5 * 1024)
    );
    assert_eq!(part_attempt_timeout(u64::MAX), Duration::from_secs(7200));
    let t = part_timeouts(1 << 30).build();
    let t = t.timeout_config().expect("a timeout configuration");
    assert_eq!(
        t.operation_attempt_timeout(),
        Some(Duration::from_secs(1084))
    );
    assert_eq!(t.operation_timeout(), Some(Duration::from_secs(3 * 1084)));
}
