//! Campaigns: many seeds on parallel runtimes, every failure saved as a replayable seed file,
//! one result line per seed, a summary at the end (on the terminal and as `summary.json`).
//!
//! Seeds are `start_seed + i`; shard `K/N` takes the `i` with `i % N == K - 1`, so N machines
//! with shards 1/N..N/N cover exactly the seeds of the unsharded campaign. Each seed runs on its
//! own OS thread (see the runner), so `--jobs J` means J seeds at once.
//!
//! A campaign never loses what it found: its directory is its own (see [`crate::outdir`]),
//! failure files are written before the seed's line, both durably; a stop request (a signal,
//! stdout closed) cuts the seeds in flight within milliseconds and still writes the summary; a
//! seed past its wall-time or memory budget is a `budget` failure and the campaign goes on.

use crate::budget::Limits;
use crate::config::Config;
use crate::determinism;
use crate::outdir::{Manifest, OutDir, SeedLine, SUMMARY};
use crate::plan::Plan;
use crate::report::{shell_quote, Setup};
use crate::runner::{try_run_seed, RunOptions, RunOutcome};
use crate::seedfile;
use anyhow::{bail, Context, Result};
use lakesim_nodes::bugs::BugSet;
use lakesim_nodes::probe::Probe;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
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

impl Shard {
    /// The shard a job engine's environment names, when `--shard` is not given: a Kubernetes
    /// Indexed Job (`JOB_COMPLETION_INDEX`, 0-based, with `LAKESIM_SHARDS`), a Slurm array
    /// (`SLURM_ARRAY_TASK_ID` from `SLURM_ARRAY_TASK_MIN`, `SLURM_ARRAY_TASK_COUNT`), or an AWS
    /// Batch array (`AWS_BATCH_JOB_ARRAY_INDEX`, 0-based, with `LAKESIM_SHARDS`). Returns the
    /// shard and the variables it came from; `None` without any.
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<(Shard, String)>, String> {
        let number = |name: &str| -> Result<Option<u64>, String> {
            match var(name) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{name}={v:?}: expected a whole number")),
            }
        };
        let count_of = |source: &str, name: &str| -> Result<u64, String> {
            number(name)?.filter(|n| *n > 0).ok_or_else(|| {
                format!("{source} is set but {name} (the number of shards, at least 1) is not")
            })
        };
        let (index0, count, from) = if let Some(i) = number("JOB_COMPLETION_INDEX")? {
            let n = count_of("JOB_COMPLETION_INDEX", "LAKESIM_SHARDS")?;
            (
                i,
                n,
                format!("JOB_COMPLETION_INDEX={i} and LAKESIM_SHARDS={n}"),
            )
        } else if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
            let n = count_of("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT")?;
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let i = id.checked_sub(min).ok_or_else(|| {
                format!("SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}")
            })?;
            (i, n, format!("SLURM_ARRAY_TASK_ID={id}, SLURM_ARRAY_TASK_MIN={min} and SLURM_ARRAY_TASK_COUNT={n}"))
        } else if let Some(i) = number("AWS_BATCH_JOB_ARRAY_INDEX")? {
            let n = count_of("AWS_BATCH_JOB_ARRAY_INDEX", "LAKESIM_SHARDS")?;
            (
                i,
                n,
                format!("AWS_BATCH_JOB_ARRAY_INDEX={i} and LAKESIM_SHARDS={n}"),
            )
        } else {
            return Ok(None);
        };
        if index0 >= count {
            return Err(format!(
                "{from}: the index must be below the number of shards"
            ));
        }
        Ok(Some((
            Shard {
                index: index0 + 1,
                count,
            },
            from,
        )))
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// How long a campaign runs.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    Seeds(u64),
    Wall(Duration),
}

/// What each seed may spend before it is cut and recorded as a `budget` failure.
#[derive(Clone, Copy, Debug)]
pub struct SeedBudget {
    pub wall: Duration,
    pub memory_mib: u64,
}

pub struct Campaign {
    pub setup: Setup,
    pub budget: Budget,
    pub jobs: usize,
    pub shard: Shard,
    pub start_seed: u64,
    pub out: PathBuf,
    /// Continue the campaign in `out` rather than refuse it.
    pub resume: bool,
    /// Fail the campaign when a coverage probe stays unhit.
    pub require_probes: bool,
    /// Re-run this share (percent) of the seeds in the same process and compare trace hashes.
    pub check_determinism: u8,
    pub seed_budget: SeedBudget,
}

/// Why a campaign stopped before its budget ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    Signal = 1,
    StdoutClosed = 2,
    /// No thread could be started for a seed.
    NoThreads = 3,
}

impl StopReason {
    pub fn describe(self) -> &'static str {
        match self {
            StopReason::Signal => "interrupted by a signal",
            StopReason::StdoutClosed => "stdout was closed",
            StopReason::NoThreads => "no thread could be started for a seed",
        }
    }
}

/// A stop request shared by the signal handler, the console and the workers; the first
/// reason given is kept.
#[derive(Default)]
pub struct Stopper {
    flag: Arc<AtomicBool>,
    reason: AtomicU8,
}

impl Stopper {
    pub fn request(&self, why: StopReason) {
        let _ = self
            .reason
            .compare_exchange(0, why as u8, Ordering::SeqCst, Ordering::SeqCst);
        self.flag.store(true, Ordering::SeqCst);
    }

    pub fn reason(&self) -> Option<StopReason> {
        match self.reason.load(Ordering::SeqCst) {
            1 => Some(StopReason::Signal),
            2 => Some(StopReason::StdoutClosed),
            3 => Some(StopReason::NoThreads),
            _ => None,
        }
    }

    fn stopping(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}

/// Lines for stdout. A closed stdout (`lakesim fuzz | head -1`) is a stop request, never a
/// panic: the campaign still writes its summary.
pub struct Console {
    stop: Arc<Stopper>,
    closed: AtomicBool,
}

impl Console {
    pub fn new(stop: Arc<Stopper>) -> Console {
        Console {
            stop,
            closed: AtomicBool::new(false),
        }
    }

    pub fn line(&self, text: &str) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
            self.closed.store(true, Ordering::Relaxed);
            self.stop.request(StopReason::StdoutClosed);
        }
    }
}

/// The end-of-campaign summary (also written as JSON): the whole campaign, every session of it.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub bug: Option<String>,
    pub shard: String,
    pub start_seed: u64,
    /// Seeds of this shard the campaign asked for (none with a wall-clock budget).
    pub seeds_planned: Option<u64>,
    /// Seeds finished, in every session.
    pub seeds_run: u64,
    /// Seeds finished in this session.
    pub seeds_this_session: u64,
    pub failures: u64,
    pub failures_by_invariant: BTreeMap<String, u64>,
    /// For each invariant, the first failing seed and how many seeds ran up to and with it.
    pub first_failure: BTreeMap<String, (u64, u64)>,
    /// This session's wall time and rates.
    pub wall_seconds: f64,
    pub seeds_per_second: f64,
    pub simulated_seconds_per_wall_second: f64,
    /// Every planned seed ran (a wall-clock campaign is complete when its time ran out).
    pub complete: bool,
    pub interrupted: bool,
    /// Why it stopped early.
    pub stopped_by: Option<String>,
    /// Sessions that added to this directory, this one included.
    pub sessions: u64,
    /// For every coverage probe, how many seeds reached it.
    pub probes_hit: BTreeMap<String, u64>,
    /// The probes no seed reached.
    pub probes_never_hit: Vec<String>,
    /// Seeds this session ran twice to check their determinism (`--check-determinism`).
    pub determinism_rechecked: u64,
}

struct Shared {
    dir: Mutex<OutDir>,
    lines: Mutex<Vec<SeedLine>>,
    sim_seconds: Mutex<f64>,
    next: AtomicU64,
    done: AtomicU64,
    failures: AtomicU64,
    /// Seeds whose determinism was re-checked this session.
    rechecked: AtomicU64,
    stop: Arc<Stopper>,
    console: Console,
    last_sync: Mutex<Instant>,
}

/// Parses a duration like `90s`, `10m`, `2h` (at most 30 days).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!("duration '{s}': expected a whole number with s, m or h from 1s to 720h, like 90s or 10m")
    };
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(scale).ok_or_else(bad)?;
    if secs == 0 || secs > 720 * 3600 {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs))
}

impl Campaign {
    /// Runs the campaign until its budget is spent or `stop` is requested.
    pub fn run(&self, stop: Arc<Stopper>) -> Result<Summary> {
        let (name, config, bugs) = self.setup.resolve()?;
        let manifest = self.manifest(&name, &config);
        let dir = OutDir::open(&self.out, &manifest, self.resume)?;
        let earlier_sessions = read_sessions(&self.out);
        let shared = Arc::new(Shared {
            lines: Mutex::new(dir.earlier.clone()),
            dir: Mutex::new(dir),
            sim_seconds: Mutex::new(0.0),
            next: AtomicU64::new(0),
            done: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            rechecked: AtomicU64::new(0),
            console: Console::new(stop.clone()),
            stop,
            last_sync: Mutex::new(Instant::now()),
        });
        let started = Instant::now();
        let progress = Progress::new(self.budget);
        std::thread::scope(|scope| -> Result<()> {
            let mut started_workers = 0;
            for n in 0..self.jobs.max(1) {
                let spawned = std::thread::Builder::new()
                    .name(format!("worker-{n}"))
                    .spawn_scoped(scope, || {
                        self.worker(&config, &bugs, &shared, started, &progress)
                    });
                match spawned {
                    Ok(_) => started_workers += 1,
                    Err(e) if started_workers == 0 => {
                        bail!("--jobs {}: cannot start a worker thread: {e}", self.jobs)
                    }
                    Err(e) => {
                        eprintln!("lakesim: --jobs {}: started {started_workers} workers, then: {e}; going on with {started_workers}", self.jobs);
                        break;
                    }
                }
            }
            Ok(())
        })?;
        progress.finish();
        let shared = Arc::into_inner(shared).expect("the workers are done");
        let dir = shared.dir.into_inner().unwrap();
        dir.sync()?;
        let lines = shared.lines.into_inner().unwrap();
        let mut summary = self.summarize(&name, &lines, dir.earlier.len() as u64);
        let wall = started.elapsed().as_secs_f64();
        summary.wall_seconds = wall;
        summary.seeds_per_second = summary.seeds_this_session as f64 / wall.max(1e-9);
        summary.simulated_seconds_per_wall_second =
            shared.sim_seconds.into_inner().unwrap() / wall.max(1e-9);
        summary.stopped_by = shared.stop.reason().map(|r| r.describe().to_string());
        summary.interrupted = summary.stopped_by.is_some();
        summary.complete =
            !summary.interrupted && summary.seeds_planned.is_none_or(|n| summary.seeds_run >= n);
        summary.sessions = earlier_sessions + 1;
        summary.determinism_rechecked = shared.rechecked.load(Ordering::Relaxed);
        let json = serde_json::to_string_pretty(&summary)? + "\n";
        crate::files::replace(&self.out.join(SUMMARY), json.as_bytes())?;
        let incomplete = (!summary.complete).then(|| {
            summary
                .stopped_by
                .clone()
                .unwrap_or_else(|| "not every planned seed ran".to_string())
        });
        let xml = crate::junit::render(
            "lakesim fuzz",
            &[crate::junit::Suite {
                name: format!("lakesim fuzz {} shard {}", summary.scenario, summary.shard),
                scenario: &summary.scenario,
                lines: &lines,
                dir: &self.out.display().to_string(),
                incomplete,
                wall: Duration::from_secs_f64(wall),
            }],
        )?;
        crate::files::replace(&self.out.join(crate::outdir::JUNIT), xml.as_bytes())?;
        Ok(summary)
    }

    /// What this campaign runs, as its directory records it.
    fn manifest(&self, name: &str, config: &Config) -> Manifest {
        Manifest {
            lakesim_version: env!("CARGO_PKG_VERSION").to_string(),
            scenario: name.to_string(),
            config: config.clone(),
            bug: self.setup.bug.clone(),
            full_page_writes: self.setup.full_page_writes,
            start_seed: self.start_seed,
            shard: self.shard.to_string(),
            seeds: match self.budget {
                Budget::Seeds(n) => Some(n),
                Budget::Wall(_) => None,
            },
        }
    }

    /// The summary of every line the campaign wrote, in order.
    fn summarize(&self, name: &str, lines: &[SeedLine], earlier: u64) -> Summary {
        let mut s = Summary {
            scenario: name.to_string(),
            bug: self.setup.bug.clone(),
            shard: self.shard.to_string(),
            start_seed: self.start_seed,
            seeds_planned: match self.budget {
                Budget::Seeds(n) => Some(self.count_for_shard(n)),
                Budget::Wall(_) => None,
            },
            seeds_run: lines.len() as u64,
            seeds_this_session: lines.len() as u64 - earlier,
            ..Summary::default()
        };
        s.probes_hit = Probe::ALL
            .iter()
            .map(|p| (p.name().to_string(), 0))
            .collect();
        for (i, line) in lines.iter().enumerate() {
            for p in &line.probes {
                *s.probes_hit.entry(p.clone()).or_default() += 1;
            }
            let Some(invariant) = &line.invariant else {
                continue;
            };
            s.failures += 1;
            *s.failures_by_invariant
                .entry(invariant.clone())
                .or_default() += 1;
            s.first_failure
                .entry(invariant.clone())
                .or_insert((line.seed, i as u64 + 1));
        }
        s.probes_never_hit = s
            .probes_hit
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(p, _)| p.clone())
            .collect();
        s
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

    fn limits(&self, stop: &Stopper) -> Limits {
        Limits {
            wall: Some(self.seed_budget.wall),
            memory_bytes: Some(self.seed_budget.memory_mib << 20),
            stop: Some(stop.flag.clone()),
        }
    }

    fn worker(
        &self,
        config: &Config,
        bugs: &BugSet,
        shared: &Shared,
        started: Instant,
        progress: &Progress,
    ) {
        let opts = RunOptions {
            bugs: bugs.clone(),
            keep_trace: false,
            limits: self.limits(&shared.stop),
        };
        loop {
            if shared.stop.stopping() {
                return;
            }
            let i = shared.next.fetch_add(1, Ordering::Relaxed);
            match self.budget {
                Budget::Seeds(n) if i >= self.count_for_shard(n) => return,
                Budget::Wall(d) if started.elapsed() >= d => return,
                _ => {}
            }
            let seed = self.seed_of(i);
            if shared.dir.lock().unwrap().done.contains(&seed) {
                continue;
            }
            let plan = Plan::generate(seed, config);
            let recheck = determinism::chosen(seed, self.check_determinism);
            let Some(outcome) = run_checked(seed, &plan, &opts, recheck, shared) else {
                return;
            };
            *shared.sim_seconds.lock().unwrap() += outcome.sim_time.as_secs_f64();
            let done = shared.done.fetch_add(1, Ordering::Relaxed) + 1;
            self.record(config, &plan, &outcome, shared, progress);
            let failures = shared.failures.load(Ordering::Relaxed);
            progress.update(done, failures, started.elapsed(), &shared.console);
        }
    }

    /// Saves the seed's failure file (if it failed), then its line.
    fn record(
        &self,
        config: &Config,
        plan: &Plan,
        outcome: &RunOutcome,
        shared: &Shared,
        progress: &Progress,
    ) {
        let file = outcome
            .violation
            .as_ref()
            .map(|v| self.save_failure(config, plan, outcome, v, shared, progress));
        let v = outcome.violation.as_ref();
        let line = SeedLine {
            seed: outcome.seed,
            scenario: self.scenario_name(),
            bug: self.setup.bug.clone(),
            result: if v.is_some() { "fail" } else { "ok" }.to_string(),
            invariant: v.map(|v| v.invariant.to_string()),
            check: v.map(|v| v.caught_by.clone()),
            trace_hash: format!("{:016x}", outcome.trace_hash),
            wall_ms: outcome.wall_time.as_millis() as u64,
            simulated_ms: outcome.sim_time.as_millis() as u64,
            events: outcome.events,
            peak_mib: (outcome.peak_memory_bytes as f64 / 1048576.0 * 10.0).round() / 10.0,
            probes: outcome
                .probes
                .iter()
                .map(|p| p.name().to_string())
                .collect(),
            file: file.flatten(),
        };
        let mut dir = shared.dir.lock().unwrap();
        if let Err(e) = dir.append(&line) {
            // The seed's failure file is saved; only its line is missing, and a resume runs
            // the seed again.
            eprintln!("lakesim: {e:#}");
        }
        let mut last = shared.last_sync.lock().unwrap();
        if last.elapsed() >= Duration::from_secs(1) {
            *last = Instant::now();
            if let Err(e) = dir.sync() {
                eprintln!("lakesim: {e:#}");
            }
        }
        drop(dir);
        shared.lines.lock().unwrap().push(line);
    }

    fn scenario_name(&self) -> String {
        match (&self.setup.scenario, &self.setup.config) {
            (_, Some(path)) => path.display().to_string(),
            (Some(name), None) => name.clone(),
            (None, None) => crate::scenario::DEFAULT.to_string(),
        }
    }

    /// Writes the failure file (never over an existing one) and says so; returns its name.
    fn save_failure(
        &self,
        config: &Config,
        plan: &Plan,
        outcome: &RunOutcome,
        v: &crate::checker::Violation,
        shared: &Shared,
        progress: &Progress,
    ) -> Option<String> {
        shared.failures.fetch_add(1, Ordering::Relaxed);
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
        let file = seedfile::SeedFile {
            budget: (v.invariant == lakesim_nodes::Invariant::Budget).then_some(
                seedfile::BudgetRecord {
                    wall_ms: self.seed_budget.wall.as_millis() as u64,
                    memory_mib: self.seed_budget.memory_mib,
                },
            ),
            ..file
        };
        let name = format!("fail-{}-{}.toml", outcome.seed, v.invariant);
        let path = self.out.join(&name);
        let saved = if path.exists() {
            // Saved by an earlier session whose line for this seed was lost in a crash.
            Ok(())
        } else {
            seedfile::save(&path, &file)
        };
        let line = match &saved {
            Ok(()) => format!(
                "FAIL seed {}: {} caught by {} ({}); saved {}; replay: lakesim replay {}",
                outcome.seed,
                v.invariant,
                v.caught_by,
                v.detail,
                path.display(),
                shell_quote(&path.display().to_string())
            ),
            Err(e) => format!(
                "FAIL seed {}: {} caught by {} (could not save: {e:#})",
                outcome.seed, v.invariant, v.caught_by
            ),
        };
        progress.println(&line, &shared.console);
        saved.ok().map(|()| name)
    }
}

/// Runs a seed; a thread that cannot be started is retried a few times, then the campaign
/// stops (with its summary) rather than losing the seed.
fn run_with_retries(
    seed: u64,
    plan: &Plan,
    opts: &RunOptions,
    shared: &Shared,
) -> Option<RunOutcome> {
    const TRIES: u32 = 20;
    for attempt in 1..=TRIES {
        match try_run_seed(seed, plan, opts) {
            Ok(outcome) => return Some(outcome),
            Err(e) if attempt == TRIES => {
                eprintln!("lakesim: seed {seed}: cannot start its thread after {TRIES} tries ({e}); stopping");
                shared.stop.request(StopReason::NoThreads);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    None
}

/// Runs a seed, twice when its determinism is re-checked; `None` when the campaign stops
/// before the seed ends.
fn run_checked(
    seed: u64,
    plan: &Plan,
    opts: &RunOptions,
    recheck: bool,
    shared: &Shared,
) -> Option<RunOutcome> {
    if !recheck {
        return run_with_retries(seed, plan, opts, shared).filter(|o| !o.interrupted);
    }
    let traced = RunOptions {
        keep_trace: true,
        ..opts.clone()
    };
    let first = run_with_retries(seed, plan, &traced, shared).filter(|o| !o.interrupted)?;
    let second = run_with_retries(seed, plan, &traced, shared).filter(|o| !o.interrupted)?;
    shared.rechecked.fetch_add(1, Ordering::Relaxed);
    let mismatch = determinism::compare(&first, &second);
    Some(RunOutcome {
        violation: mismatch.or(first.violation),
        full_trace: None,
        ..first
    })
}

/// How many sessions an earlier `summary.json` in `out` counted.
fn read_sessions(out: &std::path::Path) -> u64 {
    std::fs::read_to_string(out.join(SUMMARY))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["sessions"].as_u64())
        .unwrap_or(0)
}

/// Checks that a summary exists and reads its failures (for callers and tests).
pub fn read_summary(out: &std::path::Path) -> Result<serde_json::Value> {
    let path = out.join(SUMMARY);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))
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

    fn update(&self, done: u64, failures: u64, elapsed: Duration, console: &Console) {
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
                    console.line(&format!(
                        "{done} seeds, {rate:.0} seeds/s, {failures} failures"
                    ));
                }
            }
        }
    }

    fn println(&self, line: &str, console: &Console) {
        match &self.bar {
            Some(bar) => bar.suspend(|| console.line(line)),
            None => console.line(line),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
