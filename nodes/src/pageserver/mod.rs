//! The pageserver: ingests committed WAL from the safekeepers, keeps it in layers, makes page
//! images itself by its image policy (so compute can run with `full_page_writes` off:
//! `compaction`), serves GetPage@LSN and basebackups, uploads its layers to the object store,
//! and tells every safekeeper how far its layers reach (feedback), so that they can remove the
//! WAL below its `remote_consistent_lsn`. GetPage answers take the time the cost model says
//! (layer reads and a single walredo process), and each one is reported with what it cost.
//!
//! Guarantees:
//! - it ingests only committed WAL, in order, never skipping or repeating a record, whichever
//!   safekeeper it streams from (`ingest`);
//! - `disk_consistent_lsn` moves past a layer only once the layer file and its directory entry
//!   are durable; after a restart it reloads the layers that check out and re-ingests from
//!   there (`layers`, `startup`);
//! - GetPage@LSN never answers with a page older than the LSN asked for: it waits, bounded, for
//!   ingest, and otherwise fails with a clear error (`getpage`).

pub mod compaction;
pub mod getpage;
pub mod ingest;
pub mod layers;
pub mod remote;
pub mod startup;

use crate::bugs::{Bug, BugSet};
use crate::durable::{decode_checked, encode_checked, write_atomic};
use crate::ids::{Lsn, NodeId};
use crate::net::Net;
use crate::observe::{Observation, Observer};
use crate::process;
use crate::proto::Message;
use lakesim_faults::disk::is_no_space;
use lakesim_faults::Disk;
use layers::{encode_delta, LayerMap};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Flush the open (in-memory) layer after this long even when it holds less than
/// `checkpoint_distance_bytes`.
const FLUSH_INTERVAL: Duration = Duration::from_millis(500);
const TICK: Duration = Duration::from_millis(10);
/// How often every safekeeper hears how far this pageserver's layers reach.
const FEEDBACK_INTERVAL: Duration = Duration::from_millis(100);
/// The metadata file's name on the pageserver's disk.
pub const METADATA: &str = "metadata";

/// Everything a pageserver process starts with.
#[derive(Clone)]
pub struct PageserverConfig {
    pub id: NodeId,
    pub disk: Disk,
    pub safekeepers: Vec<NodeId>,
    pub object_store: NodeId,
    pub bugs: BugSet,
    pub observer: Arc<dyn Observer>,
    /// The network's faults (duplication, latency spikes), which its interface applies.
    pub links: lakesim_faults::Links,
    pub image_policy: compaction::ImagePolicy,
    /// Flush the open layer to a delta layer file once it holds this much WAL (Neon:
    /// `checkpoint_distance`).
    pub checkpoint_distance_bytes: usize,
    pub cost: PageserverCost,
    pub buggify: bool,
    /// Where this pageserver's objects live in the object store.
    pub remote_prefix: remote::RemotePrefix,
    /// The control plane's generation numbers for this pageserver (Neon's storage controller
    /// hands one out at each attach): each process start takes the next.
    pub generations: remote::Generations,
}

/// What a GetPage costs on the simulated clock. All zero (the default): answers go out at once.
#[derive(Clone, Debug, Default)]
pub struct PageserverCost {
    /// Per layer file a read visits.
    pub layer_visit: Duration,
    /// Per byte read from layers.
    pub ns_per_byte_read: f64,
    /// Per reconstruction that applies records (a request to the walredo process).
    pub walredo_fixed: Duration,
    /// Per record the walredo process applies.
    pub walredo_per_record: Duration,
}

/// What the pageserver persists besides its layers (Neon: `metadata`).
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct Metadata {
    pub disk_consistent_lsn: Lsn,
    /// Start LSN of the last record below `disk_consistent_lsn`, to chain the next one.
    pub prev_record_lsn: Lsn,
}

impl Metadata {
    pub const MAGIC: u32 = 0x9a9e_5e7a;

    /// Replaces the metadata file crash-safely, checksummed.
    pub async fn persist(&self, disk: &Disk) -> std::io::Result<()> {
        let bytes = encode_checked(Self::MAGIC, self);
        write_atomic(disk, METADATA, &bytes, false).await
    }

    /// The metadata, if the file is there, readable and intact (rot or a read error makes the
    /// disk untrusted).
    pub async fn load(disk: &Disk) -> Option<Metadata> {
        Metadata::decode(&disk.read_all(METADATA).await.ok()?)
    }

    /// The metadata in `bytes`, if they are intact.
    pub fn decode(bytes: &[u8]) -> Option<Metadata> {
        decode_checked(Self::MAGIC, bytes).ok()
    }
}

pub struct Pageserver {
    cfg: PageserverConfig,
    net: Net,
    map: LayerMap,
    /// Durable in layer files up to here.
    consistent: Metadata,
    /// WAL ingested but not yet in a layer file: `[disk_consistent_lsn, last_record_lsn)`.
    open_layer: Vec<u8>,
    ingest: ingest::WalReceiver,
    getpage: getpage::Waiters,
    remote: remote::Uploader,
    since_flush: Duration,
    since_feedback: Duration,
    layer_counts: compaction::LayerCounts,
    /// When the walredo process (one per tenant, as Neon's) is free again.
    walredo_free: madsim::time::Instant,
}

/// Runs a pageserver until the process is killed.
///
/// Disk errors: a full disk fails the flush or image creation it hit, which runs again at a
/// later tick (the open layer stays in memory meanwhile); any other error (a failed fsync)
/// ends the process, which restarts from its disk. A layer it cannot read at start-up is
/// damaged, as one that fails its checksum: fetched again or ingested again, never empty.
pub async fn run(cfg: PageserverConfig) {
    cfg.observer.observe(cfg.id, Observation::Started);
    let (id, observer) = (cfg.id, cfg.observer.clone());
    let started = match Net::bind(cfg.id, cfg.observer.clone(), cfg.links.clone()).await {
        Ok(net) => startup::start(cfg, net).await,
        Err(e) => Err(e),
    };
    let mut ps = match started {
        Ok(ps) => ps,
        Err(e) => process::abort(id, observer.as_ref(), &e).await,
    };
    let mut tick = madsim::time::interval(TICK);
    loop {
        // The tick before the network: under a flood of WAL and GetPage requests the network
        // is always ready, and a network-first `biased` select would starve the tick (ingest
        // retries, flushes, uploads, expiring waiters), so no GetPage would be answered.
        let done = tokio::select! {
            biased;
            _ = tick.tick() => ps.on_tick().await,
            env = ps.net.recv() => {
                ps.on_message(env.from, env.msg);
                let made = ps.make_images_after_ingest().await;
                // After a failed pass, only a full disk lets the process go on and answer.
                if made.as_ref().map_or_else(is_no_space, |_| true) {
                    ps.answer_waiters();
                }
                made
            }
        };
        match done {
            Ok(()) => {}
            Err(e) if is_no_space(&e) => observer.observe(id, Observation::DiskFull),
            Err(e) => process::abort(id, observer.as_ref(), &e).await,
        }
    }
}

/// Creates `name` and writes `bytes` into it (not yet durable). On a full disk it fails and
/// leaves no partial file behind.
fn write_new_file(disk: &Disk, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    disk.create(name)?;
    let written = disk.write(name, 0, bytes);
    if written.is_err() {
        crate::probe!(PsLayerWriteFullDisk);
        let _ = disk.remove(name);
    }
    written
}

impl Pageserver {
    fn last_record_lsn(&self) -> Lsn {
        self.ingest.last_record_lsn()
    }

    fn on_message(&mut self, from: NodeId, msg: Message) {
        match msg {
            Message::CommittedWal {
                start,
                wal,
                commit_lsn,
            } => {
                let ingested = self.ingest.on_wal(from, start, &wal, &mut self.map);
                if let Some(len) = ingested {
                    if self.last_record_lsn() < commit_lsn {
                        self.ingest.request(&self.net);
                    }
                    self.open_layer.extend_from_slice(&wal[..len]);
                    let lsn = self.last_record_lsn();
                    debug_assert_eq!(
                        self.consistent
                            .disk_consistent_lsn
                            .advance(self.open_layer.len() as u64),
                        lsn
                    );
                    self.cfg
                        .observer
                        .observe(self.cfg.id, Observation::Ingested { lsn });
                }
            }
            Message::WalRemoved { start, wal_start } => {
                self.ingest.on_wal_removed(from, start, wal_start)
            }
            Message::GetPage {
                request_id,
                page,
                lsn,
            } => self.on_request(from, request_id, getpage::Request::Page(page), lsn),
            Message::Basebackup { request_id, lsn } => {
                self.on_request(from, request_id, getpage::Request::Basebackup, lsn)
            }
            Message::StoreResponse { request_id, .. } if self.remote.on_response(request_id) => {
                self.report_flushed();
            }
            _ => {}
        }
    }

    async fn on_tick(&mut self) -> std::io::Result<()> {
        self.ingest.tick(&self.net);
        self.since_feedback += TICK;
        if self.since_feedback >= FEEDBACK_INTERVAL {
            self.since_feedback = Duration::ZERO;
            self.send_feedback();
        }
        self.since_flush += TICK;
        let due = self.open_layer.len() >= self.cfg.checkpoint_distance_bytes
            || (!self.open_layer.is_empty() && self.since_flush >= FLUSH_INTERVAL);
        let flushed = match due {
            true => self.flush_open_layer().await,
            false => Ok(()),
        };
        self.remote.tick(&self.net, self.cfg.object_store);
        self.expire_waiters();
        flushed
    }

    /// Writes the open layer to a delta layer file, makes it durable, then moves
    /// `disk_consistent_lsn` past it; then creates image layers where chains grew long.
    async fn flush_open_layer(&mut self) -> std::io::Result<()> {
        self.since_flush = Duration::ZERO;
        let start = self.consistent.disk_consistent_lsn;
        let end = self.last_record_lsn();
        let name = layers::delta_name(start, end);
        let bytes = encode_delta(
            start,
            end,
            self.consistent.prev_record_lsn,
            &self.open_layer,
        );
        write_new_file(&self.cfg.disk, &name, &bytes)?;
        let next = Metadata {
            disk_consistent_lsn: end,
            prev_record_lsn: self.ingest.last_record_start(),
        };
        // The consistent-lsn-before-sync bug persists disk_consistent_lsn first, so a crash
        // before the layer's sync can take away a layer the metadata already counts on.
        let early = self.cfg.bugs.has(Bug::ConsistentLsnBeforeSync);
        if early {
            self.persist_metadata(next).await?;
        }
        let disk = &self.cfg.disk;
        disk.sync(&name).await?;
        disk.sync_dir().await?;
        if !early {
            self.persist_metadata(next).await?;
        }
        self.open_layer.clear();
        self.map.add_delta_layer(end);
        self.remote.enqueue(&name, bytes, Some(next));
        self.report_flushed();
        let images = self.pages_to_image(end);
        self.create_images(images).await
    }

    async fn persist_metadata(&mut self, metadata: Metadata) -> std::io::Result<()> {
        metadata.persist(&self.cfg.disk).await?;
        self.consistent = metadata;
        Ok(())
    }

    /// The `per-page-records` images the WAL ingested since the last call calls for.
    async fn make_images_after_ingest(&mut self) -> std::io::Result<()> {
        let upto = self.last_record_lsn();
        let images = self.pages_over_threshold(upto);
        self.create_images(images).await
    }

    /// Tells every safekeeper how far the layers reach, locally and in the object store.
    fn send_feedback(&self) {
        for sk in &self.cfg.safekeepers {
            let msg = Message::PageserverFeedback {
                last_record_lsn: self.last_record_lsn(),
                disk_consistent_lsn: self.consistent.disk_consistent_lsn,
                remote_consistent_lsn: self.remote.remote_consistent_lsn(),
            };
            self.net.send(*sk, msg);
        }
    }

    fn report_flushed(&self) {
        let obs = Observation::LayersFlushed {
            disk_consistent_lsn: self.consistent.disk_consistent_lsn,
            remote_consistent_lsn: self.remote.remote_consistent_lsn(),
        };
        self.cfg.observer.observe(self.cfg.id, obs);
    }
}
