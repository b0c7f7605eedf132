//! The harness replicator: S3 replication as AWS documents it, on every local engine.
//!
//! - **What** it copies follows the bucket's [`BucketReplication`] rules (filters, SSE-KMS
//!   opt-in, archive classes, delete markers, every destination).
//! - **Identity**: S3 replicas keep the source's version id. An engine gives each copy a
//!   new id, so the replicator records `(replica bucket, source id) <-> engine id`; the
//!   fidelity layer ([`crate::engine::proxy`]) translates, so every client sees source ids.
//! - **Status**: PENDING from the moment a version is known, COMPLETED once every
//!   destination holds it, FAILED on an injected failure; none for an ineligible version.
//!   Replicas report REPLICA.
//! - **Timing** is asynchronous: an event is delivered without waiting for its replica. A
//!   version's copy is due `lag` after the first delivery attempt of its event finished
//!   (see [`Replicator::first_attempt_done`]), or `fallback` after it was discovered when
//!   no event reaches the validator; a scenario's explicit delay counts from discovery.
//!
//! It discovers versions by listing the primaries, so objects uploaded by any client are
//! replicated. It keeps the source's multipart layout (part by part) and its checksum.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ServerSideEncryption};
use aws_smithy_types::error::display::DisplayErrorContext;
use tokio::sync::Mutex;

use super::config::{BucketReplication, Eligibility, Ineligible, SourceVersion, Target};
use crate::aws::Clients;
use crate::errors::sdk;
use crate::history::{key as vkey, History, Table};
use crate::observe::{Arrival, Observation, Observations};
use crate::s3util::{MultipartUpload, PutOptions};

/// A deliberate replication fault for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// The replica never arrives; the source stays PENDING.
    Never,
    /// The replica never arrives and the source is marked FAILED.
    Failed,
    /// The replica arrives with its first byte flipped (same size).
    Corrupt,
    /// The replica arrives byte-identical but written with a different part layout.
    Relayout,
}

/// `x-amz-replication-status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pending,
    Completed,
    Failed,
}

impl Status {
    pub fn as_header(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Completed => "COMPLETED",
            Status::Failed => "FAILED",
        }
    }
}

/// How long replication takes when a scenario does not say.
#[derive(Debug, Clone, Copy)]
pub struct ReplicationTiming {
    /// After the first delivery attempt of a version's event finished.
    pub lag: Duration,
    /// After discovery, for versions whose event never reaches the validator (delete
    /// markers, a paused validator).
    pub fallback: Duration,
}

/// Part size of a relayout copy: different from the 5 MiB parts clients commonly use.
const RELAYOUT_PART: usize = 6 * 1024 * 1024;

/// A fault and the 1-based destination it hits (every one when `None`).
type TargetedFault = (Fault, Option<usize>);

/// One source version the replicator knows.
#[derive(Debug, Clone)]
struct Tracked {
    primary: String,
    key: String,
    version_id: String,
    etag: String,
    size: i64,
    delete_marker: bool,
    sse_kms: bool,
    /// Destinations (empty and `ineligible` set when no rule covers it).
    targets: Vec<Target>,
    ineligible: Option<Ineligible>,
    status: Option<Status>,
    /// When the copy is due; `None` while waiting for the first delivery attempt.
    due: Option<Instant>,
    fallback: Instant,
    /// Destinations already holding it.
    copied: Vec<bool>,
    /// Handled for good (copied everywhere, failed, never, ineligible).
    settled: bool,
    /// An event without a version id was matched to it (engines that omit the id).
    claimed: bool,
    errors: u32,
}

#[derive(Default)]
struct State {
    paused: bool,
    /// key (or "*") -> delay applied to new versions of it.
    delays: HashMap<String, Duration>,
    /// key (or "*") -> fault, and the 1-based destination it hits (all when `None`).
    faults: HashMap<String, TargetedFault>,
    /// Versions in flight (not settled), by (primary, version id).
    versions: HashMap<(String, String), Tracked>,
    /// Everything that outlives a version's flight, keyed by [`vkey`]: settled versions
    /// in the compact form of [`Settled`] (by (primary, version id)), each key's version
    /// ids (by (primary, key)), and the replicas' version id pairs. In memory for a
    /// scenario, in a file for `harness up` (see [`crate::history`]).
    history: History,
    /// Versions not settled yet, in discovery order (oldest first). Settled ones leave it,
    /// so a pass costs what is in flight, not the whole history.
    order: Vec<(String, String)>,
    copied: usize,
}

/// What a settled version still answers for (its status in HEADs, why it is ineligible,
/// and what an event without a version id is matched on), without its strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settled {
    status: Option<Status>,
    ineligible: Option<Ineligible>,
    delete_marker: bool,
    claimed: bool,
    size: i64,
    /// [`hash`] of the ETag.
    etag: u64,
}

impl Settled {
    fn of(t: &Tracked) -> Settled {
        Settled {
            status: t.status,
            ineligible: t.ineligible,
            delete_marker: t.delete_marker,
            claimed: t.claimed,
            size: t.size,
            etag: hash(&t.etag),
        }
    }
}

impl Settled {
    /// 19 bytes: status, ineligibility, flags, size, ETag hash.
    fn encode(&self) -> [u8; 19] {
        let mut b = [0u8; 19];
        b[0] = match self.status {
            None => 0,
            Some(Status::Pending) => 1,
            Some(Status::Completed) => 2,
            Some(Status::Failed) => 3,
        };
        b[1] = self.ineligible.map_or(0, |w| {
            1 + Ineligible::ALL
                .iter()
                .position(|x| *x == w)
                .expect("listed") as u8
        });
        b[2] = u8::from(self.delete_marker) | (u8::from(self.claimed) << 1);
        b[3..11].copy_from_slice(&self.size.to_le_bytes());
        b[11..19].copy_from_slice(&self.etag.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Settled> {
        if b.len() != 19 {
            return None;
        }
        Some(Settled {
            status: match b[0] {
                0 => None,
                1 => Some(Status::Pending),
                2 => Some(Status::Completed),
                3 => Some(Status::Failed),
                _ => return None,
            },
            ineligible: match b[1] {
                0 => None,
                n => Some(*Ineligible::ALL.get(usize::from(n) - 1)?),
            },
            delete_marker: b[2] & 1 != 0,
            claimed: b[2] & 2 != 0,
            size: i64::from_le_bytes(b[3..11].try_into().ok()?),
            etag: u64::from_le_bytes(b[11..19].try_into().ok()?),
        })
    }
}

/// The 64-bit SipHash (fixed keys, so stable within a run) of `s`.
fn hash(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

impl State {
    fn knows(&self, primary: &str, version_id: &str) -> bool {
        self.history
            .contains(Table::Settled, vkey(primary, version_id))
            || self
                .versions
                .contains_key(&(primary.to_string(), version_id.to_string()))
    }

    fn settled(&self, bucket: &str, version_id: &str) -> Option<Settled> {
        Settled::decode(&self.history.get(Table::Settled, vkey(bucket, version_id))?)
    }

    fn settle(&mut self, bucket: &str, version_id: &str, s: Settled) {
        self.history
            .put(Table::Settled, vkey(bucket, version_id), &s.encode());
    }

    /// The version ids of `key` in discovery order (each as a u16 length and its bytes).
    fn versions_of(&self, bucket: &str, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        let Some(b) = self.history.get(Table::KeyVersions, vkey(bucket, key)) else {
            return out;
        };
        let mut rest = &b[..];
        while rest.len() >= 2 {
            let n = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
            let Some(id) = rest.get(2..2 + n) else { break };
            out.push(String::from_utf8_lossy(id).into_owned());
            rest = &rest[2 + n..];
        }
        out
    }

    fn add_version(&mut self, bucket: &str, key: &str, version_id: &str) {
        let k = vkey(bucket, key);
        let mut b = self.history.get(Table::KeyVersions, k).unwrap_or_default();
        let id = &version_id.as_bytes()[..version_id.len().min(usize::from(u16::MAX))];
        b.extend_from_slice(&(id.len() as u16).to_le_bytes());
        b.extend_from_slice(id);
        self.history.put(Table::KeyVersions, k, &b);
    }

    fn text(&self, table: Table, bucket: &str, id: &str) -> Option<String> {
        let b = self.history.get(table, vkey(bucket, id))?;
        String::from_utf8(b).ok()
    }

    /// Records that `engine_id` in `replica` is the copy of source version `source_id`.
    fn map_ids(&mut self, replica: &str, source_id: &str, engine_id: &str) {
        self.history.put(
            Table::EngineIds,
            vkey(replica, source_id),
            engine_id.as_bytes(),
        );
        self.history.put(
            Table::SourceIds,
            vkey(replica, engine_id),
            source_id.as_bytes(),
        );
    }
}

/// Emulated S3 replication for a set of primary buckets.
pub struct Replicator {
    clients: Clients,
    configs: HashMap<String, BucketReplication>,
    timing: ReplicationTiming,
    state: Mutex<State>,
    /// Serialises passes so a version is never copied twice.
    pass_lock: Mutex<()>,
    /// The fidelity layer's default checksums, where it adds them.
    default_checksums: std::sync::Mutex<Option<Arc<crate::engine::checksums::DefaultChecksums>>>,
    /// Where each copy's arrival is recorded ([`Observation::Replica`]), once set.
    observer: std::sync::Mutex<Option<Observations>>,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator")
            .field("primaries", &self.configs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Replicator {
    pub fn new(
        clients: Clients,
        configs: Vec<BucketReplication>,
        timing: ReplicationTiming,
    ) -> Replicator {
        Replicator {
            clients,
            configs: configs
                .into_iter()
                .map(|c| (c.primary.clone(), c))
                .collect(),
            timing,
            state: Mutex::new(State::default()),
            pass_lock: Mutex::new(()),
            default_checksums: std::sync::Mutex::new(None),
            observer: std::sync::Mutex::new(None),
        }
    }

    /// Keeps the history of settled versions and replica ids in `history` (a file for
    /// `harness up`) instead of memory.
    pub fn keep_history(self, history: History) -> Replicator {
        Replicator {
            state: Mutex::new(State {
                history,
                ..State::default()
            }),
            ..self
        }
    }

    /// Records every copy's arrival (and every destination a version failed or was
    /// withheld at) in `observations`.
    pub fn observe(&self, observations: Observations) {
        *self.observer.lock().expect("not poisoned") = Some(observations);
    }

    /// Records the CRC64NVME of replicas of versions in `store` (see `engine::checksums`).
    pub fn use_default_checksums(&self, store: Arc<crate::engine::checksums::DefaultChecksums>) {
        *self.default_checksums.lock().expect("not poisoned") = Some(store);
    }

    fn default_checksums(&self) -> Option<Arc<crate::engine::checksums::DefaultChecksums>> {
        self.default_checksums.lock().expect("not poisoned").clone()
    }

    fn default_checksum(&self, bucket: &str, version: &str) -> Option<String> {
        self.default_checksums()?.get(bucket, version)
    }

    /// The replication configuration of a primary bucket.
    pub fn config(&self, primary: &str) -> Option<&BucketReplication> {
        self.configs.get(primary)
    }

    pub fn is_primary(&self, bucket: &str) -> bool {
        self.configs.contains_key(bucket)
    }

    pub fn is_replica(&self, bucket: &str) -> bool {
        self.configs
            .values()
            .any(|c| c.rules.iter().any(|r| r.destination == bucket))
    }

    pub async fn pause(&self) {
        self.state.lock().await.paused = true;
    }

    pub async fn resume(&self) {
        self.state.lock().await.paused = false;
    }

    /// Delays new versions of `key` ("*" for every key) by `delay` from their discovery.
    pub async fn delay(&self, key: &str, delay: Duration) {
        self.state
            .lock()
            .await
            .delays
            .insert(key.to_string(), delay);
    }

    /// Injects `fault` for new versions of `key` ("*" for every key), at one destination
    /// (1-based) or all.
    pub async fn fault(&self, key: &str, fault: Fault, destination: Option<usize>) {
        self.state
            .lock()
            .await
            .faults
            .insert(key.to_string(), (fault, destination));
    }

    /// Eligible versions not handled yet (waiting, delayed, paused or retrying).
    pub async fn held(&self) -> usize {
        self.state
            .lock()
            .await
            .versions
            .values()
            .filter(|t| !t.settled)
            .count()
    }

    pub async fn copied(&self) -> usize {
        self.state.lock().await.copied
    }

    /// The replication status S3 reports for a version of `bucket` (a primary's source
    /// version, or REPLICA for a replica's engine version id), if any.
    pub async fn status(&self, bucket: &str, version_id: &str) -> Option<&'static str> {
        let st = self.state.lock().await;
        if let Some(s) = st.settled(bucket, version_id) {
            return s.status.map(Status::as_header);
        }
        let k = (bucket.to_string(), version_id.to_string());
        if let Some(t) = st.versions.get(&k) {
            return t.status.map(Status::as_header);
        }
        st.history
            .contains(Table::SourceIds, vkey(bucket, version_id))
            .then_some("REPLICA")
    }

    /// The engine's version id of the copy of source version `source_id` in `replica`.
    pub async fn engine_id(&self, replica: &str, source_id: &str) -> Option<String> {
        self.state
            .lock()
            .await
            .text(Table::EngineIds, replica, source_id)
    }

    /// The source version id of the engine version `engine_id` of `replica`.
    pub async fn source_id(&self, replica: &str, engine_id: &str) -> Option<String> {
        self.state
            .lock()
            .await
            .text(Table::SourceIds, replica, engine_id)
    }

    /// The engine-id -> source-id pairs of `engine_ids` in a replica bucket (for rewriting
    /// a listing: the ids it shows).
    pub async fn id_map<'a>(
        &self,
        replica: &str,
        engine_ids: impl IntoIterator<Item = &'a str>,
    ) -> HashMap<String, String> {
        let st = self.state.lock().await;
        engine_ids
            .into_iter()
            .filter_map(|e| {
                st.text(Table::SourceIds, replica, e)
                    .map(|s| (e.to_string(), s))
            })
            .collect()
    }

    /// Why a version is not replicated, if it is tracked and ineligible.
    pub async fn ineligible(&self, bucket: &str, version_id: &str) -> Option<&'static str> {
        let st = self.state.lock().await;
        match st.settled(bucket, version_id) {
            Some(s) => s.ineligible,
            None => st
                .versions
                .get(&(bucket.to_string(), version_id.to_string()))
                .and_then(|t| t.ineligible),
        }
        .map(Ineligible::reason)
    }

    /// Makes sure a primary version is known (so its status is reported from the first
    /// read on): discovers the versions of its key (one listing per reading of the key, as
    /// an event may carry it encoded) until it shows, for at most [`ENSURE_KNOWN_FOR`];
    /// then one full discovery as a last resort. A bogus version id therefore costs a
    /// bounded few listings of one key, never a re-list of every bucket per attempt.
    pub async fn ensure_known(&self, bucket: &str, key: &str, version_id: &str) {
        if !self.is_primary(bucket) {
            return;
        }
        let known = || async { self.state.lock().await.knows(bucket, version_id) };
        if known().await {
            return;
        }
        let readings = checksum_validator::event::key_candidates(
            key,
            checksum_validator::event::KeyEncoding::Percent,
        );
        let deadline = Instant::now() + ENSURE_KNOWN_FOR;
        loop {
            for reading in &readings {
                if let Err(e) = self.discover_key(bucket, reading).await {
                    tracing::warn!(error = %e, "replication discovery failed");
                }
            }
            if known().await {
                return;
            }
            if Instant::now() >= deadline {
                break;
            }
            // An engine may deliver the event a moment before the version shows in listings.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Err(e) = self.discover_all().await {
            tracing::warn!(error = %e, "replication discovery failed");
        }
    }

    /// For an event that names no version id (an engine gap): the version of `key` with
    /// this ETag and size, the oldest one no earlier event was matched to, else the newest.
    pub async fn version_for_event(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
        size: Option<i64>,
    ) -> Option<String> {
        let etag = etag.trim_matches('"');
        let mut discovered = false;
        for round in 0..20 {
            {
                let mut st = self.state.lock().await;
                let etag_hash = hash(etag);
                // (version id, claimed) of each version of the key with this ETag and size.
                let candidates: Vec<(String, bool)> = st
                    .versions_of(bucket, key)
                    .into_iter()
                    .filter_map(|v| {
                        if let Some(s) = st.settled(bucket, &v) {
                            let hit = !s.delete_marker
                                && s.etag == etag_hash
                                && size.is_none_or(|n| n == s.size);
                            return hit.then_some((v, s.claimed));
                        }
                        let t = st.versions.get(&(bucket.to_string(), v.clone()))?;
                        let hit = t.primary == bucket
                            && t.key == key
                            && !t.delete_marker
                            && t.etag == etag
                            && size.is_none_or(|n| n == t.size);
                        hit.then_some((v, t.claimed))
                    })
                    .collect();
                // An unclaimed one is this upload's. With every one claimed, the event is a
                // duplicate delivery of the newest, but only once a fresh look at the key
                // found no newer upload (its event may arrive before a pass lists it).
                let unclaimed = candidates.iter().find(|(_, claimed)| !claimed);
                let pick = match unclaimed {
                    Some((v, _)) => Some(v.clone()),
                    None if discovered => candidates.last().map(|(v, _)| v.clone()),
                    None => None,
                };
                if let Some(v) = pick {
                    if let Some(mut s) = st.settled(bucket, &v) {
                        s.claimed = true;
                        st.settle(bucket, &v, s);
                    } else if let Some(t) = st.versions.get_mut(&(bucket.to_string(), v.clone())) {
                        t.claimed = true;
                    }
                    return Some(v);
                }
            }
            if round > 1 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if let Err(e) = self.discover_key(bucket, key).await {
                tracing::warn!(error = %e, "replication discovery failed");
            }
            discovered = true;
        }
        None
    }

    /// The first delivery attempt of a version's event finished: its copy is due `lag`
    /// from now. With no lag the copy happens before this returns, so the next attempt
    /// sees it.
    ///
    /// That copy discovers the version's own key first (an earlier version of it written
    /// around the layer must go first), never every bucket: a full listing per event would
    /// make each event cost in proportion to the buckets' size.
    pub async fn first_attempt_done(&self, bucket: &str, version_id: &str) {
        let k = (bucket.to_string(), version_id.to_string());
        let key = {
            let mut st = self.state.lock().await;
            let Some(t) = st.versions.get_mut(&k) else {
                return;
            };
            if t.due.is_some() || t.settled {
                return;
            }
            t.due = Some(Instant::now() + self.timing.lag);
            t.key.clone()
        };
        if self.timing.lag.is_zero() {
            if let Err(e) = self.discover_key(bucket, &key).await {
                tracing::warn!(error = %e, "replication discovery failed");
            }
            if let Err(e) = self.pass_due().await {
                tracing::warn!(error = %e, "replication pass failed");
            }
        }
    }

    /// Copies one known version now, whatever its timing (benchmarks measuring the pipeline
    /// with no replication delay).
    pub async fn release(&self, bucket: &str, version_id: &str) -> Result<(), String> {
        {
            let mut st = self.state.lock().await;
            if let Some(t) = st
                .versions
                .get_mut(&(bucket.to_string(), version_id.to_string()))
            {
                t.due = Some(Instant::now());
            }
        }
        self.pass_due().await
    }

    /// Copies what is due without discovering first.
    async fn pass_due(&self) -> Result<(), String> {
        let _one = self.pass_lock.lock().await;
        self.copy_due().await;
        Ok(())
    }

    /// Runs forever: copies what is due every `interval`; discovers new versions from the
    /// writes the fidelity layer forwards ([`Replicator::written`], one key each) and the
    /// events the validator's mapping sees, with a full listing of every primary only
    /// every [`FULL_DISCOVERY_EVERY`] (a safety net for writes that bypass the layer).
    ///
    /// The full listing costs time in proportion to the buckets' size, so it runs outside
    /// the pass lock and at most [`FULL_DISCOVERY_SHARE`] of the time: after a listing that
    /// took `t`, the next waits at least `t / share`. This loop's own copy pass waits for
    /// the listing to end; the copies the mapping triggers at lag 0
    /// ([`Replicator::first_attempt_done`]) and per-key discoveries of forwarded writes
    /// go on meanwhile.
    pub async fn run(&self, interval: Duration) {
        let mut next_full = Instant::now();
        loop {
            if Instant::now() >= next_full {
                let started = Instant::now();
                if let Err(e) = self.discover_all().await {
                    tracing::warn!(error = %e, "replication discovery failed");
                }
                let took = started.elapsed();
                next_full =
                    Instant::now() + FULL_DISCOVERY_EVERY.max(took.div_f64(FULL_DISCOVERY_SHARE));
            }
            if let Err(e) = self.pass_due().await {
                tracing::warn!(error = %e, "replication pass failed");
            }
            self.state.lock().await.history.flush();
            tokio::time::sleep(interval).await;
        }
    }

    /// A write to `bucket`/`key` went through the fidelity layer: discover that key's
    /// versions now (in the background), instead of waiting for a full listing.
    pub fn written(self: &Arc<Self>, bucket: &str, key: &str) {
        if !self.is_primary(bucket) {
            return;
        }
        let (me, bucket, key) = (self.clone(), bucket.to_string(), key.to_string());
        tokio::spawn(async move {
            if let Err(e) = me.discover_key(&bucket, &key).await {
                tracing::warn!(error = %e, "replication discovery of a written key failed");
            }
        });
    }

    /// Discovers versions not seen yet, and decides their eligibility.
    pub async fn discover(&self) -> Result<(), String> {
        let _one = self.pass_lock.lock().await;
        self.discover_locked().await
    }

    /// Discovers the versions of one key (one listing call, not the whole buckets). It does
    /// not wait for a running pass: tracking is idempotent (see `track_new`).
    pub async fn discover_key(&self, bucket: &str, key: &str) -> Result<(), String> {
        let Some(config) = self.configs.get(bucket) else {
            return Ok(());
        };
        let found = list_versions(&self.clients.s3, bucket, Some(key)).await?;
        self.track_new(bucket, config, found.into_iter().filter(|v| v.key == key))
            .await
    }

    async fn discover_locked(&self) -> Result<(), String> {
        self.discover_all().await
    }

    /// Lists every version of every primary, one page at a time. It needs no pass lock:
    /// tracking is idempotent (see `track_new`).
    async fn discover_all(&self) -> Result<(), String> {
        for (primary, config) in &self.configs {
            let mut pager = VersionPager::new(&self.clients.s3, primary, None);
            while let Some(batch) = pager.next_batch().await? {
                self.track_new(primary, config, batch.into_iter()).await?;
            }
        }
        Ok(())
    }

    async fn track_new(
        &self,
        primary: &str,
        config: &BucketReplication,
        found: impl Iterator<Item = ListedVersion>,
    ) -> Result<(), String> {
        {
            let primary = primary.to_string();
            for v in found {
                if self.state.lock().await.knows(&primary, &v.version_id) {
                    continue;
                }
                let tracked = self.track(&primary, config, v).await?;
                let mut st = self.state.lock().await;
                // A concurrent discovery may have tracked it meanwhile: the first one wins.
                if st.knows(&primary, &tracked.version_id) {
                    continue;
                }
                st.add_version(&primary, &tracked.key, &tracked.version_id);
                if tracked.settled {
                    // Ineligible: settled from the start.
                    st.settle(&primary, &tracked.version_id, Settled::of(&tracked));
                } else {
                    let k = (primary.clone(), tracked.version_id.clone());
                    st.order.push(k.clone());
                    st.versions.insert(k, tracked);
                }
            }
        }
        Ok(())
    }

    async fn track(
        &self,
        primary: &str,
        config: &BucketReplication,
        v: ListedVersion,
    ) -> Result<Tracked, String> {
        // The storage class comes from HeadObject: LocalStack 4.14 lists every version as
        // STANDARD (see `engine::gaps`).
        let (sse_kms, tags, storage_class) = if v.delete_marker {
            (false, Vec::new(), None)
        } else {
            let head = self
                .clients
                .s3
                .head_object()
                .bucket(primary)
                .key(&v.key)
                .version_id(&v.version_id)
                .send()
                .await;
            let sse_kms = head.as_ref().is_ok_and(|h| {
                matches!(
                    h.server_side_encryption(),
                    Some(ServerSideEncryption::AwsKms | ServerSideEncryption::AwsKmsDsse)
                )
            });
            let storage_class = match &head {
                Ok(h) => h.storage_class().map(|c| c.as_str().to_string()),
                Err(_) => v.storage_class.clone(),
            };
            let needs_tags = config.rules.iter().any(|r| !r.tags.is_empty());
            let tags = if needs_tags {
                self.clients
                    .s3
                    .get_object_tagging()
                    .bucket(primary)
                    .key(&v.key)
                    .version_id(&v.version_id)
                    .send()
                    .await
                    .map(|t| {
                        t.tag_set()
                            .iter()
                            .map(|t| (t.key().to_string(), t.value().to_string()))
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            (sse_kms, tags, storage_class)
        };
        let eligibility = config.eligibility(&SourceVersion {
            key: &v.key,
            tags: &tags,
            sse_kms,
            storage_class: storage_class.as_deref(),
            delete_marker: v.delete_marker,
            replica: false,
        });
        let now = Instant::now();
        let st = self.state.lock().await;
        let explicit = st
            .delays
            .get(&v.key)
            .or_else(|| st.delays.get("*"))
            .copied();
        let (targets, ineligible) = match eligibility {
            Eligibility::Replicate(t) => (t, None),
            Eligibility::Ineligible(why) => (Vec::new(), Some(why)),
        };
        let due = match explicit {
            Some(d) => Some(now + d),
            // No event reaches the validator for a delete marker.
            None if v.delete_marker => Some(now + self.timing.lag),
            None => None,
        };
        Ok(Tracked {
            primary: primary.to_string(),
            copied: vec![false; targets.len()],
            settled: ineligible.is_some(),
            status: ineligible.is_none().then_some(Status::Pending),
            key: v.key,
            version_id: v.version_id,
            etag: v.etag,
            size: v.size,
            delete_marker: v.delete_marker,
            sse_kms,
            targets,
            ineligible,
            due,
            fallback: now + self.timing.fallback,
            claimed: false,
            errors: 0,
        })
    }

    /// One pass: discover new versions, copy what is due.
    pub async fn pass(&self) -> Result<(), String> {
        let _one = self.pass_lock.lock().await;
        self.discover_locked().await?;
        self.copy_due().await;
        Ok(())
    }

    /// Copies every version that is due (the caller holds the pass lock). The versions of
    /// one key go in their order, one per pass: a later version (a delete marker is due at
    /// once) waits for an earlier one still lagging, so the replica's current version is the
    /// source's once replication settles.
    async fn copy_due(&self) {
        let due: Vec<(Tracked, Option<TargetedFault>)> = {
            let mut st = self.state.lock().await;
            if st.paused {
                return;
            }
            let State {
                order, versions, ..
            } = &mut *st;
            order.retain(|k| versions.get(k).is_some_and(|t| !t.settled));
            let now = Instant::now();
            let mut waiting: std::collections::HashSet<(&str, &str)> = Default::default();
            let mut out = Vec::new();
            for t in st.order.iter().filter_map(|k| st.versions.get(k)) {
                if t.settled {
                    continue;
                }
                // Whether due or not, nothing newer of this key goes before it.
                if !waiting.insert((t.primary.as_str(), t.key.as_str())) {
                    continue;
                }
                if t.due.map_or(t.fallback <= now, |d| d <= now) {
                    let fault = st
                        .faults
                        .get(&t.key)
                        .or_else(|| st.faults.get("*"))
                        .copied();
                    out.push((t.clone(), fault));
                }
            }
            out
        };
        for (t, fault) in due {
            self.replicate(t, fault).await;
        }
    }

    /// Copies one version to every destination it has not reached, applying its fault.
    async fn replicate(&self, t: Tracked, fault: Option<TargetedFault>) {
        let k = (t.primary.clone(), t.version_id.clone());
        let mut failed = false;
        let mut never = false;
        let mut retry: Option<String> = None;
        let mut results: Vec<(usize, String, String)> = Vec::new();
        // What each destination got, for the observer.
        let mut arrivals: Vec<(String, Arrival)> = Vec::new();
        for (i, target) in t.targets.iter().enumerate() {
            if t.copied[i] {
                continue;
            }
            let hit = fault.and_then(|(f, at)| at.is_none_or(|n| n == i + 1).then_some(f));
            match hit {
                Some(Fault::Failed) => {
                    failed = true;
                    arrivals.push((target.bucket.clone(), Arrival::Failed));
                    continue;
                }
                Some(Fault::Never) => {
                    never = true;
                    arrivals.push((target.bucket.clone(), Arrival::Withheld));
                    continue;
                }
                _ => {}
            }
            let copy = if t.delete_marker {
                self.copy_delete_marker(&t, target).await
            } else {
                self.copy_version(&t, target, hit).await
            };
            match copy {
                Ok(Some(engine_id)) => {
                    arrivals.push((
                        target.bucket.clone(),
                        match (t.delete_marker, hit) {
                            (true, _) => Arrival::DeleteMarker,
                            (false, Some(Fault::Corrupt)) => Arrival::Corrupted,
                            (false, Some(Fault::Relayout)) => Arrival::Relayout,
                            (false, _) => Arrival::Copied,
                        },
                    ));
                    results.push((i, target.bucket.clone(), engine_id))
                }
                // Deleted (permanently) before we got to it: nothing to replicate.
                Ok(None) => results.push((i, target.bucket.clone(), String::new())),
                Err(e) => {
                    retry = Some(e);
                    break;
                }
            }
        }
        // A copy error is retried unless it was the last attempt (see below): then every
        // destination not reached failed; otherwise only those reached so far arrived.
        let gave_up = retry.is_some() && retry_after(t.errors + 1, 0.0).is_none();
        if gave_up {
            for (i, target) in t.targets.iter().enumerate() {
                if !t.copied[i] && !results.iter().any(|r| r.0 == i) {
                    arrivals.push((target.bucket.clone(), Arrival::Failed));
                }
            }
        }
        if retry.is_some() && !gave_up {
            // The failed and withheld destinations are recorded when the version settles.
            arrivals.retain(|(b, _)| results.iter().any(|r| &r.1 == b));
        }
        self.record_arrivals(&t, arrivals).await;
        let mut st = self.state.lock().await;
        for (_, bucket, engine_id) in &results {
            if !engine_id.is_empty() {
                st.map_ids(bucket, &t.version_id, engine_id);
            }
        }
        st.copied += results.iter().filter(|r| !r.2.is_empty()).count();
        let Some(tracked) = st.versions.get_mut(&k) else {
            return;
        };
        for (i, _, _) in &results {
            tracked.copied[*i] = true;
        }
        if let Some(e) = retry {
            tracked.errors += 1;
            match retry_after(tracked.errors, rand::random::<f64>()) {
                Some(backoff) => {
                    tracked.due = Some(Instant::now() + backoff);
                    tracing::warn!(key = %tracked.key, error = %e, attempt = tracked.errors, "replication of a version failed; retrying");
                    return;
                }
                None => {
                    // S3 reports a replication it gave up on as FAILED, and does not retry
                    // it (S3 User Guide, "Getting replication status information";
                    // re-replicating takes S3 Batch Replication).
                    tracing::warn!(key = %tracked.key, error = %e, attempts = tracked.errors, "replication of a version failed for good: FAILED");
                    failed = true;
                }
            }
        }
        tracked.settled = true;
        tracked.status = Some(if failed {
            Status::Failed
        } else if never {
            Status::Pending
        } else {
            Status::Completed
        });
        tracing::debug!(key = %tracked.key, status = ?tracked.status, "replication handled");
        // What a settled version still needs is its status, ETag and size (for HEADs and
        // events): it moves to the compact history.
        let settled = Settled::of(tracked);
        st.versions.remove(&k);
        st.settle(&k.0, &k.1, settled);
    }

    /// Tells the observer (if any) what each destination got.
    async fn record_arrivals(&self, t: &Tracked, arrivals: Vec<(String, Arrival)>) {
        let observer = self.observer.lock().expect("not poisoned").clone();
        let Some(obs) = observer else { return };
        for (destination, arrival) in arrivals {
            obs.push(Observation::Replica {
                primary: t.primary.clone(),
                key: t.key.clone(),
                version_id: t.version_id.clone(),
                destination,
                arrival,
            })
            .await;
        }
    }

    /// Replicates a delete marker: the replica gets one of its own. Returns its engine id.
    async fn copy_delete_marker(
        &self,
        t: &Tracked,
        target: &Target,
    ) -> Result<Option<String>, String> {
        let out = self
            .clients
            .s3_replica
            .delete_object()
            .bucket(&target.bucket)
            .key(&t.key)
            .send()
            .await
            .map_err(sdk)?;
        Ok(out.version_id().map(str::to_string))
    }

    /// Copies a version; returns the engine's version id of the copy (`None` when the
    /// source version is gone).
    async fn copy_version(
        &self,
        p: &Tracked,
        target: &Target,
        fault: Option<Fault>,
    ) -> Result<Option<String>, String> {
        let corrupt = fault == Some(Fault::Corrupt);
        let s3 = &self.clients.s3;
        let head = match s3
            .head_object()
            .bucket(&p.primary)
            .key(&p.key)
            .version_id(&p.version_id)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(h) => h,
            Err(e) if sdk(&e).contains("404") || sdk(&e).contains("NotFound") => return Ok(None),
            Err(e) => return Err(sdk(e)),
        };
        let parts = head
            .parts_count()
            .filter(|n| *n > 1)
            .or_else(|| {
                head.e_tag()
                    .and_then(|e| e.trim_matches('"').rsplit_once('-'))
                    .and_then(|(_, n)| n.parse().ok())
            })
            .unwrap_or(1);
        let dst = &self.clients.s3_replica;
        // Replicas keep the source's metadata and storage class (no destination storage
        // class in the rule), and are encrypted "using the same type of server-side
        // encryption that was used for the source object": SSE-KMS with the rule's replica key.
        let opts = PutOptions {
            metadata: head.metadata().cloned(),
            content_type: head.content_type().map(str::to_string),
            kms_key: if p.sse_kms {
                target.kms_key.clone()
            } else {
                None
            },
            storage_class: head.storage_class().cloned(),
        };
        let algorithm = if head.checksum_crc64_nvme().is_some() {
            ChecksumAlgorithm::Crc64Nvme
        } else if head.checksum_sha256().is_some() {
            ChecksumAlgorithm::Sha256
        } else if head.checksum_crc32_c().is_some() {
            ChecksumAlgorithm::Crc32C
        } else {
            ChecksumAlgorithm::Crc32
        };
        // A version S3 gave a default CRC64NVME (uploaded without a checksum): its replicas
        // carry the CRC64NVME of their own bytes (`engine::checksums`).
        let default = self.default_checksum(&p.primary, &p.version_id);
        let total = head.content_length().unwrap_or(0).max(0) as u64;
        if parts <= 1 && fault != Some(Fault::Relayout) {
            if total > WHOLE_COPY_LIMIT {
                return self
                    .stream_single(p, target, &head, opts, corrupt, default.is_some())
                    .await
                    .map(Some);
            }
            let mut bytes = read_version(s3, p).await?;
            if corrupt {
                flip(&mut bytes);
            }
            let replica_crc64 = default
                .is_some()
                .then(|| crate::engine::checksums::Crc64::of(&bytes));
            let put = replica_put(dst, target, &p.key, opts, &head, corrupt)
                .body(ByteStream::from(bytes));
            let out = put.send().await.map_err(sdk)?;
            let id = out.version_id().unwrap_or_default().to_string();
            if let (Some(crc), Some(store)) = (replica_crc64, self.default_checksums()) {
                store.record(&target.bucket, &id, crc);
            }
            return Ok(Some(id));
        }
        // Multipart: learn the source's part layout, then write the replica with the same
        // part boundaries (or with other ones for a relayout fault), one part in memory at
        // a time: each part is a ranged GET of the source version.
        let mut sizes = Vec::new();
        for n in 1..=parts {
            let part = s3
                .head_object()
                .bucket(&p.primary)
                .key(&p.key)
                .version_id(&p.version_id)
                .part_number(n)
                .send()
                .await
                .map_err(sdk)?;
            sizes.push(part.content_length().unwrap_or(0).max(0) as u64);
        }
        let first = if sizes.iter().sum::<u64>() == total {
            sizes.first().copied().unwrap_or(total)
        } else {
            // Engine gap (MiniStack): part numbers are ignored on reads, so infer the layout.
            infer_part_size(total as usize, parts as usize) as u64
        };
        let part_size = if fault == Some(Fault::Relayout) {
            RELAYOUT_PART as u64
        } else {
            first.max(1)
        };
        let mut upload =
            MultipartUpload::create(dst, &target.bucket, &p.key, Some(algorithm), &opts).await?;
        let mut crc = crate::engine::checksums::Crc64::default();
        if let Err(e) = copy_parts(s3, p, total, part_size, corrupt, &mut crc, &mut upload).await {
            upload.abort().await;
            return Err(e);
        }
        let id = upload.complete().await?.unwrap_or_default();
        if let (Some(_), Some(store)) = (&default, self.default_checksums()) {
            store.record(&target.bucket, &id, crc.base64());
        }
        Ok(Some(id))
    }

    /// Copies a single-part version larger than [`WHOLE_COPY_LIMIT`] as one PutObject whose
    /// body is the source's GetObject body, passed through as it arrives: the replica keeps
    /// the source's single-part form (and so its ETag) and no more than the transport's
    /// buffers are held. The source's checksum value is declared when it has one; the
    /// client computes none (a streaming body would need aws-chunked trailers). Returns
    /// the replica's engine id.
    async fn stream_single(
        &self,
        p: &Tracked,
        target: &Target,
        head: &aws_sdk_s3::operation::head_object::HeadObjectOutput,
        opts: PutOptions,
        corrupt: bool,
        default: bool,
    ) -> Result<String, String> {
        use http_body_util::BodyExt;
        let src = get_version(&self.clients.s3, p, None).await?;
        let length = src.content_length().unwrap_or(0);
        let crc = std::sync::Arc::new(std::sync::Mutex::new(
            crate::engine::checksums::Crc64::default(),
        ));
        let seen = crc.clone();
        let mut flip_next = corrupt;
        let body = src.body.into_inner().map_frame(move |frame| {
            frame.map_data(|data| {
                let data = if flip_next && !data.is_empty() {
                    flip_next = false;
                    let mut v = data.to_vec();
                    flip(&mut v);
                    bytes::Bytes::from(v)
                } else {
                    data
                };
                if default {
                    if let Ok(mut c) = seen.lock() {
                        c.update(&data);
                    }
                }
                data
            })
        });
        let dst = crate::aws::without_checksums(&self.clients.s3_replica);
        let put = replica_put(&dst, target, &p.key, opts, head, corrupt)
            .content_length(length)
            .body(ByteStream::from_body_1_x(body));
        let out = put.send().await.map_err(sdk)?;
        let id = out.version_id().unwrap_or_default().to_string();
        if let (true, Some(store), Ok(c)) = (default, self.default_checksums(), crc.lock()) {
            store.record(&target.bucket, &id, c.base64());
        }
        Ok(id)
    }
}

/// Reads the source version in one GetObject and writes it as parts of `part_size` bytes
/// as the body arrives, holding at most one part. The body waits while a part uploads, and
/// an engine may drop a response left unread that long: the read then resumes where it
/// stopped with a ranged GetObject (at most [`MAX_RESUMES`] times), skipping what it
/// already has when the engine answers a range with the whole object. `corrupt` flips the
/// first byte; `crc` sees every byte written.
async fn copy_parts(
    s3: &aws_sdk_s3::Client,
    p: &Tracked,
    total: u64,
    part_size: u64,
    corrupt: bool,
    crc: &mut crate::engine::checksums::Crc64,
    upload: &mut MultipartUpload<'_>,
) -> Result<(), String> {
    let mut body = get_version(s3, p, None).await?.body;
    let part_size = part_size.max(1) as usize;
    let mut part = Vec::with_capacity(part_size.min(total as usize));
    let mut read = 0u64;
    // Bytes of the current body to drop before reading on (a resumed read the engine
    // answered from the start).
    let mut skip = 0u64;
    let mut resumes = 0;
    let mut flip_next = corrupt;
    let mut emit = |mut bytes: Vec<u8>, crc: &mut crate::engine::checksums::Crc64| {
        if std::mem::take(&mut flip_next) {
            flip(&mut bytes);
        }
        crc.update(&bytes);
        bytes
    };
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) if resumes < MAX_RESUMES && read < total => {
                resumes += 1;
                tracing::debug!(key = %p.key, read, error = %DisplayErrorContext(&e), "source read dropped; resuming");
                let out = get_version(s3, p, Some(read)).await?;
                skip = match out.content_length() {
                    Some(n) if n as u64 == total - read => 0,
                    _ => read,
                };
                body = out.body;
                continue;
            }
            Err(e) => return Err(format!("{}: {}", p.key, DisplayErrorContext(&e))),
        };
        let dropped = skip.min(chunk.len() as u64) as usize;
        skip -= dropped as u64;
        let mut rest = &chunk[dropped..];
        read += rest.len() as u64;
        while !rest.is_empty() {
            let take = (part_size - part.len()).min(rest.len());
            part.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if part.len() == part_size {
                let full = std::mem::replace(&mut part, Vec::with_capacity(part_size));
                upload.part(emit(full, crc)).await?;
            }
        }
    }
    if read != total {
        return Err(format!("{}: read {read} of {total} bytes", p.key));
    }
    if !part.is_empty() || total == 0 {
        upload.part(emit(part, crc)).await?;
    }
    Ok(())
}

/// How often [`copy_parts`] resumes a dropped source read before the copy fails (and is
/// retried as a whole with backoff).
const MAX_RESUMES: u32 = 5;

/// A replica's PutObject (body still to be set): the source's metadata, content type and
/// storage class, SSE-KMS with the rule's key when the source has it, and the source's
/// full-object checksum unless the copy is corrupted on purpose.
fn replica_put(
    dst: &aws_sdk_s3::Client,
    target: &Target,
    key: &str,
    opts: PutOptions,
    head: &aws_sdk_s3::operation::head_object::HeadObjectOutput,
    corrupt: bool,
) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
    let mut put = dst
        .put_object()
        .bucket(&target.bucket)
        .key(key)
        .set_metadata(opts.metadata)
        .set_content_type(opts.content_type)
        .set_storage_class(opts.storage_class);
    if let Some(k) = &opts.kms_key {
        put = put
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(k);
    }
    if corrupt {
        put
    } else {
        with_source_checksum(put, head)
    }
}

/// Declares the source's full-object checksum on a replica's PutObject, as S3 replication
/// keeps it.
fn with_source_checksum(
    put: aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
    head: &aws_sdk_s3::operation::head_object::HeadObjectOutput,
) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
    if let Some(v) = head.checksum_crc64_nvme() {
        put.checksum_crc64_nvme(v)
    } else if let Some(v) = head.checksum_sha256() {
        put.checksum_sha256(v)
    } else if let Some(v) = head.checksum_crc32_c() {
        put.checksum_crc32_c(v)
    } else if let Some(v) = head.checksum_crc32() {
        put.checksum_crc32(v)
    } else {
        put
    }
}

/// Single-part versions up to this size are copied through memory; larger ones stream
/// (`stream_single`). Multipart versions are copied a part at a time whatever their size.
pub const WHOLE_COPY_LIMIT: u64 = 8 * 1024 * 1024;

/// The part size of an `n`-part upload of `total` bytes with equal parts but the last:
/// 5 MiB (the SDKs' and CLI's usual size, and S3's minimum) when that fits, else the
/// smallest whole MiB that does.
pub fn infer_part_size(total: usize, n: usize) -> usize {
    const MIB: usize = 1024 * 1024;
    let fits = |p: usize| n > 0 && (n - 1) * p < total && total <= n * p;
    if fits(5 * MIB) {
        return 5 * MIB;
    }
    let mut p = total.div_ceil(n.max(1)).div_ceil(MIB) * MIB;
    while p > MIB && fits(p - MIB) {
        p -= MIB;
    }
    p.max(1)
}

fn flip(bytes: &mut [u8]) {
    if let Some(b) = bytes.first_mut() {
        *b ^= 0xff;
    }
}

struct ListedVersion {
    key: String,
    version_id: String,
    etag: String,
    size: i64,
    storage_class: Option<String>,
    delete_marker: bool,
    modified: i64,
}

/// Every version and delete marker of a bucket (under `prefix`), oldest first.
async fn list_versions(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: Option<&str>,
) -> Result<Vec<ListedVersion>, String> {
    let mut pager = VersionPager::new(s3, bucket, prefix);
    let mut out = Vec::new();
    while let Some(batch) = pager.next_batch().await? {
        out.extend(batch);
    }
    out.sort_by_key(|v| v.modified);
    Ok(out)
}

/// The (key, version id) batches a full discovery of `bucket` hands to tracking, with
/// `page_size` keys per ListObjectVersions page: each key's versions in one batch, oldest
/// first. For tests of the paging (real pages of 1,000 rarely split a key).
pub async fn discovery_batches(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    page_size: i32,
) -> Result<Vec<Vec<(String, String)>>, String> {
    let mut pager = VersionPager::new(s3, bucket, None);
    pager.page_size = Some(page_size);
    let mut out = Vec::new();
    while let Some(batch) = pager.next_batch().await? {
        out.push(batch.into_iter().map(|v| (v.key, v.version_id)).collect());
    }
    Ok(out)
}

/// ListObjectVersions one page at a time, so a full discovery holds one page of a bucket in
/// memory, never the whole bucket. Each batch holds whole keys only: the versions of the
/// key a truncated page stops in (its `NextKeyMarker`) are held back until the page where
/// that key ends, so every key's versions are ordered together, oldest first.
struct VersionPager<'a> {
    s3: &'a aws_sdk_s3::Client,
    bucket: &'a str,
    prefix: Option<&'a str>,
    key_marker: Option<String>,
    version_marker: Option<String>,
    /// `MaxKeys` per page (the API's default, 1,000, when `None`).
    page_size: Option<i32>,
    carry: Vec<ListedVersion>,
    done: bool,
}

impl<'a> VersionPager<'a> {
    fn new(s3: &'a aws_sdk_s3::Client, bucket: &'a str, prefix: Option<&'a str>) -> Self {
        VersionPager {
            s3,
            bucket,
            prefix,
            key_marker: None,
            version_marker: None,
            page_size: None,
            carry: Vec::new(),
            done: false,
        }
    }

    /// The next batch (oldest first), `None` after the last page.
    async fn next_batch(&mut self) -> Result<Option<Vec<ListedVersion>>, String> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .s3
            .list_object_versions()
            .bucket(self.bucket)
            .set_prefix(self.prefix.map(str::to_string))
            .set_key_marker(self.key_marker.clone())
            .set_version_id_marker(self.version_marker.clone())
            .set_max_keys(self.page_size)
            .send()
            .await
            .map_err(sdk)?;
        let mut batch = std::mem::take(&mut self.carry);
        for (i, v) in page.versions().iter().enumerate() {
            if let (Some(k), Some(id)) = (v.key(), v.version_id()) {
                batch.push(ListedVersion {
                    key: k.to_string(),
                    version_id: id.to_string(),
                    etag: v.e_tag().unwrap_or_default().trim_matches('"').to_string(),
                    size: v.size().unwrap_or(0),
                    storage_class: v.storage_class().map(|c| c.as_str().to_string()),
                    delete_marker: false,
                    modified: v.last_modified().map(|t| t.as_nanos() as i64).unwrap_or(0)
                        - i as i64,
                });
            }
        }
        for (i, m) in page.delete_markers().iter().enumerate() {
            if let (Some(k), Some(id)) = (m.key(), m.version_id()) {
                batch.push(ListedVersion {
                    key: k.to_string(),
                    version_id: id.to_string(),
                    etag: String::new(),
                    size: 0,
                    storage_class: None,
                    delete_marker: true,
                    modified: m.last_modified().map(|t| t.as_nanos() as i64).unwrap_or(0)
                        - i as i64,
                });
            }
        }
        let next_key = page
            .next_key_marker()
            .filter(|_| page.is_truncated() == Some(true));
        match next_key {
            Some(key) => {
                let (carry, whole): (Vec<_>, Vec<_>) =
                    batch.into_iter().partition(|v| v.key == key);
                self.carry = carry;
                batch = whole;
                self.key_marker = Some(key.to_string());
                self.version_marker = page.next_version_id_marker().map(str::to_string);
            }
            None => self.done = true,
        }
        // Listing order is newest first per key; replicate oldest first.
        batch.sort_by_key(|v| v.modified);
        Ok(Some(batch))
    }
}

/// How long [`Replicator::ensure_known`] looks for a version before its last resort.
pub const ENSURE_KNOWN_FOR: Duration = Duration::from_secs(2);

/// How often the replicator lists every version of every primary.
pub const FULL_DISCOVERY_EVERY: Duration = Duration::from_secs(5);

/// The largest share of the replicator's time the full listing may take (see
/// [`Replicator::run`]).
pub const FULL_DISCOVERY_SHARE: f64 = 0.1;

/// Copy attempts of one version before it is FAILED.
pub const MAX_COPY_ATTEMPTS: u32 = 8;

/// When to retry a copy after its `errors`-th failure: exponential from 500 ms, capped at
/// 30 s, with ±20 % jitter (`jitter` in 0..1) so failing versions do not retry in lockstep;
/// `None` once [`MAX_COPY_ATTEMPTS`] have failed.
pub fn retry_after(errors: u32, jitter: f64) -> Option<Duration> {
    if errors >= MAX_COPY_ATTEMPTS {
        return None;
    }
    let base = Duration::from_millis(500)
        .saturating_mul(1 << errors.min(6))
        .min(Duration::from_secs(30));
    Some(base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0)))
}

/// GetObject of a source version, from byte `from` on when given (its body still to be
/// read).
async fn get_version(
    s3: &aws_sdk_s3::Client,
    p: &Tracked,
    from: Option<u64>,
) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, String> {
    s3.get_object()
        .bucket(&p.primary)
        .key(&p.key)
        .version_id(&p.version_id)
        .set_range(from.map(|n| format!("bytes={n}-")))
        .send()
        .await
        .map_err(sdk)
}

/// Reads a source version whole (single-part versions up to [`WHOLE_COPY_LIMIT`]).
async fn read_version(s3: &aws_sdk_s3::Client, p: &Tracked) -> Result<Vec<u8>, String> {
    Ok(get_version(s3, p, None)
        .await?
        .body
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding 17: a copy that always fails is attempted at most MAX_COPY_ATTEMPTS times,
    /// never more than 3 times in its first 3 seconds whatever the jitter, and then given
    /// up (FAILED) instead of retried forever.
    #[test]
    fn failing_copies_back_off_and_give_up() {
        for jitter in [0.0, 0.5, 1.0] {
            let mut at = Duration::ZERO;
            let mut attempts = vec![at];
            let mut errors = 0;
            while let Some(wait) = retry_after(errors + 1, jitter) {
                errors += 1;
                at += wait;
                attempts.push(at);
            }
            assert_eq!(attempts.len() as u32, MAX_COPY_ATTEMPTS);
            let early = attempts
                .iter()
                .filter(|t| **t <= Duration::from_secs(3))
                .count();
            assert!(early <= 3, "jitter {jitter}: {attempts:?}");
            assert!(attempts.windows(2).all(|w| w[1] > w[0]));
        }
        assert_eq!(retry_after(MAX_COPY_ATTEMPTS, 0.5), None);
        let spread = [0.0, 1.0].map(|j| retry_after(3, j).unwrap());
        assert!(spread[0] < spread[1], "jitter spreads retries: {spread:?}");
    }

    /// Finding 16/17: a settled version keeps no string of its own; what it costs is this
    /// struct, its map slot and its id pair.
    #[test]
    fn settled_versions_are_compact_and_keyed_apart() {
        assert!(std::mem::size_of::<Settled>() <= 40);
        assert_ne!(vkey("b", "v1"), vkey("b", "v2"));
        assert_ne!(vkey("ab", "c"), vkey("a", "bc"));
        assert_eq!(vkey("b", "v1"), vkey("b", "v1"));
        let mut st = State::default();
        st.settle(
            "p",
            "v1",
            Settled {
                status: Some(Status::Completed),
                ineligible: None,
                delete_marker: false,
                claimed: false,
                size: 1,
                etag: hash("e"),
            },
        );
        assert!(st.knows("p", "v1"));
        assert!(!st.knows("p", "v2"));
        assert!(!st.knows("q", "v1"));
    }

    #[test]
    fn infers_common_layouts() {
        const MIB: usize = 1024 * 1024;
        assert_eq!(infer_part_size(12 * MIB, 3), 5 * MIB);
        assert_eq!(infer_part_size(100 * MIB, 4), 25 * MIB);
        assert_eq!(infer_part_size(10 * MIB, 2), 5 * MIB);
    }
}
