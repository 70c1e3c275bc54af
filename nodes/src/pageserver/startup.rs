//! Starting a pageserver: recover from the local disk, or rebuild from the object store when
//! the disk was lost; then resume ingest at `disk_consistent_lsn`.
//!
//! Layers are trusted as the metadata says, except that each is checked against its checksum:
//! one that fails (torn, rotted) is removed and `disk_consistent_lsn` drops to its start, so the
//! WAL it held is ingested again rather than served wrong. Layers past the consistent point (a
//! flush the crash interrupted) are removed. A failing delta layer the object store holds is
//! downloaded again instead: the WAL it covers lies below `remote_consistent_lsn`, which the
//! safekeepers may already have removed. A layer that cannot be read (EIO) is damaged in the
//! same way, never empty; unreadable metadata makes the disk untrusted, as rotted metadata.
//! Any other I/O error fails the start (the process restarts and tries again).
//!
//! GetPage and basebackup requests that arrive while it starts are held, in a bounded backlog,
//! and served (or made to wait for ingest) once it has started: dropped, each would cost its
//! compute a whole read timeout, and a compute that started beside it would see no answer at
//! all for that long.

use super::ingest::WalReceiver;
use super::layers::{decode_delta, decode_image, LayerChecks, LayerMap, LayerName};
use super::remote::{request_ids, IndexPart, RemotePrefix, Uploader, INDEX_KEY};
use super::{Metadata, Pageserver, PageserverConfig};
use crate::ids::{Lsn, NodeId};
use crate::invariant::{broken, Invariant};
use crate::net::Net;
use crate::observe::Observation;
use crate::proto::{Envelope, Message};
use crate::wal::WalRecord;
use std::collections::BTreeMap;
use std::io::Result;
use std::sync::Arc;
use std::time::Duration;

const STORE_TIMEOUT: Duration = Duration::from_millis(300);
/// Requests for pages held while the pageserver starts, as a listen backlog holds connections
/// until the server accepts them; past this many, later ones are dropped (the compute's read
/// times out and asks again).
const STARTUP_BACKLOG: usize = 256;

pub async fn start(cfg: PageserverConfig, net: Net) -> Result<Pageserver> {
    let generation = cfg.generations.next();
    let mut store = StoreReader {
        net: &net,
        store: cfg.object_store,
        prefix: cfg.remote_prefix.clone(),
        next_id: request_ids(generation).reader,
        held: Vec::new(),
    };
    let index = fetch_index(&mut store).await;
    let metadata = match load_metadata(&cfg).await {
        Some(m) => m,
        None => download(&mut store, &cfg, index.as_ref()).await?,
    };
    let (map, consistent, local) = load_layers(&mut store, &cfg, metadata, index.as_ref()).await?;
    let first_source = (cfg.id.0 as usize) % cfg.safekeepers.len();
    let ingest = WalReceiver::new(
        cfg.safekeepers.clone(),
        consistent.disk_consistent_lsn,
        consistent.prev_record_lsn,
        cfg.bugs.clone(),
        first_source,
    );
    // Layers flushed by an earlier run that never reached the store: upload them first, in
    // order, before anything newer can move remote_consistent_lsn.
    let mut remote = Uploader::from_index(
        index.unwrap_or_default(),
        cfg.remote_prefix.clone(),
        &cfg.bugs,
        generation,
    );
    for (name, completes, bytes) in local {
        if !remote.holds(&name) {
            remote.enqueue(&name, bytes, completes);
        }
    }
    let held = std::mem::take(&mut store.held);
    let mut ps = Pageserver {
        cfg,
        net,
        map,
        consistent,
        open_layer: Vec::new(),
        ingest,
        getpage: Default::default(),
        remote,
        since_flush: Duration::ZERO,
        since_feedback: Duration::ZERO,
        layer_counts: Default::default(),
        walredo_free: madsim::time::Instant::now(),
    };
    ps.report_flushed();
    let lsn = ps.last_record_lsn();
    ps.cfg
        .observer
        .observe(ps.cfg.id, Observation::Ingested { lsn });
    // Requests that came while starting are served now (or wait for ingest), not lost.
    for env in held {
        ps.on_message(env.from, env.msg);
    }
    Ok(ps)
}

/// The object store as a starting pageserver reads it: whole objects, each request retried until
/// it is answered (the store may be down a while; nothing can start without it when the disk is
/// gone). Request ids never repeat, within this process or across its restarts (see
/// [`request_ids`]), so a late or duplicated answer to one request is never taken for another's.
struct StoreReader<'a> {
    net: &'a Net,
    store: NodeId,
    /// This pageserver's prefix in the bucket: keys asked for are local names.
    prefix: RemotePrefix,
    next_id: u64,
    /// GetPage and basebackup requests that arrived while starting, in arrival order.
    held: Vec<Envelope>,
}

impl StoreReader<'_> {
    /// Fetches many objects at once, retrying the ones not yet answered, until all are in.
    async fn get_all(&mut self, keys: &[String]) -> BTreeMap<String, Option<Arc<Vec<u8>>>> {
        let mut got = BTreeMap::new();
        while got.len() < keys.len() {
            let mut asked: BTreeMap<u64, &String> = BTreeMap::new();
            for key in keys.iter().filter(|k| !got.contains_key(*k)) {
                self.next_id += 1;
                assert!(
                    self.next_id & ((1 << 23) - 1) != 0,
                    "reader request ids wrapped"
                );
                asked.insert(self.next_id, key);
                let msg = Message::StoreGet {
                    request_id: self.next_id,
                    key: self.prefix.key(key),
                };
                self.net.send(self.store, msg);
            }
            let deadline = madsim::time::Instant::now() + STORE_TIMEOUT;
            while !asked.is_empty() {
                let left = deadline.saturating_duration_since(madsim::time::Instant::now());
                let Ok(env) = madsim::time::timeout(left, self.net.recv()).await else {
                    crate::probe!(StoreGetRetried);
                    break;
                };
                match env.msg {
                    Message::StoreResponse {
                        request_id, data, ..
                    } => {
                        if let Some(key) = asked.remove(&request_id) {
                            got.insert(key.clone(), data);
                        }
                    }
                    Message::GetPage { .. } | Message::Basebackup { .. } => self.hold(env),
                    // WAL and feedback are asked for again once ingest starts.
                    _ => {}
                }
            }
        }
        got
    }

    /// Keeps a request for a page until the pageserver has started, within the backlog.
    fn hold(&mut self, env: Envelope) {
        if self.held.len() < STARTUP_BACKLOG {
            self.held.push(env);
        }
    }

    async fn get(&mut self, key: &str) -> Option<Arc<Vec<u8>>> {
        let mut got = self.get_all(&[key.to_string()]).await;
        got.remove(key).flatten()
    }
}

async fn fetch_index(store: &mut StoreReader<'_>) -> Option<IndexPart> {
    let data = store.get(INDEX_KEY).await?;
    Some(serde_json::from_slice(&data).expect("the index is written whole"))
}

/// Written atomically, so unreadable only through rot or a read error: then the local disk is
/// not trusted and the pageserver rebuilds as after disk loss.
async fn load_metadata(cfg: &PageserverConfig) -> Option<Metadata> {
    Metadata::load(&cfg.disk).await
}

/// Rebuilds the local disk from the object store (after whole-disk loss, or when the metadata
/// cannot be trusted), and makes the metadata on disk say what it rebuilt.
async fn download(
    store: &mut StoreReader<'_>,
    cfg: &PageserverConfig,
    index: Option<&IndexPart>,
) -> Result<Metadata> {
    let Some(index) = index else {
        // Nothing in the store: start empty. A metadata file that is there but unreadable or
        // rotted still promises its old consistent point, and `load_layers` is about to remove
        // the layers past ours: replace it durably first, or a start after a crash (the read
        // error gone) would trust layers no longer on disk.
        let empty = Metadata::default();
        if cfg.disk.exists(super::METADATA) {
            empty.persist(&cfg.disk).await?;
        }
        return Ok(empty);
    };
    crate::probe!(PsRebuildFromStore);
    let keys: Vec<String> = index.layers.iter().cloned().collect();
    for (name, data) in store.get_all(&keys).await {
        let Some(data) = data else {
            broken(
                Invariant::Durability,
                format!("the object store lost layer {name} that its index names"),
            );
        };
        cfg.disk.create(&name)?;
        cfg.disk.set_len(&name, 0)?;
        cfg.disk.write(&name, 0, &data)?;
        cfg.disk.sync(&name).await?;
    }
    cfg.disk.sync_dir().await?;
    index.consistent.persist(&cfg.disk).await?;
    Ok(index.consistent)
}

/// A delta layer that failed its checks here, fetched again from the object store if its index
/// names it. Returns its bytes and records, once the local copy is rewritten.
async fn refetch_delta(
    store: &mut StoreReader<'_>,
    cfg: &PageserverConfig,
    index: Option<&IndexPart>,
    name: &str,
    (start, end): (Lsn, Lsn),
) -> Result<Option<(Vec<u8>, Vec<(Lsn, WalRecord)>)>> {
    if !index.is_some_and(|i| i.layers.contains(name)) {
        return Ok(None);
    }
    let Some(data) = store.get(name).await else {
        broken(
            Invariant::Durability,
            format!("the object store lost layer {name} that its index names"),
        );
    };
    let data = data.to_vec();
    let records = decode_delta(&data, start, end, LayerChecks::ALL).unwrap_or_else(|why| {
        broken(
            Invariant::Durability,
            format!("the object store's copy of layer {name} is damaged: {why}"),
        )
    });
    // Rewritten in place: a crash that tears it is found, and repaired, at the next start.
    cfg.disk.set_len(name, 0)?;
    cfg.disk.write(name, 0, &data)?;
    cfg.disk.sync(name).await?;
    Ok(Some((data, records)))
}

/// A layer kept at startup, with the consistent point it completes (for delta layers) and its
/// bytes as checked (uploads send these, never a second read that rot may have hit since).
type LocalLayer = (String, Option<Metadata>, Vec<u8>);

/// Loads every layer that checks out at or below the consistent point; removes the rest.
/// Returns the layers kept, deltas first in LSN order.
async fn load_layers(
    store: &mut StoreReader<'_>,
    cfg: &PageserverConfig,
    metadata: Metadata,
    index: Option<&IndexPart>,
) -> Result<(LayerMap, Metadata, Vec<LocalLayer>)> {
    let disk = &cfg.disk;
    let mut names: Vec<(LayerName, String)> = disk
        .list()
        .into_iter()
        .filter_map(|n| LayerName::parse(&n).map(|l| (l, n)))
        .collect();
    names.sort();
    // Every LSN below the metadata's consistent point lies in a delta layer file on this disk:
    // a layer is durable before the metadata moves past it, and only startup removes layers.
    // Rot may damage a file (its checks catch that below), never take it away.
    let on_disk = names
        .iter()
        .fold(Lsn::ZERO, |reach, (layer, _)| match *layer {
            LayerName::Delta { start, end } if start <= reach => reach.max(end),
            _ => reach,
        });
    invariant!(
        Invariant::Durability,
        on_disk >= metadata.disk_consistent_lsn,
        "the metadata says WAL to {} is in layer files, but the files on disk reach only {on_disk}",
        metadata.disk_consistent_lsn
    );
    let mut map = LayerMap::new(crate::redo::WalRedo::new(&cfg.bugs));
    let mut consistent = metadata.disk_consistent_lsn;
    // Start LSN of the last record of each delta layer, by its end: to resume ingest there.
    let mut last_record_at: BTreeMap<Lsn, Lsn> = BTreeMap::new();
    let mut doomed = Vec::new();
    let mut checked: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (layer, name) in &names {
        let LayerName::Delta { start, end } = *layer else {
            continue;
        };
        if end > metadata.disk_consistent_lsn {
            doomed.push(name.clone());
            continue;
        }
        // Unreadable is damaged, as a failed checksum is: fetched again or ingested again.
        let (mut bytes, mut decoded) = match disk.read_all(name).await {
            Ok(bytes) => {
                let decoded = decode_delta(&bytes, start, end, LayerChecks::delta(&cfg.bugs));
                (bytes, decoded)
            }
            Err(e) => (Vec::new(), Err(format!("unreadable: {e}"))),
        };
        if let Err(why) = &decoded {
            tracing::debug!(%name, %why, "a delta layer is damaged");
            if let Some((data, records)) =
                refetch_delta(store, cfg, index, name, (start, end)).await?
            {
                crate::probe!(PsLayerRefetched);
                (bytes, decoded) = (data, Ok(records));
            }
        }
        match decoded {
            Ok(records) => {
                checked.insert(name.clone(), bytes);
                if let Some((lsn, _)) = records.last() {
                    last_record_at.insert(end, *lsn);
                }
                for (lsn, rec) in records {
                    map.add_record(lsn, rec);
                }
                map.add_delta_layer(end);
            }
            Err(_) => {
                crate::probe!(PsReingestAfterDamage);
                consistent = consistent.min(start);
                doomed.push(name.clone());
            }
        }
    }
    map.truncate(consistent);
    for (layer, name) in &names {
        match *layer {
            LayerName::Delta { end, .. } if end > consistent && !doomed.contains(name) => {
                doomed.push(name.clone())
            }
            LayerName::Image { page, lsn } => {
                // Unreadable or failing its checks: removed, and made again when due.
                let bytes = match lsn <= consistent {
                    true => disk.read_all(name).await.ok(),
                    false => None,
                };
                let loaded = bytes.and_then(|bytes| {
                    let image =
                        decode_image(&bytes, page, lsn, LayerChecks::image(&cfg.bugs)).ok()?;
                    Some((bytes, image))
                });
                match loaded {
                    Some((bytes, image)) => {
                        map.add_image(page, lsn, image);
                        checked.insert(name.clone(), bytes);
                    }
                    None => doomed.push(name.clone()),
                }
            }
            _ => {}
        }
    }
    // Lower the consistent point durably, and say so, before removing anything below the old
    // one: a crash in between must not leave a gap that the old metadata would paper over.
    let resumed = if consistent == metadata.disk_consistent_lsn {
        metadata
    } else {
        let prev = last_record_at
            .get(&consistent)
            .copied()
            .unwrap_or(Lsn::ZERO);
        let m = Metadata {
            disk_consistent_lsn: consistent,
            prev_record_lsn: prev,
        };
        m.persist(disk).await?;
        let obs = Observation::LayersFlushed {
            disk_consistent_lsn: consistent,
            remote_consistent_lsn: Lsn::ZERO,
        };
        cfg.observer.observe(cfg.id, obs);
        m
    };
    for name in &doomed {
        disk.remove(name)?;
    }
    if !doomed.is_empty() {
        disk.sync_dir().await?;
    }
    let mut kept: Vec<LocalLayer> = Vec::new();
    for (layer, name) in &names {
        if doomed.contains(name) {
            continue;
        }
        match *layer {
            LayerName::Delta { end, .. } if end <= resumed.disk_consistent_lsn => {
                let prev = last_record_at.get(&end).copied().unwrap_or(Lsn::ZERO);
                let completes = Metadata {
                    disk_consistent_lsn: end,
                    prev_record_lsn: prev,
                };
                let Some(bytes) = checked.remove(name) else {
                    unreachable!("a kept layer was checked")
                };
                kept.push((name.clone(), Some(completes), bytes));
            }
            LayerName::Image { lsn, .. } if lsn <= resumed.disk_consistent_lsn => {
                let Some(bytes) = checked.remove(name) else {
                    unreachable!("a kept layer was checked")
                };
                kept.push((name.clone(), None, bytes))
            }
            _ => {}
        }
    }
    kept.sort_by_key(|(_, completes, _)| completes.is_none());
    Ok((map, resumed, kept))
}
