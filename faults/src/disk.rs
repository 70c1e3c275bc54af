//! The simulated disk: one per node, owned by the harness so that it outlives the node's process.
//!
//! Semantics, stated as a real disk with a volatile write cache and a journaling file system
//! behaves:
//!
//! - **Data.** A write lands in the cache and is visible to reads at once. [`Disk::sync`] (fsync)
//!   makes a file's current contents and length durable, at the end of a simulated delay (the
//!   fsync latency plus the dirty bytes at the disk's bandwidth), so a crash during the fsync
//!   loses it.
//! - **Names.** Create, rename and remove change the cached directory at once and become durable
//!   only at [`Disk::sync_dir`]. The journal commits them in order: a crash loses every unsynced
//!   directory operation, except that with probability [`DiskConfig::dir_land_probability`] it
//!   keeps a random prefix of them (a rename that landed although the data it names did not is
//!   the classic victim). A synced name never vanishes. A file whose name did not survive is gone
//!   with its data. Torn sectors and landed directory operations are separate knobs.
//! - **Crash.** Every unsynced write is lost, except that each dirty sector (of
//!   [`DiskConfig::sector_size`] bytes, the atomic unit) independently reaches the platters with
//!   probability [`DiskConfig::land_probability`] (torn writes). So the file afterwards holds, sector by sector,
//!   either its durable contents or its cached contents, never invented bytes; a sector past the
//!   old end that did not land reads as zeroes (a hole) if a later sector did. Which sectors land
//!   is drawn from the disk's own seeded stream.
//! - **Loss and rot.** [`Disk::wipe`] loses the whole disk; [`Disk::rot`] flips one durable bit,
//!   which only a checksum can notice.
//! - **Read errors.** [`Disk::fail_reads`] makes a sector range of a file unreadable: a read that
//!   touches it returns EIO, for a time or until the range is written again (a rewrite remaps
//!   the sectors, as a drive does). The bytes are not changed; the harness still sees them.
//! - **fsync errors.** [`Disk::fail_next_sync`]: the next fsync of a file returns EIO and, as
//!   Linux does after a failed writeback, the file's dirty data is dropped: its pages are marked
//!   clean and evicted, so the cache reverts to the durable contents. A retried fsync then
//!   succeeds with nothing to write: a node that retries and trusts it has lost data (fsyncgate).
//! - **Full disk.** [`Disk::fill`] caps the space at what is used now: a write or `set_len` that
//!   would grow the files in use, a create and a rename fail with ENOSPC and change nothing,
//!   until removals free space under the cap or [`Disk::free_space`] lifts it. Overwriting
//!   bytes a file already holds needs no space. Space counts the cached length of every named
//!   file.
//! - **Latency spikes.** [`Disk::slow`] adds a delay to every fsync and read for a while.
//!
//! Paths are flat names (`wal/000001`): the disk has one directory, whose sync covers all names.

use crate::trace::Trace;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Error, ErrorKind, Result};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a disk behaves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskConfig {
    /// The atomic write unit: 512 or 4096.
    pub sector_size: usize,
    /// Chance that an unsynced dirty sector survives a crash (0: clean loss of everything
    /// unsynced; 0.5: heavy tearing).
    pub land_probability: f64,
    /// Simulated time an fsync takes.
    pub fsync_latency_us: u64,
    /// Bytes per second an fsync writes out: it takes `fsync_latency_us` plus its dirty bytes
    /// at this rate (0: unlimited).
    #[serde(default)]
    pub sync_bytes_per_s: f64,
    /// Chance that a crash keeps some unsynced directory operations (a random prefix of them)
    /// instead of none.
    #[serde(default)]
    pub dir_land_probability: f64,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            sector_size: 4096,
            land_probability: 0.0,
            fsync_latency_us: 1000,
            sync_bytes_per_s: 0.0,
            dir_land_probability: 0.0,
        }
    }
}

type InodeId = u64;

#[derive(Clone, Debug)]
enum DirOp {
    Link(String, InodeId),
    Unlink(String),
}

#[derive(Default)]
struct Inode {
    durable: Vec<u8>,
    cache: Vec<u8>,
    /// Sectors whose cached contents may differ from the durable ones, each with the byte span
    /// `[lo, hi)` within it that was written: outside the spans, the cached bytes equal the
    /// durable ones, so an fsync copies only the spans (a crash still lands whole sectors).
    dirty: BTreeMap<u64, (u32, u32)>,
}

/// A sector range a read fails on.
#[derive(Clone, Debug)]
struct BadRange {
    start: u64,
    end: u64,
    /// When the sectors read again by themselves; `None`: only a rewrite heals them.
    until: Option<madsim::time::Instant>,
}

/// The faults the harness turned on, beside crashes: see the module doc.
#[derive(Default)]
struct Faults {
    unreadable: BTreeMap<InodeId, Vec<BadRange>>,
    failing_syncs: u32,
    capacity: Option<u64>,
    slow: Option<(madsim::time::Instant, Duration)>,
}

struct DiskState {
    label: u32,
    config: DiskConfig,
    rng: ChaCha8Rng,
    trace: Option<Trace>,
    next_inode: InodeId,
    inodes: BTreeMap<InodeId, Inode>,
    dir: BTreeMap<String, InodeId>,
    durable_dir: BTreeMap<String, InodeId>,
    pending_dir: Vec<DirOp>,
    bytes_written: u64,
    bytes_synced: u64,
    faults: Faults,
}

/// Where bit rot struck: the file, the byte's offset, and the bit flipped in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotted {
    pub file: String,
    pub offset: u64,
    pub mask: u8,
}

/// A handle on one node's disk. Clones share the disk.
#[derive(Clone)]
pub struct Disk(Arc<Mutex<DiskState>>);

fn not_found(name: &str) -> Error {
    Error::new(ErrorKind::NotFound, format!("no file {name}"))
}

/// Linux's EIO and ENOSPC, so that errors read as the real ones do.
const EIO: i32 = 5;
const ENOSPC: i32 = 28;

/// The part of `[offset, offset + len)` inside a file of `size` bytes: what a read returns.
fn within(size: usize, offset: u64, len: usize) -> std::ops::Range<usize> {
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(size);
    start..start.saturating_add(len).min(size)
}

fn io_error(name: &str, what: &str) -> Error {
    let os = Error::from_raw_os_error(EIO);
    Error::new(os.kind(), format!("{what} {name}: {os}"))
}

fn no_space(name: &str, what: &str) -> Error {
    let os = Error::from_raw_os_error(ENOSPC);
    Error::new(ErrorKind::StorageFull, format!("{what} {name}: {os}"))
}

/// Whether `e` is a full disk (a node waits for space rather than crashing).
pub fn is_no_space(e: &Error) -> bool {
    e.kind() == ErrorKind::StorageFull
}

impl DiskState {
    fn inode(&mut self, name: &str) -> Result<&mut Inode> {
        let id = *self.dir.get(name).ok_or_else(|| not_found(name))?;
        Ok(self
            .inodes
            .get_mut(&id)
            .expect("directory names a live inode"))
    }

    /// Bytes in use: the cached length of every named file.
    fn used(&self) -> u64 {
        self.dir
            .values()
            .map(|id| self.inodes[id].cache.len() as u64)
            .sum()
    }

    /// Fails with ENOSPC if the disk is full and `grow` more bytes are needed (0: a new name).
    fn need_space(&self, name: &str, what: &str, grow: u64) -> Result<()> {
        match self.faults.capacity {
            Some(cap) if self.used() + grow > cap || (grow == 0 && self.used() >= cap) => {
                self.trace("disk.enospc", grow, 0);
                Err(no_space(name, what))
            }
            _ => Ok(()),
        }
    }

    /// Fails with EIO if `[start, end)` of inode `id` touches an unreadable range.
    fn check_readable(&mut self, name: &str, id: InodeId, start: u64, end: u64) -> Result<()> {
        let now = madsim::time::Instant::now();
        let Some(bad) = self.faults.unreadable.get_mut(&id) else {
            return Ok(());
        };
        bad.retain(|b| b.until.is_none_or(|t| now < t));
        if bad
            .iter()
            .any(|b| b.start < end.max(start + 1) && start < b.end)
        {
            self.trace("disk.eio-read", start, end - start);
            return Err(io_error(name, "read"));
        }
        Ok(())
    }

    /// A write over `[start, end)` remaps the unreadable sectors it covers.
    fn rewritten(&mut self, id: InodeId, start: u64, end: u64) {
        if let Some(bad) = self.faults.unreadable.get_mut(&id) {
            bad.retain(|b| !(start <= b.start && b.end <= end));
        }
    }

    fn extra_latency(&self) -> Duration {
        match self.faults.slow {
            Some((until, extra)) if madsim::time::Instant::now() < until => extra,
            _ => Duration::ZERO,
        }
    }

    fn trace(&self, kind: &'static str, a: u64, b: u64) {
        if let Some(t) = &self.trace {
            t.record(self.label, kind, a, b);
        }
    }

    fn link(&mut self, name: &str, id: InodeId) {
        self.dir.insert(name.to_string(), id);
        self.pending_dir.push(DirOp::Link(name.to_string(), id));
    }

    fn unlink(&mut self, name: &str) {
        self.dir.remove(name);
        self.pending_dir.push(DirOp::Unlink(name.to_string()));
    }

    /// Applies the journal's `ops` (all of them: then the durable directory is the cached one)
    /// and drops the inodes they left without a name. Costs the ops, not the directory's size,
    /// unless an op unlinked or replaced a name.
    fn commit_dir_ops(&mut self, ops: &[DirOp]) {
        let mut unlinked = Vec::new();
        for op in ops {
            let old = match op {
                DirOp::Link(name, id) => self.durable_dir.insert(name.clone(), *id),
                DirOp::Unlink(name) => self.durable_dir.remove(name),
            };
            unlinked.extend(old);
        }
        debug_assert!(
            self.durable_dir == self.dir,
            "the journal rebuilds the directory"
        );
        for id in unlinked {
            if !self.dir.values().any(|v| *v == id) {
                self.inodes.remove(&id);
            }
        }
    }

    /// Drops inodes that no name reaches, in the cache view and the durable one.
    fn collect_garbage(&mut self) {
        let live: BTreeSet<InodeId> = self
            .dir
            .values()
            .chain(self.durable_dir.values())
            .copied()
            .collect();
        self.inodes.retain(|id, _| live.contains(id));
    }
}

impl Inode {
    /// Writes `data` at `start` in the cache, growing it (a hole before `start` reads as
    /// zeroes), and marks what changed dirty. Appended bytes are copied once, not zeroed first.
    fn write(&mut self, start: usize, data: &[u8], sector: usize) {
        let (old, end) = (self.cache.len(), start + data.len());
        if start > old {
            self.cache.resize(start, 0);
            self.mark_dirty(old, start, sector);
        }
        let inside = self.cache.len().min(end) - start;
        self.cache[start..start + inside].copy_from_slice(&data[..inside]);
        self.cache.extend_from_slice(&data[inside..]);
        self.mark_dirty(start, end, sector);
        debug_assert!(self.cache.len() == old.max(end));
    }

    fn mark_dirty(&mut self, from: usize, to: usize, sector: usize) {
        if from >= to {
            return;
        }
        let (first, last) = ((from / sector) as u64, ((to - 1) / sector) as u64);
        for s in first..=last {
            let base = s as usize * sector;
            let lo = (from.max(base) - base) as u32;
            let hi = (to.min(base + sector) - base) as u32;
            let span = self.dirty.entry(s).or_insert((lo, hi));
            *span = (span.0.min(lo), span.1.max(hi));
            debug_assert!(span.0 < span.1 && span.1 as usize <= sector);
        }
    }

    /// fsync: the durable copy becomes the cached one. Only the written spans of dirty
    /// sectors are copied, so an fsync costs the bytes written since the last one, not the
    /// file's size or whole sectors.
    fn make_durable(&mut self, sector: usize) {
        // The durable copy grows in the cache's steps: a file reserved at its full size
        // (`Disk::reserve`) is allocated once here too, not doubled up to it. (After a shrink
        // this may reserve up to the cache's old capacity: memory only.)
        if self.durable.capacity() < self.cache.len() {
            let room = self.cache.capacity() - self.durable.len();
            self.durable.reserve_exact(room);
        }
        // Past the durable end the cached bytes are copied whole (every byte there was
        // written, or zeroed by a growth, since the last fsync): no zero fill to overwrite.
        let old = self.durable.len();
        match self.cache.get(old..) {
            Some(grown) => self.durable.extend_from_slice(grown),
            None => self.durable.truncate(self.cache.len()),
        }
        let below = old.min(self.cache.len());
        for (s, (lo, hi)) in std::mem::take(&mut self.dirty) {
            let base = s as usize * sector;
            let start = (base + lo as usize).min(below);
            let end = (base + hi as usize).min(below);
            self.durable[start..end].copy_from_slice(&self.cache[start..end]);
        }
        debug_assert_eq!(self.durable.len(), self.cache.len());
    }

    /// What survives a crash: each dirty sector lands with probability `p`.
    fn crash(&mut self, sector: usize, p: f64, rng: &mut ChaCha8Rng) {
        let mut after = std::mem::take(&mut self.durable);
        let truncated = self.cache.len() < after.len();
        for s in std::mem::take(&mut self.dirty).into_keys() {
            if !rng.gen_bool(p) {
                continue;
            }
            let start = s as usize * sector;
            let end = (start + sector).min(self.cache.len());
            if start >= end {
                // Past the cached end: only the truncation below can land there.
                continue;
            }
            if after.len() < end {
                after.resize(end, 0);
            }
            after[start..end].copy_from_slice(&self.cache[start..end]);
            // A sector lands whole: past the cached end of a shortened file its new contents
            // are zeroes, never the old bytes (which would mix two versions in one sector).
            let sector_end = (start + sector).min(after.len());
            if end < sector_end {
                after[end..sector_end].fill(0);
            }
        }
        if truncated && rng.gen_bool(p) {
            after.truncate(self.cache.len());
        }
        self.cache = after.clone();
        self.durable = after;
    }
}

impl Disk {
    /// A fresh, empty disk. `label` names the node in trace events; `seed` drives which unsynced
    /// sectors survive crashes.
    pub fn new(label: u32, config: DiskConfig, seed: u64, trace: Option<Trace>) -> Disk {
        assert!(
            matches!(config.sector_size, 512 | 4096),
            "sector size must be 512 or 4096"
        );
        assert!((0.0..=1.0).contains(&config.land_probability));
        Disk(Arc::new(Mutex::new(DiskState {
            label,
            config,
            rng: ChaCha8Rng::seed_from_u64(seed),
            trace,
            next_inode: 1,
            inodes: BTreeMap::new(),
            dir: BTreeMap::new(),
            durable_dir: BTreeMap::new(),
            pending_dir: Vec::new(),
            bytes_written: 0,
            bytes_synced: 0,
            faults: Faults::default(),
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, DiskState> {
        self.0.lock().unwrap()
    }

    /// Creates an empty file; an existing one is left as it is. Fails only on a full disk.
    pub fn create(&self, name: &str) -> Result<()> {
        let mut s = self.state();
        if s.dir.contains_key(name) {
            return Ok(());
        }
        s.need_space(name, "create", 0)?;
        let id = s.next_inode;
        s.next_inode += 1;
        s.inodes.insert(id, Inode::default());
        s.link(name, id);
        s.trace("disk.create", id, 0);
        Ok(())
    }

    pub fn exists(&self, name: &str) -> bool {
        self.state().dir.contains_key(name)
    }

    /// Every name, sorted.
    pub fn list(&self) -> Vec<String> {
        self.state().dir.keys().cloned().collect()
    }

    /// The names a crash keeps for sure: those of the durable directory.
    pub fn list_durable(&self) -> Vec<String> {
        self.state().durable_dir.keys().cloned().collect()
    }

    /// The contents of `name` that a crash keeps for sure (its durable name and durable
    /// bytes; a crash may keep more, never less). For the harness, which judges a node's
    /// promises against what its disk guarantees.
    pub fn read_durable(&self, name: &str) -> Option<Vec<u8>> {
        let s = self.state();
        let id = s.durable_dir.get(name)?;
        Some(s.inodes[id].durable.clone())
    }

    pub fn len(&self, name: &str) -> Result<u64> {
        Ok(self.state().inode(name)?.cache.len() as u64)
    }

    /// Reads up to `len` bytes at `offset` (fewer at the end of the file). Fails with EIO on an
    /// unreadable range; waits out a latency spike.
    pub async fn read(&self, name: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_into(name, offset, len, &mut out).await?;
        Ok(out)
    }

    /// [`Disk::read`], appending the bytes to `out` (which a reader of many chunks reuses
    /// rather than allocating and copying each one twice); returns how many there were. On an
    /// error `out` is as it was.
    pub async fn read_into(
        &self,
        name: &str,
        offset: u64,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<usize> {
        self.spike().await;
        let mut s = self.state();
        let id = *s.dir.get(name).ok_or_else(|| not_found(name))?;
        let range = within(s.inodes[&id].cache.len(), offset, len);
        s.check_readable(name, id, range.start as u64, range.end as u64)?;
        out.extend_from_slice(&s.inodes[&id].cache[range.clone()]);
        Ok(range.len())
    }

    pub async fn read_all(&self, name: &str) -> Result<Vec<u8>> {
        self.read(name, 0, usize::MAX).await
    }

    /// The cached bytes of `name` in `[offset, offset + len)`, past every fault and delay: what
    /// the harness reads to judge a node (never node code, which must meet the faults).
    pub fn peek(&self, name: &str, offset: u64, len: usize) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.peek_into(name, offset, len, &mut out)?;
        Some(out)
    }

    /// [`Disk::peek`], appending the bytes to `out`; how many there were, or `None` (and `out`
    /// as it was) when there is no such file.
    pub fn peek_into(
        &self,
        name: &str,
        offset: u64,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Option<usize> {
        let s = self.state();
        let data = &s.inodes[s.dir.get(name)?].cache;
        let range = within(data.len(), offset, len);
        out.extend_from_slice(&data[range.clone()]);
        Some(range.len())
    }

    /// Sleeps out a latency spike, if one is on (no sleep otherwise, so timing is untouched).
    async fn spike(&self) {
        let extra = self.state().extra_latency();
        if !extra.is_zero() {
            madsim::time::sleep(extra).await;
        }
    }

    /// Writes `data` at `offset`, growing the file (with zeroes) as needed. Volatile until synced.
    /// A write to a file that does not exist fails with `NotFound` and changes nothing.
    pub fn write(&self, name: &str, offset: u64, data: &[u8]) -> Result<()> {
        let mut s = self.state();
        let sector = s.config.sector_size;
        let (start, end) = (offset as usize, offset as usize + data.len());
        let id = *s.dir.get(name).ok_or_else(|| not_found(name))?;
        let grow = (end as u64).saturating_sub(s.inodes[&id].cache.len() as u64);
        if grow > 0 {
            s.need_space(name, "write", grow)?;
        }
        s.rewritten(id, start as u64, end as u64);
        let inode = s.inodes.get_mut(&id).expect("directory names a live inode");
        inode.write(start, data, sector);
        s.bytes_written += data.len() as u64;
        s.trace("disk.write", offset, data.len() as u64);
        Ok(())
    }

    /// Makes room in memory for `name` to grow to `bytes` without reallocating (a file its
    /// writer knows the final size of, as a WAL segment). Changes nothing a node or the harness
    /// can observe: contents, length, space used, faults and the trace are untouched. Memory
    /// only, and only until a crash or a failed fsync replaces the cached copy (the file then
    /// grows by doubling again).
    pub fn reserve(&self, name: &str, bytes: usize) -> Result<()> {
        let mut s = self.state();
        let cache = &mut s.inode(name)?.cache;
        cache.reserve_exact(bytes.saturating_sub(cache.len()));
        Ok(())
    }

    /// Cuts or extends the file to `len` bytes. Volatile until synced.
    pub fn set_len(&self, name: &str, len: u64) -> Result<()> {
        let mut s = self.state();
        let sector = s.config.sector_size;
        let grow = len.saturating_sub(s.inode(name)?.cache.len() as u64);
        if grow > 0 {
            s.need_space(name, "set_len", grow)?;
        }
        let inode = s.inode(name)?;
        let (old, new) = (inode.cache.len(), len as usize);
        inode.cache.resize(new, 0);
        inode.mark_dirty(old.min(new), old.max(new), sector);
        s.trace("disk.set_len", len, 0);
        Ok(())
    }

    /// fsync: after the simulated latency, the file's contents and length are durable
    /// (its name is not: see [`Disk::sync_dir`]). A failed fsync drops the dirty data.
    pub async fn sync(&self, name: &str) -> Result<()> {
        let latency = self.latency() + self.transfer_time(name);
        madsim::time::sleep(latency).await;
        let mut s = self.state();
        let sector = s.config.sector_size;
        if s.faults.failing_syncs > 0 && s.dir.contains_key(name) {
            s.faults.failing_syncs -= 1;
            let inode = s.inode(name)?;
            let dropped = inode.dirty.len() as u64;
            inode.cache = inode.durable.clone();
            inode.dirty.clear();
            s.trace("disk.eio-sync", dropped, 0);
            return Err(io_error(name, "fsync"));
        }
        let inode = s.inode(name)?;
        let sectors = inode.dirty.len() as u64;
        inode.make_durable(sector);
        s.bytes_synced += sectors * sector as u64;
        s.trace("disk.sync", sectors, 0);
        Ok(())
    }

    /// Makes every create, rename and remove so far durable.
    pub async fn sync_dir(&self) -> Result<()> {
        let latency = self.latency();
        madsim::time::sleep(latency).await;
        let mut s = self.state();
        let ops = std::mem::take(&mut s.pending_dir);
        s.commit_dir_ops(&ops);
        s.trace("disk.sync_dir", ops.len() as u64, 0);
        Ok(())
    }

    /// The time to write out `name`'s dirty sectors at the disk's bandwidth.
    fn transfer_time(&self, name: &str) -> Duration {
        let mut s = self.state();
        let (rate, sector) = (s.config.sync_bytes_per_s, s.config.sector_size);
        if rate <= 0.0 {
            return Duration::ZERO;
        }
        let dirty = s.inode(name).map_or(0, |i| i.dirty.len() * sector);
        Duration::from_secs_f64(dirty as f64 / rate)
    }

    fn latency(&self) -> Duration {
        let s = self.state();
        Duration::from_micros(s.config.fsync_latency_us) + s.extra_latency()
    }

    /// Renames `from` to `to`, replacing `to` if it exists. Volatile until the directory is synced.
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        let mut s = self.state();
        let id = *s.dir.get(from).ok_or_else(|| not_found(from))?;
        s.need_space(to, "rename to", 0)?;
        s.unlink(from);
        s.link(to, id);
        s.trace("disk.rename", id, 0);
        Ok(())
    }

    /// Removes `name`. Volatile until the directory is synced.
    pub fn remove(&self, name: &str) -> Result<()> {
        let mut s = self.state();
        if !s.dir.contains_key(name) {
            return Err(not_found(name));
        }
        s.unlink(name);
        s.trace("disk.remove", 0, 0);
        Ok(())
    }

    /// Power loss: drops what was not durable, as the module doc describes. The harness calls
    /// this when it kills the node.
    pub fn crash(&self) {
        let mut guard = self.state();
        let s = &mut *guard;
        let p = s.config.land_probability;
        let ops = std::mem::take(&mut s.pending_dir);
        let dir_p = s.config.dir_land_probability;
        let landed_ops = if dir_p > 0.0 && !ops.is_empty() && s.rng.gen_bool(dir_p) {
            s.rng.gen_range(1..=ops.len())
        } else {
            0
        };
        for op in &ops[..landed_ops] {
            match op {
                DirOp::Link(name, id) => s.durable_dir.insert(name.clone(), *id),
                DirOp::Unlink(name) => s.durable_dir.remove(name),
            };
        }
        s.dir = s.durable_dir.clone();
        s.collect_garbage();
        let sector = s.config.sector_size;
        let mut torn = 0u64;
        for inode in s.inodes.values_mut() {
            torn += inode.dirty.len() as u64;
            inode.crash(sector, p, &mut s.rng);
        }
        s.trace("disk.crash", landed_ops as u64, torn);
    }

    /// Makes sectors of a durable, non-empty file unreadable: `pick` chooses the file and the
    /// first sector, `sectors` how many; `for_time` how long (`None`: until rewritten). Returns
    /// the file hit, if any.
    pub fn fail_reads(
        &self,
        pick: u64,
        sectors: u64,
        for_time: Option<Duration>,
    ) -> Option<String> {
        let mut guard = self.state();
        let s = &mut *guard;
        let sector = s.config.sector_size as u64;
        let (name, id) = Self::pick_durable(s, pick)?;
        let len = s.inodes[&id].cache.len() as u64;
        if len == 0 {
            return None;
        }
        let first = (pick / 7) % len.div_ceil(sector);
        let until = for_time.map(|d| madsim::time::Instant::now() + d);
        let (start, end) = (first * sector, ((first + sectors.max(1)) * sector).min(len));
        s.faults
            .unreadable
            .entry(id)
            .or_default()
            .push(BadRange { start, end, until });
        s.trace("disk.fail-reads", start, end - start);
        Some(name)
    }

    /// The next fsync of a file on this disk fails with EIO (and drops that file's dirty data).
    pub fn fail_next_sync(&self) {
        let mut s = self.state();
        s.faults.failing_syncs += 1;
        s.trace("disk.fail-next-sync", u64::from(s.faults.failing_syncs), 0);
    }

    /// The disk is full: no more space than is used now.
    pub fn fill(&self) {
        let mut s = self.state();
        let used = s.used();
        s.faults.capacity = Some(used);
        s.trace("disk.full", used, 0);
    }

    /// Space again: the cap [`Disk::fill`] set is lifted.
    pub fn free_space(&self) {
        let mut s = self.state();
        s.faults.capacity = None;
        s.trace("disk.space", 0, 0);
    }

    /// Every fsync and read takes `extra` longer for `for_time`.
    pub fn slow(&self, extra: Duration, for_time: Duration) {
        let mut s = self.state();
        s.faults.slow = Some((madsim::time::Instant::now() + for_time, extra));
        s.trace(
            "disk.slow",
            extra.as_micros() as u64,
            for_time.as_millis() as u64,
        );
    }

    /// Ends every fault but crashes: reads heal, fsyncs succeed, space returns, no delay.
    pub fn heal(&self) {
        let mut s = self.state();
        s.faults = Faults::default();
        s.trace("disk.heal", 0, 0);
    }

    /// A durable, non-empty file chosen by `pick` (modulo the candidates).
    fn pick_durable(s: &DiskState, pick: u64) -> Option<(String, InodeId)> {
        let candidates: Vec<(&String, &InodeId)> = s
            .durable_dir
            .iter()
            .filter(|(_, id)| !s.inodes[id].durable.is_empty())
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let (name, id) = candidates[(pick % candidates.len() as u64) as usize];
        Some((name.clone(), *id))
    }

    /// Loses the whole disk: every file, durable or not.
    pub fn wipe(&self) {
        let mut s = self.state();
        s.inodes.clear();
        s.faults = Faults::default();
        s.dir.clear();
        s.durable_dir.clear();
        s.pending_dir.clear();
        s.trace("disk.wipe", 0, 0);
    }

    /// Bit rot: flips one bit of a durable, non-empty file chosen by `pick` (a number reduced
    /// modulo the candidates). Returns the file hit, if any.
    pub fn rot(&self, pick: u64) -> Option<String> {
        self.rot_bit(pick).map(|r| r.file)
    }

    /// [`Disk::rot`], saying which byte and bit it flipped.
    pub fn rot_bit(&self, pick: u64) -> Option<Rotted> {
        let mut guard = self.state();
        let s = &mut *guard;
        let files = s
            .durable_dir
            .values()
            .filter(|id| !s.inodes[id].durable.is_empty())
            .count() as u64;
        let (name, id) = Self::pick_durable(s, pick)?;
        let inode = s.inodes.get_mut(&id).unwrap();
        let bit = (pick / files) % (inode.durable.len() as u64 * 8);
        let (byte, mask) = ((bit / 8) as usize, 1u8 << (bit % 8));
        inode.durable[byte] ^= mask;
        if byte < inode.cache.len() {
            inode.cache[byte] ^= mask;
        }
        s.trace("disk.rot", id, bit);
        Some(Rotted {
            file: name,
            offset: byte as u64,
            mask,
        })
    }

    /// Bytes handed to `write` and bytes made durable by `sync` (whole sectors).
    pub fn stats(&self) -> (u64, u64) {
        let s = self.state();
        (s.bytes_written, s.bytes_synced)
    }
}

#[cfg(test)]
mod tests {
    //! The disk held to its word: proptest over random operation sequences ending in a crash.
    use super::*;
    use proptest::prelude::*;

    const NAMES: [&str; 3] = ["a", "b", "c"];

    #[derive(Clone, Debug)]
    enum Op {
        Create(usize),
        Write(usize, u16, u16, u8),
        SetLen(usize, u16),
        Sync(usize),
        SyncDir,
        Rename(usize, usize),
        Remove(usize),
        FailNextSync,
        Fill,
        FreeSpace,
    }

    fn op() -> impl Strategy<Value = Op> {
        let n = 0..NAMES.len();
        prop_oneof![
            n.clone().prop_map(Op::Create),
            (n.clone(), 0u16..9000, 1u16..3000, any::<u8>())
                .prop_map(|(f, o, l, b)| Op::Write(f, o, l, b)),
            (n.clone(), 0u16..9000).prop_map(|(f, l)| Op::SetLen(f, l)),
            n.clone().prop_map(Op::Sync),
            Just(Op::SyncDir),
            (n.clone(), n.clone()).prop_map(|(a, b)| Op::Rename(a, b)),
            n.prop_map(Op::Remove),
            Just(Op::FailNextSync),
            Just(Op::Fill),
            Just(Op::FreeSpace),
        ]
    }

    /// What the test knows of one file (an inode): its contents at the last fsync and now.
    #[derive(Clone, Default)]
    struct Shadow {
        durable: Vec<u8>,
        cache: Vec<u8>,
    }

    fn sector_of(data: &[u8], s: usize, size: usize) -> Vec<u8> {
        (s * size..(s + 1) * size)
            .map(|i| data.get(i).copied().unwrap_or(0))
            .collect()
    }

    /// Every sector of `after` is the durable or the cached version of one of the candidates.
    /// The last sector may be cut short by a truncation that landed without its data: then it
    /// must be a prefix of one version.
    fn sectorwise_old_or_new(after: &[u8], candidates: &[Shadow], size: usize) -> bool {
        candidates.iter().any(|c| {
            let sectors = after.len().div_ceil(size);
            after.len() <= c.durable.len().max(c.cache.len())
                && (0..sectors).all(|s| {
                    let got = &after[s * size..((s + 1) * size).min(after.len())];
                    let (old, new) = (sector_of(&c.durable, s, size), sector_of(&c.cache, s, size));
                    got == &old[..got.len()] || got == &new[..got.len()]
                })
        })
    }

    fn run(
        ops: Vec<Op>,
        land: f64,
        dir_land: f64,
        sector: usize,
        seed: u64,
    ) -> std::result::Result<(), TestCaseError> {
        let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
        rt.block_on(async move {
            let cfg = DiskConfig {
                sector_size: sector,
                land_probability: land,
                fsync_latency_us: 10,
                sync_bytes_per_s: 0.0,
                dir_land_probability: dir_land,
            };
            let disk = Disk::new(1, cfg, seed, None);
            // The fault state the test expects: an fsync owed a failure, the space cap.
            let mut failing_syncs = 0u32;
            let mut cap: Option<u64> = None;
            let used = |inodes: &Vec<Shadow>, dir: &BTreeMap<String, usize>| -> u64 {
                dir.values().map(|&i| inodes[i].cache.len() as u64).sum()
            };
            let mut inodes: Vec<Shadow> = Vec::new();
            let mut dir: BTreeMap<String, usize> = BTreeMap::new();
            let mut durable_dir: BTreeMap<String, usize> = BTreeMap::new();
            // Names whose binding changed since the last directory sync.
            let mut pending: BTreeSet<String> = BTreeSet::new();
            // Inodes written since their last fsync.
            let mut dirty: BTreeSet<usize> = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Create(f) => {
                        let name = NAMES[f].to_string();
                        let full = cap.is_some_and(|c| used(&inodes, &dir) >= c);
                        if !dir.contains_key(&name) && full {
                            let e = disk.create(&name).unwrap_err();
                            prop_assert!(is_no_space(&e), "create on a full disk: {}", e);
                        } else if !dir.contains_key(&name) {
                            disk.create(&name).unwrap();
                            inodes.push(Shadow::default());
                            dir.insert(name.clone(), inodes.len() - 1);
                            pending.insert(name);
                        }
                    }
                    Op::Write(f, off, len, byte) => {
                        if let Some(&i) = dir.get(NAMES[f]) {
                            let data = vec![byte; len as usize];
                            let end = off as usize + len as usize;
                            let grow = (end as u64).saturating_sub(inodes[i].cache.len() as u64);
                            if cap.is_some_and(|c| grow > 0 && used(&inodes, &dir) + grow > c) {
                                let e = disk.write(NAMES[f], off as u64, &data).unwrap_err();
                                prop_assert!(is_no_space(&e), "write on a full disk: {}", e);
                                continue;
                            }
                            disk.write(NAMES[f], off as u64, &data).unwrap();
                            let c = &mut inodes[i].cache;
                            if c.len() < end {
                                c.resize(end, 0);
                            }
                            c[off as usize..end].copy_from_slice(&data);
                            dirty.insert(i);
                        }
                    }
                    Op::SetLen(f, len) => {
                        if let Some(&i) = dir.get(NAMES[f]) {
                            let grow = (len as u64).saturating_sub(inodes[i].cache.len() as u64);
                            if cap.is_some_and(|c| grow > 0 && used(&inodes, &dir) + grow > c) {
                                prop_assert!(disk.set_len(NAMES[f], len as u64).is_err());
                                continue;
                            }
                            disk.set_len(NAMES[f], len as u64).unwrap();
                            inodes[i].cache.resize(len as usize, 0);
                            dirty.insert(i);
                        }
                    }
                    Op::Sync(f) => {
                        if let Some(&i) = dir.get(NAMES[f]) {
                            if failing_syncs > 0 {
                                // EIO, and the dirty data is gone: the cache is the durable copy.
                                failing_syncs -= 1;
                                prop_assert!(disk.sync(NAMES[f]).await.is_err());
                                inodes[i].cache = inodes[i].durable.clone();
                                prop_assert_eq!(
                                    disk.read_all(NAMES[f]).await.unwrap(),
                                    inodes[i].durable.clone(),
                                    "a failed fsync keeps dirty data in the cache"
                                );
                            } else {
                                disk.sync(NAMES[f]).await.unwrap();
                                inodes[i].durable = inodes[i].cache.clone();
                            }
                            dirty.remove(&i);
                        }
                    }
                    Op::SyncDir => {
                        disk.sync_dir().await.unwrap();
                        durable_dir = dir.clone();
                        pending.clear();
                    }
                    Op::Rename(a, b) => {
                        let full = cap.is_some_and(|c| used(&inodes, &dir) >= c);
                        if a != b && full && dir.contains_key(NAMES[a]) {
                            prop_assert!(is_no_space(
                                &disk.rename(NAMES[a], NAMES[b]).unwrap_err()
                            ));
                        } else if a != b {
                            if let Some(i) = dir.remove(NAMES[a]) {
                                disk.rename(NAMES[a], NAMES[b]).unwrap();
                                dir.insert(NAMES[b].to_string(), i);
                                pending.insert(NAMES[a].to_string());
                                pending.insert(NAMES[b].to_string());
                            }
                        }
                    }
                    Op::Remove(f) => {
                        if dir.remove(NAMES[f]).is_some() {
                            disk.remove(NAMES[f]).unwrap();
                            pending.insert(NAMES[f].to_string());
                        }
                    }
                    Op::FailNextSync => {
                        disk.fail_next_sync();
                        failing_syncs += 1;
                    }
                    Op::Fill => {
                        disk.fill();
                        cap = Some(used(&inodes, &dir));
                    }
                    Op::FreeSpace => {
                        disk.free_space();
                        cap = None;
                    }
                }
            }
            disk.crash();
            for name in NAMES {
                let after = disk.peek(name, 0, usize::MAX);
                let settled = !pending.contains(name);
                if settled {
                    // A synced name never vanishes, and an unsynced removal never reappears.
                    prop_assert_eq!(
                        after.is_some(),
                        durable_dir.contains_key(name),
                        "name {}",
                        name
                    );
                }
                let Some(after) = after else { continue };
                if settled {
                    let i = durable_dir[name];
                    if !dirty.contains(&i) {
                        // Every byte synced before the crash reads back intact.
                        prop_assert_eq!(&after, &inodes[i].durable, "synced file {} changed", name);
                    }
                }
                // Torn, maybe, but never invented: each sector old or new.
                prop_assert!(
                    sectorwise_old_or_new(&after, &inodes, sector),
                    "file {} holds a sector that was never written",
                    name
                );
            }
            Ok(())
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn crash_keeps_what_was_synced_and_invents_nothing(
            ops in proptest::collection::vec(op(), 1..40),
            land in prop_oneof![Just(0.0), Just(0.5), Just(1.0)],
            dir_land in prop_oneof![Just(0.0), Just(1.0)],
            sector in prop_oneof![Just(512usize), Just(4096usize)],
            seed in any::<u64>(),
        ) {
            run(ops, land, dir_land, sector, seed)?;
        }
    }

    #[test]
    fn a_reservation_changes_nothing_a_reader_or_the_space_check_sees() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        rt.block_on(async {
            let disk = Disk::new(1, DiskConfig::default(), 1, None);
            disk.create("f").unwrap();
            disk.reserve("f", 1 << 16).unwrap();
            assert_eq!(disk.len("f").unwrap(), 0, "a reservation is not length");
            disk.write("f", 0, b"hello").unwrap();
            disk.fill();
            assert!(
                disk.write("f", 5, b"!").is_err(),
                "a full disk refuses growth into reserved memory: space counts length"
            );
            disk.free_space();
            disk.sync("f").await.unwrap();
            disk.sync_dir().await.unwrap();
            disk.write("f", 5, b" world").unwrap();
            disk.crash();
            assert_eq!(disk.read_all("f").await.unwrap(), b"hello");
            assert!(disk.reserve("missing", 10).is_err());
        });
    }

    #[test]
    fn an_unsynced_create_vanishes_without_landing() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        rt.block_on(async {
            let disk = Disk::new(1, DiskConfig::default(), 1, None);
            disk.create("f").unwrap();
            disk.write("f", 0, b"hello").unwrap();
            disk.sync("f").await.unwrap();
            disk.crash();
            assert!(
                !disk.exists("f"),
                "a create without a directory sync must not survive"
            );
            disk.create("g").unwrap();
            disk.sync_dir().await.unwrap();
            disk.write("g", 0, b"data").unwrap();
            disk.sync("g").await.unwrap();
            disk.crash();
            assert_eq!(disk.read_all("g").await.unwrap(), b"data");
        });
    }

    #[test]
    fn rot_flips_exactly_one_durable_bit() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        rt.block_on(async {
            let disk = Disk::new(1, DiskConfig::default(), 1, None);
            disk.create("f").unwrap();
            disk.write("f", 0, &[0u8; 100]).unwrap();
            disk.sync("f").await.unwrap();
            disk.sync_dir().await.unwrap();
            assert_eq!(disk.rot(12345).as_deref(), Some("f"));
            let ones: u32 = disk
                .read_all("f")
                .await
                .unwrap()
                .iter()
                .map(|b| b.count_ones())
                .sum();
            assert_eq!(ones, 1);
            disk.wipe();
            assert!(disk.list().is_empty());
        });
    }

    #[test]
    fn an_unreadable_range_fails_reads_until_rewritten_or_its_time_is_up() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        rt.block_on(async {
            let disk = Disk::new(1, DiskConfig::default(), 1, None);
            disk.create("f").unwrap();
            disk.write("f", 0, &[7u8; 3 * 4096]).unwrap();
            disk.sync("f").await.unwrap();
            disk.sync_dir().await.unwrap();
            // pick 7: file 0, sector (7 / 7) % 3 = 1.
            assert_eq!(disk.fail_reads(7, 1, None).as_deref(), Some("f"));
            assert!(disk.read("f", 0, 4096).await.is_ok(), "sector 0 reads");
            let e = disk.read("f", 4000, 200).await.unwrap_err();
            assert_eq!(e.raw_os_error(), None);
            assert!(e.to_string().contains("os error 5"), "{e}");
            assert!(disk.read_all("f").await.is_err());
            assert_eq!(
                disk.peek("f", 4096, 1),
                Some(vec![7]),
                "the bytes are intact"
            );
            disk.write("f", 4096, &[9u8; 4096]).unwrap();
            assert_eq!(
                disk.read("f", 4096, 1).await.unwrap(),
                vec![9],
                "a rewrite remaps"
            );
            disk.fail_reads(7, 1, Some(Duration::from_millis(50)));
            assert!(disk.read("f", 4096, 1).await.is_err());
            madsim::time::sleep(Duration::from_millis(60)).await;
            assert!(
                disk.read("f", 4096, 1).await.is_ok(),
                "a timed error passes"
            );
        });
    }

    #[test]
    fn a_spike_slows_fsync_and_reads_for_its_time() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        rt.block_on(async {
            let disk = Disk::new(1, DiskConfig::default(), 1, None);
            disk.create("f").unwrap();
            disk.slow(Duration::from_millis(200), Duration::from_millis(500));
            let t = madsim::time::Instant::now();
            disk.sync("f").await.unwrap();
            disk.read("f", 0, 1).await.unwrap();
            assert!(
                t.elapsed() >= Duration::from_millis(400),
                "{:?}",
                t.elapsed()
            );
            madsim::time::sleep(Duration::from_millis(500)).await;
            let t = madsim::time::Instant::now();
            disk.sync("f").await.unwrap();
            assert!(t.elapsed() < Duration::from_millis(10));
        });
    }

    #[test]
    fn a_rename_can_land_without_the_data_it_names() {
        let mut landed = 0;
        for seed in 0..20 {
            let rt =
                madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
            landed += rt.block_on(async move {
                let config = DiskConfig {
                    dir_land_probability: 1.0,
                    ..DiskConfig::default()
                };
                let disk = Disk::new(1, config, seed, None);
                disk.create("f.tmp").unwrap();
                disk.sync_dir().await.unwrap();
                disk.write("f.tmp", 0, b"new contents").unwrap();
                disk.rename("f.tmp", "f").unwrap();
                disk.crash();
                // When the journal kept the rename, the data it names, never synced, is gone.
                if !disk.exists("f") {
                    return 0;
                }
                assert_eq!(disk.read_all("f").await.unwrap(), b"");
                1
            });
        }
        assert!(landed > 0, "no crash of 20 kept the rename");
    }
}
