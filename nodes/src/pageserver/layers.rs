//! Layer files and the layer map.
//!
//! - A **delta layer** holds the WAL records of `[start_lsn, end_lsn)`: `magic | start | end |
//!   prev_record_lsn | len | crc32c(body) | body`, the body being the WAL bytes themselves
//!   (each record also carries its own CRC).
//! - An **image layer** holds one page as of `lsn`: `magic | page | lsn | crc32c(page) | page`.
//!
//! Guarantees: a layer is parsed only if its checksum holds (unless the `skip-layer-checksum`
//! bug is planted), so a torn or rotted file is never used as data; the layer map answers
//! "newest image at or below L" and "deltas in (image, L]" for any page.
//!
//! A reconstruction starts from the newest image layer at or below its LSN, or from a newer
//! record that builds the page from nothing (a `PageInit`, or a full-page image in the WAL, as
//! Neon's `will_init` records do), and reports what it cost ([`ReadCost`]): records applied,
//! layer files visited (every delta layer between its start and its LSN, as Neon's L0 layers
//! each cover every key) and bytes read.

use crate::bugs::{Bug, BugSet};
use crate::ids::{Lsn, PageId};
use crate::invariant::Invariant;
use crate::page::{Page, PAGE_SIZE};
use crate::redo::WalRedo;
use crate::wal::{decode_vouched, RecordBody, WalRecord};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const DELTA_MAGIC: u32 = 0xde17_a001;
const IMAGE_MAGIC: u32 = 0x1a6e_0001;
const DELTA_HEADER: usize = 4 + 8 + 8 + 8 + 4 + 4;
/// Bytes of an image layer file before the page.
pub const IMAGE_HEADER: usize = 4 + 4 + 8 + 4;

pub fn delta_name(start: Lsn, end: Lsn) -> String {
    format!("layers/delta_{:016x}_{:016x}", start.0, end.0)
}

pub fn image_name(page: PageId, lsn: Lsn) -> String {
    format!("layers/image_{:08x}_{:016x}", page.0, lsn.0)
}

/// What a layer file's name says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LayerName {
    Delta { start: Lsn, end: Lsn },
    Image { page: PageId, lsn: Lsn },
}

impl LayerName {
    pub fn parse(name: &str) -> Option<LayerName> {
        let rest = name.strip_prefix("layers/")?;
        if let Some(r) = rest.strip_prefix("delta_") {
            let (a, b) = r.split_once('_')?;
            let (start, end) = (
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            );
            return (start < end).then_some(LayerName::Delta {
                start: Lsn(start),
                end: Lsn(end),
            });
        }
        let r = rest.strip_prefix("image_")?;
        let (a, b) = r.split_once('_')?;
        Some(LayerName::Image {
            page: PageId(u32::from_str_radix(a, 16).ok()?),
            lsn: Lsn(u64::from_str_radix(b, 16).ok()?),
        })
    }

    pub fn file_name(&self) -> String {
        match *self {
            LayerName::Delta { start, end } => delta_name(start, end),
            LayerName::Image { page, lsn } => image_name(page, lsn),
        }
    }
}

pub fn encode_delta(start: Lsn, end: Lsn, prev: Lsn, wal: &[u8]) -> Vec<u8> {
    assert_eq!(
        end.bytes_since(start),
        wal.len() as u64,
        "a delta layer holds exactly its range"
    );
    let mut out = Vec::with_capacity(DELTA_HEADER + wal.len());
    out.extend_from_slice(&DELTA_MAGIC.to_le_bytes());
    out.extend_from_slice(&start.0.to_le_bytes());
    out.extend_from_slice(&end.0.to_le_bytes());
    out.extend_from_slice(&prev.0.to_le_bytes());
    out.extend_from_slice(&(wal.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(wal).to_le_bytes());
    out.extend_from_slice(wal);
    out
}

/// A delta layer read back: its records with their start LSNs, or why it is unusable.
/// Which checks loading a layer file makes. The layer checksum alone vouches for a delta
/// layer's records (their own CRCs are not checked again); an image also carries the page's
/// own checksum. Planted bugs turn checks off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerChecks {
    pub layer_checksum: bool,
    pub page_checksum: bool,
}

impl LayerChecks {
    pub const ALL: LayerChecks = LayerChecks {
        layer_checksum: true,
        page_checksum: true,
    };

    /// The checks a pageserver with `bugs` makes: skip-layer-checksum skips the layer
    /// checksum; image-load-unverified loads images with no check at all.
    pub fn delta(bugs: &BugSet) -> LayerChecks {
        LayerChecks {
            layer_checksum: !bugs.has(Bug::SkipLayerChecksum),
            page_checksum: true,
        }
    }

    pub fn image(bugs: &BugSet) -> LayerChecks {
        let unverified = bugs.has(Bug::ImageLoadUnverified);
        LayerChecks {
            layer_checksum: !bugs.has(Bug::SkipLayerChecksum) && !unverified,
            page_checksum: !unverified,
        }
    }
}

/// Decodes a delta layer file. Its structure (header, length, record chain, end) is always
/// checked; its records' bytes only through the layer checksum, when `checks` asks for it.
pub fn decode_delta(
    bytes: &[u8],
    start: Lsn,
    end: Lsn,
    checks: LayerChecks,
) -> Result<Vec<(Lsn, WalRecord)>, String> {
    let word = |at: usize| {
        bytes
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    if bytes.len() < DELTA_HEADER || bytes[..4] != DELTA_MAGIC.to_le_bytes() {
        return Err("not a delta layer".into());
    }
    if word(4) != Some(start.0) || word(12) != Some(end.0) {
        return Err("header does not match the file name".into());
    }
    let prev = Lsn(word(20).unwrap());
    let len = u32::from_le_bytes(bytes[28..32].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(bytes[32..36].try_into().unwrap());
    let body = bytes
        .get(DELTA_HEADER..DELTA_HEADER + len)
        .ok_or("truncated body")?;
    if len as u64 != end.bytes_since(start) {
        return Err("length does not match the file name".into());
    }
    if checks.layer_checksum && crc32c::crc32c(body) != crc {
        return Err("checksum mismatch".into());
    }
    let prev = (prev != Lsn::ZERO || start == Lsn::ZERO).then_some(prev);
    let decoded = decode_vouched(body, start, prev);
    if decoded.end_lsn != end {
        return Err(format!(
            "records end at {} instead of {end}",
            decoded.end_lsn
        ));
    }
    Ok(decoded.records)
}

pub fn encode_image(page_id: PageId, lsn: Lsn, page: &Page) -> Vec<u8> {
    let mut out = Vec::with_capacity(IMAGE_HEADER + PAGE_SIZE);
    out.extend_from_slice(&IMAGE_MAGIC.to_le_bytes());
    out.extend_from_slice(&page_id.0.to_le_bytes());
    out.extend_from_slice(&lsn.0.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(page.as_bytes()).to_le_bytes());
    out.extend_from_slice(page.as_bytes());
    out
}

pub fn decode_image(
    bytes: &[u8],
    page_id: PageId,
    lsn: Lsn,
    checks: LayerChecks,
) -> Result<Page, String> {
    if bytes.len() != IMAGE_HEADER + PAGE_SIZE || bytes[..4] != IMAGE_MAGIC.to_le_bytes() {
        return Err("not an image layer".into());
    }
    if bytes[4..8] != page_id.0.to_le_bytes() || bytes[8..16] != lsn.0.to_le_bytes() {
        return Err("header does not match the file name".into());
    }
    let crc = u32::from_le_bytes(bytes[16..20].try_into().unwrap());
    let page = Page::from_bytes(&bytes[IMAGE_HEADER..]).ok_or("bad page size")?;
    if checks.layer_checksum && crc32c::crc32c(page.as_bytes()) != crc {
        return Err("checksum mismatch".into());
    }
    if checks.page_checksum && !page.verify() {
        return Err("page checksum mismatch".into());
    }
    Ok(page)
}

/// Everything the pageserver can reconstruct pages from, in memory: every delta record by page
/// and end LSN, every image by page and LSN, and where each delta layer file ends.
#[derive(Default)]
pub struct LayerMap {
    deltas: BTreeMap<PageId, BTreeMap<Lsn, Arc<WalRecord>>>,
    images: BTreeMap<PageId, BTreeMap<Lsn, Page>>,
    /// End LSNs of the delta layer files: a read visits every one between its base and its
    /// LSN, as Neon's read path visits every L0 layer that covers the key's LSN range.
    delta_layer_ends: BTreeSet<Lsn>,
    /// Pages that got records since [`LayerMap::take_changed`] last ran.
    changed: BTreeSet<PageId>,
    /// The highest transaction id of any record added.
    max_xid: u64,
    redo: WalRedo,
}

/// What one reconstruction read and did, for the cost model and the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadCost {
    /// Records applied.
    pub records: u32,
    /// Layers visited: every delta layer file from the base to the LSN, the open (in-memory)
    /// layer when the LSN lies in it, and the image layer when the read starts from one.
    pub layers: u32,
    /// Bytes read from layers: the records applied and the image.
    pub bytes: u64,
}

/// True for a record that builds the page from nothing: reconstruction starts there.
fn will_init(rec: &WalRecord) -> bool {
    matches!(
        rec.body,
        RecordBody::PageInit { .. } | RecordBody::FullPageImage { .. }
    )
}

impl LayerMap {
    /// An empty map whose reads redo with `redo`.
    pub fn new(redo: WalRedo) -> LayerMap {
        LayerMap {
            redo,
            ..LayerMap::default()
        }
    }

    /// Adds a record that starts at `lsn`.
    pub fn add_record(&mut self, lsn: Lsn, rec: WalRecord) {
        self.max_xid = self.max_xid.max(rec.xid.0);
        if let Some(page) = rec.body.page() {
            let end = lsn.advance(rec.encoded_len() as u64);
            self.deltas
                .entry(page)
                .or_default()
                .insert(end, Arc::new(rec));
            self.changed.insert(page);
        }
    }

    /// The pages that got records since the last call.
    pub fn take_changed(&mut self) -> BTreeSet<PageId> {
        std::mem::take(&mut self.changed)
    }

    /// Pages whose image pass failed: the next pass looks at them again.
    pub fn mark_changed(&mut self, pages: impl IntoIterator<Item = PageId>) {
        self.changed.extend(pages);
    }

    pub fn add_image(&mut self, page: PageId, lsn: Lsn, image: Page) {
        self.images.entry(page).or_default().insert(lsn, image);
    }

    /// A delta layer file ending at `end` holds records now in the map.
    pub fn add_delta_layer(&mut self, end: Lsn) {
        self.delta_layer_ends.insert(end);
    }

    /// Forgets everything past `lsn` (records and images), as after a restart from a
    /// consistent point.
    pub fn truncate(&mut self, lsn: Lsn) {
        for m in self.deltas.values_mut() {
            m.split_off(&Lsn(lsn.0 + 1));
        }
        for m in self.images.values_mut() {
            m.split_off(&Lsn(lsn.0 + 1));
        }
        self.delta_layer_ends.split_off(&Lsn(lsn.0 + 1));
    }

    /// Records of `page` a read at `lsn` applies: those since its newest image, or since the
    /// newest record that initialises the page (a `PageInit` or a full-page image in the WAL).
    pub fn chain_len(&self, page: PageId, lsn: Lsn) -> usize {
        let base = self.newest_image(page, lsn).map_or(Lsn::ZERO, |(l, _)| l);
        self.chain(page, base, lsn).len()
    }

    /// True when `page` has records after its newest image at or below `lsn`.
    pub fn changed_since_image(&self, page: PageId, lsn: Lsn) -> bool {
        let base = self.newest_image(page, lsn).map_or(Lsn::ZERO, |(l, _)| l);
        self.last_change(page, lsn).is_some_and(|l| l > base)
    }

    /// The records of `page` ending in `(after, upto]` from the newest one that initialises
    /// the page, oldest first.
    fn chain(&self, page: PageId, after: Lsn, upto: Lsn) -> Vec<(&Lsn, &Arc<WalRecord>)> {
        let range = (after < upto).then(|| self.deltas.get(&page)).flatten();
        let mut chain = Vec::new();
        for (end, rec) in range
            .into_iter()
            .flat_map(|m| m.range(Lsn(after.0 + 1)..=upto).rev())
        {
            chain.push((end, rec));
            if will_init(rec) {
                break;
            }
        }
        chain.reverse();
        chain
    }

    fn newest_image(&self, page: PageId, lsn: Lsn) -> Option<(Lsn, &Page)> {
        self.images
            .get(&page)?
            .range(..=lsn)
            .next_back()
            .map(|(l, p)| (*l, p))
    }

    /// The page as of `lsn`: the newest image at or below it plus the records after it (from
    /// the newest that initialises the page). Returns the page and what the read cost.
    pub fn reconstruct(&self, page: PageId, lsn: Lsn) -> (Page, ReadCost) {
        let image = self.newest_image(page, lsn);
        let base_lsn = image.map_or(Lsn::ZERO, |(l, _)| l);
        let chain = self.chain(page, base_lsn, lsn);
        let from_image = image.is_some() && chain.first().is_none_or(|(_, r)| !will_init(r));
        let mut out = image.filter(|_| from_image).map(|(_, p)| p.clone());
        let mut cost = ReadCost::default();
        for (end, rec) in &chain {
            match &mut out {
                Some(page) => self.redo.apply(rec, **end, page),
                None => out = Some(self.redo.apply_to_new(rec, **end)),
            }
            cost.records += 1;
            cost.bytes += rec.encoded_len() as u64;
        }
        let mut out = out.unwrap_or_else(Page::zeroed);
        let start = chain
            .first()
            .map_or(base_lsn, |(end, r)| Lsn(end.0 - r.encoded_len() as u64));
        cost.layers = self.layers_between(start, lsn) + u32::from(from_image);
        cost.bytes += if from_image { PAGE_SIZE as u64 } else { 0 };
        invariant!(
            Invariant::PageReconstruction,
            out.lsn() <= lsn,
            "page at {} is newer than the request at {lsn}",
            out.lsn()
        );
        invariant!(
            Invariant::PageReconstruction,
            chain.iter().all(|(end, _)| **end <= lsn),
            "a read at {lsn} applied a later record"
        );
        out.seal();
        (out, cost)
    }

    /// Delta layers a read from `start` (exclusive) to `lsn` visits: each file ending in
    /// between, and the one that holds `lsn` (a file, or the open layer).
    fn layers_between(&self, start: Lsn, lsn: Lsn) -> u32 {
        if start >= lsn {
            return 0;
        }
        let within = self.delta_layer_ends.range(Lsn(start.0 + 1)..lsn).count();
        within as u32 + 1
    }

    /// The end LSN of the newest record of `page` at or below `lsn`.
    pub fn last_change(&self, page: PageId, lsn: Lsn) -> Option<Lsn> {
        self.deltas
            .get(&page)?
            .range(..=lsn)
            .next_back()
            .map(|(l, _)| *l)
    }

    /// The end LSN of the record before the newest one of `page` at or below `lsn`.
    pub fn change_before(&self, page: PageId, lsn: Lsn) -> Option<Lsn> {
        self.deltas
            .get(&page)?
            .range(..=lsn)
            .rev()
            .nth(1)
            .map(|(l, _)| *l)
    }

    pub fn pages(&self) -> impl Iterator<Item = PageId> + '_ {
        self.deltas.keys().copied()
    }

    /// The pages that exist at `lsn` (their first record lies at or below it).
    pub fn pages_at(&self, lsn: Lsn) -> impl Iterator<Item = PageId> + '_ {
        self.pages()
            .filter(move |p| self.last_change(*p, lsn).is_some())
    }

    pub fn max_xid(&self) -> u64 {
        self.max_xid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Xid;
    use crate::wal::RecordBody;

    fn delta(page: u32, byte: u8, prev: Lsn) -> WalRecord {
        let body = RecordBody::PageDelta {
            page: PageId(page),
            offset: 0,
            bytes: vec![byte; 4],
        };
        WalRecord {
            xid: Xid(1),
            prev_lsn: prev,
            body,
        }
    }

    /// Three deltas to page 7 as one WAL stream from LSN 0: (bytes, [(start, record)]).
    fn stream() -> (Vec<u8>, Vec<(Lsn, WalRecord)>) {
        let (mut wal, mut recs, mut prev) = (Vec::new(), Vec::new(), Lsn::ZERO);
        for b in 1..=3u8 {
            let rec = delta(7, b, prev);
            prev = Lsn(wal.len() as u64);
            recs.push((prev, rec.clone()));
            rec.encode_into(&mut wal);
        }
        (wal, recs)
    }

    #[test]
    fn delta_layer_roundtrip_and_a_flipped_bit_is_refused() {
        let (wal, recs) = stream();
        let end = Lsn(wal.len() as u64);
        let mut bytes = encode_delta(Lsn::ZERO, end, Lsn::ZERO, &wal);
        assert_eq!(
            decode_delta(&bytes, Lsn::ZERO, end, LayerChecks::ALL).unwrap(),
            recs
        );
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(decode_delta(&bytes, Lsn::ZERO, end, LayerChecks::ALL).is_err());
    }

    #[test]
    fn image_layer_roundtrip_and_rot_is_refused() {
        let mut map = LayerMap::default();
        let (_, recs) = stream();
        for (lsn, rec) in recs {
            map.add_record(lsn, rec);
        }
        let lsn = map.last_change(PageId(7), Lsn(u64::MAX)).unwrap();
        let (page, applied) = map.reconstruct(PageId(7), lsn);
        assert_eq!(applied.records, 3);
        assert!(
            applied.bytes > 0,
            "a read costs the bytes of the records it applied"
        );
        let mut bytes = encode_image(PageId(7), lsn, &page);
        // A torn file, cut at any length, is refused (never a panic on its short header).
        for len in 0..bytes.len() {
            assert!(decode_image(&bytes[..len], PageId(7), lsn, LayerChecks::ALL).is_err());
        }
        assert_eq!(
            decode_image(&bytes, PageId(7), lsn, LayerChecks::ALL).unwrap(),
            page
        );
        bytes[100] ^= 4;
        assert!(decode_image(&bytes, PageId(7), lsn, LayerChecks::ALL).is_err());
    }

    #[test]
    fn reconstruct_starts_from_the_newest_image_and_never_passes_the_lsn() {
        let mut map = LayerMap::default();
        let (_, recs) = stream();
        let ends: Vec<Lsn> = recs
            .iter()
            .map(|(l, r)| l.advance(r.encoded_len() as u64))
            .collect();
        for (lsn, rec) in recs {
            map.add_record(lsn, rec);
        }
        let (at_second, _) = map.reconstruct(PageId(7), ends[1]);
        map.add_image(PageId(7), ends[1], at_second.clone());
        let (page, applied) = map.reconstruct(PageId(7), ends[2]);
        assert_eq!(applied.records, 1, "one delta after the image");
        assert_eq!(page.contents()[0], 3);
        let (old, applied) = map.reconstruct(PageId(7), ends[0]);
        assert_eq!((old.contents()[0], applied.records), (1, 1));
        assert_eq!(map.reconstruct(PageId(7), ends[1]).0, at_second);
        assert_eq!(map.chain_len(PageId(7), ends[2]), 1);
    }

    #[test]
    fn a_read_starts_at_the_newest_record_that_initialises_the_page() {
        let mut map = LayerMap::default();
        let (_, recs) = stream();
        let mut last = Lsn::ZERO;
        for (lsn, rec) in recs {
            last = lsn.advance(rec.encoded_len() as u64);
            map.add_record(lsn, rec);
        }
        let init = WalRecord {
            xid: Xid(2),
            prev_lsn: Lsn::ZERO,
            body: RecordBody::PageInit { page: PageId(7) },
        };
        let init_end = last.advance(init.encoded_len() as u64);
        map.add_record(last, init);
        let after = delta(7, 9, last);
        let end = init_end.advance(after.encoded_len() as u64);
        map.add_record(init_end, after);
        let (page, cost) = map.reconstruct(PageId(7), end);
        assert_eq!(cost.records, 2, "the init and the delta after it");
        assert_eq!(page.contents()[..4], [9; 4]);
        assert_eq!(map.chain_len(PageId(7), end), 2);
        map.add_delta_layer(last);
        assert_eq!(
            map.reconstruct(PageId(7), end).1.layers,
            1,
            "the read never goes below the init"
        );
    }

    #[test]
    fn layer_names_roundtrip() {
        for l in [
            LayerName::Delta {
                start: Lsn(0x10),
                end: Lsn(0x2000),
            },
            LayerName::Image {
                page: PageId(42),
                lsn: Lsn(0x99),
            },
        ] {
            assert_eq!(LayerName::parse(&l.file_name()), Some(l));
        }
        assert_eq!(
            LayerName::parse("layers/delta_10_5"),
            None,
            "an empty range is no layer"
        );
        assert_eq!(LayerName::parse("metadata"), None);
    }
}
