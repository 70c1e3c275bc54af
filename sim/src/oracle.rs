//! The oracle: replays the committed WAL from LSN 0 and knows every page at every LSN, and
//! every committed transaction's writes.
//!
//! It shares no code with the nodes: it decodes the record format and applies records to pages
//! with its own few lines, written from the formats documented in `nodes/src/wal.rs` and
//! `nodes/src/page.rs`. A bug in the node crate's decoder or redo (which the compute and the
//! pageserver share, and so agree on) cannot hide here by being shared.
//!
//! Guarantees: [`Oracle::advance`] takes the committed WAL as a whole; committed WAL is whole
//! records, so bytes that stop decoding are themselves a finding ([`Oracle::stalled`]), never
//! silently skipped.

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The record header: total_len u32 | kind u8 | xid u64 | prev_lsn u64 | crc u32.
const HEADER: usize = 25;
const PAGE: usize = 8192;
/// Page header: LSN u64, checksum u32; the contents follow.
const CONTENTS_AT: usize = 12;
const CONTENTS: usize = PAGE - CONTENTS_AT;
const KIND_PAGE_INIT: u8 = 1;
const KIND_PAGE_DELTA: u8 = 2;
const KIND_FULL_PAGE_IMAGE: u8 = 3;
const KIND_COMMIT: u8 = 4;
const KIND_CHECKPOINT: u8 = 5;

/// One write of a transaction, as the committed WAL holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Write {
    pub page: u32,
    pub offset: u16,
    pub len: u16,
    /// CRC32C of the bytes written.
    pub crc: u32,
}

/// A commit record in the committed WAL and the writes of its transaction before it.
#[derive(Clone, Debug, Default)]
pub struct Committed {
    pub xid: u64,
    pub writes: Vec<Write>,
}

/// One version of a page.
#[derive(Clone, Copy, Debug)]
struct Version {
    end: u64,
    crc: u32,
    init: bool,
}

/// A page as the oracle holds it: its bytes and the CRC32C of its contents, kept up to date
/// as records change them (see [`contents_crc_after`]).
struct OraclePage {
    bytes: Vec<u8>,
    contents_crc: u32,
}

impl OraclePage {
    fn zeroed() -> OraclePage {
        OraclePage {
            bytes: vec![0u8; PAGE],
            contents_crc: zero_contents_crc(),
        }
    }
}

#[derive(Default)]
pub struct Oracle {
    pages: BTreeMap<u32, OraclePage>,
    /// Scratch for a delta's change (old XOR new bytes): one buffer, not one per record.
    change: Vec<u8>,
    /// Every version of every page: the end LSN of the record that made it, the CRC32C of the
    /// page, and whether that record built the page from nothing (an init or a full image).
    history: BTreeMap<u32, Vec<Version>>,
    end: u64,
    last_start: u64,
    /// The first `PageInit` of a page that already existed: the compute that wrote it had lost
    /// the page from its view of the database (say, from a basebackup that lacked it).
    reinit: Option<(u32, u64)>,
    /// Where the committed WAL stopped decoding, and why.
    stall: Option<(u64, &'static str)>,
    /// Writes of transactions not committed yet, by xid.
    open: BTreeMap<u64, Vec<Write>>,
    /// Every commit record, by its LSN.
    commits: BTreeMap<u64, Committed>,
    /// Every xid a commit record named.
    committed_xids: std::collections::BTreeSet<u64>,
    /// The first commit of an xid that had committed before, and where it was.
    xid_reused: Option<(u64, u64)>,
}

/// A page never written: zero contents at LSN 0, with its checksum.
fn zero_page_crc() -> u32 {
    static CRC: OnceLock<u32> = OnceLock::new();
    *CRC.get_or_init(|| seal(&mut [0u8; PAGE]))
}

/// Writes the page checksum (CRC32C of the LSN and the contents, the checksum field left out)
/// and returns the CRC32C of the whole sealed page. One pass over the contents serves both:
/// the CRC of a prefix followed by the contents is [`then_contents`] of the two CRCs.
fn seal(page: &mut [u8]) -> u32 {
    let contents = crc32c::crc32c(&page[CONTENTS_AT..]);
    seal_with(page, contents)
}

/// [`seal`], given the CRC32C of the page's contents.
fn seal_with(page: &mut [u8], contents: u32) -> u32 {
    debug_assert_eq!(contents, crc32c::crc32c(&page[CONTENTS_AT..]));
    let sum = then_contents(crc32c::crc32c(&page[..8]), contents);
    page[8..12].copy_from_slice(&sum.to_le_bytes());
    then_contents(crc32c::crc32c(&page[..CONTENTS_AT]), contents)
}

/// CRC32C of a page's contents when all are zero.
fn zero_contents_crc() -> u32 {
    static CRC: OnceLock<u32> = OnceLock::new();
    *CRC.get_or_init(|| crc32c::crc32c(&[0u8; CONTENTS]))
}

/// The contents' CRC32C after `change` (the old bytes XOR the new) lands at `offset` within
/// them, from the CRC before: CRC32C is affine over GF(2), so two equal-length inputs' CRCs
/// differ by the raw (zero-start, no final XOR) CRC of their XOR, and the zeroes before the
/// change leave a zero register as it is, while those after it are [`shift`]. A delta then
/// costs its own bytes, not the page's 8 KiB.
fn contents_crc_after(before: u32, offset: usize, change: &[u8]) -> u32 {
    let after = CONTENTS - offset - change.len();
    let raw = !crc32c::crc32c_append(u32::MAX, change);
    before ^ shift(raw, after)
}

/// A raw CRC32C register after `n` zero bytes: the linear map `x^(8n) mod P` (zlib's
/// `crc32_combine` operator), by `n`'s bits from tables of its powers of two, each split by
/// byte of the register (four lookups a power).
fn shift(mut x: u32, n: usize) -> u32 {
    const POWERS: usize = 14; // 2^13 bytes > CONTENTS
    static TABLES: OnceLock<Vec<[[u32; 256]; 4]>> = OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        (0..POWERS)
            .map(|k| {
                let column: [u32; 32] =
                    std::array::from_fn(|i| crc32c::crc32c_combine(1 << i, 0, 1 << k));
                std::array::from_fn(|byte| {
                    std::array::from_fn(|v| {
                        (0..8)
                            .filter(|bit| v >> bit & 1 == 1)
                            .fold(0, |acc, bit| acc ^ column[8 * byte + bit])
                    })
                })
            })
            .collect()
    });
    debug_assert!(n < 1 << POWERS);
    for (k, t) in tables.iter().enumerate() {
        if n >> k & 1 == 1 {
            x = t[0][(x & 0xff) as usize]
                ^ t[1][(x >> 8 & 0xff) as usize]
                ^ t[2][(x >> 16 & 0xff) as usize]
                ^ t[3][(x >> 24) as usize];
        }
    }
    x
}

/// CRC32C of `A ++ C` from CRC32C(A) and CRC32C(C) for a page's contents C (zlib's
/// `crc32_combine`): CRC(A) run through [`CONTENTS`] zero bytes ([`shift`]), XOR CRC(C).
fn then_contents(prefix: u32, contents: u32) -> u32 {
    shift(prefix, CONTENTS) ^ contents
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// What one record does to pages, decoded from its payload.
enum Effect<'a> {
    Init(u32),
    Delta(u32, u16, &'a [u8]),
    Image(u32, u16, u16, &'a [u8]),
    Commit,
    Nothing,
}

fn decode_effect(kind: u8, p: &[u8]) -> Option<Effect<'_>> {
    Some(match kind {
        KIND_PAGE_INIT if p.len() == 4 => Effect::Init(u32_at(p, 0)),
        KIND_PAGE_DELTA if p.len() >= 8 && p.len() == 8 + usize::from(u16_at(p, 6)) => {
            let offset = u16_at(p, 4);
            if usize::from(offset) + p.len() - 8 > CONTENTS {
                return None;
            }
            Effect::Delta(u32_at(p, 0), offset, &p[8..])
        }
        KIND_FULL_PAGE_IMAGE if p.len() >= 8 => {
            let (at, len) = (u16_at(p, 4), u16_at(p, 6));
            let fits = usize::from(at) + usize::from(len) <= CONTENTS;
            if !fits || p.len() - 8 + usize::from(len) != CONTENTS {
                return None;
            }
            Effect::Image(u32_at(p, 0), at, len, &p[8..])
        }
        KIND_COMMIT if p.is_empty() => Effect::Commit,
        KIND_CHECKPOINT if p.is_empty() => Effect::Nothing,
        _ => return None,
    })
}

impl Oracle {
    /// How far the oracle has replayed.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Replays `wal` (the committed WAL from LSN 0) past where the oracle stands. Every byte
    /// of it must decode: where one does not, the oracle stops there for good.
    pub fn advance(&mut self, wal: &[u8]) {
        while self.stall.is_none() && (self.end as usize) < wal.len() {
            let at = self.end as usize;
            if let Err(why) = self.replay_one(&wal[at..]) {
                self.stall = Some((self.end, why));
            }
        }
    }

    fn replay_one(&mut self, buf: &[u8]) -> Result<(), &'static str> {
        if buf.len() < HEADER {
            return Err("a record header is cut short");
        }
        let total = u32_at(buf, 0) as usize;
        if total < HEADER || total > buf.len() {
            return Err("a record's length runs past the committed WAL");
        }
        let rec = &buf[..total];
        let crc = crc32c::crc32c_append(crc32c::crc32c(&rec[..HEADER - 4]), &rec[HEADER..]);
        if crc != u32_at(rec, HEADER - 4) {
            return Err("a record fails its CRC");
        }
        if u64_at(rec, 13) != self.last_start {
            return Err("a record does not name the one before it");
        }
        let xid = u64_at(rec, 5);
        let effect =
            decode_effect(rec[4], &rec[HEADER..]).ok_or("a record's payload is malformed")?;
        let (start, end) = (self.end, self.end + total as u64);
        self.apply(xid, start, end, effect);
        (self.last_start, self.end) = (start, end);
        Ok(())
    }

    fn apply(&mut self, xid: u64, start: u64, end: u64, effect: Effect<'_>) {
        let page_id = match effect {
            Effect::Init(p) | Effect::Delta(p, ..) | Effect::Image(p, ..) => p,
            Effect::Commit => {
                let writes = self.open.remove(&xid).unwrap_or_default();
                self.commits.insert(start, Committed { xid, writes });
                if !self.committed_xids.insert(xid) {
                    self.xid_reused = self.xid_reused.or(Some((xid, start)));
                }
                return;
            }
            Effect::Nothing => return,
        };
        let exists = self.pages.contains_key(&page_id);
        let init = matches!(effect, Effect::Init(_) | Effect::Image(..));
        let state = self.pages.entry(page_id).or_insert_with(OraclePage::zeroed);
        let page = &mut state.bytes;
        match effect {
            Effect::Init(_) => {
                if exists {
                    self.reinit = self.reinit.or(Some((page_id, start)));
                }
                page.fill(0);
                state.contents_crc = zero_contents_crc();
            }
            Effect::Delta(_, offset, bytes) => {
                let at = CONTENTS_AT + usize::from(offset);
                let old = &page[at..at + bytes.len()];
                self.change.clear();
                self.change
                    .extend(old.iter().zip(bytes).map(|(o, n)| o ^ n));
                state.contents_crc =
                    contents_crc_after(state.contents_crc, usize::from(offset), &self.change);
                page[at..at + bytes.len()].copy_from_slice(bytes);
                if xid != 0 {
                    self.open.entry(xid).or_default().push(Write {
                        page: page_id,
                        offset,
                        len: bytes.len() as u16,
                        crc: crc32c::crc32c(bytes),
                    });
                }
            }
            Effect::Image(_, hole_at, hole_len, image) => {
                let (at, len) = (usize::from(hole_at), usize::from(hole_len));
                let contents = &mut page[CONTENTS_AT..];
                contents[..at].copy_from_slice(&image[..at]);
                contents[at..at + len].fill(0);
                contents[at + len..].copy_from_slice(&image[at..]);
                state.contents_crc = crc32c::crc32c(contents);
            }
            Effect::Commit | Effect::Nothing => unreachable!("no page"),
        }
        page[..8].copy_from_slice(&end.to_le_bytes());
        let crc = seal_with(page, state.contents_crc);
        let version = Version { end, crc, init };
        self.history.entry(page_id).or_default().push(version);
    }

    /// An xid the committed WAL commits twice, and where the second commit was.
    pub fn xid_reused(&self) -> Option<(u64, u64)> {
        self.xid_reused
    }

    /// A page the committed WAL initialised twice, and where the second time was.
    pub fn reinitialised(&self) -> Option<(u32, u64)> {
        self.reinit
    }

    /// Where the committed WAL stopped decoding, and why.
    pub fn stalled(&self) -> Option<(u64, &'static str)> {
        self.stall
    }

    /// The commit record at `lsn`, with its transaction's writes.
    pub fn commit_at(&self, lsn: u64) -> Option<&Committed> {
        self.commits.get(&lsn)
    }

    fn versions(&self, page: u32) -> &[Version] {
        self.history.get(&page).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The LSNs at which `page` changed, up to `lsn` (for failure reports).
    pub fn changes(&self, page: u32, lsn: u64) -> Vec<u64> {
        let versions = self.versions(page);
        versions
            .iter()
            .map(|v| v.end)
            .filter(|l| *l <= lsn)
            .collect()
    }

    /// The versions of `page` made by records ending in `(after, upto]`: `(first, end)` indexes.
    fn range(&self, page: u32, after: u64, upto: u64) -> (usize, usize) {
        let v = self.versions(page);
        (
            v.partition_point(|x| x.end <= after),
            v.partition_point(|x| x.end <= upto),
        )
    }

    /// Records of `page` ending in `(after, upto]`.
    pub fn records_between(&self, page: u32, after: u64, upto: u64) -> usize {
        let (a, b) = self.range(page, after, upto);
        b - a
    }

    /// The records a reconstruction of `page` at `lsn` applies on top of an image at `base`
    /// (none: `None`): those after the image, from the last that builds the page from nothing.
    pub fn chain_len(&self, page: u32, base: Option<u64>, lsn: u64) -> usize {
        let (a, b) = self.range(page, base.unwrap_or(0), lsn);
        let v = &self.versions(page)[a..b];
        match v.iter().rposition(|x| x.init) {
            Some(i) => v.len() - i,
            None => v.len(),
        }
    }

    /// CRC32C of `page` as of `lsn`; `None` when `lsn` is past what the oracle has replayed.
    pub fn page_crc_at(&self, page: u32, lsn: u64) -> Option<u32> {
        if lsn > self.end {
            return None;
        }
        let versions = self.versions(page);
        let i = versions.partition_point(|v| v.end <= lsn);
        Some(match i {
            0 => zero_page_crc(),
            _ => versions[i - 1].crc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakesim_nodes::page::Page;
    use lakesim_nodes::redo::apply;
    use lakesim_nodes::wal::{RecordBody, WalRecord};
    use lakesim_nodes::{Lsn, PageId, Xid};

    /// Encodes records with the node crate (the format under test) and returns the WAL and
    /// each record's end LSN.
    fn wal_of(bodies: Vec<(u64, RecordBody)>) -> (Vec<u8>, Vec<u64>) {
        let (mut wal, mut prev, mut ends) = (Vec::new(), Lsn::ZERO, Vec::new());
        for (xid, body) in bodies {
            let rec = WalRecord {
                xid: Xid(xid),
                prev_lsn: prev,
                body,
            };
            prev = Lsn(wal.len() as u64);
            rec.encode_into(&mut wal);
            ends.push(wal.len() as u64);
        }
        (wal, ends)
    }

    fn delta(page: u32, offset: u16, bytes: &[u8]) -> RecordBody {
        RecordBody::PageDelta {
            page: PageId(page),
            offset,
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn agrees_with_the_node_redo_on_every_version() {
        let (wal, ends) = wal_of(vec![
            (1, RecordBody::PageInit { page: PageId(1) }),
            (1, delta(1, 0, &[5, 6, 7])),
            (1, RecordBody::Commit),
            (2, delta(1, 8170, &[9; 10])),
        ]);
        let mut oracle = Oracle::default();
        oracle.advance(&wal[..ends[1] as usize]);
        assert_eq!(
            oracle.page_crc_at(1, ends[3]),
            None,
            "not replayed that far"
        );
        oracle.advance(&wal);
        assert_eq!(oracle.stalled(), None);
        let mut page = Page::zeroed();
        let decoded = lakesim_nodes::wal::decode_stream(&wal, Lsn::ZERO, Some(Lsn::ZERO));
        assert_eq!(
            oracle.page_crc_at(1, 0),
            Some(crc32c::crc32c(page.as_bytes()))
        );
        for ((lsn, rec), end) in decoded.records.iter().zip(&ends) {
            apply(rec, Lsn(*end), &mut page);
            let want = crc32c::crc32c(page.seal().as_bytes());
            assert_eq!(
                oracle.page_crc_at(1, *end),
                Some(want),
                "after the record at {lsn}"
            );
        }
        assert_eq!(oracle.changes(1, ends[3]), vec![ends[0], ends[1], ends[3]]);
        let commit = oracle.commit_at(ends[1]).expect("a commit at its LSN");
        assert_eq!(commit.xid, 1);
        assert_eq!(commit.writes.len(), 1);
        assert_eq!(commit.writes[0].crc, crc32c::crc32c(&[5, 6, 7]));
    }

    #[test]
    fn one_pass_seal_equals_the_two_pass_one() {
        let mut page = vec![0u8; PAGE];
        for (i, b) in page.iter_mut().enumerate() {
            *b = (i * 7 + i / 300) as u8;
        }
        let mut two_pass = page.clone();
        let sum = crc32c::crc32c_append(crc32c::crc32c(&two_pass[..8]), &two_pass[CONTENTS_AT..]);
        two_pass[8..12].copy_from_slice(&sum.to_le_bytes());
        let crc = seal(&mut page);
        assert_eq!(page, two_pass, "the same checksum field");
        assert_eq!(crc, crc32c::crc32c(&two_pass), "the same page CRC");
        assert_eq!(zero_page_crc(), {
            let mut zero = vec![0u8; PAGE];
            seal(&mut zero);
            crc32c::crc32c(&zero)
        });
    }

    proptest::proptest! {
        #[test]
        fn a_delta_moves_the_contents_crc_as_a_whole_pass_would(
            seed in proptest::prelude::any::<u64>(),
            offset in 0usize..CONTENTS,
            len in 1usize..600,
        ) {
            let len = len.min(CONTENTS - offset);
            let mut x = seed | 1;
            let mut next = move || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x as u8 };
            let mut contents: Vec<u8> = (0..CONTENTS).map(|_| next()).collect();
            let before = crc32c::crc32c(&contents);
            let new: Vec<u8> = (0..len).map(|_| next()).collect();
            let change: Vec<u8> =
                contents[offset..offset + len].iter().zip(&new).map(|(o, n)| o ^ n).collect();
            contents[offset..offset + len].copy_from_slice(&new);
            proptest::prop_assert_eq!(
                contents_crc_after(before, offset, &change),
                crc32c::crc32c(&contents)
            );
        }

        #[test]
        fn shift_is_zlibs_combine_operator(x in proptest::prelude::any::<u32>(), n in 0usize..CONTENTS) {
            proptest::prop_assert_eq!(shift(x, n), crc32c::crc32c_combine(x, 0, n));
        }
    }

    #[test]
    fn committed_wal_that_does_not_decode_stalls_it() {
        let (mut wal, ends) = wal_of(vec![(1, delta(2, 0, &[1])), (1, delta(2, 1, &[2]))]);
        wal[ends[0] as usize + 30] ^= 1;
        let mut oracle = Oracle::default();
        oracle.advance(&wal);
        assert_eq!(oracle.stalled(), Some((ends[0], "a record fails its CRC")));
        assert_eq!(oracle.end(), ends[0]);
    }

    #[test]
    fn notices_a_page_initialised_twice() {
        let (wal, ends) = wal_of(vec![
            (1, RecordBody::PageInit { page: PageId(3) }),
            (1, RecordBody::PageInit { page: PageId(4) }),
            (1, RecordBody::PageInit { page: PageId(3) }),
        ]);
        let mut oracle = Oracle::default();
        oracle.advance(&wal[..ends[1] as usize]);
        assert_eq!(oracle.reinitialised(), None);
        oracle.advance(&wal);
        assert_eq!(oracle.reinitialised(), Some((3, ends[1])));
    }
}
