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

/// One page image. Redo leaves the checksum stale ([`Page::seal`] brings it up to date), so
/// replaying a chain of records pays for one checksum, not one per record; the bytes can only
/// be read once sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct Page {
    bytes: Box<[u8]>,
    sealed: bool,
}

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
        let mut page = Page {
            bytes: vec![0u8; PAGE_SIZE].into_boxed_slice(),
            sealed: false,
        };
        page.seal();
        page
    }

    /// A page from raw bytes read back from storage; `None` when the size is wrong.
    /// The checksum is not checked here: call [`Page::verify`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Page> {
        (bytes.len() == PAGE_SIZE).then(|| Page {
            bytes: bytes.into(),
            sealed: true,
        })
    }

    /// The page's bytes, checksum included; the page must be sealed.
    pub fn as_bytes(&self) -> &[u8] {
        assert!(
            self.sealed,
            "page bytes read before their checksum was sealed"
        );
        &self.bytes
    }

    pub fn lsn(&self) -> Lsn {
        Lsn(u64::from_le_bytes(self.bytes[..8].try_into().unwrap()))
    }

    pub fn contents(&self) -> &[u8] {
        &self.bytes[CONTENT_OFFSET..]
    }

    fn stored_checksum(&self) -> u32 {
        u32::from_le_bytes(self.bytes[8..12].try_into().unwrap())
    }

    fn computed_checksum(&self) -> u32 {
        crc32c::crc32c_append(
            crc32c::crc32c(&self.bytes[..8]),
            &self.bytes[CONTENT_OFFSET..],
        )
    }

    /// True when the stored checksum matches the bytes.
    pub fn verify(&self) -> bool {
        self.sealed && self.stored_checksum() == self.computed_checksum()
    }

    /// Brings the checksum up to date after redo.
    pub fn seal(&mut self) -> &mut Page {
        if !self.sealed {
            let crc = self.computed_checksum();
            self.bytes[8..12].copy_from_slice(&crc.to_le_bytes());
            self.sealed = true;
        }
        self
    }
}

/// The page's free-space hole: its longest run of zero bytes in the contents, as
/// `(offset, len)` from the start of the contents. A full-page image leaves it out, as
/// Postgres leaves out the gap between `pd_lower` and `pd_upper` (lakesim's workloads lay
/// pages out as heap pages are: item pointers from the front, tuples from the back).
pub fn free_space_hole(contents: &[u8]) -> (u16, u16) {
    let (mut best, mut run_start) = ((0usize, 0usize), None);
    for (i, b) in contents.iter().chain(std::iter::once(&1)).enumerate() {
        match (*b == 0, run_start) {
            (true, None) => run_start = Some(i),
            (false, Some(s)) => {
                if i - s > best.1 {
                    best = (s, i - s);
                }
                run_start = None;
            }
            _ => {}
        }
    }
    (best.0 as u16, best.1 as u16)
}

/// Applies `record`, which ends at `end_lsn`, to `page`. Records that touch no page leave it as
/// it is. Redo never moves a page backwards: `end_lsn` must be past the page's LSN. The page
/// must be sealed again before its bytes are read.
pub fn apply(record: &WalRecord, end_lsn: Lsn, page: &mut Page) {
    assert!(
        end_lsn > page.lsn(),
        "page-reconstruction: redo of a record ending at {end_lsn} onto a page already at {}",
        page.lsn()
    );
    match &record.body {
        RecordBody::PageInit { .. } => page.bytes.fill(0),
        RecordBody::PageDelta { offset, bytes, .. } => {
            let at = CONTENT_OFFSET + *offset as usize;
            assert!(
                at + bytes.len() <= PAGE_SIZE,
                "delta past the end of the page"
            );
            page.bytes[at..at + bytes.len()].copy_from_slice(bytes);
        }
        RecordBody::FullPageImage {
            hole_offset,
            hole_len,
            image,
            ..
        } => {
            let (at, len) = (*hole_offset as usize, *hole_len as usize);
            assert_eq!(image.len() + len, CONTENT_SIZE, "an image fills the page");
            let contents = &mut page.bytes[CONTENT_OFFSET..];
            contents[..at].copy_from_slice(&image[..at]);
            contents[at..at + len].fill(0);
            contents[at + len..].copy_from_slice(&image[at..]);
        }
        RecordBody::Commit | RecordBody::Checkpoint => return,
    }
    page.bytes[..8].copy_from_slice(&end_lsn.0.to_le_bytes());
    page.sealed = false;
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
        assert!(!page.verify(), "unsealed after redo");
        assert!(page.seal().verify());
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let mut page = Page::zeroed();
        apply(&delta(0, b"x"), Lsn(10), &mut page);
        let mut bytes = page.seal().as_bytes().to_vec();
        bytes[4000] ^= 0x10;
        assert!(!Page::from_bytes(&bytes).unwrap().verify());
    }

    #[test]
    fn an_image_without_its_hole_rebuilds_the_page() {
        let mut page = Page::zeroed();
        apply(&delta(0, &[7; 100]), Lsn(10), &mut page);
        apply(&delta(8000, &[9; 180]), Lsn(20), &mut page);
        let contents = page.seal().contents().to_vec();
        let (at, len) = free_space_hole(&contents);
        assert_eq!(
            (at, len),
            (100, 7900),
            "the longest zero run lies between the writes"
        );
        let mut image = contents[..at as usize].to_vec();
        image.extend_from_slice(&contents[(at + len) as usize..]);
        let fpi = WalRecord {
            xid: Xid(2),
            prev_lsn: Lsn::ZERO,
            body: RecordBody::FullPageImage {
                page: PageId(1),
                hole_offset: at,
                hole_len: len,
                image: image.into_boxed_slice(),
            },
        };
        let mut rebuilt = Page::zeroed();
        apply(&delta(50, &[1; 10]), Lsn(5), &mut rebuilt);
        apply(&fpi, Lsn(30), &mut rebuilt);
        assert_eq!(rebuilt.seal().contents(), &contents[..]);
    }

    #[test]
    #[should_panic(expected = "page-reconstruction: redo of a record")]
    fn redo_never_moves_a_page_backwards() {
        let mut page = Page::zeroed();
        apply(&delta(0, b"x"), Lsn(10), &mut page);
        apply(&delta(0, b"y"), Lsn(5), &mut page);
    }
}
