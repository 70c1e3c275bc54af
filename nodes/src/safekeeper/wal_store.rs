//! The safekeeper's WAL on disk: segment files of [`SegmentSize`] bytes, `wal/<segno>`, holding
//! the byte stream from `wal_start` on (LSN 0 until old WAL is removed).
//!
//! Guarantees: `flush_lsn` never exceeds what is durable (every segment written is fsynced, and
//! every new segment's name made durable with a directory sync, before `flush` returns it);
//! [`WalStore::recover`] finds the end of the last valid record and cuts whatever lies past it
//! (a torn or partial tail, or stale bytes), so the WAL a restarted acceptor serves is exactly a
//! chain of whole, checksummed records from `wal_start`.
//!
//! Rot: every segment is written twice, `wal/<segno>` and its mirror `walmirror/<segno>`, in
//! the same fsyncs. A bit flip in acknowledged WAL cannot be told from a torn tail by looking
//! at one copy (a flip past the last persisted control file looks exactly like a tail a crash
//! tore, which is why Postgres and Neon, with one copy, would cut acknowledged WAL there), but
//! it can with two: recovery takes each record from whichever copy holds it whole, and writes
//! it back to the other. A record that fails in both copies below the point the caller knows
//! was durable (its persisted commit LSN) is damage: recovery refuses ([`Recovered::Damaged`])
//! rather than cut WAL the quorum counts on. A read error is an error, never the end of the
//! WAL (the read-error-as-eof bug takes it for one): recovery reads a record from the other
//! copy when one cannot be read, writes it back (a rewrite remaps the sectors), and fails, to
//! be tried again, only when neither copy can say where the WAL ends. Removal takes whole
//! segments below
//! `wal_start` only, and the caller persists `wal_start` first: a removal a crash undid leaves
//! segments recovery ignores, never a hole it would have to explain.

use crate::ids::Lsn;
use crate::invariant::Invariant;
use crate::wal::{decode_one, Decoded};
use lakesim_faults::Disk;
use std::collections::BTreeSet;
use std::io::Result;

/// The size of the WAL's segment files (Neon's `wal_seg_size`), fixed for a timeline: a power
/// of two from 4 KiB. The default is small next to Neon's 16 MB, so that a run of a few MB of
/// WAL removes segments many times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentSize(u64);

impl SegmentSize {
    pub const DEFAULT: SegmentSize = SegmentSize(64 * 1024);

    pub fn new(bytes: u64) -> SegmentSize {
        assert!(
            bytes.is_power_of_two() && bytes >= 4096,
            "a WAL segment is a power of two from 4 KiB, not {bytes} bytes"
        );
        SegmentSize(bytes)
    }

    pub fn bytes(self) -> u64 {
        self.0
    }

    /// The segment holding `lsn`.
    pub fn segno(self, lsn: Lsn) -> u64 {
        lsn.0 / self.0
    }

    /// Where segment `segno` begins.
    pub fn start(self, segno: u64) -> Lsn {
        Lsn(segno * self.0)
    }
}

/// The two copies of every segment.
const PRIMARY: &str = "wal/";
const MIRROR: &str = "walmirror/";
const COPIES: [&str; 2] = [PRIMARY, MIRROR];

fn segment_name(segno: u64) -> SegmentName {
    segment_in(PRIMARY, segno)
}

/// `{copy}{segno:08x}`, built without the formatting machinery or a heap allocation: every
/// WAL write, flush and read names its segments, on the path each append takes.
fn segment_in(copy: &str, segno: u64) -> SegmentName {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (64 - segno.leading_zeros() as usize).div_ceil(4).max(8);
    let len = copy.len() + digits;
    assert!(len <= SEGMENT_NAME_MAX, "a segment name fits its buffer");
    let mut buf = [0u8; SEGMENT_NAME_MAX];
    buf[..copy.len()].copy_from_slice(copy.as_bytes());
    for (i, b) in buf[copy.len()..len].iter_mut().rev().enumerate() {
        *b = HEX[(segno >> (4 * i) & 0xf) as usize];
    }
    SegmentName { buf, len }
}

/// The longest segment name: the mirror's prefix and 16 hex digits.
const SEGMENT_NAME_MAX: usize = 10 + 16;

/// A segment file's name, inline.
struct SegmentName {
    buf: [u8; SEGMENT_NAME_MAX],
    len: usize,
}

impl std::ops::Deref for SegmentName {
    type Target = str;
    fn deref(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).expect("a prefix and hex digits")
    }
}

/// The segment number of a file of either copy.
fn segno_in(name: &str) -> Option<u64> {
    COPIES
        .iter()
        .find_map(|c| u64::from_str_radix(name.strip_prefix(c)?, 16).ok())
}

/// Reads the WAL in `[start, end)` from `disk`, as far as the segments reach. With
/// `error_as_eof` (the read-error-as-eof bug) a read error ends the WAL instead of failing.
pub async fn read_wal(
    disk: &Disk,
    seg: SegmentSize,
    start: Lsn,
    end: Lsn,
    error_as_eof: bool,
) -> Result<Vec<u8>> {
    match read_copy(disk, PRIMARY, seg, (start, end)).await {
        (_, Some(e)) if !error_as_eof => Err(e),
        (bytes, _) => Ok(bytes),
    }
}

/// The bytes of one copy in `[start, end)`, as far as they can be read: on a read error, what
/// came before it, and the error.
async fn read_copy(
    disk: &Disk,
    copy: &str,
    seg: SegmentSize,
    (start, end): (Lsn, Lsn),
) -> (Vec<u8>, Option<std::io::Error>) {
    // The range is there to fill (a read stays below the write position; recovery reads to
    // the end of the last segment held, which a missing segment may cut short): one
    // allocation, not a doubling per segment.
    let mut out = Vec::with_capacity(end.bytes_since(start) as usize);
    let mut pos = start.0;
    while pos < end.0 {
        let segno = pos / seg.0;
        let off = pos % seg.0;
        let want = (seg.0 - off).min(end.0 - pos) as usize;
        let name = segment_in(copy, segno);
        if !disk.exists(&name) {
            break;
        }
        let got = match disk.read_into(&name, off, want, &mut out).await {
            Ok(got) => got,
            Err(e) => return (out, Some(e)),
        };
        pos += got as u64;
        if got < want {
            break;
        }
    }
    (out, None)
}

/// The WAL in `[start, end)` on `disk` as its cache holds it, past every disk fault: for the
/// harness, which reads what a safekeeper holds without meeting its faults.
pub fn peek_wal(disk: &Disk, seg: SegmentSize, start: Lsn, end: Lsn) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = start.0;
    while pos < end.0 {
        let (segno, off) = (pos / seg.0, pos % seg.0);
        let want = (seg.0 - off).min(end.0 - pos) as usize;
        let Some(got) = disk.peek_into(&segment_name(segno), off, want, &mut out) else {
            break;
        };
        pos += got as u64;
        if got < want {
            break;
        }
    }
    out
}

/// The valid WAL from `start` as the two copies hold it, record by record from whichever copy
/// holds the record whole: the bytes and where they end.
fn merge_copies(a: &[u8], b: &[u8], start: Lsn, start_prev: Lsn) -> (Vec<u8>, Lsn) {
    let mut merged = Vec::with_capacity(a.len().max(b.len()));
    let mut prev = Some(start_prev);
    loop {
        let pos = merged.len();
        let whole = |copy: &[u8]| match decode_one(copy.get(pos..).unwrap_or(&[]), prev) {
            Decoded::Record(_, len) => Some(len),
            Decoded::End(_) => None,
        };
        let (copy, len) = match (whole(a), whole(b)) {
            (Some(len), _) => (a, len),
            (None, Some(len)) => (b, len),
            (None, None) => break,
        };
        merged.extend_from_slice(&copy[pos..pos + len]);
        prev = Some(start.advance(pos as u64));
    }
    let end = start.advance(merged.len() as u64);
    (merged, end)
}

/// What recovery found.
pub enum Recovered {
    /// The WAL, with the LSN its invalid tail was cut at, if it had one.
    Store(WalStore, Option<Lsn>),
    /// A record below the durable point fails its checks at this LSN: the WAL is damaged.
    Damaged(Lsn),
}

pub struct WalStore {
    disk: Disk,
    seg: SegmentSize,
    /// The WAL before this record boundary was removed.
    start: Lsn,
    /// Start of the record ending at `start`.
    start_prev: Lsn,
    /// End of the WAL written to the cache.
    write_lsn: Lsn,
    /// End of the durable WAL.
    flush_lsn: Lsn,
    /// Segments written since the last flush.
    unsynced: BTreeSet<u64>,
    /// A segment was created since the last flush: its name needs a directory sync.
    created: bool,
    /// The read-error-as-eof bug: a read error ends the WAL.
    error_as_eof: bool,
}

impl WalStore {
    /// Opens the WAL on `disk` from `start` (the record boundary the control file names, with
    /// `start_prev` the record before it), cutting any invalid tail past `durable` (a point the
    /// WAL is known to have been durable to). A read error fails it.
    pub async fn recover(
        disk: Disk,
        seg: SegmentSize,
        (start, start_prev): (Lsn, Lsn),
        durable: Lsn,
        error_as_eof: bool,
    ) -> Result<Recovered> {
        let mut store = WalStore {
            disk,
            seg,
            start,
            start_prev,
            write_lsn: start,
            flush_lsn: start,
            unsynced: BTreeSet::new(),
            created: false,
            error_as_eof,
        };
        let mut copies = Vec::with_capacity(2);
        let mut errors = Vec::new();
        for copy in COPIES {
            let held = store.held_end(copy)?;
            let range = (start, held.max(start));
            let (bytes, error) = read_copy(&store.disk, copy, seg, range).await;
            errors.extend(error.map(|e| (held, e)));
            copies.push((held, bytes));
        }
        if error_as_eof && !errors.is_empty() {
            // The read-error-as-eof bug: where a read failed, the WAL ends, in both copies.
            let eof = copies.iter().map(|c| c.1.len()).min().unwrap_or(0);
            copies.iter_mut().for_each(|c| c.1.truncate(eof));
            errors.clear();
        }
        let (merged, end) = merge_copies(&copies[0].1, &copies[1].1, start, start_prev);
        // A copy that could not be read past `end` may hold WAL the other lacks: that is not
        // the end of the WAL, and recovery fails (to be tried again) rather than cut it.
        if let Some((_, e)) = errors.into_iter().find(|(held, _)| *held > end) {
            crate::probe!(WalRecoveryReadError);
            return Err(e);
        }
        let read_end = start.advance(copies.iter().map(|c| c.1.len()).max().unwrap_or(0) as u64);
        // Records fail in both copies before the durable point although the bytes reach it:
        // damage. (Bytes that simply stop short of it are a cut the caller's own checks judge.)
        if end < durable && read_end >= durable {
            return Ok(Recovered::Damaged(end));
        }
        let held_end = copies[0].0;
        for (copy, (_, bytes)) in COPIES.iter().zip(&copies) {
            store.repair(copy, &merged, bytes)?;
        }
        store.flush().await?;
        store.write_lsn = held_end.max(end);
        let cut = end < held_end;
        if copies.iter().any(|c| c.0 > end) {
            store.truncate(end).await?;
        }
        store.flush_lsn = end;
        store.write_lsn = end;
        Ok(Recovered::Store(store, cut.then_some(end)))
    }

    /// Where the bytes of `copy` end: the end of its last segment at or past the WAL start.
    fn held_end(&self, copy: &str) -> Result<Lsn> {
        let first = self.seg.segno(self.start);
        // Segments below `first` may be back after a crash undid their removal: not ours.
        let last = self
            .disk
            .list()
            .iter()
            .filter_map(|n| u64::from_str_radix(n.strip_prefix(copy)?, 16).ok())
            .filter(|s| *s >= first)
            .max();
        let Some(last) = last else {
            return Ok(self.start);
        };
        let len = self.disk.len(&segment_in(copy, last))?;
        Ok(self.seg.start(last).advance(len))
    }

    /// Writes back into `copy` the records it lost (`merged` from the WAL start, where `held`
    /// is what it holds), so that both copies agree up to the end of valid WAL.
    fn repair(&mut self, copy: &str, merged: &[u8], held: &[u8]) -> Result<()> {
        let same = crate::wal::common_prefix(merged, held);
        if same < merged.len() {
            tracing::debug!(copy, at = %self.start.advance(same as u64), "WAL repaired from its other copy");
            crate::probe!(WalCopyRepaired);
            self.write_copy(copy, self.start.advance(same as u64), &merged[same..])?;
        }
        Ok(())
    }

    pub fn segment_size(&self) -> SegmentSize {
        self.seg
    }

    /// Where the WAL held begins, and the start of the record before it.
    pub fn start(&self) -> (Lsn, Lsn) {
        (self.start, self.start_prev)
    }

    pub fn write_lsn(&self) -> Lsn {
        self.write_lsn
    }

    pub fn flush_lsn(&self) -> Lsn {
        self.flush_lsn
    }

    /// Writes `bytes` at the write position `begin`, to both copies (into the cache: call
    /// [`WalStore::flush`]). On an error (a full disk) the write position stays where it was.
    pub fn write(&mut self, begin: Lsn, bytes: &[u8]) -> Result<()> {
        assert_eq!(begin, self.write_lsn, "WAL writes must be contiguous");
        for copy in COPIES {
            self.write_copy(copy, begin, bytes)?;
        }
        self.write_lsn = begin.advance(bytes.len() as u64);
        Ok(())
    }

    fn write_copy(&mut self, copy: &str, begin: Lsn, bytes: &[u8]) -> Result<()> {
        let mut pos = begin.0;
        let mut rest = bytes;
        while !rest.is_empty() {
            let segno = pos / self.seg.0;
            let off = pos % self.seg.0;
            let n = ((self.seg.0 - off) as usize).min(rest.len());
            let name = segment_in(copy, segno);
            // The segment almost always exists: write first (a write to a missing file
            // changes nothing), and create it only when the write says it is not there.
            match self.disk.write(&name, off, &rest[..n]) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.disk.create(&name)?;
                    // A segment fills to its size: its memory is allocated once, not doubled.
                    self.disk.reserve(&name, self.seg.0 as usize)?;
                    self.created = true;
                    self.disk.write(&name, off, &rest[..n])?;
                }
                written => written?,
            }
            self.unsynced.insert(segno);
            pos += n as u64;
            rest = &rest[n..];
        }
        Ok(())
    }

    /// Makes everything written durable and returns the new flush LSN. The segments and the
    /// directory (when a segment was created) are synced in parallel, as a safekeeper issues
    /// them; the flush LSN moves only once every one of them is durable.
    pub async fn flush(&mut self) -> Result<Lsn> {
        let mut names: Vec<Option<String>> = std::mem::take(&mut self.unsynced)
            .into_iter()
            .flat_map(|segno| COPIES.map(|c| segment_in(c, segno)))
            .filter(|name| self.disk.exists(name))
            .map(|name| Some(name.to_string()))
            .collect();
        if std::mem::take(&mut self.created) {
            names.push(None);
        }
        crate::durable::sync_all(&self.disk, &names).await?;
        self.flush_lsn = self.write_lsn;
        Ok(self.flush_lsn)
    }

    /// Forgets the WAL before `start` (a record boundary; `start_prev` is the record before it)
    /// and removes the segments wholly below it. The caller has already made `start` durable.
    /// The removals need no directory sync: a segment a crash brings back lies below `start`,
    /// where recovery does not look, and the next removal takes it again. Returns how many
    /// segments it removed.
    pub fn remove_before(&mut self, start: Lsn, start_prev: Lsn) -> Result<u32> {
        assert!(start >= self.start, "the WAL start never moves back");
        assert!(start <= self.flush_lsn, "only durable WAL is removed");
        (self.start, self.start_prev) = (start, start_prev);
        let mut removed = 0;
        for name in self.disk.list() {
            if segno_in(&name).is_some_and(|s| s < self.seg.segno(start)) {
                self.disk.remove(&name)?;
                removed += u32::from(name.starts_with(PRIMARY));
            }
        }
        Ok(removed)
    }

    /// Cuts the WAL at `lsn`, durably: the segment holding `lsn` is shortened, later ones removed.
    pub async fn truncate(&mut self, lsn: Lsn) -> Result<()> {
        invariant!(
            Invariant::WalAgreement,
            lsn >= self.start,
            "truncating at {lsn}, below the removed WAL ({})",
            self.start
        );
        let keep = self.seg.segno(lsn);
        let mut removed = false;
        for name in self.disk.list() {
            match segno_in(&name) {
                Some(s) if s > keep || (s == keep && lsn.0.is_multiple_of(self.seg.0) && s > 0) => {
                    self.disk.remove(&name)?;
                    self.unsynced.remove(&s);
                    removed = true;
                }
                _ => {}
            }
        }
        for copy in COPIES {
            let name = segment_in(copy, keep);
            if self.disk.exists(&name) {
                self.disk.set_len(&name, lsn.0 % self.seg.0)?;
                self.disk.sync(&name).await?;
            }
        }
        self.unsynced.remove(&keep);
        if removed || std::mem::take(&mut self.created) {
            self.disk.sync_dir().await?;
        }
        self.write_lsn = lsn;
        self.flush_lsn = self.flush_lsn.min(lsn);
        Ok(())
    }

    /// The WAL in `[start, end)`; `end` must not pass the write position, nor `start` precede
    /// the WAL held.
    pub async fn read(&self, start: Lsn, end: Lsn) -> Result<Vec<u8>> {
        assert!(end <= self.write_lsn, "read past the WAL end");
        assert!(start >= self.start, "read before the WAL start");
        read_wal(&self.disk, self.seg, start, end, self.error_as_eof).await
    }

    /// Claims `bytes` at the write position as written without writing them: what the
    /// enospc-ack-anyway bug does after a write failed for want of space.
    pub fn pretend_written(&mut self, bytes: usize) {
        self.write_lsn = self.write_lsn.advance(bytes as u64);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn segment_names_are_the_formatted_ones() {
        for segno in [0, 1, 0xab, 0xffff_ffff, 0x1_0000_0000, u64::MAX] {
            for copy in COPIES {
                assert_eq!(&*segment_in(copy, segno), format!("{copy}{segno:08x}"));
            }
        }
    }

    use super::*;
    use crate::ids::{PageId, Xid};
    use crate::wal::{RecordBody, WalRecord};
    use lakesim_faults::DiskConfig;

    /// `n` chained records of about 1 KB from LSN 0: the bytes and where each record starts.
    fn records(n: usize) -> (Vec<u8>, Vec<Lsn>) {
        let (mut wal, mut starts) = (Vec::new(), Vec::new());
        let mut prev = Lsn::ZERO;
        for i in 0..n {
            let body = RecordBody::PageDelta {
                page: PageId(i as u32 % 7),
                offset: 0,
                bytes: vec![i as u8; 1000],
            };
            let rec = WalRecord {
                xid: Xid(1 + i as u64),
                prev_lsn: prev,
                body,
            };
            prev = Lsn(wal.len() as u64);
            starts.push(prev);
            rec.encode_into(&mut wal);
        }
        (wal, starts)
    }

    /// Recovery that must find a store (no damage below `durable`).
    async fn open(disk: &Disk, start: Lsn, prev: Lsn, durable: Lsn) -> (WalStore, Option<Lsn>) {
        let seg = SegmentSize::DEFAULT;
        match WalStore::recover(disk.clone(), seg, (start, prev), durable, false).await {
            Ok(Recovered::Store(store, cut)) => (store, cut),
            Ok(Recovered::Damaged(at)) => panic!("damaged at {at}"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn rot_in_one_copy_is_repaired_and_in_both_below_the_durable_point_is_damage() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        rt.block_on(async {
            let disk = Disk::new(1, DiskConfig::default(), 1, None);
            let (wal, starts) = records(50);
            let (mut store, _) = open(&disk, Lsn::ZERO, Lsn::ZERO, Lsn::ZERO).await;
            store.write(Lsn::ZERO, &wal).unwrap();
            store.flush().await.unwrap();
            disk.sync_dir().await.unwrap();
            let flip = |file: &str, at: u64| {
                let byte = disk.peek(file, at, 1).unwrap()[0];
                disk.write(file, at, &[byte ^ 4]).unwrap();
            };
            // A bit of record 20 flips in the primary: the mirror repairs it.
            flip("wal/00000000", starts[20].0 + 100);
            let (store, cut) = open(&disk, Lsn::ZERO, Lsn::ZERO, starts[30]).await;
            assert_eq!((cut, store.flush_lsn()), (None, Lsn(wal.len() as u64)));
            assert_eq!(
                disk.peek("wal/00000000", 0, wal.len()).unwrap(),
                wal,
                "repaired"
            );
            // The same record in both copies: below the durable point, damage.
            flip("wal/00000000", starts[20].0 + 100);
            flip("walmirror/00000000", starts[20].0 + 200);
            let seg = SegmentSize::DEFAULT;
            let damaged =
                WalStore::recover(disk.clone(), seg, (Lsn::ZERO, Lsn::ZERO), starts[30], false);
            assert!(matches!(damaged.await, Ok(Recovered::Damaged(l)) if l == starts[20]));
            // Past it, a cut (a torn tail looks the same).
            let (store, cut) = open(&disk, Lsn::ZERO, Lsn::ZERO, starts[10]).await;
            assert_eq!((cut, store.flush_lsn()), (Some(starts[20]), starts[20]));
        });
    }

    #[test]
    fn a_read_error_is_read_around_or_fails_recovery_unless_taken_for_the_end() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        rt.block_on(async {
            let disk = Disk::new(1, DiskConfig::default(), 1, None);
            let (wal, _) = records(50);
            let (mut store, _) = open(&disk, Lsn::ZERO, Lsn::ZERO, Lsn::ZERO).await;
            store.write(Lsn::ZERO, &wal).unwrap();
            store.flush().await.unwrap();
            disk.sync_dir().await.unwrap();
            let seg = SegmentSize::DEFAULT;
            let end = Lsn(wal.len() as u64);
            let recover =
                |as_eof| WalStore::recover(disk.clone(), seg, (Lsn::ZERO, Lsn::ZERO), end, as_eof);
            // pick 14: the primary's third sector; 15: the mirror's.
            disk.fail_reads(14, 1, None).unwrap();
            let (store, cut) = open(&disk, Lsn::ZERO, Lsn::ZERO, end).await;
            assert_eq!(
                (cut, store.flush_lsn()),
                (None, end),
                "read from the mirror"
            );
            assert!(
                disk.read("wal/00000000", 8192, 1).await.is_ok(),
                "and written back"
            );
            disk.fail_reads(14, 1, None).unwrap();
            disk.fail_reads(15, 1, None).unwrap();
            assert!(
                recover(false).await.is_err(),
                "a read error is not the end of the WAL"
            );
            match recover(true).await {
                Ok(Recovered::Store(store, Some(cut))) => {
                    assert!(
                        cut < Lsn(3 * 4096) && store.flush_lsn() == cut,
                        "cut at {cut}"
                    );
                }
                _ => panic!("the bug takes the error for the end and cuts there"),
            }
        });
    }

    #[test]
    fn removal_survives_a_crash_that_undoes_it() {
        for seed in 0..16 {
            let rt =
                madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
            rt.block_on(async move {
                let config = DiskConfig {
                    land_probability: 0.5,
                    ..DiskConfig::default()
                };
                let disk = Disk::new(1, config, seed, None);
                let (wal, starts) = records(300);
                let (mut store, _) = open(&disk, Lsn::ZERO, Lsn::ZERO, Lsn::ZERO).await;
                store.write(Lsn::ZERO, &wal).unwrap();
                store.flush().await.unwrap();
                let i = starts
                    .iter()
                    .position(|l| l.0 > SegmentSize::DEFAULT.0 * 5 / 2)
                    .unwrap();
                let (start, prev) = (starts[i], starts[i - 1]);
                assert_eq!(store.remove_before(start, prev).unwrap(), 2);
                // The removals were never made durable: some may come back.
                disk.crash();
                let (store, cut) = open(&disk, start, prev, start).await;
                assert_eq!(cut, None, "synced WAL after the start is whole");
                assert_eq!(store.flush_lsn(), Lsn(wal.len() as u64));
                let kept = store.read(start, store.flush_lsn()).await.unwrap();
                assert_eq!(kept, &wal[start.0 as usize..]);
                assert_eq!(store.start(), (start, prev));
            });
        }
    }

    #[test]
    #[should_panic(expected = "read before the WAL start")]
    fn removed_wal_cannot_be_read() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        rt.block_on(async {
            let disk = Disk::new(1, DiskConfig::default(), 1, None);
            let (wal, starts) = records(100);
            let (mut store, _) = open(&disk, Lsn::ZERO, Lsn::ZERO, Lsn::ZERO).await;
            store.write(Lsn::ZERO, &wal).unwrap();
            store.flush().await.unwrap();
            store.remove_before(starts[80], starts[79]).unwrap();
            let _ = store.read(starts[10], starts[90]).await;
        });
    }
}
