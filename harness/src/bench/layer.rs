//! `harness bench layer` and `harness bench replicate`: a large object through the fidelity
//! layer and direct, and a large version through the replicator; times and peak RSS.

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;

use crate::aws::Clients;
use crate::engine::Engine;
use crate::system::{RunningSystem, SystemOptions};
use crate::topology::provision::provision_for_engine;
use crate::topology::{new_suffix, teardown::teardown, TopologySpec};

/// A large object through the fidelity layer and direct (`harness bench layer`).
#[derive(Debug, Clone)]
pub struct LayerBench {
    pub engine: String,
    pub bytes: u64,
    pub direct: (Duration, Duration),
    pub layer: (Duration, Duration),
    /// Peak resident memory of this process before and after (VmHWM, KiB).
    pub peak_rss_kib: (u64, u64),
}

impl LayerBench {
    pub fn render(&self) -> String {
        let mb = self.bytes as f64 / (1024.0 * 1024.0);
        let rate = |d: Duration| mb / d.as_secs_f64().max(1e-9);
        format!(
            "bench layer on {}: one {:.0} MiB object, streamed up and down\n\
             direct:             upload {:.2}s ({:.1} MiB/s), download {:.2}s ({:.1} MiB/s)\n\
             through the layer:  upload {:.2}s ({:.1} MiB/s), download {:.2}s ({:.1} MiB/s)\n\
             peak RSS of the harness (SDK clients and the layer): {:.1} MiB before, {:.1} MiB after\n",
            self.engine,
            mb,
            self.direct.0.as_secs_f64(),
            rate(self.direct.0),
            self.direct.1.as_secs_f64(),
            rate(self.direct.1),
            self.layer.0.as_secs_f64(),
            rate(self.layer.0),
            self.layer.1.as_secs_f64(),
            rate(self.layer.1),
            self.peak_rss_kib.0 as f64 / 1024.0,
            self.peak_rss_kib.1 as f64 / 1024.0,
        )
    }
}

/// Peak resident memory of this process (`VmHWM`), KiB.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Writes `bytes` of generated content (seeded by `seed`) to `path`, a MiB at a time.
async fn write_generated(path: &std::path::Path, seed: &str, bytes: u64) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut f = tokio::fs::File::create(path)
        .await
        .map_err(|e| e.to_string())?;
    let chunk = crate::payload::generated_bytes(seed, 1 << 20);
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).await.map_err(|e| e.to_string())?;
        left -= n as u64;
    }
    f.flush().await.map_err(|e| e.to_string())
}

/// Uploads and downloads one `bytes`-byte object (streamed from and to disk) direct and
/// through a fidelity layer, in a bucket of its own, and reports times and peak RSS.
pub async fn layer(engine: &Engine, spec: &TopologySpec, bytes: u64) -> Result<LayerBench, String> {
    let direct = engine
        .clients(&spec.primary_region, &spec.replica_region)
        .await;
    let proxy = crate::fidelity::proxy::GapProxy::start(&engine.endpoint)
        .await
        .map_err(|e| e.to_string())?;
    let via = Clients::for_endpoint(
        &proxy.endpoint,
        engine.kind,
        &spec.primary_region,
        &spec.replica_region,
    )
    .await;
    let bucket = format!("bench-layer-{}", new_suffix());
    direct
        .s3
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .map_err(crate::errors::sdk)?;
    let dir = std::env::temp_dir().join(&bucket);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = dir.join("object.bin");
    write_generated(&file, "bench-layer", bytes).await?;
    let before = peak_rss_kib();
    let round = |c: Clients, key: &'static str| {
        let (bucket, file) = (bucket.clone(), file.clone());
        async move {
            let t = Instant::now();
            c.s3.put_object()
                .bucket(&bucket)
                .key(key)
                .body(
                    ByteStream::from_path(&file)
                        .await
                        .map_err(|e| e.to_string())?,
                )
                .send()
                .await
                .map_err(crate::errors::sdk)?;
            let up = t.elapsed();
            let t = Instant::now();
            let mut body =
                c.s3.get_object()
                    .bucket(&bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(crate::errors::sdk)?
                    .body;
            let mut got = 0u64;
            while let Some(chunk) = body.try_next().await.map_err(|e| e.to_string())? {
                got += chunk.len() as u64;
            }
            if got != bytes {
                return Err(format!("{key}: read {got} of {bytes} bytes"));
            }
            Ok::<_, String>((up, t.elapsed()))
        }
    };
    let d = round(direct.clone(), "direct.bin").await;
    let l = match &d {
        Ok(_) => round(via, "layer.bin").await,
        Err(e) => Err(e.clone()),
    };
    let after = peak_rss_kib();
    let _ = crate::topology::teardown::delete_bucket(&direct.s3, &bucket).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(LayerBench {
        engine: engine.kind.to_string(),
        bytes,
        direct: d?,
        layer: l?,
        peak_rss_kib: (before, after),
    })
}

/// Large versions through the harness's replicator (`harness bench replicate`).
#[derive(Debug, Clone)]
pub struct ReplicateBench {
    pub engine: String,
    pub bytes: u64,
    /// Upload, then upload-to-COMPLETED, of the single-part version.
    pub single: (Duration, Duration),
    /// The same for the multipart version (8 MiB parts).
    pub multipart: (Duration, Duration),
    /// Peak resident memory of this process before and after (VmHWM, KiB).
    pub peak_rss_kib: (u64, u64),
}

impl ReplicateBench {
    pub fn render(&self) -> String {
        let mb = self.bytes as f64 / (1024.0 * 1024.0);
        let rate = |d: Duration| mb / d.as_secs_f64().max(1e-9);
        format!(
            "bench replicate on {}: one {mb:.0} MiB single-part and one {mb:.0} MiB multipart version, \
             replicated by the harness's replicator\n\
             single-part: upload {:.2}s, replicated {:.2}s later ({:.1} MiB/s)\n\
             multipart:   upload {:.2}s, replicated {:.2}s later ({:.1} MiB/s)\n\
             peak RSS of the harness (uploads, replicator, layer): {:.1} MiB before, {:.1} MiB after\n",
            self.engine,
            self.single.0.as_secs_f64(),
            self.single.1.as_secs_f64(),
            rate(self.single.1),
            self.multipart.0.as_secs_f64(),
            self.multipart.1.as_secs_f64(),
            rate(self.multipart.1),
            self.peak_rss_kib.0 as f64 / 1024.0,
            self.peak_rss_kib.1 as f64 / 1024.0,
        )
    }
}

/// Uploads a `bytes`-byte single-part version (streamed from disk) and a multipart one
/// (8 MiB parts, read from disk a part at a time) into a primary of a provisioned topology,
/// and times each until the replicator reports COMPLETED; the peak RSS shows whether the
/// copy held the object in memory.
pub async fn replicate(
    engine: &Engine,
    spec: &TopologySpec,
    bytes: u64,
) -> Result<ReplicateBench, String> {
    use tokio::io::AsyncReadExt;
    const PART: usize = 8 << 20;
    let caps = engine.capabilities();
    let clients = engine
        .clients(&spec.primary_region, &spec.replica_region)
        .await;
    let suffix = new_suffix();
    let mut timing = spec.profile("fast").cloned().ok_or("no fast profile")?;
    timing.replication_lag_seconds = 0.0;
    timing.replication_fallback_seconds = 0.0;
    let (topology, _, mode) = provision_for_engine(
        &clients,
        spec,
        &suffix,
        timing,
        &caps,
        crate::topology::provision::Via::Direct,
    )
    .await
    .map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("object.bin");
    write_generated(&file, "bench-replicate", bytes).await?;
    let run = async {
        let system = RunningSystem::start(
            clients.clone(),
            caps,
            topology.clone(),
            mode,
            &SystemOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let replicator = system
            .replicator
            .clone()
            .ok_or("benchmarks need the harness replicator (a local engine)")?;
        let bucket = topology.buckets()[0].primary.clone();
        let s3 = &system.clients.s3;
        let before = peak_rss_kib();
        let completed = |version: String| {
            let replicator = replicator.clone();
            let bucket = bucket.clone();
            async move {
                let t = Instant::now();
                replicator.release(&bucket, &version).await?;
                while replicator.status(&bucket, &version).await != Some("COMPLETED") {
                    if t.elapsed() > Duration::from_secs(600) {
                        return Err(format!("{version} not replicated within 600s"));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok::<_, String>(t.elapsed())
            }
        };
        let t = Instant::now();
        let out = s3
            .put_object()
            .bucket(&bucket)
            .key("bench/single.bin")
            .body(
                ByteStream::from_path(&file)
                    .await
                    .map_err(|e| e.to_string())?,
            )
            .send()
            .await
            .map_err(crate::errors::sdk)?;
        let up = t.elapsed();
        replicator.discover_key(&bucket, "bench/single.bin").await?;
        let single = (
            up,
            completed(out.version_id().unwrap_or_default().into()).await?,
        );
        let t = Instant::now();
        let mut upload = crate::s3util::MultipartUpload::create(
            s3,
            &bucket,
            "bench/multipart.bin",
            Some(aws_sdk_s3::types::ChecksumAlgorithm::Crc32),
            &Default::default(),
        )
        .await?;
        let mut f = tokio::fs::File::open(&file)
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let mut part = Vec::with_capacity(PART);
            let n = (&mut f)
                .take(PART as u64)
                .read_to_end(&mut part)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            upload.part(part).await?;
        }
        let version = upload.complete().await?.unwrap_or_default();
        let up = t.elapsed();
        replicator
            .discover_key(&bucket, "bench/multipart.bin")
            .await?;
        let multipart = (up, completed(version).await?);
        let after = peak_rss_kib();
        system.stop().await;
        Ok::<_, String>(ReplicateBench {
            engine: clients.kind.to_string(),
            bytes,
            single,
            multipart,
            peak_rss_kib: (before, after),
        })
    };
    let result = run.await;
    teardown(&clients, spec, &suffix).await;
    result
}
