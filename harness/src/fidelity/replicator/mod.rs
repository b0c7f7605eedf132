//! The harness replicator: S3 replication as AWS documents it, on every local engine.
//!
//! - **What** it copies follows the bucket's [`BucketReplication`] rules (filters, SSE-KMS
//!   opt-in, archive classes, delete markers, every destination).
//! - **Identity**: S3 replicas keep the source's version id. An engine gives each copy a
//!   new id, so the replicator records `(replica bucket, source id) <-> engine id`; the
//!   fidelity layer ([`crate::fidelity::proxy`]) translates, so every client sees source ids.
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

mod copy;
mod discover;
mod state;

pub use copy::{infer_part_size, WHOLE_COPY_LIMIT};
pub use discover::discovery_batches;
pub use state::{
    retry_after, Fault, ReplicationTiming, Replicator, Status, ENSURE_KNOWN_FOR,
    FULL_DISCOVERY_EVERY, FULL_DISCOVERY_SHARE, MAX_COPY_ATTEMPTS,
};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::aws::Clients;
use crate::history::{key as vkey, History, Table};
use crate::observe::Observations;
use crate::topology::replication::{BucketReplication, Ineligible};
use state::*;

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

    /// Records the CRC64NVME of replicas of versions in `store` (see `fidelity::checksums`).
    pub fn use_default_checksums(&self, store: Arc<crate::fidelity::checksums::DefaultChecksums>) {
        *self.default_checksums.lock().expect("not poisoned") = Some(store);
    }

    fn default_checksums(&self) -> Option<Arc<crate::fidelity::checksums::DefaultChecksums>> {
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
}

#[cfg(test)]
mod tests;
