//! Campaigns: many seeds on parallel runtimes, every failure saved as a replayable seed file,
//! a summary at the end (on the terminal and as `summary.json`).
//!
//! Seeds are `start_seed + i`; shard `K/N` takes the `i` with `i % N == K - 1`, so N machines
//! with shards 1/N..N/N cover exactly the seeds of the unsharded campaign. Each seed runs on its
//! own OS thread (see the runner), so `--jobs J` means J seeds at once.

use crate::config::Config;
use crate::plan::Plan;
use crate::report::{describe_config, describe_faults, Setup};
use crate::runner::{run_seed, RunOptions, RunOutcome};
use crate::seedfile;
use anyhow::{bail, Context, Result};
use lakesim_nodes::bugs::BugSet;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One slice of a campaign: shard `index` (1-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("shard '{s}': expected K/N with 1 <= K <= N, like 2/8");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// How long a campaign runs.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    Seeds(u64),
    Wall(Duration),
}

pub struct Campaign {
    pub setup: Setup,
    pub budget: Budget,
    pub jobs: usize,
    pub shard: Shard,
    pub start_seed: u64,
    pub out: PathBuf,
}

/// The end-of-campaign summary (also written as JSON).
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub bug: Option<String>,
    pub shard: String,
    pub seeds_run: u64,
    pub failures: u64,
    pub failures_by_invariant: BTreeMap<String, u64>,
    /// For each invariant, the first failing seed and how many seeds ran up to and with it.
    pub first_failure: BTreeMap<String, (u64, u64)>,
    pub wall_seconds: f64,
    pub seeds_per_second: f64,
    pub simulated_seconds_per_wall_second: f64,
    pub interrupted: bool,
}

struct Shared {
    summary: Mutex<Summary>,
    sim_seconds: Mutex<f64>,
    next: AtomicU64,
    done: AtomicU64,
    stop: Arc<AtomicBool>,
}

/// Parses a duration like `90s`, `10m`, `2h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("duration '{s}': expected a number with s, m or h, like 90s or 10m");
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(bad()),
    };
    if secs == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs))
}

impl Campaign {
    /// Runs the campaign; `stop` set (by Ctrl-C) ends it after the seeds in flight.
    pub fn run(&self, stop: Arc<AtomicBool>) -> Result<Summary> {
        let (name, config, bugs) = self.setup.resolve()?;
        prepare_out_dir(&self.out)?;
        let shared = Arc::new(Shared {
            summary: Mutex::new(Summary {
                scenario: name.clone(),
                bug: self.setup.bug.clone(),
                shard: format!("{}/{}", self.shard.index, self.shard.count),
                ..Summary::default()
            }),
            sim_seconds: Mutex::new(0.0),
            next: AtomicU64::new(0),
            done: AtomicU64::new(0),
            stop,
        });
        let started = Instant::now();
        let progress = Progress::new(self.budget);
        std::thread::scope(|scope| {
            for _ in 0..self.jobs.max(1) {
                scope.spawn(|| self.worker(&config, &bugs, &shared, started, &progress));
            }
        });
        progress.finish();
        let mut summary = std::mem::take(&mut *shared.summary.lock().unwrap());
        let wall = started.elapsed().as_secs_f64();
        summary.wall_seconds = wall;
        summary.seeds_per_second = summary.seeds_run as f64 / wall.max(1e-9);
        summary.simulated_seconds_per_wall_second =
            *shared.sim_seconds.lock().unwrap() / wall.max(1e-9);
        summary.interrupted = shared.stop.load(Ordering::Relaxed);
        let json = serde_json::to_string_pretty(&summary)?;
        write_atomic(&self.out.join("summary.json"), json.as_bytes())?;
        Ok(summary)
    }

    /// The seed of the `i`-th run of this shard.
    fn seed_of(&self, i: u64) -> u64 {
        self.start_seed
            .wrapping_add(i.wrapping_mul(self.shard.count))
            .wrapping_add(self.shard.index - 1)
    }

    fn count_for_shard(&self, seeds: u64) -> u64 {
        let k = self.shard.index - 1;
        seeds / self.shard.count + u64::from(seeds % self.shard.count > k)
    }

    fn worker(
        &self,
        config: &Config,
        bugs: &BugSet,
        shared: &Shared,
        started: Instant,
        progress: &Progress,
    ) {
        loop {
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            let i = shared.next.fetch_add(1, Ordering::Relaxed);
            match self.budget {
                Budget::Seeds(n) if i >= self.count_for_shard(n) => return,
                Budget::Wall(d) if started.elapsed() >= d => return,
                _ => {}
            }
            let seed = self.seed_of(i);
            let plan = Plan::generate(seed, config);
            let opts = RunOptions {
                bugs: bugs.clone(),
                keep_trace: false,
            };
            let outcome = run_seed(seed, &plan, &opts);
            *shared.sim_seconds.lock().unwrap() += outcome.sim_time.as_secs_f64();
            let done = shared.done.fetch_add(1, Ordering::Relaxed) + 1;
            if outcome.violation.is_some() {
                self.record_failure(config, &plan, &outcome, shared, i + 1, progress);
            }
            shared.summary.lock().unwrap().seeds_run += 1;
            let failures = shared.summary.lock().unwrap().failures;
            progress.update(done, failures, started.elapsed());
        }
    }

    fn record_failure(
        &self,
        config: &Config,
        plan: &Plan,
        outcome: &RunOutcome,
        shared: &Shared,
        seeds_so_far: u64,
        progress: &Progress,
    ) {
        let v = outcome.violation.as_ref().unwrap();
        let file = seedfile::record(
            outcome.seed,
            self.setup.scenario.as_deref().or(self
                .setup
                .config
                .is_none()
                .then_some(crate::scenario::DEFAULT)),
            self.setup.config.is_some().then_some(config),
            self.setup.bug.as_deref(),
            self.setup.full_page_writes,
            Some(plan),
            outcome,
        );
        let path = self
            .out
            .join(format!("fail-{}-{}.toml", outcome.seed, v.invariant));
        let saved = seedfile::save(&path, &file);
        let mut s = shared.summary.lock().unwrap();
        s.failures += 1;
        *s.failures_by_invariant
            .entry(v.invariant.to_string())
            .or_default() += 1;
        s.first_failure
            .entry(v.invariant.to_string())
            .or_insert((outcome.seed, seeds_so_far));
        let line = match saved {
            Ok(()) => format!(
                "FAIL seed {}: {} caught by {} ({}); saved {}; replay: lakesim replay {}",
                outcome.seed,
                v.invariant,
                v.caught_by,
                v.detail,
                path.display(),
                path.display()
            ),
            Err(e) => format!(
                "FAIL seed {}: {} (could not save: {e:#})",
                outcome.seed, v.invariant
            ),
        };
        progress.println(&line);
        tracing::debug!(config = %describe_config(plan), faults = %describe_faults(plan), "failure");
    }
}

fn prepare_out_dir(out: &Path) -> Result<()> {
    if out.exists() && !out.is_dir() {
        bail!("--out {}: exists and is not a directory", out.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create --out {}", out.display()))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// A progress bar on a terminal, plain lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_line: Mutex<Instant>,
}

impl Progress {
    fn new(budget: Budget) -> Progress {
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = match budget {
                Budget::Seeds(n) => indicatif::ProgressBar::new(n),
                Budget::Wall(_) => indicatif::ProgressBar::new_spinner(),
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} seeds {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Progress {
            bar,
            last_line: Mutex::new(Instant::now()),
        }
    }

    fn update(&self, done: u64, failures: u64, elapsed: Duration) {
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(format!("{rate:.0} seeds/s, {failures} failures"));
            }
            None => {
                let mut last = self.last_line.lock().unwrap();
                if last.elapsed() >= Duration::from_secs(5) {
                    *last = Instant::now();
                    println!("{done} seeds, {rate:.0} seeds/s, {failures} failures");
                }
            }
        }
    }

    fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
