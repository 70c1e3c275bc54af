//! Redo: applying a WAL record to a page (Postgres's walredo). The compute's view of its
//! database and the pageserver's reconstruction both redo through [`WalRedo`], so they agree
//! with each other by construction; only the harness's oracle, which decodes and applies the
//! record format on its own, can tell whether they agree with the WAL.
//!
//! Guarantees: [`WalRedo::apply`] is a pure function of the page and the record; it never
//! moves a page backwards, and it leaves the page unsealed (its checksum stale) until
//! [`Page::seal`]. [`WalRedo::apply_to_new`] makes, for a page not there yet, the page `apply`
//! makes of a zero one.

use crate::bugs::{Bug, BugSet};
use crate::ids::Lsn;
use crate::invariant::Invariant;
use crate::page::{Page, CONTENT_OFFSET, CONTENT_SIZE, PAGE_SIZE};
use crate::wal::{RecordBody, WalRecord};

/// A redo process. `Default` is the correct one.
#[derive(Clone, Copy, Debug, Default)]
pub struct WalRedo {
    /// The redo-offset-off-by-one bug: a delta lands one byte past its offset (when it fits).
    offset_off_by_one: bool,
}

impl WalRedo {
    pub fn new(bugs: &BugSet) -> WalRedo {
        WalRedo {
            offset_off_by_one: bugs.has(Bug::RedoOffsetOffByOne),
        }
    }

    /// Applies `record`, which ends at `end_lsn`, to `page`. Records that touch no page leave
    /// it as it is. `end_lsn` must be past the page's LSN.
    pub fn apply(&self, record: &WalRecord, end_lsn: Lsn, page: &mut Page) {
        invariant!(
            Invariant::PageReconstruction,
            end_lsn > page.lsn(),
            "redo of a record ending at {end_lsn} onto a page already at {}",
            page.lsn()
        );
        let bytes = page.bytes_mut();
        match &record.body {
            RecordBody::PageInit { .. } => bytes.fill(0),
            RecordBody::PageDelta {
                offset, bytes: d, ..
            } => {
                let mut at = CONTENT_OFFSET + *offset as usize;
                // A record past the page is damage that reached redo (the WAL's checks or the
                // layer checksum should have stopped it), not a page to build.
                invariant!(
                    Invariant::PageReconstruction,
                    at + d.len() <= PAGE_SIZE,
                    "a delta of {} bytes at offset {offset} runs past the end of the page",
                    d.len()
                );
                if self.offset_off_by_one && at + d.len() < PAGE_SIZE {
                    at += 1;
                }
                bytes[at..at + d.len()].copy_from_slice(d);
            }
            RecordBody::FullPageImage {
                hole_offset,
                hole_len,
                image,
                ..
            } => {
                let (at, len) = (*hole_offset as usize, *hole_len as usize);
                assert_eq!(image.len() + len, CONTENT_SIZE, "an image fills the page");
                let contents = &mut bytes[CONTENT_OFFSET..];
                contents[..at].copy_from_slice(&image[..at]);
                contents[at..at + len].fill(0);
                contents[at + len..].copy_from_slice(&image[at..]);
            }
            RecordBody::Commit | RecordBody::Checkpoint => return,
        }
        stamp(bytes, end_lsn);
    }

    /// `record` applied to a page not there yet (zero, at LSN 0): the page
    /// `apply(record, end_lsn, &mut Page::zeroed())` leaves. A `PageInit`, a page's usual
    /// first record, then zeroes nothing: the new page is zero already.
    pub fn apply_to_new(&self, record: &WalRecord, end_lsn: Lsn) -> Page {
        let mut page = Page::zeroed();
        if matches!(record.body, RecordBody::PageInit { .. }) {
            invariant!(
                Invariant::PageReconstruction,
                end_lsn > Lsn::ZERO,
                "a PageInit ending at LSN 0"
            );
            stamp(page.bytes_mut(), end_lsn);
        } else {
            self.apply(record, end_lsn, &mut page);
        }
        page
    }
}

/// Sets the page LSN: the end of the last record applied.
fn stamp(bytes: &mut [u8], end_lsn: Lsn) {
    bytes[..8].copy_from_slice(&end_lsn.0.to_le_bytes());
}

/// Applies `record` with the correct redo (see [`WalRedo::apply`]).
pub fn apply(record: &WalRecord, end_lsn: Lsn, page: &mut Page) {
    WalRedo::default().apply(record, end_lsn, page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{PageId, Xid};
    use crate::invariant::catch_broken;
    use crate::page::free_space_hole;

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
        assert_eq!(page.lsn(), Lsn(100));
        assert!(!page.verify(), "unsealed after redo");
        assert!(page.seal().verify());
        assert_eq!(&page.contents()[5..8], b"abc");
    }

    #[test]
    fn the_planted_bug_shifts_a_delta_by_one_byte() {
        let mut page = Page::zeroed();
        let buggy = WalRedo::new(&BugSet::of([Bug::RedoOffsetOffByOne]));
        buggy.apply(&delta(5, b"abc"), Lsn(100), &mut page);
        assert_eq!(&page.seal().contents()[5..9], b"\0abc");
    }

    #[test]
    fn an_image_without_its_hole_rebuilds_the_page() {
        let mut page = Page::zeroed();
        apply(&delta(0, &[7; 100]), Lsn(10), &mut page);
        apply(&delta(8000, &[9; 180]), Lsn(20), &mut page);
        let contents = page.seal().contents().to_vec();
        let (at, len) = free_space_hole(&contents);
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
    fn a_new_page_is_what_redo_makes_of_a_zero_page() {
        let init = WalRecord {
            xid: Xid(1),
            prev_lsn: Lsn::ZERO,
            body: RecordBody::PageInit { page: PageId(1) },
        };
        let buggy = WalRedo::new(&BugSet::of([Bug::RedoOffsetOffByOne]));
        for redo in [WalRedo::default(), buggy] {
            for rec in [&init, &delta(5, b"abc")] {
                let mut want = Page::zeroed();
                redo.apply(rec, Lsn(40), &mut want);
                let mut got = redo.apply_to_new(rec, Lsn(40));
                assert_eq!(got.lsn(), Lsn(40));
                assert!(!got.verify(), "unsealed after redo, as apply leaves it");
                assert_eq!(got.seal(), want.seal());
            }
        }
    }

    #[test]
    fn redo_never_moves_a_page_backwards() {
        let broken = catch_broken(|| {
            let mut page = Page::zeroed();
            apply(&delta(0, b"x"), Lsn(10), &mut page);
            apply(&delta(0, b"y"), Lsn(5), &mut page);
        });
        assert_eq!(
            broken.map(|b| b.invariant),
            Some(Invariant::PageReconstruction)
        );
    }
}
