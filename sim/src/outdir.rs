//! A campaign's output directory: what it holds and who may write it.
//!
//! Layout: `campaign.json` (the manifest: what the campaign runs, written once when it starts),
//! `seeds.jsonl` (one JSON line per finished seed, appended as seeds end), a failure file per
//! failing seed (`fail-SEED-INVARIANT.toml`), `summary.json` and `junit.xml` (rewritten at the
//! end of each session from `seeds.jsonl`), and `.lock`.
//!
//! Guarantees: nothing a campaign saved is lost or overwritten by a later one. A directory that
//! holds anything but a campaign's own files is refused; a directory holding an earlier
//! campaign is refused unless `--resume` asks to continue it, with the same setup; an advisory
//! lock on `.lock` keeps a second campaign out while one runs (the kernel drops it when the
//! process ends, however it ends). Seeds keep their full u64 range in every file.

use crate::files;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "campaign.json";
pub const SEEDS_LOG: &str = "seeds.jsonl";
pub const SUMMARY: &str = "summary.json";
pub const JUNIT: &str = "junit.xml";
const LOCK: &str = ".lock";

/// What a campaign runs: written when it starts, compared on `--resume`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub lakesim_version: String,
    /// The scenario name, or the config file's path as given.
    pub scenario: String,
    /// The configuration the seeds run with (a config file's content, so that an edit of the
    /// file between sessions is noticed).
    pub config: crate::config::Config,
    pub bug: Option<String>,
    pub full_page_writes: bool,
    pub start_seed: u64,
    /// `K/N`.
    pub shard: String,
    /// How many seeds of the whole campaign (before sharding), or none for a wall-clock budget.
    pub seeds: Option<u64>,
}

/// One finished seed, as `seeds.jsonl` holds it (one JSON object per line).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedLine {
    pub seed: u64,
    pub scenario: String,
    pub bug: Option<String>,
    /// `ok` or `fail`.
    pub result: String,
    pub invariant: Option<String>,
    /// What caught the failure: `check NAME`, `assertion at FILE:LINE`, `budget ...`.
    pub check: Option<String>,
    /// 16 hex digits.
    pub trace_hash: String,
    pub wall_ms: u64,
    pub simulated_ms: u64,
    pub events: u64,
    /// The most memory the seed held at once, MiB.
    pub peak_mib: f64,
    /// The coverage probes the seed reached, by name.
    #[serde(default)]
    pub probes: Vec<String>,
    /// The failure file, relative to the directory.
    pub file: Option<String>,
}

/// An output directory opened for one campaign session; holds the lock until dropped.
pub struct OutDir {
    pub path: PathBuf,
    _lock: std::fs::File,
    log: std::fs::File,
    /// Seeds an earlier session of this campaign finished.
    pub done: BTreeSet<u64>,
    /// Their lines, in the order they were written.
    pub earlier: Vec<SeedLine>,
}

impl OutDir {
    /// Opens `path` for a campaign described by `manifest`: a new or empty directory, or with
    /// `resume`, one that holds the same campaign.
    pub fn open(path: &Path, manifest: &Manifest, resume: bool) -> Result<OutDir> {
        if path.exists() && !path.is_dir() {
            bail!("--out {}: exists and is not a directory", path.display());
        }
        std::fs::create_dir_all(path)
            .with_context(|| format!("--out {}: cannot create it", path.display()))?;
        // Looked at before the lock is taken, so that a refused directory gains no file.
        if read_manifest(path)?.is_none() {
            refuse_foreign_files(path)?;
        }
        let lock = take_lock(path)?;
        // Looked at again under the lock: another campaign may have started here meanwhile.
        match (read_manifest(path)?, resume) {
            (None, _) => {
                let json = serde_json::to_string_pretty(manifest)? + "\n";
                files::write_new(&path.join(MANIFEST), json.as_bytes())?;
            }
            (Some(earlier), true) => same_campaign(path, &earlier, manifest)?,
            (Some(earlier), false) => bail!(
                "--out {} holds an earlier campaign ({}); its results are kept: pass --resume to continue it, or choose another --out",
                path.display(),
                describe(&earlier)
            ),
        }
        let earlier = read_seed_lines(&path.join(SEEDS_LOG))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path.join(SEEDS_LOG))
            .with_context(|| format!("cannot open {}", path.join(SEEDS_LOG).display()))?;
        Ok(OutDir {
            path: path.to_path_buf(),
            _lock: lock,
            log,
            done: earlier.iter().map(|l| l.seed).collect(),
            earlier,
        })
    }

    /// Appends one seed's line. One `write` per line, so that lines never interleave; a line
    /// cut short by a crash is skipped when the log is read.
    pub fn append(&mut self, line: &SeedLine) -> Result<()> {
        let mut text = serde_json::to_string(line)?;
        text.push('\n');
        self.log
            .write_all(text.as_bytes())
            .with_context(|| format!("cannot append to {}", self.path.join(SEEDS_LOG).display()))
    }

    /// Makes the appended lines durable.
    pub fn sync(&self) -> Result<()> {
        files::sync_file_and_dir(&self.log, &self.path.join(SEEDS_LOG))
    }

    /// The manifest of the campaign here.
    pub fn manifest(&self) -> Result<Manifest> {
        read_manifest(&self.path)?.context("the manifest went missing while the campaign ran")
    }
}

fn take_lock(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "--out {}: another lakesim campaign is running there (it holds {}); wait for it or choose another --out",
            dir.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// The manifest of the campaign in `dir`, if one is there.
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{}: not a campaign manifest ({e}); the directory is left as it is: choose another --out", path.display()))
}

/// A directory with no manifest may hold nothing but a lock left by a campaign that stopped
/// before it wrote one.
fn refuse_foreign_files(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?;
    for entry in entries {
        let name = entry?.file_name();
        if name != LOCK {
            bail!(
                "--out {}: not empty and not a lakesim campaign (it holds {}); nothing there is touched: choose a new or empty directory",
                dir.display(),
                name.to_string_lossy()
            );
        }
    }
    Ok(())
}

/// `--resume` continues a campaign only with the setup it started with (its budget may grow).
fn same_campaign(dir: &Path, earlier: &Manifest, now: &Manifest) -> Result<()> {
    let differs: Vec<String> = [
        ("scenario or --config", earlier.scenario != now.scenario),
        ("configuration", earlier.config != now.config),
        ("--bug", earlier.bug != now.bug),
        (
            "--full-page-writes",
            earlier.full_page_writes != now.full_page_writes,
        ),
        ("--start-seed", earlier.start_seed != now.start_seed),
        ("--shard", earlier.shard != now.shard),
    ]
    .into_iter()
    .filter(|(_, d)| *d)
    .map(|(what, _)| what.to_string())
    .collect();
    if !differs.is_empty() {
        bail!(
            "--resume: the campaign in {} ran {}; this command differs in {}: give the same setup, or choose another --out",
            dir.display(),
            describe(earlier),
            differs.join(", ")
        );
    }
    Ok(())
}

fn describe(m: &Manifest) -> String {
    let mut s = format!("scenario {}", m.scenario);
    if let Some(b) = &m.bug {
        s += &format!(", --bug {b}");
    }
    if m.full_page_writes {
        s += ", --full-page-writes";
    }
    s += &format!(", --start-seed {}, --shard {}", m.start_seed, m.shard);
    if let Some(n) = m.seeds {
        s += &format!(", --seeds {n}");
    }
    s
}

/// The seed lines of a log; a last line cut short by a crash is skipped (its seed runs again).
pub fn read_seed_lines(path: &Path) -> Result<Vec<SeedLine>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<SeedLine>(line) {
            Ok(l) => out.push(l),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => bail!("{} line {}: {e}", path.display(), i + 1),
        }
    }
    Ok(out)
}
