//! What runs and how it is reported: the [`Setup`] a command names (scenario or config file,
//! planted bug) and the human summaries of runs, shared by the command line and campaigns.

use crate::config::Config;
use crate::plan::Plan;
use crate::runner::RunOutcome;
use crate::scenario;
use anyhow::Result;
use lakesim_nodes::bugs::{Bug, BugSet};
use std::path::PathBuf;

/// What to run: a scenario or a config file, and a planted bug.
#[derive(clap::Args, Clone, Debug)]
pub struct Setup {
    /// A named scenario (see `lakesim list`).
    #[arg(long, conflicts_with = "config")]
    pub scenario: Option<String>,
    /// A TOML config file (the shape of a scenario's config).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Switch on a planted bug (see `lakesim list`).
    #[arg(long)]
    pub bug: Option<String>,
    /// Run the compute with `full_page_writes = on` (off by default, as in Lakebase).
    #[arg(long)]
    pub full_page_writes: bool,
}

impl Setup {
    /// The scenario name (or config file) and the config it stands for.
    pub fn resolve(&self) -> Result<(String, Config, BugSet)> {
        let (name, config) = match (&self.scenario, &self.config) {
            (_, Some(path)) => (path.display().to_string(), Config::from_file(path)?),
            (Some(name), None) => (name.clone(), scenario::find(name)?),
            (None, None) => (
                scenario::DEFAULT.to_string(),
                scenario::find(scenario::DEFAULT)?,
            ),
        };
        let bugs = match &self.bug {
            Some(b) => BugSet::of([b.parse::<Bug>().map_err(anyhow::Error::msg)?]),
            None => BugSet::none(),
        };
        let config = Config {
            full_page_writes: config.full_page_writes || self.full_page_writes,
            ..config
        };
        Ok((name, config, bugs))
    }
}

pub fn bug_suffix(setup: &Setup) -> String {
    setup
        .bug
        .as_ref()
        .map(|b| format!(", planted bug {b}"))
        .unwrap_or_default()
}

/// The command that replays a seed with the same setup.
pub fn replay_command(seed: u64, setup: &Setup) -> String {
    let mut cmd = format!("lakesim run --seed {seed}");
    if let Some(s) = &setup.scenario {
        cmd += &format!(" --scenario {s}");
    }
    if let Some(c) = &setup.config {
        cmd += &format!(" --config {}", shell_quote(&c.display().to_string()));
    }
    if let Some(b) = &setup.bug {
        cmd += &format!(" --bug {b}");
    }
    if setup.full_page_writes {
        cmd += " --full-page-writes";
    }
    cmd
}

/// `word` as a POSIX shell reads it back: as it is when it holds only safe characters,
/// single-quoted otherwise (a printed replay command must paste back whole).
pub fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// One line saying the configuration this seed runs with (drawn, with `swarm.enabled`).
pub fn describe_config(plan: &Plan) -> String {
    let c = &plan.config;
    format!(
        "config{}: full_page_writes {}, image_policy {}, checkpoint_distance {} KiB, WAL segment {} KiB, {} pageserver{}",
        if c.swarm.enabled { " (drawn)" } else { "" },
        if c.full_page_writes { "on" } else { "off" },
        c.image_policy,
        c.checkpoint_distance_kb,
        c.wal_segment_kb,
        c.pageservers,
        if c.pageservers == 1 { "" } else { "s" },
    )
}

/// One line saying which faults this seed turned on.
pub fn describe_faults(plan: &Plan) -> String {
    let f = &plan.faults_chosen;
    let rate = |r: f64| {
        if r > 0.0 {
            format!("{r:.2}/s")
        } else {
            "off".to_string()
        }
    };
    let frac = |p: f64| {
        if p > 0.0 {
            format!("{p:.2}")
        } else {
            "off".to_string()
        }
    };
    let on = |b: bool| if b { "on" } else { "off" }.to_string();
    let parts = [
        ("safekeeper crashes", rate(f.safekeeper_crashes_per_s)),
        ("compute crashes", rate(f.compute_crashes_per_s)),
        ("partitions", rate(f.partitions_per_s)),
        ("election storms", rate(f.election_storms_per_s)),
        ("pageserver crashes", rate(f.pageserver_crashes_per_s)),
        (
            "pageserver disk losses",
            rate(f.pageserver_disk_losses_per_s),
        ),
        ("object store outages", rate(f.object_store_outages_per_s)),
        ("bitrot", rate(f.bitrot_per_s)),
        ("packet loss", frac(f.max_packet_loss)),
        ("torn writes", frac(f.torn_write_probability)),
        ("duplicates", frac(f.duplicate_probability)),
        ("second compute", on(f.second_compute)),
        ("safekeeper lost", on(f.safekeeper_loss)),
        ("dir ops landing", frac(f.dir_land_probability)),
        ("read errors", rate(f.read_errors_per_s)),
        ("fsync failures", rate(f.fsync_failures_per_s)),
        ("disk full", rate(f.disk_full_per_s)),
        ("slow disks", rate(f.slow_disks_per_s)),
        ("slow links", rate(f.slow_links_per_s)),
        ("pageserver link cuts", rate(f.link_cuts_per_s)),
        ("slow object store", rate(f.slow_object_store_per_s)),
        ("safekeeper bitrot", rate(f.safekeeper_bitrot_per_s)),
        ("safekeeper disk lost", on(f.safekeeper_disk_loss)),
        ("buggify", on(f.buggify)),
    ];
    let parts: Vec<String> = parts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!("faults: {}; {} events", parts.join(", "), plan.faults.len())
}

/// The human summary of one run.
pub fn print_outcome(o: &RunOutcome, replay: &str) {
    match &o.violation {
        None => println!("result: ok, every invariant held"),
        Some(v) => {
            let nodes: Vec<String> = v.nodes.iter().map(|n| format!("n{n}")).collect();
            println!(
                "VIOLATION {} at {:.3}s{}: {}",
                v.invariant,
                v.time_ms as f64 / 1000.0,
                if nodes.is_empty() {
                    String::new()
                } else {
                    format!(" on {}", nodes.join(","))
                },
                v.detail
            );
            println!("caught by: {}", v.caught_by);
            println!("last events before it:");
            for e in &o.recent {
                println!("  {e}");
            }
            println!("replay: {replay}");
        }
    }
    let s = &o.stats;
    println!(
        "commits acknowledged {}, elections {}, committed WAL {} bytes",
        s.commits_acked, s.elections, s.committed_bytes
    );
    print_metrics(s);
    println!(
        "simulated {:.2}s in {:.3}s wall ({} events, {:.1} MiB at most)",
        o.sim_time.as_secs_f64(),
        o.wall_time.as_secs_f64(),
        o.events,
        o.peak_memory_bytes as f64 / 1048576.0
    );
    let probes: Vec<&str> = o.probes.iter().map(|p| p.name()).collect();
    println!("probes reached: {}", probes.join(", "));
    println!("trace hash: {:016x}", o.trace_hash);
}

/// The architecture's costs: WAL volume by record kind, GetPage work, images created.
pub fn print_metrics(s: &crate::checker::Stats) {
    let total: u64 = s.wal_bytes.values().sum();
    let kinds: Vec<String> = s
        .wal_bytes
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "WAL bytes committed: {total} ({}); bytes fsynced on all disks: {}",
        kinds.join(", "),
        s.bytes_fsynced
    );
    let p = &s.pages;
    let mut applied = p.records_applied.clone();
    applied.sort_unstable();
    let pct = |q: f64| {
        applied
            .get(((applied.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "GetPage: {} reads ({} failed), deltas applied per read p50 {} p99 {} max {}; images created {} ({} bytes)",
        p.reads,
        p.failed_reads,
        pct(0.5),
        pct(0.99),
        applied.last().copied().unwrap_or(0),
        p.images_created,
        p.image_bytes
    );
    println!(
        "Safekeeper WAL: {} segments removed below the pageservers' remote_consistent_lsn; at most {} bytes held by one safekeeper at the end; computes started from a basebackup {} times",
        s.segments_removed, s.safekeeper_wal_held, s.basebackups
    );
}
