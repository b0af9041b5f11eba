//! Memory for replay: which record a replay URL names, and the payloads of
//! small records already read and verified.
//!
//! Evidence is immutable, so neither can go stale in a way that matters: a
//! lookup is cached only when the URL named the record's exact timestamp,
//! and a cached payload is re-hashed against the record's payload digest
//! every time it is served, so a byte that changed in memory is never sent.
//! Both are bounded and simply emptied when full.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;

use crate::index::Hit;
use crate::warc::ResponseHead;

/// Payloads larger than this are read from the store each time.
pub const MAX_RECORD: u64 = 2 << 20;
const MAX_BYTES: usize = 256 << 20;
const MAX_LOOKUPS: usize = 100_000;

#[derive(Default)]
pub struct ReplayCache {
    lookups: Mutex<HashMap<(String, String), Hit>>,
    records: Mutex<Records>,
}

#[derive(Default)]
struct Records {
    map: HashMap<String, Arc<CachedRecord>>,
    bytes: usize,
}

/// A record's response head and payload (content-encoding kept).
pub struct CachedRecord {
    pub head: Option<ResponseHead>,
    pub payload: Bytes,
}

impl ReplayCache {
    pub fn lookup(&self, url: &str, timestamp: &str) -> Option<Hit> {
        let map = self.lookups.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(url.to_string(), timestamp.to_string())).cloned()
    }

    /// Remembers `hit` for a URL that named its exact timestamp.
    pub fn remember_lookup(&self, url: &str, timestamp: &str, hit: &Hit) {
        if hit.record.timestamp != timestamp {
            return;
        }
        let mut map = self.lookups.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_LOOKUPS {
            map.clear();
        }
        map.insert((url.to_string(), timestamp.to_string()), hit.clone());
    }

    pub fn record(&self, record_id: &str) -> Option<Arc<CachedRecord>> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.map.get(record_id).cloned()
    }

    pub fn remember_record(&self, record_id: &str, record: Arc<CachedRecord>) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.bytes + record.payload.len() > MAX_BYTES {
            records.map.clear();
            records.bytes = 0;
        }
        records.bytes += record.payload.len();
        records.map.insert(record_id.to_string(), record);
    }

    pub fn forget_record(&self, record_id: &str) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = records.map.remove(record_id) {
            records.bytes -= r.payload.len();
        }
    }
}
