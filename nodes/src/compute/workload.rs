//! The client side of the compute stub: the transactions it runs and how each becomes WAL.
//!
//! A transaction writes a few page deltas and a commit record. With `full_page_writes` on, the
//! first touch of a page after a checkpoint first logs the page's whole image, as Postgres does
//! to survive torn pages; with it off (the Lakebase default) only the deltas go to the WAL.

use crate::ids::{Lsn, PageId, Xid};
use crate::page::{apply, Page, CONTENT_SIZE, PAGE_SIZE};
use crate::wal::{RecordBody, WalRecord};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

/// One write of a transaction: `len` bytes at `offset` of `page`'s contents, their values drawn
/// from `seed`.
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
    Txn { deltas: Vec<DeltaSpec> },
    Checkpoint,
}

/// The client: a fixed list of work, consumed in order across compute restarts (the client
/// outlives the compute it talks to).
pub struct Client {
    items: Vec<WorkItem>,
    next: AtomicUsize,
}

impl Client {
    pub fn new(items: Vec<WorkItem>) -> Client {
        Client {
            items,
            next: AtomicUsize::new(0),
        }
    }

    /// The next piece of work, or `None` when the client is done.
    pub fn next(&self) -> Option<&WorkItem> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.items.get(i)
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
        }
    }

    /// Replays `wal`, whole records that continue this database's WAL (from LSN 0 for a
    /// fresh database).
    pub fn replay(&mut self, wal: &[u8]) {
        let decoded = crate::wal::decode_stream(wal, self.end_lsn, Some(self.last_record_lsn));
        assert_eq!(
            decoded.end_lsn,
            self.end_lsn.advance(wal.len() as u64),
            "recovered WAL must be whole records continuing the database's"
        );
        for (lsn, rec) in &decoded.records {
            self.redo(*lsn, rec);
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

    fn redo(&mut self, lsn: Lsn, rec: &WalRecord) {
        let end = lsn.advance(rec.encoded_len() as u64);
        if let Some(page) = rec.body.page() {
            apply(rec, end, self.pages.entry(page).or_default());
        }
        if rec.body == RecordBody::Checkpoint {
            self.imaged.clear();
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
        let deltas = match item {
            WorkItem::Checkpoint => {
                self.log(Xid(0), RecordBody::Checkpoint, out);
                return None;
            }
            WorkItem::Txn { deltas } => deltas,
        };
        let xid = Xid(self.next_xid.max(1));
        self.next_xid = xid.0 + 1;
        for d in deltas {
            let page = PageId(d.page);
            if !self.pages.contains_key(&page) {
                self.log(xid, RecordBody::PageInit { page }, out);
                self.imaged.insert(page);
            }
            if full_page_writes && self.imaged.insert(page) {
                let image = self
                    .pages
                    .get_mut(&page)
                    .unwrap()
                    .seal()
                    .as_bytes()
                    .to_vec()
                    .into_boxed_slice();
                debug_assert_eq!(image.len(), PAGE_SIZE);
                self.log(xid, RecordBody::FullPageImage { page, image }, out);
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
        let commit = self.log(xid, RecordBody::Commit, out);
        Some((xid, commit, self.end_lsn))
    }
}
