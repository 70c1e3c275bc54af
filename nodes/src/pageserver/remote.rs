//! Uploads to the object store: every layer file, then an index naming the layers and the
//! `remote_consistent_lsn` they cover.
//!
//! Guarantees:
//! - Up to [`MAX_IN_FLIGHT`] layer uploads are in flight at once (Neon uploads in parallel
//!   too), delta layers before image layers, so images cannot starve the deltas that move
//!   `remote_consistent_lsn`.
//! - The index's point is one every delta layer up to which has been acknowledged, and it
//!   names only acknowledged layers, so what it promises is always in the store (images are
//!   derived: a rebuild needs none); one index upload at a time, each a conditional write of
//!   a higher version, so a newer index is never overwritten by an older one of ours.
//! - Every upload is retried every [`RETRY_AFTER`] until acknowledged, under a new request id;
//!   a late or duplicated answer to an earlier attempt is ignored, and so is one to a request
//!   of an earlier process: request ids carry the process's generation ([`request_ids`]).

use super::Metadata;
use crate::bugs::{Bug, BugSet};
use crate::ids::{Lsn, NodeId};
use crate::invariant::Invariant;
use crate::net::Net;
use crate::proto::Message;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

pub const INDEX_KEY: &str = "index";

/// Where a process's object-store request ids start: its generation in the high bits, so that
/// a late answer to a request of an earlier process (the store may answer after a crash and
/// restart) never matches one of this process's (as a new connection would drop it), then the
/// uploader's and the starting reader's ids apart.
pub(super) struct RequestIds {
    uploader: u64,
    pub(super) reader: u64,
}

pub(super) fn request_ids(generation: u64) -> RequestIds {
    assert!(
        generation < 1 << 40,
        "generation {generation} fits its bits"
    );
    let base = generation << 24;
    RequestIds {
        uploader: base,
        reader: base | 1 << 23,
    }
}

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

/// The control plane's generation counter for one pageserver: every process start takes a
/// new, higher generation, so that its index uploads outrank any late one of an earlier
/// process (Neon's generation numbers, issued by the storage controller at attach).
#[derive(Clone, Debug, Default)]
pub struct Generations(Arc<std::sync::atomic::AtomicU64>);

impl Generations {
    /// The generation of a process starting now.
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }
}

const RETRY_AFTER: Duration = Duration::from_millis(300);
/// Layer uploads in flight at once.
pub const MAX_IN_FLIGHT: usize = 4;

/// The remote index (Neon: `index_part.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IndexPart {
    pub consistent: Metadata,
    pub layers: BTreeSet<String>,
}

/// Where one upload stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    Queued,
    Sent { request_id: u64, waited: Duration },
    Done,
}

struct Upload {
    key: String,
    data: Arc<Vec<u8>>,
    /// For a delta layer: the consistent point it completes.
    completes: Option<Metadata>,
    attempt: Attempt,
}

/// The index upload in flight: its request, how long it has waited, and the point it names.
struct IndexUpload {
    request_id: u64,
    waited: Duration,
    point: Metadata,
}

#[derive(Default)]
pub struct Uploader {
    /// Layer uploads in the order they were enqueued; the acknowledged prefix is popped.
    queue: VecDeque<Upload>,
    next_request_id: u64,
    /// What the store holds: every acknowledged layer, and the last acknowledged index's point.
    index: IndexPart,
    /// The highest point whose layers (and every layer before them) are all acknowledged.
    ready: Metadata,
    index_in_flight: Option<IndexUpload>,
    prefix: RemotePrefix,
    /// The index-never-uploaded bug: layers go up, the index naming them never does.
    skip_index: bool,
    /// This process's generation (see [`Generations`]) and its index uploads so far: the
    /// index's version is both, so a later process's uploads outrank an earlier one's.
    generation: u64,
    index_seq: u64,
}

impl Uploader {
    pub fn from_index(
        index: IndexPart,
        prefix: RemotePrefix,
        bugs: &BugSet,
        generation: u64,
    ) -> Uploader {
        assert!(
            generation > 0 && generation < 1 << 40,
            "generation {generation}"
        );
        Uploader {
            ready: index.consistent,
            index,
            prefix,
            skip_index: bugs.has(Bug::IndexNeverUploaded),
            generation,
            next_request_id: request_ids(generation).uploader,
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
            attempt: Attempt::Queued,
        });
    }

    pub fn tick(&mut self, net: &Net, store: NodeId) {
        self.tick_layers(net, store);
        self.tick_index(net, store);
    }

    /// Retries the layer uploads that waited too long, then starts queued ones while there is
    /// room: delta layers first (they move `remote_consistent_lsn`), images after.
    fn tick_layers(&mut self, net: &Net, store: NodeId) {
        let mut in_flight = 0;
        let mut due = Vec::new();
        for (i, up) in self.queue.iter_mut().enumerate() {
            if let Attempt::Sent { waited, .. } = &mut up.attempt {
                in_flight += 1;
                *waited += super::TICK;
                if *waited >= RETRY_AFTER {
                    crate::probe!(LayerUploadRetried);
                    due.push(i);
                }
            }
        }
        for deltas in [true, false] {
            for (i, up) in self.queue.iter().enumerate() {
                if in_flight >= MAX_IN_FLIGHT {
                    break;
                }
                if up.attempt == Attempt::Queued && up.completes.is_some() == deltas {
                    in_flight += 1;
                    due.push(i);
                }
            }
        }
        for i in due {
            self.send_layer(net, store, i);
        }
        invariant!(
            Invariant::Liveness,
            in_flight <= MAX_IN_FLIGHT,
            "{in_flight} layer uploads in flight, more than {MAX_IN_FLIGHT}"
        );
    }

    /// The next request id: within this process's uploader range (see [`request_ids`]).
    fn take_request_id(&mut self) -> u64 {
        self.next_request_id += 1;
        assert!(
            self.next_request_id & (1 << 23) == 0,
            "uploader request ids ran into the reader's"
        );
        self.next_request_id
    }

    fn send_layer(&mut self, net: &Net, store: NodeId, i: usize) {
        let request_id = self.take_request_id();
        let up = &mut self.queue[i];
        up.attempt = Attempt::Sent {
            request_id,
            waited: Duration::ZERO,
        };
        let msg = Message::StorePut {
            request_id,
            key: self.prefix.key(&up.key),
            data: up.data.clone(),
            version: None,
        };
        net.send(store, msg);
    }

    /// Sends an index for the ready point once the store's index is behind it; retries it.
    fn tick_index(&mut self, net: &Net, store: NodeId) {
        if self.skip_index {
            return;
        }
        match self.index_in_flight.as_mut() {
            Some(up) if up.waited + super::TICK < RETRY_AFTER => {
                up.waited += super::TICK;
                return;
            }
            Some(_) => {}
            None if self.ready > self.index.consistent => {}
            None => return,
        }
        let point = self.ready;
        let mut index = self.index.clone();
        index.consistent = point;
        let request_id = self.take_request_id();
        // Every attempt a higher version: a late earlier one is refused, never rolls back.
        self.index_seq += 1;
        assert!(
            self.index_seq < 1 << 20,
            "index uploads outgrew their version field"
        );
        let msg = Message::StorePut {
            request_id,
            key: self.prefix.key(INDEX_KEY),
            data: Arc::new(serde_json::to_vec(&index).expect("index serialises")),
            version: Some(self.generation << 20 | self.index_seq),
        };
        self.index_in_flight = Some(IndexUpload {
            request_id,
            waited: Duration::ZERO,
            point,
        });
        net.send(store, msg);
    }

    /// An upload was acknowledged. True when `remote_consistent_lsn` moved.
    pub fn on_response(&mut self, request_id: u64) -> bool {
        if let Some(up) = self
            .index_in_flight
            .take_if(|up| up.request_id == request_id)
        {
            invariant!(
                Invariant::Durability,
                up.point.disk_consistent_lsn <= self.ready.disk_consistent_lsn,
                "an index named {:?}, past the layers acknowledged ({:?})",
                up.point,
                self.ready
            );
            let moved = up.point > self.index.consistent;
            if moved {
                self.index.consistent = up.point;
            }
            return moved;
        }
        let sent = self.queue.iter_mut().find(
            |up| matches!(up.attempt, Attempt::Sent { request_id: id, .. } if id == request_id),
        );
        let Some(up) = sent else {
            crate::probe!(LateStoreResponseIgnored);
            return false; // a late or duplicated answer to an attempt already settled
        };
        up.attempt = Attempt::Done;
        self.index.layers.insert(up.key.clone());
        // The ready point: every delta layer up to it acknowledged. Images are not waited
        // for: the index names those that are in the store, and a rebuild needs none.
        for up in &self.queue {
            match (up.completes, up.attempt) {
                (Some(point), Attempt::Done) if point > self.ready => self.ready = point,
                (Some(_), Attempt::Done) => {}
                (Some(_), _) => break,
                (None, _) => {}
            }
        }
        self.queue.retain(|up| up.attempt != Attempt::Done);
        false
    }
}
