//! Real Postgres WAL as a lakesim workload: `lakesim import-wal` turns `pg_waldump` output
//! into a trace file, and `[workload] kind = "pg-trace"` replays it.
//!
//! **The trace file** is text, one item per line, in WAL order (`#` lines are comments; the
//! importer writes what it read and the captured run's totals there):
//!
//! ```text
//! P <page> <lower> <upper>      a page that existed when the capture started, with its
//!                               pd_lower and pd_upper (its free-space hole lies between)
//! W <xid> <page> <len> [F]      a record of <len> bytes (without block images) changing
//!                               <page>; F: it carried a full-page image in the capture
//! C <xid>                       transaction <xid> committed
//! A <xid>                       transaction <xid> aborted
//! K                             a checkpoint's redo point
//! ```
//!
//! Pages are numbered densely: first those of the `P` lines, in the order of `--pages`, then
//! new ones as the WAL first touches them (a page is a relation file, fork and block). A
//! record that changes several blocks becomes one `W` per block, its length split evenly.
//! Records that change no block and are neither commit, abort nor checkpoint (running-xacts
//! snapshots, locks of the standby) are counted in the header but not replayed.
//!
//! **Replay** keeps each record's page and size: a `W` becomes a page delta of `<len>` bytes
//! in total (lakesim's record header included). Records of a transaction are logged together
//! when its commit comes, as the transactions commit in the capture; records with xid 0
//! (pruning, index maintenance) are logged as they come. With `full_page_writes` off the
//! captured images (`F`) are dropped; with it on, lakesim logs images by its own rule (the
//! first change of a page after each `K`). The database first loads every `P` page with its
//! bytes outside the hole, so that images leave out what Postgres's left out.

use anyhow::{bail, Context, Result};
use lakesim_nodes::compute::workload::{DeltaSpec, WorkItem, WorkSource};
use lakesim_nodes::page::CONTENT_SIZE;
use lakesim_nodes::wal::HEADER_LEN;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

const MAGIC: &str = "# lakesim pg-trace v1";
/// Postgres's page header is 24 bytes, lakesim's 12 (see `tpcb`).
const PG_HEADER_SHIFT: u16 = 12;
/// A delta record's header and fixed payload.
const DELTA_OVERHEAD: u32 = (HEADER_LEN + 8) as u32;

/// One item of a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Page {
        page: u32,
        lower: u16,
        upper: u16,
    },
    Write {
        xid: u32,
        page: u32,
        len: u32,
        fpi: bool,
    },
    Commit {
        xid: u32,
    },
    Abort {
        xid: u32,
    },
    Checkpoint,
}

/// A trace, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    pub items: Vec<Item>,
    /// The header's `key: value` comments (what was captured, and its totals).
    pub header: BTreeMap<String, String>,
}

impl Trace {
    pub fn load(path: &Path) -> Result<Trace> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read trace {}", path.display()))?;
        Trace::parse(&text).with_context(|| format!("trace {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Trace> {
        let mut lines = text.lines().enumerate();
        if lines.next().map(|(_, l)| l) != Some(MAGIC) {
            bail!("not a lakesim pg-trace (first line must be '{MAGIC}')");
        }
        let (mut items, mut header) = (Vec::new(), BTreeMap::new());
        for (i, line) in lines {
            if let Some(c) = line.strip_prefix("# ") {
                if let Some((k, v)) = c.split_once(": ") {
                    header.insert(k.to_string(), v.to_string());
                }
                continue;
            }
            let item = parse_item(line).with_context(|| format!("line {}: '{line}'", i + 1))?;
            items.push(item);
        }
        Ok(Trace { items, header })
    }

    /// Pages that existed at the start: the replay loads each in one transaction.
    pub fn start_pages(&self) -> u64 {
        self.items
            .iter()
            .filter(|i| matches!(i, Item::Page { .. }))
            .count() as u64
    }

    /// A number the header gives.
    pub fn header_number(&self, key: &str) -> Option<f64> {
        self.header
            .get(key)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

fn parse_item(line: &str) -> Result<Item> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize| -> Result<u32> {
        f.get(i)
            .context("missing field")?
            .parse()
            .context("not a number")
    };
    Ok(match f.first().copied() {
        Some("P") => Item::Page {
            page: num(1)?,
            lower: num(2)? as u16,
            upper: num(3)? as u16,
        },
        Some("W") => Item::Write {
            xid: num(1)?,
            page: num(2)?,
            len: num(3)?,
            fpi: f.get(4) == Some(&"F"),
        },
        Some("C") => Item::Commit { xid: num(1)? },
        Some("A") => Item::Abort { xid: num(1)? },
        Some("K") => Item::Checkpoint,
        _ => bail!("unknown item: use P, W, C, A or K"),
    })
}

/// The client that replays a trace: the load, a checkpoint, then the captured work.
pub struct Replay {
    trace: Arc<Trace>,
    next: usize,
    loaded: bool,
    /// Records of transactions not yet committed.
    open: BTreeMap<u32, Vec<DeltaSpec>>,
    /// Where the next write of each page goes: existing pages are written over their tuples,
    /// new pages fill from the back, as Postgres fills heap pages.
    upper: BTreeMap<u32, u16>,
    ready: std::collections::VecDeque<WorkItem>,
}

impl Replay {
    pub fn new(trace: Arc<Trace>) -> Replay {
        Replay {
            trace,
            next: 0,
            loaded: false,
            open: BTreeMap::new(),
            upper: BTreeMap::new(),
            ready: Default::default(),
        }
    }

    fn write(&mut self, page: u32, len: u32) -> DeltaSpec {
        let data = len
            .saturating_sub(DELTA_OVERHEAD)
            .clamp(1, CONTENT_SIZE as u32) as u16;
        let upper = self.upper.entry(page).or_insert(CONTENT_SIZE as u16);
        let at = upper.saturating_sub(data);
        if *upper == CONTENT_SIZE as u16 || at > 0 {
            *upper = at.max(1);
        }
        DeltaSpec {
            page,
            offset: at,
            len: data,
            seed: (len as u8) | 1,
        }
    }

    fn load_page(&mut self, page: u32, lower: u16, upper: u16) -> WorkItem {
        let lower = lower
            .saturating_sub(PG_HEADER_SHIFT)
            .clamp(1, CONTENT_SIZE as u16);
        let upper = upper
            .saturating_sub(PG_HEADER_SHIFT)
            .clamp(lower, CONTENT_SIZE as u16);
        self.upper.insert(page, upper.max(1));
        let mut deltas = vec![DeltaSpec {
            page,
            offset: 0,
            len: lower,
            seed: 7,
        }];
        if upper < CONTENT_SIZE as u16 {
            deltas.push(DeltaSpec {
                page,
                offset: upper,
                len: CONTENT_SIZE as u16 - upper,
                seed: 11,
            });
        }
        WorkItem::Txn { deltas }
    }
}

impl WorkSource for Replay {
    fn next(&mut self) -> Option<WorkItem> {
        while self.ready.is_empty() {
            let item = self.trace.items.get(self.next)?.clone();
            self.next += 1;
            match item {
                Item::Page { page, lower, upper } => {
                    let load = self.load_page(page, lower, upper);
                    self.ready.push_back(load);
                }
                Item::Write { xid, page, len, .. } => {
                    if !self.loaded {
                        self.loaded = true;
                        self.ready.push_back(WorkItem::Checkpoint);
                    }
                    let delta = self.write(page, len);
                    match xid {
                        0 => self.ready.push_back(WorkItem::Records {
                            deltas: vec![delta],
                        }),
                        _ => self.open.entry(xid).or_default().push(delta),
                    }
                }
                Item::Commit { xid } => {
                    let deltas = self.open.remove(&xid).unwrap_or_default();
                    self.ready.push_back(WorkItem::Txn { deltas });
                }
                Item::Abort { xid } => {
                    self.open.remove(&xid);
                }
                Item::Checkpoint => {
                    if self.loaded {
                        self.ready.push_back(WorkItem::Checkpoint);
                    }
                }
            }
        }
        self.ready.pop_front()
    }
}

/// One record as `pg_waldump` prints it (with `-b`, block references on their own lines).
#[derive(Default, Debug)]
struct Record {
    rmgr: String,
    rec: u32,
    tot: u32,
    xid: u32,
    desc: String,
    blocks: Vec<(String, bool)>,
}

/// What `import-wal` read, for the header and the caller.
#[derive(Default, Debug)]
pub struct ImportStats {
    pub records: u64,
    pub commits: u64,
    pub rec_bytes: u64,
    pub tot_bytes: u64,
    pub fpis: u64,
    pub checkpoints: u64,
    pub skipped_records: u64,
    pub pages: u64,
}

/// Reads a file, gunzipping it when its name ends in `.gz`.
pub fn read_maybe_gz(path: &Path) -> Result<String> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut text = String::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .with_context(|| format!("{} is not gzipped text", path.display()))?;
    } else {
        std::io::BufReader::new(file)
            .read_to_string(&mut text)
            .with_context(|| format!("{} is not text", path.display()))?;
    }
    Ok(text)
}

/// Turns `pg_waldump -b` output (and the capture's `pages.tsv`: `spc db relfilenode relname
/// blk lower upper`) into a trace file's text.
pub fn import(
    waldump: &str,
    pages_tsv: Option<&str>,
    source: &str,
) -> Result<(String, ImportStats)> {
    let mut ids: BTreeMap<String, u32> = BTreeMap::new();
    let mut body = String::new();
    let mut stats = ImportStats::default();
    if let Some(tsv) = pages_tsv {
        for (i, line) in tsv.lines().enumerate().skip(1) {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() != 7 {
                bail!("pages file line {}: want 7 tab-separated fields (spc db relfilenode relname blk lower upper)", i + 1);
            }
            let key = format!("{}/{}/{} main {}", f[0], f[1], f[2], f[4]);
            let id = ids.len() as u32;
            ids.insert(key, id);
            writeln!(body, "P {id} {} {}", f[5], f[6])?;
        }
    }
    let mut redo_points = Vec::new();
    let mut records: Vec<(u64, Record)> = Vec::new();
    for (i, line) in waldump.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("rmgr: ") {
            let (lsn, rec) = parse_record(rest)
                .with_context(|| format!("pg_waldump line {}: '{line}'", i + 1))?;
            if let Some(redo) = rec
                .desc
                .split("redo ")
                .nth(1)
                .filter(|_| rec.desc.starts_with("CHECKPOINT"))
            {
                redo_points.push(parse_lsn(redo.split([' ', ';']).next().unwrap_or(""))?);
            }
            records.push((lsn, rec));
        } else if let Some(b) = line.trim_start().strip_prefix("blkref #") {
            let last = records.last_mut().with_context(|| {
                format!(
                    "pg_waldump line {}: a block reference before any record",
                    i + 1
                )
            })?;
            last.1.blocks.push(parse_blkref(b));
        }
    }
    redo_points.sort_unstable();
    let mut redo = redo_points.into_iter().peekable();
    for (lsn, rec) in &records {
        while redo.next_if(|r| r <= lsn).is_some() {
            stats.checkpoints += 1;
            body.push_str("K\n");
        }
        stats.records += 1;
        stats.rec_bytes += u64::from(rec.rec);
        stats.tot_bytes += u64::from(rec.tot);
        emit(rec, &mut ids, &mut body, &mut stats)?;
    }
    stats.pages = ids.len() as u64;
    let mut out = String::new();
    writeln!(out, "{MAGIC}")?;
    writeln!(out, "# source: {source}")?;
    writeln!(out, "# records: {}", stats.records)?;
    writeln!(out, "# transactions: {} (commit records)", stats.commits)?;
    writeln!(
        out,
        "# rec_bytes: {} (records without block images)",
        stats.rec_bytes
    )?;
    writeln!(
        out,
        "# tot_bytes: {} (whole records, images included)",
        stats.tot_bytes
    )?;
    writeln!(out, "# full_page_images: {}", stats.fpis)?;
    writeln!(out, "# checkpoints: {}", stats.checkpoints)?;
    writeln!(
        out,
        "# records_not_replayed: {} (no block, not commit, abort or checkpoint)",
        stats.skipped_records
    )?;
    writeln!(out, "# pages: {}", stats.pages)?;
    out.push_str(&body);
    Ok((out, stats))
}

fn emit(
    rec: &Record,
    ids: &mut BTreeMap<String, u32>,
    out: &mut String,
    stats: &mut ImportStats,
) -> Result<()> {
    if rec.rmgr == "Transaction" && rec.desc.starts_with("COMMIT") {
        stats.commits += 1;
        return Ok(writeln!(out, "C {}", rec.xid)?);
    }
    if rec.rmgr == "Transaction" && rec.desc.starts_with("ABORT") {
        return Ok(writeln!(out, "A {}", rec.xid)?);
    }
    if rec.blocks.is_empty() {
        stats.skipped_records += 1;
        return Ok(());
    }
    let n = rec.blocks.len() as u32;
    for (i, (block, fpi)) in rec.blocks.iter().enumerate() {
        let next = ids.len() as u32;
        let id = *ids.entry(block.clone()).or_insert(next);
        let len = rec.rec / n + if i == 0 { rec.rec % n } else { 0 };
        stats.fpis += u64::from(*fpi);
        writeln!(
            out,
            "W {} {id} {len}{}",
            rec.xid,
            if *fpi { " F" } else { "" }
        )?;
    }
    Ok(())
}

/// `Heap        len (rec/tot):     72/    72, tx:        736, lsn: 0/0216D870, prev ..., desc: ...`
fn parse_record(rest: &str) -> Result<(u64, Record)> {
    let rmgr = rest
        .split_whitespace()
        .next()
        .context("no resource manager")?
        .to_string();
    let field = |name: &str| -> Result<&str> {
        let at = rest.find(name).with_context(|| format!("no '{name}'"))? + name.len();
        Ok(rest[at..].trim_start())
    };
    let lens = field("len (rec/tot):")?;
    let (rec, tot) = lens
        .split_once(',')
        .context("bad len")?
        .0
        .split_once('/')
        .context("bad len")?;
    let xid = field("tx:")?.split(',').next().context("bad tx")?.trim();
    let lsn = field("lsn:")?.split(',').next().context("bad lsn")?.trim();
    let desc = field("desc:").unwrap_or("");
    let (desc, inline) = match desc.split_once(", blkref #") {
        Some((d, b)) => (d, Some(b)),
        None => (desc, None),
    };
    let mut record = Record {
        rmgr,
        rec: rec.trim().parse().context("bad rec length")?,
        tot: tot.trim().parse().context("bad tot length")?,
        xid: xid.parse().context("bad xid")?,
        desc: desc.trim().to_string(),
        blocks: Vec::new(),
    };
    for b in inline.into_iter().flat_map(|b| b.split(", blkref #")) {
        record.blocks.push(parse_blkref(b));
    }
    Ok((parse_lsn(lsn)?, record))
}

/// `0: rel 1663/5/16396 fork main blk 1375 (FPW); hole: ...` -> ("1663/5/16396 main 1375", fpw)
fn parse_blkref(b: &str) -> (String, bool) {
    let words: Vec<&str> = b.split_whitespace().collect();
    let after = |k: &str| {
        words
            .iter()
            .position(|w| *w == k)
            .and_then(|i| words.get(i + 1))
            .copied()
    };
    let rel = after("rel").unwrap_or("?");
    let fork = after("fork").unwrap_or("main");
    let blk = after("blk")
        .unwrap_or("0")
        .trim_end_matches(|c: char| !c.is_ascii_digit());
    let fpw = words
        .iter()
        .any(|w| w.trim_matches(|c| c == '(' || c == ')' || c == ';') == "FPW");
    (format!("{rel} {fork} {blk}"), fpw)
}

fn parse_lsn(s: &str) -> Result<u64> {
    let (hi, lo) = s
        .split_once('/')
        .with_context(|| format!("bad LSN '{s}'"))?;
    let hi = u64::from_str_radix(hi, 16).with_context(|| format!("bad LSN '{s}'"))?;
    let lo = u64::from_str_radix(lo, 16).with_context(|| format!("bad LSN '{s}'"))?;
    Ok(hi << 32 | lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "\
rmgr: Heap        len (rec/tot):    171/   171, tx:        736, lsn: 0/0216D780, prev 0/0216D748, desc: UPDATE off 1 xmax 736 flags 0x03 ; new off 22 xmax 0
\tblkref #0: rel 1663/5/16396 fork main blk 1639
\tblkref #1: rel 1663/5/16396 fork main blk 1375 (FPW); hole: offset: 268, length: 116, compression saved: 0, method: unknown
rmgr: XLOG        len (rec/tot):    114/   114, tx:          0, lsn: 0/0216D900, prev 0/0216D780, desc: CHECKPOINT_ONLINE redo 0/216D800; tli 1; prev tli 1
rmgr: Standby     len (rec/tot):     50/    50, tx:          0, lsn: 0/0216D978, prev 0/0216D900, desc: RUNNING_XACTS nextXid 737
rmgr: Transaction len (rec/tot):     34/    34, tx:        736, lsn: 0/0216D9B0, prev 0/0216D978, desc: COMMIT 2026-11-27 04:18:49.577047 UTC
";

    #[test]
    fn import_splits_blocks_places_redo_points_and_counts() {
        let pages = "spc\tdb\trelfilenode\trelname\tblk\tlower\tupper\n1663\t5\t16396\tpgbench_accounts\t1375\t268\t384\n";
        let (text, stats) = import(DUMP, Some(pages), "test").unwrap();
        let trace = Trace::parse(&text).unwrap();
        let body: Vec<&Item> = trace.items.iter().collect();
        assert_eq!(
            body,
            vec![
                &Item::Page {
                    page: 0,
                    lower: 268,
                    upper: 384
                },
                &Item::Write {
                    xid: 736,
                    page: 1,
                    len: 86,
                    fpi: false
                },
                &Item::Write {
                    xid: 736,
                    page: 0,
                    len: 85,
                    fpi: true
                },
                &Item::Checkpoint,
                &Item::Commit { xid: 736 },
            ]
        );
        assert_eq!(
            (stats.commits, stats.fpis, stats.skipped_records),
            (1, 1, 2)
        );
        assert_eq!(trace.header_number("transactions"), Some(1.0));
    }

    #[test]
    fn replay_loads_then_commits_in_commit_order() {
        let text = format!("{MAGIC}\nP 0 268 384\nW 5 0 72\nW 6 1 79\nW 0 0 63\nC 6\nC 5\nK\n");
        let mut r = Replay::new(Arc::new(Trace::parse(&text).unwrap()));
        let items: Vec<WorkItem> = std::iter::from_fn(|| r.next()).collect();
        assert!(matches!(items[0], WorkItem::Txn { ref deltas } if deltas.len() == 2));
        assert_eq!(items[1], WorkItem::Checkpoint);
        assert!(matches!(items[2], WorkItem::Records { .. }));
        let WorkItem::Txn { deltas } = &items[3] else {
            panic!()
        };
        assert_eq!(
            (deltas[0].page, deltas[0].len as u32 + DELTA_OVERHEAD),
            (1, 79)
        );
        assert!(matches!(&items[4], WorkItem::Txn { deltas } if deltas[0].page == 0));
        assert_eq!(items[5], WorkItem::Checkpoint);
        assert_eq!(items.len(), 6);
    }

    #[test]
    fn bad_traces_are_refused_with_the_line() {
        assert!(Trace::parse("hello").is_err());
        let e = Trace::parse(&format!("{MAGIC}\nX 1\n")).unwrap_err();
        assert!(format!("{e:#}").contains("line 2"));
    }
}
