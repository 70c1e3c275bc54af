//! The 8 KiB page and the redo function that applies a WAL record to it.
//!
//! Layout, as in Postgres's page header: bytes 0..8 hold the page LSN (the end LSN of the last
//! record applied), 8..12 a CRC32C checksum of everything else, and 12.. the contents.
//!
//! Guarantees: [`apply`] is a pure function of the page and the record, so the oracle, the
//! pageserver and an image layer all reconstruct the same bytes from the same WAL; a page's
//! checksum is always current after `apply` (checked by [`Page::verify`]).

use crate::ids::Lsn;
use crate::wal::{RecordBody, WalRecord};

pub const PAGE_SIZE: usize = 8192;
/// Offset of the contents: a delta's `offset` counts from here.
pub const CONTENT_OFFSET: usize = 12;
pub const CONTENT_SIZE: usize = PAGE_SIZE - CONTENT_OFFSET;

/// One page image.
#[derive(Clone, PartialEq, Eq)]
pub struct Page(Box<[u8]>);

impl std::fmt::Debug for Page {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Page(lsn={}, crc={:08x})",
            self.lsn(),
            self.stored_checksum()
        )
    }
}

impl Default for Page {
    fn default() -> Self {
        Page::zeroed()
    }
}

impl Page {
    /// The page as `PageInit` leaves it: zero contents, LSN 0, a valid checksum.
    pub fn zeroed() -> Page {
        let mut page = Page(vec![0u8; PAGE_SIZE].into_boxed_slice());
        page.seal(Lsn::ZERO);
        page
    }

    /// A page from raw bytes read back from storage; `None` when the size is wrong.
    /// The checksum is not checked here: call [`Page::verify`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Page> {
        (bytes.len() == PAGE_SIZE).then(|| Page(bytes.into()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn lsn(&self) -> Lsn {
        Lsn(u64::from_le_bytes(self.0[..8].try_into().unwrap()))
    }

    pub fn contents(&self) -> &[u8] {
        &self.0[CONTENT_OFFSET..]
    }

    fn stored_checksum(&self) -> u32 {
        u32::from_le_bytes(self.0[8..12].try_into().unwrap())
    }

    fn computed_checksum(&self) -> u32 {
        crc32c::crc32c_append(crc32c::crc32c(&self.0[..8]), &self.0[CONTENT_OFFSET..])
    }

    /// True when the stored checksum matches the bytes.
    pub fn verify(&self) -> bool {
        self.stored_checksum() == self.computed_checksum()
    }

    /// Stamps the page with `lsn` and recomputes its checksum.
    fn seal(&mut self, lsn: Lsn) {
        self.0[..8].copy_from_slice(&lsn.0.to_le_bytes());
        let crc = self.computed_checksum();
        self.0[8..12].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Applies `record`, which ends at `end_lsn`, to `page`. Records that touch no page leave it as
/// it is. Redo never moves a page backwards: `end_lsn` must be past the page's LSN.
pub fn apply(record: &WalRecord, end_lsn: Lsn, page: &mut Page) {
    assert!(
        end_lsn > page.lsn(),
        "page-reconstruction: redo of a record ending at {end_lsn} onto a page already at {}",
        page.lsn()
    );
    match &record.body {
        RecordBody::PageInit { .. } => page.0.fill(0),
        RecordBody::PageDelta { offset, bytes, .. } => {
            let at = CONTENT_OFFSET + *offset as usize;
            assert!(
                at + bytes.len() <= PAGE_SIZE,
                "delta past the end of the page"
            );
            page.0[at..at + bytes.len()].copy_from_slice(bytes);
        }
        RecordBody::FullPageImage { image, .. } => {
            assert_eq!(image.len(), PAGE_SIZE);
            page.0[CONTENT_OFFSET..].copy_from_slice(&image[CONTENT_OFFSET..]);
        }
        RecordBody::Commit | RecordBody::Checkpoint => return,
    }
    page.seal(end_lsn);
    debug_assert!(page.verify());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{PageId, Xid};

    fn delta(offset: u16, bytes: &[u8]) -> WalRecord {
        let body = RecordBody::PageDelta {
            page: PageId(1),
            offset,
            bytes: bytes.to_vec(),
        };
        WalRecord {
            xid: Xid(1),
            prev_lsn: Lsn::ZERO,
            body,
        }
    }

    #[test]
    fn apply_writes_the_delta_and_stamps_the_lsn() {
        let mut page = Page::zeroed();
        apply(&delta(5, b"abc"), Lsn(100), &mut page);
        assert_eq!(&page.contents()[5..8], b"abc");
        assert_eq!(page.lsn(), Lsn(100));
        assert!(page.verify());
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let mut page = Page::zeroed();
        apply(&delta(0, b"x"), Lsn(10), &mut page);
        let mut bytes = page.as_bytes().to_vec();
        bytes[4000] ^= 0x10;
        assert!(!Page::from_bytes(&bytes).unwrap().verify());
    }

    #[test]
    #[should_panic(expected = "page-reconstruction: redo of a record")]
    fn redo_never_moves_a_page_backwards() {
        let mut page = Page::zeroed();
        apply(&delta(0, b"x"), Lsn(10), &mut page);
        apply(&delta(0, b"y"), Lsn(5), &mut page);
    }
}
