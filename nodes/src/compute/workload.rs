//! The client side of the compute stub: the work it runs and how each piece becomes WAL.
//!
//! A transaction writes a few page deltas and a commit record; records outside a transaction
//! (pruning, index maintenance: xid 0) have no commit; a checkpoint is one record. With
//! `full_page_writes` on, the first touch of a page after a checkpoint first logs the page's
//! image less its free-space hole, as Postgres does to survive torn pages; with it off (the
//! Lakebase default) only the deltas go to the WAL. Work comes from a [`WorkSource`]: a planned
//! list, or a generator (tpcb, a replayed Postgres trace) the harness provides.

use crate::bugs::{Bug, BugSet};
use crate::ids::{Lsn, PageId, Xid};
use crate::page::{free_space_hole, Page, CONTENT_SIZE};
use crate::redo::WalRedo;
use crate::wal::{RecordBody, WalRecord};
use serde::{Deserialize, Serialize};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// One write of a transaction: `len` bytes at `offset` of `page`'s contents (clamped so that
/// the write fits them); byte `i` is `seed + 31 * i`, modulo 256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaSpec {
    pub page: u32,
    pub offset: u16,
    pub len: u16,
    pub seed: u8,
}

/// What the client asks of the compute next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkItem {
    /// A transaction: its writes, then its commit record.
    Txn { deltas: Vec<DeltaSpec> },
    /// Writes outside any transaction (xid 0), as Postgres logs page pruning and index
    /// maintenance: no commit record follows.
    Records { deltas: Vec<DeltaSpec> },
    /// An explicit `CHECKPOINT`.
    Checkpoint,
}

/// Where a client's work comes from: a list planned up front, or a generator that draws it
/// from its own seeded stream as it goes (a long closed-loop run would not fit in a list).
pub trait WorkSource: Send {
    fn next(&mut self) -> Option<WorkItem>;
}

/// A planned list, consumed in order without copies.
pub struct Items {
    items: Vec<WorkItem>,
    next: usize,
}

impl Items {
    pub fn new(items: Vec<WorkItem>) -> Items {
        Items { items, next: 0 }
    }
}

impl WorkSource for Items {
    fn next(&mut self) -> Option<WorkItem> {
        let item = self.items.get_mut(self.next)?;
        self.next += 1;
        Some(std::mem::replace(item, WorkItem::Checkpoint))
    }
}

/// The client: a source of work, consumed in order across compute restarts (the client
/// outlives the compute it talks to). It numbers its requests from 0, so an acknowledgement
/// names the request it answers.
pub struct Client {
    source: Mutex<(Box<dyn WorkSource>, u64)>,
}

/// The client's number for one piece of work: its position in the client's sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

impl Client {
    pub fn new(source: Box<dyn WorkSource>) -> Client {
        Client {
            source: Mutex::new((source, 0)),
        }
    }

    pub fn from_items(items: Vec<WorkItem>) -> Client {
        Client::new(Box::new(Items::new(items)))
    }

    /// The next piece of work and its number, or `None` when the client is done.
    pub fn next(&self) -> Option<(RequestId, WorkItem)> {
        let mut source = self.source.lock().expect("client lock");
        let item = source.0.next()?;
        let id = RequestId(source.1);
        source.1 += 1;
        Some((id, item))
    }
}

fn delta_bytes(d: &DeltaSpec) -> Vec<u8> {
    (0..d.len)
        .map(|i| d.seed.wrapping_add((i as u8).wrapping_mul(31)))
        .collect()
}

/// The compute's view of the database: the pages it has written, rebuilt from the WAL after a
/// restart, and where the next record goes.
#[derive(Default)]
pub struct Database {
    pages: BTreeMap<PageId, Page>,
    /// Pages already imaged since the last checkpoint (with full_page_writes on).
    imaged: BTreeSet<PageId>,
    end_lsn: Lsn,
    last_record_lsn: Lsn,
    next_xid: u64,
    /// Where the last checkpoint record starts (the redo point the next FPIs count from).
    last_checkpoint_lsn: Lsn,
    redo: WalRedo,
    /// The txn-write-lost bug: the last write of every 16th transaction is not logged.
    lose_writes: bool,
    /// The replay-keeps-next-xid bug: replay leaves the next xid where it was.
    replay_keeps_xid: bool,
}

impl Database {
    /// The database as a basebackup at `lsn` holds it; `prev` is the start of the record that
    /// ends at `lsn`. Which pages were imaged since the checkpoint is not in a basebackup: each
    /// page is imaged again at its next touch (with full_page_writes on), which is safe.
    pub fn from_basebackup(
        pages: impl Iterator<Item = (PageId, Page)>,
        lsn: Lsn,
        prev: Lsn,
        next_xid: u64,
    ) -> Database {
        Database {
            pages: pages.collect(),
            imaged: BTreeSet::new(),
            end_lsn: lsn,
            last_record_lsn: prev,
            next_xid,
            last_checkpoint_lsn: lsn,
            ..Database::default()
        }
    }

    /// The same database, redoing with `redo`, with the planted bugs of `bugs` that live here.
    pub fn with_redo(self, redo: WalRedo, bugs: &BugSet) -> Database {
        Database {
            redo,
            lose_writes: bugs.has(Bug::TxnWriteLost),
            replay_keeps_xid: bugs.has(Bug::ReplayKeepsNextXid),
            ..self
        }
    }

    /// Replays `wal`, whole records that continue this database's WAL (from LSN 0 for a
    /// fresh database).
    pub fn replay(&mut self, wal: &[u8]) {
        let (start, next_xid) = (self.end_lsn, self.next_xid);
        let prev = Some(self.last_record_lsn);
        let scanned =
            crate::wal::decode_stream_each(wal, start, prev, |lsn, rec| self.redo(lsn, &rec));
        assert_eq!(
            scanned.end_lsn,
            start.advance(wal.len() as u64),
            "recovered WAL must be whole records continuing the database's"
        );
        if self.replay_keeps_xid {
            self.next_xid = next_xid;
        }
    }

    pub fn page_count(&self) -> usize {
        self.pages.len()
    }

    pub fn nth_page(&self, i: usize) -> PageId {
        *self.pages.keys().nth(i).expect("page index in range")
    }

    pub fn end_lsn(&self) -> Lsn {
        self.end_lsn
    }

    /// WAL written since the last checkpoint began: Postgres's trigger for a checkpoint by
    /// volume (`max_wal_size`).
    pub fn wal_since_checkpoint(&self) -> u64 {
        self.end_lsn.bytes_since(self.last_checkpoint_lsn)
    }

    fn redo(&mut self, lsn: Lsn, rec: &WalRecord) {
        let end = lsn.advance(rec.encoded_len() as u64);
        if let Some(page) = rec.body.page() {
            match self.pages.entry(page) {
                Entry::Occupied(e) => self.redo.apply(rec, end, e.into_mut()),
                Entry::Vacant(e) => {
                    e.insert(self.redo.apply_to_new(rec, end));
                }
            }
        }
        if rec.body == RecordBody::Checkpoint {
            self.imaged.clear();
            self.last_checkpoint_lsn = lsn;
        }
        self.next_xid = self.next_xid.max(rec.xid.0 + 1);
        self.last_record_lsn = lsn;
        self.end_lsn = end;
    }

    fn log(&mut self, xid: Xid, body: RecordBody, out: &mut Vec<u8>) -> Lsn {
        let rec = WalRecord {
            xid,
            prev_lsn: self.last_record_lsn,
            body,
        };
        let lsn = self.end_lsn;
        rec.encode_into(out);
        self.redo(lsn, &rec);
        lsn
    }

    /// Logs `item` into `out`; for a transaction, returns its xid and commit record's span.
    pub fn execute(
        &mut self,
        item: &WorkItem,
        full_page_writes: bool,
        out: &mut Vec<u8>,
    ) -> Option<(Xid, Lsn, Lsn)> {
        match item {
            WorkItem::Checkpoint => {
                self.log(Xid(0), RecordBody::Checkpoint, out);
                None
            }
            WorkItem::Records { deltas } => {
                self.write_deltas(Xid(0), deltas, full_page_writes, out);
                None
            }
            WorkItem::Txn { deltas } => {
                let xid = Xid(self.next_xid.max(1));
                self.next_xid = xid.0 + 1;
                let lost = self.lose_writes && xid.0.is_multiple_of(16);
                let logged = &deltas[..deltas.len() - usize::from(lost && !deltas.is_empty())];
                self.write_deltas(xid, logged, full_page_writes, out);
                let commit = self.log(xid, RecordBody::Commit, out);
                Some((xid, commit, self.end_lsn))
            }
        }
    }

    fn write_deltas(&mut self, xid: Xid, deltas: &[DeltaSpec], fpw: bool, out: &mut Vec<u8>) {
        for d in deltas {
            let page = PageId(d.page);
            if !self.pages.contains_key(&page) {
                self.log(xid, RecordBody::PageInit { page }, out);
                self.imaged.insert(page);
            }
            if fpw && self.imaged.insert(page) {
                let body = self.full_page_image(page);
                self.log(xid, body, out);
            }
            let offset = d.offset.min((CONTENT_SIZE - d.len as usize) as u16);
            self.log(
                xid,
                RecordBody::PageDelta {
                    page,
                    offset,
                    bytes: delta_bytes(d),
                },
                out,
            );
        }
    }

    /// The page's image as a full-page write logs it: its contents less the free-space hole.
    fn full_page_image(&mut self, page: PageId) -> RecordBody {
        let contents = self.pages.get_mut(&page).unwrap().seal().contents();
        let (hole_offset, hole_len) = free_space_hole(contents);
        let (at, len) = (hole_offset as usize, hole_len as usize);
        let mut image = Vec::with_capacity(CONTENT_SIZE - len);
        image.extend_from_slice(&contents[..at]);
        image.extend_from_slice(&contents[at + len..]);
        RecordBody::FullPageImage {
            page,
            hole_offset,
            hole_len,
            image: image.into_boxed_slice(),
        }
    }
}
