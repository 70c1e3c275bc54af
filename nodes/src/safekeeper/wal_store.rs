//! The safekeeper's WAL on disk: segment files of [`SegmentSize`] bytes, `wal/<segno>`, holding
//! the byte stream from `wal_start` on (LSN 0 until old WAL is removed).
//!
//! Guarantees: `flush_lsn` never exceeds what is durable (every segment written is fsynced, and
//! every new segment's name made durable with a directory sync, before `flush` returns it);
//! [`WalStore::recover`] finds the end of the last valid record and cuts whatever lies past it
//! (a torn or partial tail, or stale bytes), so the WAL a restarted acceptor serves is exactly a
//! chain of whole, checksummed records from `wal_start`. A record that fails its checks below
//! the point the caller knows was durable (its persisted commit LSN) is damage, not a torn
//! tail: recovery refuses ([`Recovered::Damaged`]) rather than cut WAL the quorum counts on.
//! Rot past that point looks exactly like a torn tail and is cut, as Postgres and Neon do.
//! A read error is an error, never the end of the WAL (the read-error-as-eof bug takes it for
//! one). Removal takes whole segments below
//! `wal_start` only, and the caller persists `wal_start` first: a removal a crash undid leaves
//! segments recovery ignores, never a hole it would have to explain.

use crate::ids::Lsn;
use crate::invariant::Invariant;
use crate::wal::decode_stream;
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

fn segment_name(segno: u64) -> String {
    format!("wal/{segno:08x}")
}

fn segno_of(name: &str) -> Option<u64> {
    u64::from_str_radix(name.strip_prefix("wal/")?, 16).ok()
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
    let mut out = Vec::with_capacity(end.bytes_since(start).min(seg.0) as usize);
    let mut pos = start.0;
    while pos < end.0 {
        let segno = pos / seg.0;
        let off = pos % seg.0;
        let want = (seg.0 - off).min(end.0 - pos) as usize;
        let name = segment_name(segno);
        if !disk.exists(&name) {
            break;
        }
        let chunk = match disk.read(&name, off, want).await {
            Err(_) if error_as_eof => break,
            other => other?,
        };
        let got = chunk.len();
        out.extend_from_slice(&chunk);
        pos += got as u64;
        if got < want {
            break;
        }
    }
    Ok(out)
}

/// The WAL in `[start, end)` on `disk` as its cache holds it, past every disk fault: for the
/// harness, which reads what a safekeeper holds without meeting its faults.
pub fn peek_wal(disk: &Disk, seg: SegmentSize, start: Lsn, end: Lsn) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = start.0;
    while pos < end.0 {
        let (segno, off) = (pos / seg.0, pos % seg.0);
        let want = (seg.0 - off).min(end.0 - pos) as usize;
        let Some(chunk) = disk.peek(&segment_name(segno), off, want) else {
            break;
        };
        let got = chunk.len();
        out.extend_from_slice(&chunk);
        pos += got as u64;
        if got < want {
            break;
        }
    }
    out
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
        let first = seg.segno(start);
        // Segments below `first` may be back after a crash undid their removal: not ours.
        let last = disk
            .list()
            .iter()
            .filter_map(|n| segno_of(n))
            .filter(|s| *s >= first)
            .max();
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
        let Some(last) = last else {
            return Ok(Recovered::Store(store, None));
        };
        let held_end = seg
            .start(last)
            .advance(store.disk.len(&segment_name(last))?);
        if held_end <= start {
            return Ok(Recovered::Store(store, None));
        }
        let bytes = read_wal(&store.disk, seg, start, held_end, error_as_eof).await?;
        let end = decode_stream(&bytes, start, Some(start_prev)).end_lsn;
        let read_end = start.advance(bytes.len() as u64);
        // Records fail before the durable point although the bytes reach it: damage. (Bytes
        // that simply stop short of it are a cut the caller's own checks judge.)
        if end < durable && read_end >= durable {
            return Ok(Recovered::Damaged(end));
        }
        store.write_lsn = read_end;
        let cut = end < held_end;
        if cut {
            store.truncate(end).await?;
        }
        store.flush_lsn = end;
        store.write_lsn = end;
        Ok(Recovered::Store(store, cut.then_some(end)))
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

    /// Writes `bytes` at the write position `begin` (into the cache: call [`WalStore::flush`]).
    pub fn write(&mut self, begin: Lsn, bytes: &[u8]) -> Result<()> {
        assert_eq!(begin, self.write_lsn, "WAL writes must be contiguous");
        let mut pos = begin.0;
        let mut rest = bytes;
        while !rest.is_empty() {
            let segno = pos / self.seg.0;
            let off = pos % self.seg.0;
            let n = ((self.seg.0 - off) as usize).min(rest.len());
            let name = segment_name(segno);
            if !self.disk.exists(&name) {
                self.disk.create(&name)?;
                self.created = true;
            }
            self.disk.write(&name, off, &rest[..n])?;
            self.unsynced.insert(segno);
            pos += n as u64;
            rest = &rest[n..];
        }
        self.write_lsn = Lsn(pos);
        Ok(())
    }

    /// Makes everything written durable and returns the new flush LSN. The segments and the
    /// directory (when a segment was created) are synced in parallel, as a safekeeper issues
    /// them; the flush LSN moves only once every one of them is durable.
    pub async fn flush(&mut self) -> Result<Lsn> {
        let mut names: Vec<Option<String>> = std::mem::take(&mut self.unsynced)
            .into_iter()
            .map(|segno| Some(segment_name(segno)))
            .collect();
        if std::mem::take(&mut self.created) {
            names.push(None);
        }
        crate::durable::sync_all(&self.disk, names).await?;
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
            if segno_of(&name).is_some_and(|s| s < self.seg.segno(start)) {
                self.disk.remove(&name)?;
                removed += 1;
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
            match segno_of(&name) {
                Some(s) if s > keep || (s == keep && lsn.0.is_multiple_of(self.seg.0) && s > 0) => {
                    self.disk.remove(&name)?;
                    self.unsynced.remove(&s);
                    removed = true;
                }
                _ => {}
            }
        }
        let name = segment_name(keep);
        if self.disk.exists(&name) {
            self.disk.set_len(&name, lsn.0 % self.seg.0)?;
            self.disk.sync(&name).await?;
            self.unsynced.remove(&keep);
        }
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
    fn rot_below_the_durable_point_is_damage_and_past_it_a_cut() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        rt.block_on(async {
            let disk = Disk::new(1, DiskConfig::default(), 1, None);
            let (wal, starts) = records(50);
            let (mut store, _) = open(&disk, Lsn::ZERO, Lsn::ZERO, Lsn::ZERO).await;
            store.write(Lsn::ZERO, &wal).unwrap();
            store.flush().await.unwrap();
            disk.sync_dir().await.unwrap();
            // Flip a bit inside record 20 (its payload).
            let at = starts[20].0 + 100;
            let byte = disk.peek("wal/00000000", at, 1).unwrap()[0];
            disk.write("wal/00000000", at, &[byte ^ 4]).unwrap();
            let seg = SegmentSize::DEFAULT;
            let damaged =
                WalStore::recover(disk.clone(), seg, (Lsn::ZERO, Lsn::ZERO), starts[30], false);
            assert!(matches!(damaged.await, Ok(Recovered::Damaged(l)) if l == starts[20]));
            let (store, cut) = open(&disk, Lsn::ZERO, Lsn::ZERO, starts[10]).await;
            assert_eq!((cut, store.flush_lsn()), (Some(starts[20]), starts[20]));
        });
    }

    #[test]
    fn a_read_error_fails_recovery_unless_taken_for_the_end() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        rt.block_on(async {
            let disk = Disk::new(1, DiskConfig::default(), 1, None);
            let (wal, _) = records(50);
            let (mut store, _) = open(&disk, Lsn::ZERO, Lsn::ZERO, Lsn::ZERO).await;
            store.write(Lsn::ZERO, &wal).unwrap();
            store.flush().await.unwrap();
            disk.sync_dir().await.unwrap();
            // pick 7: the one file, its second sector.
            disk.fail_reads(7, 1, None).unwrap();
            let seg = SegmentSize::DEFAULT;
            let end = Lsn(wal.len() as u64);
            let honest = WalStore::recover(disk.clone(), seg, (Lsn::ZERO, Lsn::ZERO), end, false);
            assert!(honest.await.is_err(), "a read error is not the end of the WAL");
            let buggy = WalStore::recover(disk.clone(), seg, (Lsn::ZERO, Lsn::ZERO), end, true);
            match buggy.await {
                Ok(Recovered::Store(store, Some(cut))) => {
                    assert!(cut < Lsn(8192) && store.flush_lsn() == cut, "cut at {cut}");
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
