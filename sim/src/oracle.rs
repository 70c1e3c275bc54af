//! The oracle: replays the committed WAL from the start and knows every page at every LSN.
//!
//! It applies the same pure redo function as the pageserver, but to nothing but the committed
//! WAL, in order, with no layers, images or caches in between: a page the pageserver serves
//! must equal the oracle's, byte for byte (compared by CRC32C).

use lakesim_nodes::page::{apply, Page};
use lakesim_nodes::wal::decode_stream;
use lakesim_nodes::{Lsn, PageId};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct Oracle {
    pages: BTreeMap<PageId, Page>,
    /// Every version of every page: (end LSN of the record that made it, CRC32C of the page).
    history: BTreeMap<PageId, Vec<(Lsn, u32)>>,
    end: Lsn,
    last_record: Option<Lsn>,
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
            let page = self.pages.entry(page_id).or_default();
            apply(rec, end, page);
            let crc = crc32c::crc32c(page.as_bytes());
            self.history.entry(page_id).or_default().push((end, crc));
        }
        self.last_record = decoded.last_lsn.or(self.last_record);
        self.end = decoded.end_lsn;
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
