//! WAL records and their byte format.
//!
//! The WAL is a byte stream addressed by [`Lsn`]. Each record is a fixed header followed by a
//! payload:
//!
//! ```text
//! total_len u32 | kind u8 | xid u64 | prev_lsn u64 | crc u32 | payload ...
//! ```
//!
//! A full-page image's payload is `page u32 | hole_offset u16 | hole_len u16 | contents`: the
//! page's contents less its free-space hole, which redo fills with zeroes, as Postgres's FPIs
//! leave out the gap between `pd_lower` and `pd_upper`.
//!
//! `crc` is CRC32C over the header (with the crc field left out) and the payload. `prev_lsn` is the
//! start LSN of the previous record, so a stale record left over from an older, truncated log
//! cannot be mistaken for the continuation of the current one.
//!
//! Guarantees: [`decode_stream`] returns only records whose length, kind, CRC and `prev_lsn` all
//! check, and stops at the first that does not, reporting the end LSN of the last valid record.
//! A zero length marks a clean end (a pre-allocated, never-written tail).

use crate::ids::{Lsn, PageId, Xid};
use crate::page::CONTENT_SIZE;
use serde::{Deserialize, Serialize};

/// Bytes of the record header.
pub const HEADER_LEN: usize = 4 + 1 + 8 + 8 + 4;
/// The largest record: a full-page image with no hole.
pub const MAX_RECORD_LEN: usize = HEADER_LEN + FPI_HEADER + CONTENT_SIZE;
/// Bytes of a full-page image's payload before the image: page, hole offset, hole length.
const FPI_HEADER: usize = 4 + 2 + 2;

const KIND_PAGE_INIT: u8 = 1;
const KIND_PAGE_DELTA: u8 = 2;
const KIND_FULL_PAGE_IMAGE: u8 = 3;
const KIND_COMMIT: u8 = 4;
const KIND_CHECKPOINT: u8 = 5;

/// What a record does.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum RecordBody {
    /// Start the page over as all zeroes.
    PageInit { page: PageId },
    /// Write `bytes` at `offset` of the page's contents.
    PageDelta {
        page: PageId,
        offset: u16,
        bytes: Vec<u8>,
    },
    /// The page's whole contents (Postgres's full-page write, `full_page_writes = on`), less
    /// its free-space hole: `image` is the contents without the `hole_len` zero bytes at
    /// `hole_offset`, as Postgres leaves out the gap between `pd_lower` and `pd_upper`.
    FullPageImage {
        page: PageId,
        hole_offset: u16,
        hole_len: u16,
        image: Box<[u8]>,
    },
    /// The transaction `xid` commits.
    Commit,
    /// A checkpoint: the next touch of each page emits a full-page image when
    /// `full_page_writes` is on.
    Checkpoint,
}

/// One WAL record.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct WalRecord {
    pub xid: Xid,
    /// Start LSN of the record before this one (`Lsn::ZERO` for the first).
    pub prev_lsn: Lsn,
    pub body: RecordBody,
}

/// Metric buckets for WAL volume.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub enum RecordKind {
    PageInit,
    PageDelta,
    FullPageImage,
    Commit,
    Checkpoint,
}

impl RecordKind {
    pub const ALL: [RecordKind; 5] = [
        RecordKind::PageInit,
        RecordKind::PageDelta,
        RecordKind::FullPageImage,
        RecordKind::Commit,
        RecordKind::Checkpoint,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RecordKind::PageInit => "page_init",
            RecordKind::PageDelta => "page_delta",
            RecordKind::FullPageImage => "full_page_image",
            RecordKind::Commit => "commit",
            RecordKind::Checkpoint => "checkpoint",
        }
    }
}

impl RecordBody {
    pub fn kind(&self) -> RecordKind {
        match self {
            RecordBody::PageInit { .. } => RecordKind::PageInit,
            RecordBody::PageDelta { .. } => RecordKind::PageDelta,
            RecordBody::FullPageImage { .. } => RecordKind::FullPageImage,
            RecordBody::Commit => RecordKind::Commit,
            RecordBody::Checkpoint => RecordKind::Checkpoint,
        }
    }

    /// The page the record changes, if any.
    pub fn page(&self) -> Option<PageId> {
        match self {
            RecordBody::PageInit { page }
            | RecordBody::PageDelta { page, .. }
            | RecordBody::FullPageImage { page, .. } => Some(*page),
            RecordBody::Commit | RecordBody::Checkpoint => None,
        }
    }

    fn payload_len(&self) -> usize {
        match self {
            RecordBody::PageInit { .. } => 4,
            RecordBody::PageDelta { bytes, .. } => 4 + 2 + 2 + bytes.len(),
            RecordBody::FullPageImage { image, .. } => FPI_HEADER + image.len(),
            RecordBody::Commit | RecordBody::Checkpoint => 0,
        }
    }
}

impl WalRecord {
    /// Encoded size in bytes: the distance from this record's LSN to the next.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.body.payload_len()
    }

    /// Appends the encoded record to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let total = self.encoded_len();
        assert!(
            total <= MAX_RECORD_LEN,
            "record of {total} bytes is too large"
        );
        out.extend_from_slice(&(total as u32).to_le_bytes());
        out.push(kind_byte(self.body.kind()));
        out.extend_from_slice(&self.xid.0.to_le_bytes());
        out.extend_from_slice(&self.prev_lsn.0.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        encode_payload(&self.body, out);
        let crc = record_crc(&out[start..start + total]);
        out[start + HEADER_LEN - 4..start + HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(out.len() - start, total);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }
}

fn kind_byte(kind: RecordKind) -> u8 {
    match kind {
        RecordKind::PageInit => KIND_PAGE_INIT,
        RecordKind::PageDelta => KIND_PAGE_DELTA,
        RecordKind::FullPageImage => KIND_FULL_PAGE_IMAGE,
        RecordKind::Commit => KIND_COMMIT,
        RecordKind::Checkpoint => KIND_CHECKPOINT,
    }
}

fn encode_payload(body: &RecordBody, out: &mut Vec<u8>) {
    match body {
        RecordBody::PageInit { page } => out.extend_from_slice(&page.0.to_le_bytes()),
        RecordBody::PageDelta {
            page,
            offset,
            bytes,
        } => {
            assert!(bytes.len() <= u16::MAX as usize);
            out.extend_from_slice(&page.0.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        RecordBody::FullPageImage {
            page,
            hole_offset,
            hole_len,
            image,
        } => {
            assert_eq!(image.len() + *hole_len as usize, CONTENT_SIZE);
            out.extend_from_slice(&page.0.to_le_bytes());
            out.extend_from_slice(&hole_offset.to_le_bytes());
            out.extend_from_slice(&hole_len.to_le_bytes());
            out.extend_from_slice(image);
        }
        RecordBody::Commit | RecordBody::Checkpoint => {}
    }
}

/// CRC32C over a whole encoded record, skipping its crc field.
fn record_crc(record: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&record[..HEADER_LEN - 4]);
    crc32c::crc32c_append(crc, &record[HEADER_LEN..])
}

/// Why decoding stopped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Tail {
    /// The bytes ran out exactly at a record boundary, or a zero length marks the end.
    Clean,
    /// The last record is cut short: a partial write or a torn tail.
    Partial,
    /// A record fails its checks (length, kind, CRC or prev_lsn).
    Corrupt,
}

/// Outcome of one decode step.
#[derive(Debug)]
pub enum Decoded {
    Record(WalRecord, usize),
    End(Tail),
}

/// Decodes the record at the start of `buf`. `expect_prev`, when given, is the start LSN the
/// record's `prev_lsn` must name.
pub fn decode_one(buf: &[u8], expect_prev: Option<Lsn>) -> Decoded {
    decode_one_with(buf, expect_prev, true)
}

/// [`decode_one`], checking the record's CRC only when `verify_crc`.
fn decode_one_with(buf: &[u8], expect_prev: Option<Lsn>, verify_crc: bool) -> Decoded {
    match frame(buf, expect_prev, verify_crc) {
        Ok(f) => Decoded::Record(f.to_record(), f.len),
        Err(tail) => Decoded::End(tail),
    }
}

/// A record at the start of a buffer that passed every check, borrowing its bytes.
struct Frame<'a> {
    xid: Xid,
    prev_lsn: Lsn,
    payload: Payload<'a>,
    len: usize,
}

/// A well-formed payload, borrowed: what [`RecordBody`] holds, before any copy.
enum Payload<'a> {
    PageInit(PageId),
    PageDelta(PageId, u16, &'a [u8]),
    FullPageImage(PageId, u16, u16, &'a [u8]),
    Commit,
    Checkpoint,
}

impl Frame<'_> {
    /// The record, its payload copied out of the buffer.
    fn to_record(&self) -> WalRecord {
        WalRecord {
            xid: self.xid,
            prev_lsn: self.prev_lsn,
            body: self.payload.to_body(),
        }
    }
}

impl Payload<'_> {
    fn to_body(&self) -> RecordBody {
        match *self {
            Payload::PageInit(page) => RecordBody::PageInit { page },
            Payload::PageDelta(page, offset, bytes) => RecordBody::PageDelta {
                page,
                offset,
                bytes: bytes.to_vec(),
            },
            Payload::FullPageImage(page, hole_offset, hole_len, image) => {
                RecordBody::FullPageImage {
                    page,
                    hole_offset,
                    hole_len,
                    image: image.into(),
                }
            }
            Payload::Commit => RecordBody::Commit,
            Payload::Checkpoint => RecordBody::Checkpoint,
        }
    }
}

/// Checks the record at the start of `buf` (length, CRC when `verify_crc`, `prev_lsn`, kind
/// and payload shape) without copying it; why it is not a record otherwise.
fn frame(buf: &[u8], expect_prev: Option<Lsn>, verify_crc: bool) -> Result<Frame<'_>, Tail> {
    if buf.len() < 4 {
        return Err(if buf.iter().all(|b| *b == 0) {
            Tail::Clean
        } else {
            Tail::Partial
        });
    }
    let total = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
    if total == 0 {
        return Err(Tail::Clean);
    }
    if !(HEADER_LEN..=MAX_RECORD_LEN).contains(&total) {
        return Err(Tail::Corrupt);
    }
    if buf.len() < total {
        return Err(Tail::Partial);
    }
    let rec = &buf[..total];
    let crc = u32::from_le_bytes(rec[HEADER_LEN - 4..HEADER_LEN].try_into().unwrap());
    if verify_crc && crc != record_crc(rec) {
        return Err(Tail::Corrupt);
    }
    let xid = Xid(u64::from_le_bytes(rec[5..13].try_into().unwrap()));
    let prev_lsn = Lsn(u64::from_le_bytes(rec[13..21].try_into().unwrap()));
    if expect_prev.is_some_and(|p| p != prev_lsn) {
        return Err(Tail::Corrupt);
    }
    let payload = decode_payload(rec[4], &rec[HEADER_LEN..]).ok_or(Tail::Corrupt)?;
    Ok(Frame {
        xid,
        prev_lsn,
        payload,
        len: total,
    })
}

fn decode_payload(kind: u8, p: &[u8]) -> Option<Payload<'_>> {
    let page = || {
        p.get(..4)
            .map(|b| PageId(u32::from_le_bytes(b.try_into().unwrap())))
    };
    match kind {
        KIND_PAGE_INIT if p.len() == 4 => Some(Payload::PageInit(page()?)),
        KIND_PAGE_DELTA if p.len() >= 8 => {
            let offset = u16::from_le_bytes(p[4..6].try_into().unwrap());
            let len = u16::from_le_bytes(p[6..8].try_into().unwrap()) as usize;
            (p.len() == 8 + len).then(|| Payload::PageDelta(page().unwrap(), offset, &p[8..]))
        }
        KIND_FULL_PAGE_IMAGE if p.len() >= FPI_HEADER => {
            let hole_offset = u16::from_le_bytes(p[4..6].try_into().unwrap());
            let hole_len = u16::from_le_bytes(p[6..8].try_into().unwrap());
            let fits = hole_offset as usize + hole_len as usize <= CONTENT_SIZE;
            (fits && p.len() - FPI_HEADER + hole_len as usize == CONTENT_SIZE).then(|| {
                Payload::FullPageImage(page().unwrap(), hole_offset, hole_len, &p[FPI_HEADER..])
            })
        }
        KIND_COMMIT if p.is_empty() => Some(Payload::Commit),
        KIND_CHECKPOINT if p.is_empty() => Some(Payload::Checkpoint),
        _ => None,
    }
}

/// Everything [`decode_stream`] found.
#[derive(Debug)]
pub struct DecodedStream {
    /// Each valid record with its start LSN, in order.
    pub records: Vec<(Lsn, WalRecord)>,
    /// End LSN of the last valid record (the start LSN when there is none).
    pub end_lsn: Lsn,
    /// Start LSN of the last valid record, for chaining the next decode.
    pub last_lsn: Option<Lsn>,
    pub tail: Tail,
}

/// Decodes the WAL bytes `buf`, which begin at `start`. `prev` is the start LSN of the record
/// before `start`, when known, so that the chain is checked from the first record on.
pub fn decode_stream(buf: &[u8], start: Lsn, prev: Option<Lsn>) -> DecodedStream {
    decode_stream_with(buf, start, prev, true)
}

/// [`decode_stream`] for bytes a container's checksum already vouches for (a layer file):
/// lengths, kinds and the `prev_lsn` chain are checked, the records' own CRCs are not.
pub fn decode_vouched(buf: &[u8], start: Lsn, prev: Option<Lsn>) -> DecodedStream {
    decode_stream_with(buf, start, prev, false)
}

fn decode_stream_with(
    buf: &[u8],
    start: Lsn,
    prev: Option<Lsn>,
    verify_crc: bool,
) -> DecodedStream {
    let mut records = Vec::new();
    let ends = visit_stream(buf, start, prev, verify_crc, |lsn, rec| {
        records.push((lsn, rec))
    });
    DecodedStream {
        records,
        end_lsn: ends.end_lsn,
        last_lsn: ends.last_lsn,
        tail: ends.tail,
    }
}

/// [`decode_stream`] record by record: hands each valid record and its start LSN to `visit`
/// as it is decoded, so that a reader that only applies them (a replay) holds one at a time.
pub fn decode_stream_each(
    buf: &[u8],
    start: Lsn,
    prev: Option<Lsn>,
    visit: impl FnMut(Lsn, WalRecord),
) -> Scanned {
    visit_stream(buf, start, prev, true, visit)
}

fn visit_stream(
    buf: &[u8],
    start: Lsn,
    prev: Option<Lsn>,
    verify_crc: bool,
    mut visit: impl FnMut(Lsn, WalRecord),
) -> Scanned {
    walk_frames(buf, start, prev, verify_crc, |lsn, f| {
        visit(lsn, f.to_record())
    })
}

/// The one loop over a stream's records: checks each in turn with [`frame`], hands it (still
/// borrowed) and its start LSN to `visit`, and says where the valid records end.
fn walk_frames(
    buf: &[u8],
    start: Lsn,
    prev: Option<Lsn>,
    verify_crc: bool,
    mut visit: impl FnMut(Lsn, &Frame<'_>),
) -> Scanned {
    let (mut pos, mut last) = (0usize, prev);
    let tail = loop {
        match frame(&buf[pos..], last, verify_crc) {
            Ok(f) => {
                let lsn = start.advance(pos as u64);
                visit(lsn, &f);
                last = Some(lsn);
                pos += f.len;
            }
            Err(tail) => break tail,
        }
    };
    debug_assert!(pos <= buf.len(), "a walk stays inside its buffer");
    Scanned {
        end_lsn: start.advance(pos as u64),
        last_lsn: last,
        tail,
    }
}

/// Where a stream of records ends, without decoding them: what [`decode_stream`] reports
/// but its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scanned {
    /// End LSN of the last valid record (the start LSN when there is none).
    pub end_lsn: Lsn,
    /// Start LSN of the last valid record, or `prev` when there is none.
    pub last_lsn: Option<Lsn>,
    pub tail: Tail,
}

/// How many leading bytes two WAL buffers share. Compares 64-byte blocks with `memcmp` and
/// only the block that differs byte by byte: copies of the WAL are compared whole after each
/// restart and on every report the checker hears, so a byte-at-a-time loop showed up in
/// profiles.
pub fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 64;
    let n = a.len().min(b.len());
    let mut at = 0;
    while at + BLOCK <= n && a[at..at + BLOCK] == b[at..at + BLOCK] {
        at += BLOCK;
    }
    at + a[at..n]
        .iter()
        .zip(&b[at..n])
        .take_while(|(x, y)| x == y)
        .count()
}

/// [`decode_stream`]'s checks (every CRC included) and its answer about where the valid
/// records end, with no record copied: for a safekeeper that verifies WAL before it serves
/// or removes it, on the path every append and read takes.
pub fn scan_stream(buf: &[u8], start: Lsn, prev: Option<Lsn>) -> Scanned {
    walk_frames(buf, start, prev, true, |_, _| {})
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn common_prefix_is_the_first_difference(
            a in proptest::collection::vec(0u8..3, 0..300),
            b in proptest::collection::vec(0u8..3, 0..300),
            shared in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let (a, b) = ([&shared[..], &a].concat(), [&shared[..], &b].concat());
            let naive = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            prop_assert_eq!(common_prefix(&a, &b), naive);
        }
    }

    fn body() -> impl Strategy<Value = RecordBody> {
        prop_oneof![
            any::<u32>().prop_map(|p| RecordBody::PageInit { page: PageId(p) }),
            (
                any::<u32>(),
                any::<u16>(),
                proptest::collection::vec(any::<u8>(), 0..200)
            )
                .prop_map(|(p, offset, bytes)| RecordBody::PageDelta {
                    page: PageId(p),
                    offset,
                    bytes
                }),
            (
                any::<u32>(),
                any::<u8>(),
                0..CONTENT_SIZE as u16,
                0..CONTENT_SIZE as u16
            )
                .prop_map(|(p, fill, a, b)| {
                    let (hole_offset, end) = (a.min(b), a.max(b));
                    let hole_len = end - hole_offset;
                    RecordBody::FullPageImage {
                        page: PageId(p),
                        hole_offset,
                        hole_len,
                        image: vec![fill; CONTENT_SIZE - hole_len as usize].into_boxed_slice(),
                    }
                }),
            Just(RecordBody::Commit),
            Just(RecordBody::Checkpoint),
        ]
    }

    fn record() -> impl Strategy<Value = WalRecord> {
        (any::<u64>(), any::<u64>(), body()).prop_map(|(xid, prev, body)| WalRecord {
            xid: Xid(xid),
            prev_lsn: Lsn(prev),
            body,
        })
    }

    /// A chained stream: each record's prev_lsn names the one before.
    fn stream(bodies: Vec<RecordBody>) -> (Vec<u8>, Vec<(Lsn, WalRecord)>) {
        let (mut out, mut recs, mut prev) = (Vec::new(), Vec::new(), Lsn::ZERO);
        for (i, body) in bodies.into_iter().enumerate() {
            let rec = WalRecord {
                xid: Xid(i as u64),
                prev_lsn: prev,
                body,
            };
            prev = Lsn(out.len() as u64);
            recs.push((prev, rec.clone()));
            rec.encode_into(&mut out);
        }
        (out, recs)
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(rec in record()) {
            let bytes = rec.encode();
            prop_assert_eq!(bytes.len(), rec.encoded_len());
            match decode_one(&bytes, None) {
                Decoded::Record(back, len) => {
                    prop_assert_eq!(back, rec);
                    prop_assert_eq!(len, bytes.len());
                }
                Decoded::End(tail) => prop_assert!(false, "decoded as end {:?}", tail),
            }
        }

        /// A payload of any kind and any length is rejected or decoded, never a panic: what
        /// reaches the decoder is bytes off a disk or a network.
        #[test]
        fn any_payload_decodes_or_is_rejected(kind in 0u8..16, p in proptest::collection::vec(any::<u8>(), 0..24)) {
            let _ = decode_payload(kind, &p);
            // A page delta needs its 8-byte header.
            prop_assert!(decode_payload(KIND_PAGE_DELTA, &p[..p.len().min(7)]).is_none());
        }

        #[test]
        fn any_single_bit_flip_is_detected(rec in record(), bit in any::<prop::sample::Index>()) {
            let mut bytes = rec.encode();
            let bit = bit.index(bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            match decode_one(&bytes, None) {
                Decoded::Record(back, _) => prop_assert!(false, "flipped bit {} accepted: {:?}", bit, back),
                Decoded::End(_) => {}
            }
        }

        #[test]
        fn a_cut_stream_yields_exactly_the_whole_records(
            bodies in proptest::collection::vec(body(), 0..12),
            cut in any::<prop::sample::Index>(),
        ) {
            let (bytes, recs) = stream(bodies);
            let cut = cut.index(bytes.len() + 1);
            let decoded = decode_stream(&bytes[..cut], Lsn::ZERO, Some(Lsn::ZERO));
            let whole: Vec<_> = recs
                .iter()
                .filter(|(lsn, r)| lsn.0 as usize + r.encoded_len() <= cut)
                .cloned()
                .collect();
            let end = whole.last().map_or(0, |(l, r)| l.0 as usize + r.encoded_len());
            prop_assert_eq!(decoded.end_lsn, Lsn(end as u64));
            prop_assert_eq!(decoded.records, whole);
            prop_assert_eq!(decoded.tail == Tail::Clean, cut == end);
        }

        /// The scan that serves and removes WAL agrees with the full decode on every stream,
        /// cut or damaged anywhere.
        #[test]
        fn a_scan_ends_where_the_decode_ends(
            bodies in proptest::collection::vec(body(), 0..12),
            cut in any::<prop::sample::Index>(),
            flip in any::<Option<prop::sample::Index>>(),
        ) {
            let (mut bytes, _) = stream(bodies);
            if let (Some(flip), false) = (flip, bytes.is_empty()) {
                let bit = flip.index(bytes.len() * 8);
                bytes[bit / 8] ^= 1 << (bit % 8);
            }
            let cut = cut.index(bytes.len() + 1);
            let start = Lsn(4096);
            for prev in [None, Some(Lsn::ZERO), Some(Lsn(7))] {
                let decoded = decode_stream(&bytes[..cut], start, prev);
                let scanned = scan_stream(&bytes[..cut], start, prev);
                prop_assert_eq!(scanned.end_lsn, decoded.end_lsn);
                prop_assert_eq!(scanned.last_lsn, decoded.last_lsn);
                prop_assert_eq!(scanned.tail, decoded.tail);
            }
        }
    }

    #[test]
    fn stale_record_from_another_chain_is_corrupt() {
        let a = WalRecord {
            xid: Xid(1),
            prev_lsn: Lsn(0),
            body: RecordBody::Commit,
        };
        let b = WalRecord {
            xid: Xid(2),
            prev_lsn: Lsn(999),
            body: RecordBody::Commit,
        };
        let mut bytes = a.encode();
        b.encode_into(&mut bytes);
        let d = decode_stream(&bytes, Lsn::ZERO, Some(Lsn::ZERO));
        assert_eq!(d.records.len(), 1);
        assert_eq!(d.tail, Tail::Corrupt);
    }
}
