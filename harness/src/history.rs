//! What the fidelity layer must remember about every version it ever saw, for as long as
//! the version exists: the replicator's settled versions (their replication status), the
//! version ids of each key, which engine version id of a replica stands for which source
//! version id, and the default checksums the layer computed. It grows with every object.
//!
//! A scenario keeps it in memory ([`History::in_memory`]). `harness up` runs for days, so
//! it keeps it in a [redb](https://docs.rs/redb) file in its run directory
//! ([`History::on_disk`]): the process's memory then stays flat whatever the object count
//! (a bounded write buffer and redb's bounded page cache), and the file grows by tens of
//! bytes a version. Nothing here needs to survive the process: the file is recreated at
//! every start, and writes are batched (one commit per [`FLUSH_EVERY`] writes or per
//! replicator pass, [`History::flush`]).
//!
//! Keys are `u64` hashes chosen by the caller; values are bytes the caller encodes.
//!
//! Floor 0: imports only other ground rooms (no domain types).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, TableDefinition};

/// The tables. Each is a map from a `u64` key to bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// (primary, version id) -> the compact record of a settled version.
    Settled,
    /// (primary, key) -> the key's version ids in discovery order, newline-separated.
    KeyVersions,
    /// (replica, source version id) -> the engine's version id of the copy.
    EngineIds,
    /// (replica, engine version id) -> the source version id.
    SourceIds,
    /// (bucket, engine version id) -> the base64 CRC64NVME the layer computed.
    Checksums,
}

impl Table {
    const ALL: [Table; 5] = [
        Table::Settled,
        Table::KeyVersions,
        Table::EngineIds,
        Table::SourceIds,
        Table::Checksums,
    ];

    fn definition(self) -> TableDefinition<'static, u64, &'static [u8]> {
        TableDefinition::new(match self {
            Table::Settled => "settled",
            Table::KeyVersions => "key-versions",
            Table::EngineIds => "engine-ids",
            Table::SourceIds => "source-ids",
            Table::Checksums => "checksums",
        })
    }
}

/// The key of a (bucket, version id or key) pair. `str`'s `Hash` ends each string with a
/// 0xff byte, so no two pairs write the same bytes; two pairs of one run collide with a
/// chance of about n²/2⁶⁵ (1 in 10¹¹ for a million versions). SipHash with fixed keys:
/// the same pair gives the same key for the whole run.
pub fn key(bucket: &str, id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bucket.hash(&mut h);
    id.hash(&mut h);
    h.finish()
}

/// Writes buffered before a commit.
pub const FLUSH_EVERY: usize = 512;

/// The page cache redb may use (its default is 1 GiB).
const CACHE_BYTES: usize = 4 << 20;

/// Opening the history file failed.
#[derive(Debug, thiserror::Error)]
#[error("the history file {path}: {source}")]
pub struct HistoryError {
    pub path: PathBuf,
    #[source]
    pub source: redb::Error,
}

/// The per-version history (see the module docs).
pub struct History {
    store: Store,
}

enum Store {
    Memory(HashMap<(Table, u64), Box<[u8]>>),
    Disk {
        db: redb::Database,
        path: PathBuf,
        /// Writes not committed yet (read before the file).
        pending: HashMap<(Table, u64), Box<[u8]>>,
    },
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.store {
            Store::Memory(m) => write!(f, "History(memory, {} entries)", m.len()),
            Store::Disk { path, pending, .. } => {
                write!(f, "History({}, {} pending)", path.display(), pending.len())
            }
        }
    }
}

impl Default for History {
    fn default() -> Self {
        History::in_memory()
    }
}

impl History {
    pub fn in_memory() -> History {
        History {
            store: Store::Memory(HashMap::new()),
        }
    }

    /// A history in a new file at `path` (an existing file is replaced).
    pub fn on_disk(path: &Path) -> Result<History, HistoryError> {
        let err = |source: redb::Error| HistoryError {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| err(redb::Error::Io(e)))?;
        }
        let _ = std::fs::remove_file(path);
        // Created here first, exclusively and 0600 (a symlink planted at `path` fails the
        // create instead of being followed); redb initialises an empty file (L7).
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| err(redb::Error::Io(e)))?;
        }
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| err(e.into()))?;
        // Create every table up front, so a read never meets a missing one.
        let txn = db.begin_write().map_err(|e| err(e.into()))?;
        for t in Table::ALL {
            txn.open_table(t.definition()).map_err(|e| err(e.into()))?;
        }
        txn.commit().map_err(|e| err(e.into()))?;
        Ok(History {
            store: Store::Disk {
                db,
                path: path.to_path_buf(),
                pending: HashMap::new(),
            },
        })
    }

    pub fn get(&self, table: Table, key: u64) -> Option<Vec<u8>> {
        match &self.store {
            Store::Memory(m) => m.get(&(table, key)).map(|v| v.to_vec()),
            Store::Disk { db, pending, path } => {
                if let Some(v) = pending.get(&(table, key)) {
                    return Some(v.to_vec());
                }
                let read = || -> Result<Option<Vec<u8>>, redb::Error> {
                    let txn = db.begin_read()?;
                    let t = txn.open_table(table.definition())?;
                    Ok(t.get(key)?.map(|v| v.value().to_vec()))
                };
                read().unwrap_or_else(|e| {
                    tracing::error!(file = %path.display(), error = %e, "reading the history failed");
                    None
                })
            }
        }
    }

    pub fn contains(&self, table: Table, key: u64) -> bool {
        match &self.store {
            Store::Memory(m) => m.contains_key(&(table, key)),
            Store::Disk { .. } => self.get(table, key).is_some(),
        }
    }

    pub fn put(&mut self, table: Table, key: u64, value: &[u8]) {
        match &mut self.store {
            Store::Memory(m) => {
                m.insert((table, key), value.into());
            }
            Store::Disk { pending, .. } => {
                pending.insert((table, key), value.into());
                if pending.len() >= FLUSH_EVERY {
                    self.flush();
                }
            }
        }
    }

    /// Commits the buffered writes to the file (nothing to do in memory). A failed commit
    /// keeps them buffered, so nothing is lost; it is logged and retried at the next flush.
    pub fn flush(&mut self) {
        let Store::Disk { db, pending, path } = &mut self.store else {
            return;
        };
        if pending.is_empty() {
            return;
        }
        let write = || -> Result<(), redb::Error> {
            let txn = db.begin_write()?;
            for t in Table::ALL {
                let mut table = txn.open_table(t.definition())?;
                for ((_, k), v) in pending.iter().filter(|((pt, _), _)| *pt == t) {
                    table.insert(*k, &**v)?;
                }
            }
            txn.commit()?;
            Ok(())
        };
        match write() {
            Ok(()) => pending.clear(),
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, buffered = pending.len(), "writing the history failed; kept in memory")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Put(usize, u64, Vec<u8>),
        Get(usize, u64),
        Flush,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..5usize, 0..40u64, proptest::collection::vec(any::<u8>(), 0..24))
                .prop_map(|(t, k, v)| Op::Put(t, k, v)),
            4 => (0..5usize, 0..40u64).prop_map(|(t, k)| Op::Get(t, k)),
            1 => Just(Op::Flush),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// The file answers exactly what memory answers, across flushes and overwrites.
        #[test]
        fn the_file_answers_what_memory_answers(ops in proptest::collection::vec(op(), 1..200)) {
            let dir = tempfile::tempdir().unwrap();
            let mut disk = History::on_disk(&dir.path().join("h.redb")).unwrap();
            let mut mem = History::in_memory();
            for op in ops {
                match op {
                    Op::Put(t, k, v) => {
                        disk.put(Table::ALL[t], k, &v);
                        mem.put(Table::ALL[t], k, &v);
                    }
                    Op::Get(t, k) => {
                        prop_assert_eq!(disk.get(Table::ALL[t], k), mem.get(Table::ALL[t], k));
                        prop_assert_eq!(disk.contains(Table::ALL[t], k), mem.contains(Table::ALL[t], k));
                    }
                    Op::Flush => disk.flush(),
                }
            }
        }
    }

    #[test]
    fn tables_are_separate_and_a_batch_reaches_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run").join("h.redb");
        let mut h = History::on_disk(&path).unwrap();
        h.put(Table::EngineIds, 7, b"engine");
        h.put(Table::SourceIds, 7, b"source");
        assert_eq!(h.get(Table::EngineIds, 7).as_deref(), Some(&b"engine"[..]));
        assert_eq!(h.get(Table::SourceIds, 7).as_deref(), Some(&b"source"[..]));
        assert!(!h.contains(Table::Settled, 7));
        for k in 0..(FLUSH_EVERY as u64 + 10) {
            h.put(Table::Checksums, 1000 + k, &k.to_le_bytes());
        }
        let Store::Disk { pending, .. } = &h.store else {
            unreachable!()
        };
        assert!(pending.len() < FLUSH_EVERY, "a full buffer is committed");
        assert_eq!(
            h.get(Table::Checksums, 1000).as_deref(),
            Some(&0u64.to_le_bytes()[..])
        );
        // A new history at the same path starts empty.
        drop(h);
        let h = History::on_disk(&path).unwrap();
        assert!(!h.contains(Table::EngineIds, 7));
        // L7: the file is this user's only.
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o077, 0);
    }
}
