//! Uploads to the object store: every layer file, then an index naming the layers and the
//! `remote_consistent_lsn` they cover. The index is written only after the layers it names, so
//! what it promises is always in the store.

use super::Metadata;
use crate::ids::{Lsn, NodeId};
use crate::net::Net;
use crate::proto::Message;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

pub const INDEX_KEY: &str = "index";

/// Where one pageserver's objects live in the bucket: under its own prefix (Neon: the tenant's
/// timeline path), so that two pageservers never overwrite each other's layers or index. Layer
/// names and the index name are local; the prefix is added at the store's door.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemotePrefix(pub String);

impl RemotePrefix {
    /// The bucket key of the local object `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.0)
    }
}
const RETRY_AFTER: Duration = Duration::from_millis(300);

/// The remote index (Neon: `index_part.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IndexPart {
    pub consistent: Metadata,
    pub layers: BTreeSet<String>,
}

struct Upload {
    key: String,
    data: Arc<Vec<u8>>,
    /// For a delta layer: the consistent point it completes.
    completes: Option<Metadata>,
}

#[derive(Default)]
pub struct Uploader {
    queue: VecDeque<Upload>,
    in_flight: Option<(u64, Duration)>,
    next_request_id: u64,
    index: IndexPart,
    /// The consistent point of the index upload in flight or queued.
    pending: Option<Metadata>,
    prefix: RemotePrefix,
}

impl Uploader {
    pub fn from_index(index: IndexPart, prefix: RemotePrefix) -> Uploader {
        Uploader {
            index,
            prefix,
            ..Uploader::default()
        }
    }

    pub fn remote_consistent_lsn(&self) -> Lsn {
        self.index.consistent.disk_consistent_lsn
    }

    pub fn holds(&self, key: &str) -> bool {
        self.index.layers.contains(key)
    }

    pub fn enqueue(&mut self, key: &str, data: Vec<u8>, completes: Option<Metadata>) {
        self.queue.push_back(Upload {
            key: key.to_string(),
            data: Arc::new(data),
            completes,
        });
    }

    pub fn tick(&mut self, net: &Net, store: NodeId) {
        if let Some((_, waited)) = self.in_flight.as_mut() {
            *waited += super::TICK;
            if *waited < RETRY_AFTER {
                return;
            }
        }
        let Some(head) = self.queue.front() else {
            return;
        };
        self.next_request_id += 1;
        let msg = Message::StorePut {
            request_id: self.next_request_id,
            key: self.prefix.key(&head.key),
            data: head.data.clone(),
        };
        self.in_flight = Some((self.next_request_id, Duration::ZERO));
        net.send(store, msg);
    }

    /// An upload was acknowledged. True when `remote_consistent_lsn` moved.
    pub fn on_response(&mut self, request_id: u64) -> bool {
        if self.in_flight.map(|(id, _)| id) != Some(request_id) {
            return false;
        }
        self.in_flight = None;
        let done = self.queue.pop_front().expect("an upload was in flight");
        if done.key == INDEX_KEY {
            let point = self.pending.take().expect("an index upload has its point");
            if point.disk_consistent_lsn > self.index.consistent.disk_consistent_lsn {
                self.index.consistent = point;
            }
            return true;
        }
        self.index.layers.insert(done.key);
        if let Some(point) = done.completes.filter(|p| *p > self.index.consistent) {
            self.pending = Some(point);
            let mut index = self.index.clone();
            index.consistent = point;
            let data = serde_json::to_vec(&index).expect("index serialises");
            self.queue.push_front(Upload {
                key: INDEX_KEY.to_string(),
                data: Arc::new(data),
                completes: None,
            });
        }
        false
    }
}
