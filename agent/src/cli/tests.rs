//! Tests of the command line ([`super::Cli`]) and of commands run through it.
//!
//! Floor 12: may import modules of floors 0 to 11 only; it imports `cli`, `cli::backup`,
//! `cli::common`, `cli::restore`, `errors`, `restore::place`, `test_support`.

use clap::{CommandFactory, Parser};

use super::*;
use crate::errors::AgentError;
use crate::test_support::stub::{happy, StubS3};

/// Finding 18: a source whose archive could exceed S3's 5 TiB object limit (here one
/// sparse 6 TiB file) fails after pre-flight and before any upload request, with the
/// upload error of step "size estimate" (exit 8), recorded in the history.
#[tokio::test]
async fn a_source_above_the_object_limit_is_refused_before_uploading() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("src");
    std::fs::create_dir(&source).unwrap();
    let huge = std::fs::File::create(source.join("huge.img")).unwrap();
    if huge.set_len(6 << 40).is_err() {
        eprintln!("this file system cannot hold a 6 TiB sparse file; skipped");
        return;
    }
    drop(huge);
    let history = dir.path().join("history.jsonl");
    let cli = Cli::try_parse_from([
        "autobackup",
        "backup",
        "--source",
        source.to_str().unwrap(),
        "--category",
        "documents",
        "--bucket",
        "b",
        "--history",
        history.to_str().unwrap(),
    ])
    .unwrap();
    let Command::Backup(backup) = cli.command else {
        panic!("not a backup");
    };
    let stub = StubS3::start(happy).await;
    let ctx = Context {
        log_file: dir.path().join("log"),
    };
    let aws = stub.aws().await;
    let run = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        backup.perform(&ctx, &aws),
    );
    let e = run
        .await
        .expect("refused at once, not after streaming terabytes")
        .map(|_| ())
        .unwrap_err();
    match &e {
        AgentError::Upload { step, why, .. } => {
            assert_eq!(*step, "size estimate");
            assert!(why.contains("5 TiB"), "{why}");
        }
        other => panic!("expected the size refusal, got: {other}"),
    }
    assert_eq!(e.exit_code(), 8);
    assert_eq!(stub.of("HeadBucket").len(), 1, "pre-flight ran");
    for op in ["CreateMultipartUpload", "UploadPart", "PutObject"] {
        assert!(stub.of(op).is_empty(), "{op} was sent: {:?}", stub.seen());
    }
    let recorded = std::fs::read_to_string(&history).unwrap();
    assert!(recorded.contains("size estimate"), "{recorded}");
}

#[test]
fn cli_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn every_flag_is_documented() {
    fn walk(cmd: &clap::Command, path: &str) {
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            assert!(
                a.get_help().is_some() || a.get_long_help().is_some(),
                "{path} --{id} has no help text"
            );
        }
        for sub in cmd.get_subcommands() {
            assert!(
                sub.get_about().is_some(),
                "{path} {} has no about",
                sub.get_name()
            );
            walk(sub, &format!("{path} {}", sub.get_name()));
        }
    }
    walk(&Cli::command(), "autobackup");
}

#[test]
fn help_documents_exit_codes() {
    let mut cmd = Cli::command();
    let help = cmd.render_help().to_string();
    assert!(help.contains("Exit codes:"));
    assert!(help.contains("10  restore target exists"));
    let backup_help = cmd
        .find_subcommand_mut("backup")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(backup_help.contains("Exit codes:"));
}

#[test]
fn numeric_validators() {
    assert!(positive_f64("0").is_err());
    assert!(positive_f64("nan").is_err());
    assert_eq!(positive_f64("2.5"), Ok(2.5));
    assert_eq!(non_negative_f64("0"), Ok(0.0));
    assert!(non_negative_f64("-1").is_err());
}

/// L4: `--preserve-owner` with no history record (a fresh host) and S3's stored CRC as
/// the only reference is refused (exit 2) before anything is downloaded; with
/// `--trust-bucket` it gets past that check.
#[tokio::test]
async fn preserve_owner_needs_the_history_as_reference() {
    use crate::test_support::stub::Reply;
    let dir = tempfile::tempdir().unwrap();
    let key = "backups/documents/20260101T000000.000Z.tar.gz";
    let parse = |extra: &[&str]| {
        let history = dir.path().join("history.jsonl");
        let to = dir.path().join("to");
        let mut args = vec![
            "autobackup",
            "restore",
            "--category",
            "documents",
            "--at",
            key,
            "--to",
            to.to_str().unwrap(),
            "--bucket",
            "b",
            "--history",
            history.to_str().unwrap(),
            "--preserve-owner",
        ];
        args.extend_from_slice(extra);
        let cli = Cli::try_parse_from(args).unwrap();
        let Command::Restore(restore) = cli.command else {
            panic!("not a restore");
        };
        restore
    };
    let stub = StubS3::start(|s, earlier| match s.op() {
        "HeadObject" => Reply::status(200)
            .header("content-length", "10")
            .header("x-amz-checksum-crc64nvme", "AAAAAAAAAAA=")
            .header("x-amz-checksum-type", "FULL_OBJECT"),
        "GetObject" => Reply::error(404, "NoSuchKey", "no"),
        _ => happy(s, earlier),
    })
    .await;
    let ctx = Context {
        log_file: dir.path().join("log"),
    };
    let aws = stub.aws().await;
    let e = parse(&[]).perform(&ctx, &aws).await.unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    if crate::restore::euid() == 0 {
        assert!(e.to_string().contains("--trust-bucket"), "{e}");
        assert!(
            stub.of("GetObject").is_empty(),
            "downloaded before refusing"
        );
        // Trusting the bucket explicitly gets past the check (to the download).
        let e = parse(&["--trust-bucket"])
            .perform(&ctx, &aws)
            .await
            .unwrap_err();
        assert_ne!(e.exit_code(), 2, "{e}");
        assert_eq!(stub.of("GetObject").len(), 1);
    }
}
