//! The oracle: replays the committed WAL from the start and knows every page at every LSN.
//!
//! It applies the same pure redo function as the pageserver, but to nothing but the committed
//! WAL, in order, with no layers, images or caches in between: a page the pageserver serves
//! must equal the oracle's, byte for byte (compared by CRC32C).

use lakesim_nodes::page::{apply, Page};
use lakesim_nodes::wal::{decode_stream, RecordBody};
use lakesim_nodes::{Lsn, PageId};
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

#[derive(Default)]
pub struct Oracle {
    pages: BTreeMap<PageId, Page>,
    /// Every version of every page: (end LSN of the record that made it, CRC32C of the page).
    history: BTreeMap<PageId, Vec<(Lsn, u32)>>,
    end: Lsn,
    last_record: Option<Lsn>,
    /// The first `PageInit` of a page that already existed: the compute that wrote it had lost
    /// the page from its view of the database (say, from a basebackup that lacked it).
    reinit: Option<(PageId, Lsn)>,
}

impl Oracle {
    /// How far the oracle has replayed.
    pub fn end(&self) -> Lsn {
        self.end
    }

    /// Replays `wal` (the committed WAL from LSN 0) past where the oracle stands.
    pub fn advance(&mut self, wal: &[u8]) {
        if (wal.len() as u64) <= self.end.0 {
            return;
        }
        let from = self.end.0 as usize;
        let prev = self.last_record.or(Some(Lsn::ZERO));
        let decoded = decode_stream(&wal[from..], self.end, prev);
        for (lsn, rec) in &decoded.records {
            let Some(page_id) = rec.body.page() else {
                continue;
            };
            let end = lsn.advance(rec.encoded_len() as u64);
            let entry = self.pages.entry(page_id);
            let exists = matches!(entry, Entry::Occupied(_));
            if exists && matches!(rec.body, RecordBody::PageInit { .. }) {
                self.reinit = self.reinit.or(Some((page_id, *lsn)));
            }
            let page = entry.or_default();
            apply(rec, end, page);
            let crc = crc32c::crc32c(page.seal().as_bytes());
            self.history.entry(page_id).or_default().push((end, crc));
        }
        self.last_record = decoded.last_lsn.or(self.last_record);
        self.end = decoded.end_lsn;
    }

    /// A page the committed WAL initialised twice, and where the second time was.
    pub fn reinitialised(&self) -> Option<(PageId, Lsn)> {
        self.reinit
    }

    /// The LSNs at which `page` changed, up to `lsn` (for failure reports).
    pub fn changes(&self, page: PageId, lsn: Lsn) -> Vec<Lsn> {
        let versions = self.history.get(&page).map(Vec::as_slice).unwrap_or(&[]);
        versions
            .iter()
            .map(|(l, _)| *l)
            .filter(|l| *l <= lsn)
            .collect()
    }

    /// CRC32C of `page` as of `lsn`; `None` when `lsn` is past what the oracle has replayed.
    pub fn page_crc_at(&self, page: PageId, lsn: Lsn) -> Option<u32> {
        if lsn > self.end {
            return None;
        }
        let versions = self.history.get(&page).map(Vec::as_slice).unwrap_or(&[]);
        let i = versions.partition_point(|(end, _)| *end <= lsn);
        Some(match i {
            0 => crc32c::crc32c(Page::zeroed().as_bytes()),
            _ => versions[i - 1].1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakesim_nodes::wal::WalRecord;
    use lakesim_nodes::Xid;

    #[test]
    fn knows_every_version_of_a_page() {
        let mut wal = Vec::new();
        let mut prev = Lsn::ZERO;
        let mut ends = Vec::new();
        for b in [5u8, 6] {
            let body = RecordBody::PageDelta {
                page: PageId(1),
                offset: 0,
                bytes: vec![b],
            };
            let rec = WalRecord {
                xid: Xid(1),
                prev_lsn: prev,
                body,
            };
            prev = Lsn(wal.len() as u64);
            rec.encode_into(&mut wal);
            ends.push(Lsn(wal.len() as u64));
        }
        let mut oracle = Oracle::default();
        oracle.advance(&wal[..ends[0].0 as usize]);
        assert_eq!(
            oracle.page_crc_at(PageId(1), ends[1]),
            None,
            "not replayed that far yet"
        );
        oracle.advance(&wal);
        let zero = crc32c::crc32c(Page::zeroed().as_bytes());
        assert_eq!(oracle.page_crc_at(PageId(1), Lsn(1)), Some(zero));
        let first = oracle.page_crc_at(PageId(1), ends[0]).unwrap();
        let second = oracle.page_crc_at(PageId(1), ends[1]).unwrap();
        assert_ne!(first, second);
        assert_eq!(oracle.changes(PageId(1), ends[1]), ends);
    }

    #[test]
    fn notices_a_page_initialised_twice() {
        let mut wal = Vec::new();
        let mut prev = Lsn::ZERO;
        let mut second = Lsn::ZERO;
        for body in [
            RecordBody::PageInit { page: PageId(3) },
            RecordBody::PageInit { page: PageId(4) },
            RecordBody::PageInit { page: PageId(3) },
        ] {
            let rec = WalRecord {
                xid: Xid(1),
                prev_lsn: prev,
                body,
            };
            prev = Lsn(wal.len() as u64);
            second = prev;
            rec.encode_into(&mut wal);
        }
        let mut oracle = Oracle::default();
        oracle.advance(&wal[..second.0 as usize]);
        assert_eq!(oracle.reinitialised(), None);
        oracle.advance(&wal);
        assert_eq!(oracle.reinitialised(), Some((PageId(3), second)));
    }
}
