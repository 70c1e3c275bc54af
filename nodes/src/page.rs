//! The 8 KiB page: its layout, checksum and free-space hole. Redo lives in [`crate::redo`].
//!
//! Layout, as in Postgres's page header: bytes 0..8 hold the page LSN (the end LSN of the last
//! record applied), 8..12 a CRC32C checksum of everything else, and 12.. the contents.
//!
//! Guarantees: a sealed page's checksum is current (checked by [`Page::verify`]); a page
//! changed through [`Page::bytes_mut`] cannot be read until it is sealed again.

use crate::ids::Lsn;

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
        // Every zero page has the same checksum: computed once, not once per new page.
        static CHECKSUM: std::sync::OnceLock<[u8; 4]> = std::sync::OnceLock::new();
        let checksum = CHECKSUM.get_or_init(|| {
            let zero = Page {
                bytes: vec![0u8; PAGE_SIZE].into_boxed_slice(),
                sealed: false,
            };
            zero.computed_checksum().to_le_bytes()
        });
        let mut bytes = vec![0u8; PAGE_SIZE].into_boxed_slice();
        bytes[8..12].copy_from_slice(checksum);
        let page = Page {
            bytes,
            sealed: true,
        };
        debug_assert!(page.verify(), "a zero page's checksum is the one computed");
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

    /// The page's bytes for redo to change; the checksum is stale until [`Page::seal`].
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        self.sealed = false;
        &mut self.bytes
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
    let n = contents.len();
    let (mut best, mut i) = ((0usize, 0usize), 0usize);
    while i < n {
        i = next_zero(contents, i);
        let run_start = i;
        i = next_nonzero(contents, i);
        if i - run_start > best.1 {
            best = (run_start, i - run_start);
        }
    }
    (best.0 as u16, best.1 as u16)
}

/// The first zero byte at or after `i` (the end when none): eight bytes a step while a word
/// holds none (the classic has-a-zero-byte test), since every full-page image scans a page.
fn next_zero(b: &[u8], mut i: usize) -> usize {
    const LOW: u64 = 0x0101_0101_0101_0101;
    while let Some(word) = b.get(i..i + 8) {
        let v = u64::from_le_bytes(word.try_into().unwrap());
        if v.wrapping_sub(LOW) & !v & (LOW << 7) != 0 {
            break;
        }
        i += 8;
    }
    i + b[i..].iter().position(|x| *x == 0).unwrap_or(b.len() - i)
}

/// The first nonzero byte at or after `i` (the end when none), eight bytes a step.
fn next_nonzero(b: &[u8], mut i: usize) -> usize {
    while b.get(i..i + 8).is_some_and(|w| w == [0; 8]) {
        i += 8;
    }
    i + b[i..].iter().position(|x| *x != 0).unwrap_or(b.len() - i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The longest run of zeroes, the first on a tie, found a byte at a time.
    fn naive_hole(contents: &[u8]) -> (u16, u16) {
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

    proptest! {
        #[test]
        fn the_hole_is_the_first_longest_zero_run(
            runs in proptest::collection::vec((0usize..40, 0usize..40, 1u8..=255), 0..40),
        ) {
            let mut contents = Vec::new();
            for (zeroes, data, byte) in runs {
                contents.extend(std::iter::repeat_n(0, zeroes));
                contents.extend(std::iter::repeat_n(byte, data));
            }
            prop_assert_eq!(free_space_hole(&contents), naive_hole(&contents));
        }
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let mut page = Page::zeroed();
        page.bytes_mut()[100] = 7;
        let mut bytes = page.seal().as_bytes().to_vec();
        assert!(Page::from_bytes(&bytes).unwrap().verify());
        bytes[4000] ^= 0x10;
        assert!(!Page::from_bytes(&bytes).unwrap().verify());
    }

    #[test]
    fn the_hole_is_the_longest_zero_run() {
        let mut contents = vec![0u8; CONTENT_SIZE];
        contents[..100].fill(7);
        contents[8000..].fill(9);
        assert_eq!(free_space_hole(&contents), (100, 7900));
    }
}
