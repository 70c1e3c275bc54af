//! `lakesim experiment NAME`: what the architecture costs, measured on the simulated clock
//! with the cost model on (see `config::CostConfig` for its parameters and their sources).
//!
//! An experiment is a list of points (a config, and for some a fault schedule), each run with
//! K seeds. Every run is an ordinary lakesim run: its invariants are checked, and a violation
//! stops the experiment with the replay command. Each point is reported as the mean over its
//! seeds with min and max. Outputs, in `--out`: `points.csv` (one row per point), `runs.csv`
//! (one row per run, with its trace hash), `results.json` (both, plus the cost model), one SVG
//! per figure, `report.md` (the public claims beside what was measured), and every point's
//! config as `configs/<point>.toml`, so that `lakesim run --seed S --config FILE` reproduces
//! any run of a point without a fault schedule.

mod faults;
mod fpw;
mod hot_page;
mod images;
mod pg_trace;
mod plot;

use crate::checker::Stats;
use crate::config::{Config, WorkloadKind};
use crate::files;
use crate::plan::{FaultEvent, Plan};
use crate::runner::{run_seed, RunOptions};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

pub const NAMES: [&str; 5] = ["fpw", "images", "hot-page", "faults", "pg-trace"];

/// One point of an experiment.
pub struct Point {
    /// A short id, unique in the experiment (file names, CSV).
    pub id: String,
    /// Which line of a plot it belongs to.
    pub series: String,
    /// What the experiment set, by name.
    pub params: Vec<(&'static str, f64)>,
    pub config: Config,
    /// A fault schedule that replaces the config's own.
    pub faults: Option<Vec<FaultEvent>>,
}

/// One run of a point.
#[derive(Clone, Serialize)]
pub struct Run {
    pub seed: u64,
    pub trace_hash: String,
    pub wall_s: f64,
    pub metrics: BTreeMap<&'static str, f64>,
    #[serde(skip)]
    pub stats: Stats,
}

/// A point and its runs.
pub struct Measured {
    pub point: Point,
    pub runs: Vec<Run>,
}

/// Mean, spread and extremes of one metric over a point's seeds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Spread {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub sd: f64,
}

impl Spread {
    /// Mean, min, max and standard deviation of `v` (all zero when it is empty).
    pub fn of(v: &[f64]) -> Spread {
        if v.is_empty() {
            return Spread::default();
        }
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        Spread {
            mean,
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            sd: var.sqrt(),
        }
    }
}

impl Measured {
    pub fn get(&self, metric: &str) -> Spread {
        let v: Vec<f64> = self
            .runs
            .iter()
            .filter_map(|r| r.metrics.get(metric).copied())
            .collect();
        Spread::of(&v)
    }

    pub fn param(&self, name: &str) -> f64 {
        self.point
            .params
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(f64::NAN, |(_, v)| *v)
    }
}

/// The metrics every run reports, by name.
pub fn metrics_of(stats: &Stats) -> BTreeMap<&'static str, f64> {
    let m = &stats.metrics;
    let g = &m.getpage;
    BTreeMap::from([
        ("txns", m.txns as f64),
        ("wal_bytes_per_txn", m.wal_bytes_per_txn),
        ("fpi_share", m.fpi_share),
        ("checkpoints", m.checkpoints as f64),
        ("commits_per_s", m.commits_per_s),
        ("getpages", g.count as f64),
        ("records_p50", f64::from(g.records_p50)),
        ("records_p99", f64::from(g.records_p99)),
        ("records_max", f64::from(g.records_max)),
        ("layers_p50", f64::from(g.layers_p50)),
        ("layers_p99", f64::from(g.layers_p99)),
        ("latency_us_p50", g.latency_us_p50),
        ("latency_us_p99", g.latency_us_p99),
        ("latency_us_p999", g.latency_us_p999),
        ("latency_us_max", g.latency_us_max),
        ("wait_us_p99", g.wait_us_p99),
        ("client_read_us_p50", m.client_read_us_p50),
        ("client_read_us_p99", m.client_read_us_p99),
        ("image_bytes", m.image_bytes as f64),
        ("storage_bytes_per_wal_byte", m.storage_bytes_per_wal_byte),
        ("failed_reads", stats.pages.failed_reads as f64),
    ])
}

/// The config every experiment starts from: the user's (or the defaults) with the cost
/// model on, tpcb at scale 1, closed-loop clients, and delta layers of 1 MiB (Neon's are
/// 256 MiB; runs here are seconds long, so layers are scaled down with them).
pub fn base_config(user: Option<&Config>) -> Config {
    let mut c = user.cloned().unwrap_or_default();
    c.cost.enabled = true;
    if user.is_none() {
        c.workload.kind = WorkloadKind::Tpcb;
        c.workload.clients = 128;
        c.workload.read_interval_ms = 5;
        c.checkpoint_distance_kb = 1024;
        c.fault_window_ms = 1000;
        c.liveness_window_ms = 1000;
    }
    c
}

/// What an experiment needs from the command line.
pub struct Options {
    pub seeds: u64,
    pub jobs: usize,
    pub out: PathBuf,
    pub user_config: Option<Config>,
}

pub fn cmd_experiment(
    name: &str,
    seeds: u64,
    out: Option<PathBuf>,
    config: Option<PathBuf>,
    jobs: Option<usize>,
) -> Result<ExitCode> {
    if !NAMES.contains(&name) {
        bail!(
            "unknown experiment '{name}'; experiments: {}",
            NAMES.join(", ")
        );
    }
    if !(1..=1000).contains(&seeds) {
        bail!("--seeds {seeds}: must be 1 to 1000");
    }
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if !(1..=256).contains(&jobs) {
        bail!("--jobs {jobs}: must be 1 to 256");
    }
    let user_config = config.as_deref().map(Config::from_file).transpose()?;
    let out = out.unwrap_or_else(|| PathBuf::from(format!("experiment-{name}")));
    prepare_out(&out)?;
    let opts = Options {
        seeds,
        jobs,
        out,
        user_config,
    };
    let started = std::time::Instant::now();
    let result = match name {
        "fpw" => fpw::run(&opts),
        "images" => images::run(&opts),
        "hot-page" => hot_page::run(&opts),
        "faults" => faults::run(&opts),
        _ => pg_trace::run(&opts),
    };
    match result {
        Ok(()) => {
            println!(
                "experiment {name}: {} seeds per point in {:.0}s; results in {}",
                seeds,
                started.elapsed().as_secs_f64(),
                opts.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.downcast_ref::<Violated>().is_some() => {
            eprintln!("lakesim experiment {name}: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e),
    }
}

/// An experiment run broke an invariant: the experiment stops, as any run would.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Violated(String);

/// Refuses to write over an earlier experiment's results.
fn prepare_out(out: &Path) -> Result<()> {
    if out.exists() {
        let empty = out.is_dir()
            && std::fs::read_dir(out)
                .with_context(|| format!("cannot read --out {}", out.display()))?
                .next()
                .is_none();
        if !empty {
            bail!(
                "--out {}: exists and is not an empty directory; choose another, nothing there is overwritten",
                out.display()
            );
        }
    }
    std::fs::create_dir_all(out.join("configs"))
        .with_context(|| format!("cannot create --out {}", out.display()))
}

/// Runs every point with `opts.seeds` seeds, `opts.jobs` at a time.
pub fn measure(opts: &Options, points: Vec<Point>) -> Result<Vec<Measured>> {
    for p in &points {
        p.config
            .validate()
            .with_context(|| format!("point {}", p.id))?;
        let text = toml::to_string(&p.config).context("a config serialises")?;
        files::replace(
            &opts.out.join("configs").join(format!("{}.toml", p.id)),
            text.as_bytes(),
        )?;
    }
    let jobs: Vec<(usize, u64)> = (0..points.len())
        .flat_map(|i| (1..=opts.seeds).map(move |s| (i, s)))
        .collect();
    let results: Mutex<Vec<Vec<Run>>> = Mutex::new(points.iter().map(|_| Vec::new()).collect());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let bar = progress(jobs.len() as u64);
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.min(jobs.len()).max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(p, seed)) = jobs.get(i) else {
                    return;
                };
                if failure.lock().unwrap().is_some() {
                    return;
                }
                match run_point(&points[p], seed, &opts.out) {
                    Ok(run) => results.lock().unwrap()[p].push(run),
                    Err(why) => *failure.lock().unwrap() = Some(why),
                }
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    if let Some(why) = failure.into_inner().unwrap() {
        return Err(Violated(why).into());
    }
    let mut runs = results.into_inner().unwrap();
    Ok(points
        .into_iter()
        .zip(runs.iter_mut())
        .map(|(point, runs)| {
            runs.sort_by_key(|r| r.seed);
            Measured {
                point,
                runs: std::mem::take(runs),
            }
        })
        .collect())
}

fn progress(n: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(n);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

fn run_point(point: &Point, seed: u64, out: &Path) -> std::result::Result<Run, String> {
    let mut plan = Plan::generate(seed, &point.config);
    if let Some(faults) = &point.faults {
        plan.faults = faults.clone();
    }
    let outcome = run_seed(seed, &plan, &RunOptions::default());
    if let Some(v) = outcome.violation {
        let config = out.join("configs").join(format!("{}.toml", point.id));
        return Err(format!(
            "point {} seed {seed}: {} violated at {:.3}s: {}\n  replay: lakesim run --seed {seed} --config {}{}",
            point.id,
            v.invariant,
            v.time_ms as f64 / 1e3,
            v.detail,
            config.display(),
            if point.faults.is_some() { " (with the experiment's fault schedule)" } else { "" }
        ));
    }
    Ok(Run {
        seed,
        trace_hash: format!("{:016x}", outcome.trace_hash),
        wall_s: outcome.wall_time.as_secs_f64(),
        metrics: metrics_of(&outcome.stats),
        stats: outcome.stats,
    })
}

/// Writes `points.csv`, `runs.csv` and `results.json` for `metrics`, and prints the table.
pub fn write_results(
    opts: &Options,
    name: &str,
    measured: &[Measured],
    metrics: &[&str],
) -> Result<()> {
    let params: Vec<&str> = measured
        .first()
        .map(|m| m.point.params.iter().map(|(n, _)| *n).collect())
        .unwrap_or_default();
    let mut csv = String::from("point,series");
    for p in &params {
        write!(csv, ",{p}")?;
    }
    for m in metrics {
        write!(csv, ",{m}_mean,{m}_min,{m}_max,{m}_sd")?;
    }
    csv.push('\n');
    let mut runs_csv = String::from("point,series,seed,trace_hash,wall_s");
    for p in &params {
        write!(runs_csv, ",{p}")?;
    }
    for m in metrics {
        write!(runs_csv, ",{m}")?;
    }
    runs_csv.push('\n');
    let mut json_points = Vec::new();
    for m in measured {
        write!(csv, "{},{}", m.point.id, m.point.series)?;
        for (_, v) in &m.point.params {
            write!(csv, ",{v}")?;
        }
        let mut spreads = BTreeMap::new();
        for metric in metrics {
            let s = m.get(metric);
            write!(csv, ",{:.4},{:.4},{:.4},{:.4}", s.mean, s.min, s.max, s.sd)?;
            spreads.insert(*metric, s);
        }
        csv.push('\n');
        for r in &m.runs {
            write!(
                runs_csv,
                "{},{},{},{},{:.3}",
                m.point.id, m.point.series, r.seed, r.trace_hash, r.wall_s
            )?;
            for (_, v) in &m.point.params {
                write!(runs_csv, ",{v}")?;
            }
            for metric in metrics {
                write!(
                    runs_csv,
                    ",{:.4}",
                    r.metrics.get(metric).copied().unwrap_or(f64::NAN)
                )?;
            }
            runs_csv.push('\n');
        }
        json_points.push(serde_json::json!({
            "point": m.point.id,
            "series": m.point.series,
            "params": m.point.params.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
            "config": format!("configs/{}.toml", m.point.id),
            "metrics": spreads,
            "runs": m.runs,
        }));
    }
    files::replace(&opts.out.join("points.csv"), csv.as_bytes())?;
    files::replace(&opts.out.join("runs.csv"), runs_csv.as_bytes())?;
    let cost = measured.first().map(|m| m.point.config.cost.clone());
    let doc = serde_json::json!({
        "experiment": name,
        "seeds_per_point": opts.seeds,
        "cost_model": cost,
        "points": json_points,
    });
    files::replace(
        &opts.out.join("results.json"),
        serde_json::to_string_pretty(&doc)?.as_bytes(),
    )?;
    print_table(measured, &params, metrics);
    Ok(())
}

fn print_table(measured: &[Measured], params: &[&str], metrics: &[&str]) {
    let mut header = format!("{:<28}", "point");
    for p in params {
        header += &format!(" {p:>12}");
    }
    for m in metrics {
        header += &format!(" {:>16}", short(m));
    }
    println!("{header}");
    for m in measured {
        let mut line = format!("{:<28}", m.point.id);
        for (_, v) in &m.point.params {
            line += &format!(" {:>12}", fmt_num(*v));
        }
        for metric in metrics {
            let s = m.get(metric);
            line += &format!(
                " {:>16}",
                format!("{}±{}", fmt_num(s.mean), fmt_num((s.max - s.min) / 2.0))
            );
        }
        println!("{line}");
    }
}

fn short(metric: &str) -> String {
    metric.chars().take(16).collect()
}

/// A number in a table: no more digits than it deserves.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if v.is_nan() {
        "-".into()
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A markdown table of `rows` under `header`.
pub fn md_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for r in rows {
        s += &format!("| {} |\n", r.join(" | "));
    }
    s
}

/// `mean (min-max)` of a metric at a point.
pub fn cell(m: &Measured, metric: &str) -> String {
    let s = m.get(metric);
    if m.runs.len() > 1 {
        format!(
            "{} ({}-{})",
            fmt_num(s.mean),
            fmt_num(s.min),
            fmt_num(s.max)
        )
    } else {
        fmt_num(s.mean)
    }
}

/// The cost model's parameters as a markdown list, for every report.
pub fn cost_section(c: &Config) -> String {
    let k = &c.cost;
    format!(
        "## Cost model\n\nParameters (defaults and sources in `sim/src/config.rs`, `CostConfig`): compute {} vCPUs, {} us CPU per transaction plus {} ns per WAL byte; link to the safekeepers {} Mbit/s, each safekeeper getting its own copy; one-way network latency {}-{} us (madsim's floor is 1 ms); safekeeper fsync {} us plus {} MB/s, one fsync per batch of appends (group commit); pageserver walredo {} us per request plus {} us per record, one walredo process; {} us per layer visited plus {} MB/s read. Delta layers of {} KiB (Neon: 256 MiB). Every point is the mean of its seeds, with (min-max).\n",
        k.vcpus,
        k.cpu_per_txn_us,
        k.cpu_ns_per_wal_byte,
        k.link_mbit_per_s,
        k.network_latency_us[0],
        k.network_latency_us[1],
        k.safekeeper_fsync_us,
        k.safekeeper_disk_mb_per_s,
        k.walredo_fixed_us,
        k.walredo_per_record_us,
        k.layer_visit_us,
        k.layer_read_mb_per_s,
        c.checkpoint_distance_kb
    )
}

/// The per-seed ratio `a / b` of a metric between two points run with the same seeds.
pub fn ratio(a: &Measured, b: &Measured, metric: &str) -> Spread {
    let v: Vec<f64> = a
        .runs
        .iter()
        .filter_map(|ra| {
            let rb = b.runs.iter().find(|rb| rb.seed == ra.seed)?;
            let (x, y) = (ra.metrics.get(metric)?, rb.metrics.get(metric)?);
            (*y > 0.0).then(|| x / y)
        })
        .collect();
    Spread::of(&v)
}

/// One line per GetPage latency percentile over the points, in order (x = 1, 2, ...), for
/// the experiments that compare cases side by side.
pub fn latency_by_case(measured: &[Measured]) -> Vec<plot::Series> {
    [
        ("p50", "latency_us_p50"),
        ("p99", "latency_us_p99"),
        ("p99.9", "latency_us_p999"),
    ]
    .iter()
    .map(|(q, metric)| plot::Series {
        name: format!("GetPage latency {q}"),
        points: measured
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let s = m.get(metric);
                let floor = |v: f64| v.max(1e-3);
                (i as f64 + 1.0, floor(s.mean), floor(s.min), floor(s.max))
            })
            .collect(),
    })
    .collect()
}

/// `mean (min-max)` of a spread.
pub fn spread_cell(s: Spread) -> String {
    format!(
        "{} ({}-{})",
        fmt_num(s.mean),
        fmt_num(s.min),
        fmt_num(s.max)
    )
}
