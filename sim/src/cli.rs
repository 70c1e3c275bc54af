//! The `lakesim` command line.
//!
//! Exit status: 0 when every invariant held, 1 when one was violated, 2 on bad input (printed as
//! one line naming what is wrong and what is allowed).

use crate::campaign::{Budget, Campaign, Console, SeedBudget, Shard, StopReason, Stopper};
use crate::report::{
    bug_suffix, describe_config, describe_faults, print_outcome, replay_command, shell_quote, Setup,
};

use crate::plan::Plan;
use crate::runner::{run_seed, RunOptions, RunOutcome};
use crate::scenario;
use crate::seedfile::{Expect, SeedFile};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use lakesim_nodes::bugs::Bug;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "lakesim",
    version,
    about = "Deterministic simulation testing of disaggregated Postgres storage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one seed and check every invariant.
    Run {
        /// The seed (a u64) that fixes the whole run.
        #[arg(long)]
        seed: u64,
        #[command(flatten)]
        setup: Setup,
        /// Write every event of the run to FILE as JSON lines.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// Print one JSON document (result, trace hash, every statistic and metric) instead
        /// of the human summary.
        #[arg(long)]
        json: bool,
    },
    /// Run a campaign of many seeds; save every failure as a replayable seed file.
    Fuzz {
        /// How many seeds (default 1000, unless --duration is given).
        #[arg(long, conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
        seeds: Option<u64>,
        /// How long to run, like 90s, 10m or 2h (wall clock, at most 720h).
        #[arg(long, value_parser = crate::campaign::parse_duration)]
        duration: Option<std::time::Duration>,
        /// Seeds run at once, 1 to 1024 (default: the machine's cores).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_JOBS))]
        jobs: Option<u64>,
        /// Run shard K of N: a disjoint slice of the campaign's seeds. Without it, a job
        /// engine's environment names the shard: JOB_COMPLETION_INDEX (Kubernetes Indexed Job,
        /// 0-based) or AWS_BATCH_JOB_ARRAY_INDEX with LAKESIM_SHARDS, or SLURM_ARRAY_TASK_ID
        /// with SLURM_ARRAY_TASK_COUNT; otherwise 1/1.
        #[arg(long)]
        shard: Option<Shard>,
        #[command(flatten)]
        setup: Setup,
        /// Where failures, seeds.jsonl and summary.json go: a new or empty directory (an
        /// earlier campaign's directory is refused unless --resume).
        #[arg(long, default_value = "lakesim-out")]
        out: PathBuf,
        /// Continue the campaign in --out (give the same setup): seeds it finished are not run
        /// again, and nothing it saved is touched.
        #[arg(long)]
        resume: bool,
        /// The first seed of the campaign (any u64).
        #[arg(long, default_value_t = 0)]
        start_seed: u64,
        /// Wall-clock budget of one seed, like 60s or 5m: a seed past it is cut and recorded
        /// as a `budget` failure, and the campaign goes on.
        #[arg(long, default_value = "120s", value_parser = crate::campaign::parse_duration)]
        seed_timeout: std::time::Duration,
        /// Re-run P percent of the seeds (0 to 100, chosen by seed) in this process and
        /// compare trace hashes: a mismatch is a `nondeterminism` failure.
        #[arg(long, value_name = "P", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
        check_determinism: u8,
        /// Exit 1 when a coverage probe stays unhit by every seed (see `lakesim list`).
        #[arg(long)]
        require_probes: bool,
        /// Memory budget of one seed in MiB (64 to 1048576), enforced like --seed-timeout.
        #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u64).range(64..=1_048_576))]
        seed_memory: u64,
    },
    /// Re-run a saved failure or a seeds/ file bit-exactly and check its trace hash.
    Replay {
        /// A seed file (TOML).
        file: PathBuf,
        /// Also write the run's timeline to OUT.html: one self-contained page (lanes per node,
        /// messages, faults, elections, commits, reads, the violation; zoom, filters).
        #[arg(long, value_name = "OUT.html")]
        html: Option<PathBuf>,
    },
    /// Shrink a failure file: fewest fault events, then fewest work items, that still fail with
    /// the same invariant caught by the same check. Writes a new seed file (never over one).
    Shrink {
        /// A failure file (a campaign's, or one in seeds/).
        file: PathBuf,
        /// Where the shrunk file goes (default: FILE's name with `-shrunk`).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Candidate runs at once, 1 to 1024 (default: the machine's cores).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_JOBS))]
        jobs: Option<u64>,
    },
    /// Re-run seed files (every one in a directory, or the files named) and re-pin the trace
    /// hashes that changed; a file that no longer does what it records is left as it is.
    Pin {
        /// Seed files or directories of them.
        #[arg(default_value = "seeds")]
        paths: Vec<PathBuf>,
    },
    /// List the scenarios, the planted bugs and the coverage probes.
    List,
    /// Measure lakesim against madsim's own floor in one run: madsim alone exchanging
    /// messages of lakesim's size, the same exchange through madsim's public calls (what a bare
    /// madsim program pays) and through lakesim's network interface (no node logic), then
    /// every scenario for the same wall time; per row seeds/s, messages/s, trace events/s,
    /// simulated s per wall s, ns per message, the ratio to the floor, to the public calls and
    /// to the messaging row, and peak memory. Numbers from one run are comparable with each
    /// other, not across machines or loads.
    Bench {
        /// Wall seconds per row (the floor and each scenario), 1 to 600.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// Print one JSON document (`floor`, `public_api`, `messaging`, `messaging_ratio`, and
        /// `scenarios` with a row per scenario).
        #[arg(long)]
        json: bool,
    },
    /// Reports over campaigns: `report merge` joins the shards of one campaign.
    Report {
        #[command(subcommand)]
        action: ReportCommand,
    },
    /// Measure what the architecture costs on the simulated clock: fpw, images, hot-page,
    /// faults or pg-trace. Writes a table, CSV, JSON, SVG plots and report.md to --out.
    Experiment {
        /// The experiment: fpw, images, hot-page, faults or pg-trace.
        name: String,
        /// Seeds per point; every point is their mean, with min and max.
        #[arg(long, default_value_t = 3)]
        seeds: u64,
        /// Where the results go (default: experiment-NAME).
        #[arg(long)]
        out: Option<PathBuf>,
        /// A TOML config whose settings every point starts from (the experiment then sets
        /// what it sweeps).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Runs at once (default: the machine's cores).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Turn `pg_waldump -b` output (plain or .gz) into a lakesim pg-trace file.
    ImportWal {
        /// pg_waldump output, as `scripts/capture-pg-trace.sh` saves it.
        waldump: PathBuf,
        /// The pages that existed when the capture started (the script's pages.tsv).
        #[arg(long, value_name = "TSV")]
        pages: Option<PathBuf>,
        /// The trace file to write (refused if it exists, unless --force).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Overwrite --out if it exists.
        #[arg(long)]
        force: bool,
    },
}

/// The most seeds a campaign runs at once (each is a thread with its own simulation).
const MAX_JOBS: u64 = 1024;

#[derive(Subcommand)]
enum ReportCommand {
    /// Merge shard directories of one campaign into one summary, JUnit file and report
    /// (markdown and HTML); missing or incomplete shards are reported, never merged silently.
    /// Exit 1 when seeds failed or shards are missing or incomplete.
    Merge {
        /// The shards' --out directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where the merged report goes (a new or empty directory).
        #[arg(long, default_value = "lakesim-report")]
        out: PathBuf,
        /// A previous merged summary.json: say which failure groups are new or gone.
        #[arg(long, value_name = "SUMMARY")]
        previous: Option<PathBuf>,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    crate::budget::keep_freed_memory();
    quiet_panics();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    if !matches!(cli.command, Command::Fuzz { .. }) {
        // `lakesim run ... | head` ends quietly, as other tools do; a campaign instead treats
        // a closed stdout as a stop request and still writes its summary.
        restore_sigpipe();
    }
    let result = match cli.command {
        Command::Run {
            seed,
            setup,
            trace,
            json,
        } => cmd_run(seed, &setup, trace, json),
        Command::Experiment {
            name,
            seeds,
            out,
            config,
            jobs,
        } => crate::experiment::cmd_experiment(&name, seeds, out, config, jobs),
        Command::ImportWal {
            waldump,
            pages,
            out,
            force,
        } => cmd_import_wal(&waldump, pages.as_deref(), &out, force),
        Command::Fuzz {
            seeds,
            duration,
            jobs,
            shard,
            setup,
            out,
            resume,
            start_seed,
            seed_timeout,
            seed_memory,
            require_probes,
            check_determinism,
        } => {
            let budget = match (seeds, duration) {
                (_, Some(d)) => Budget::Wall(d),
                (Some(n), None) => Budget::Seeds(n),
                (None, None) => Budget::Seeds(1000),
            };
            let jobs = jobs.map_or_else(default_jobs, |j| j as usize);
            let shard = match shard {
                Some(s) => s,
                None => match Shard::from_env(|k| std::env::var(k).ok()) {
                    Ok(Some((s, from))) => {
                        println!("shard {s} from {from}");
                        s
                    }
                    Ok(None) => Shard { index: 1, count: 1 },
                    Err(e) => return bad_input(&anyhow::anyhow!(e)),
                },
            };
            let campaign = Campaign {
                setup,
                budget,
                jobs,
                shard,
                start_seed,
                out,
                resume,
                require_probes,
                check_determinism,
                seed_budget: SeedBudget {
                    wall: seed_timeout,
                    memory_mib: seed_memory,
                },
            };
            cmd_fuzz(&campaign)
        }
        Command::Replay { file, html } => cmd_replay(&file, html.as_deref()),
        Command::Shrink { file, out, jobs } => cmd_shrink(&file, out, jobs),
        Command::Pin { paths } => cmd_pin(&paths),
        Command::Report {
            action:
                ReportCommand::Merge {
                    dirs,
                    out,
                    previous,
                },
        } => cmd_merge(&dirs, &out, previous.as_deref()),
        Command::Bench { seconds, json } => {
            let bench = crate::bench::run(seconds as f64, &|line| eprintln!("{line}"));
            match json {
                true => println!(
                    "{}",
                    serde_json::to_string_pretty(&bench).unwrap_or_default()
                ),
                false => print!("{}", crate::bench::table(&bench)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::List => {
            cmd_list();
            Ok(ExitCode::SUCCESS)
        }
    };
    result.unwrap_or_else(|e| bad_input(&e))
}

/// Bad input: one line, exit 2.
pub fn bad_input(e: &anyhow::Error) -> ExitCode {
    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    eprintln!("lakesim: {}", chain.join(": ").replace('\n', " "));
    ExitCode::from(2)
}

/// A command-line error as one line: what is wrong, with the argument's name (clap spreads
/// that over several lines, then adds usage text).
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            print!("{e}");
            return ExitCode::SUCCESS;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
            eprintln!(
                "lakesim: no command given; commands: {} (see 'lakesim --help')",
                names.join(", ")
            );
            return ExitCode::from(2);
        }
        _ => {}
    }
    eprintln!(
        "lakesim: {} (see 'lakesim --help')",
        one_line(&e.to_string())
    );
    ExitCode::from(2)
}

/// clap's message up to its usage text, on one line.
fn one_line(text: &str) -> String {
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let joined = parts.join(" ").trim_start_matches("error: ").to_string();
    if joined.is_empty() {
        "bad arguments".to_string()
    } else {
        joined
    }
}

fn cmd_list() {
    println!("scenarios (leaders: whether the compute leading the safekeepers changes):");
    for s in scenario::ALL {
        let leaders = match scenario::leaders_change(&(s.build)()) {
            true => "leaders change",
            false => "one leader",
        };
        println!("  {:<22} {:<15} {}", s.name, leaders, s.about);
    }
    println!("planted bugs (--bug NAME):");
    for b in Bug::ALL {
        println!("  {:<22} {}", b.name(), b.describe());
    }
    println!("coverage probes (rare paths a campaign reports reaching):");
    for p in lakesim_nodes::probe::Probe::ALL {
        println!("  {:<30} {}", p.name(), p.about());
    }
}

fn cmd_run(seed: u64, setup: &Setup, trace: Option<PathBuf>, json: bool) -> Result<ExitCode> {
    let (name, config, bugs) = setup.resolve()?;
    // The trace file is made before the run: a bad path is found now, and an existing file
    // (the config itself, say) is never overwritten.
    let trace_file = trace
        .as_deref()
        .map(|p| crate::files::create_new(p).with_context(|| "--trace".to_string()))
        .transpose()?;
    let plan = Plan::generate(seed, &config);
    let opts = RunOptions {
        bugs: bugs.clone(),
        keep_trace: trace.is_some(),
        ..RunOptions::default()
    };
    if !json {
        println!(
            "lakesim run: seed {seed}, scenario {name}{}",
            bug_suffix(setup)
        );
        println!("{}", describe_config(&plan));
        println!("{}", describe_faults(&plan));
    }
    let outcome = run_seed(seed, &plan, &opts);
    if json {
        let doc = serde_json::json!({
            "seed": seed,
            "scenario": name,
            "bug": setup.bug,
            "full_page_writes": config.full_page_writes,
            "result": if outcome.violation.is_some() { "fail" } else { "ok" },
            "violation": outcome.violation,
            "trace_hash": format!("{:016x}", outcome.trace_hash),
            "simulated_s": outcome.sim_time.as_secs_f64(),
            "wall_s": outcome.wall_time.as_secs_f64(),
            "events": outcome.events,
            "probes": outcome.probes.iter().map(|p| p.name()).collect::<Vec<_>>(),
            "replay": replay_command(seed, setup),
            "stats": outcome.stats,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_outcome(&outcome, &replay_command(seed, setup));
    }
    let failed = outcome.violation.is_some();
    if let (Some(path), Some(file)) = (&trace, trace_file) {
        // After the outcome is printed: a trace that cannot be written loses no finding.
        if let Err(e) = write_trace(file, path, &outcome) {
            bad_input(&e);
            return Ok(ExitCode::from(if failed { 1 } else { 2 }));
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn cmd_import_wal(
    waldump: &std::path::Path,
    pages: Option<&std::path::Path>,
    out: &std::path::Path,
    force: bool,
) -> Result<ExitCode> {
    if out.exists() && !force {
        anyhow::bail!(
            "{} exists: choose another --out or pass --force to replace it",
            out.display()
        );
    }
    let dump = crate::pgtrace::read_maybe_gz(waldump)?;
    let tsv = pages.map(crate::pgtrace::read_maybe_gz).transpose()?;
    let source = waldump.file_name().map_or_else(
        || waldump.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let (text, stats) = crate::pgtrace::import(&dump, tsv.as_deref(), &source)?;
    match force {
        true => crate::files::replace(out, text.as_bytes())?,
        false => crate::files::write_new(out, text.as_bytes())?,
    }
    println!(
        "{}: {} records, {} transactions, {} full-page images, {} checkpoints, {} pages; {} records change no page and are not replayed",
        out.display(),
        stats.records,
        stats.commits,
        stats.fpis,
        stats.checkpoints,
        stats.pages,
        stats.skipped_records
    );
    println!(
        "per transaction: {:.1} bytes of records without images, {:.1} with them",
        stats.rec_bytes as f64 / stats.commits.max(1) as f64,
        stats.tot_bytes as f64 / stats.commits.max(1) as f64
    );
    Ok(ExitCode::SUCCESS)
}

fn write_trace(file: std::fs::File, path: &std::path::Path, o: &RunOutcome) -> Result<()> {
    use std::io::Write;
    let context = || format!("cannot write trace {}", path.display());
    let mut out = std::io::BufWriter::new(file);
    for e in o.full_trace.iter().flatten() {
        serde_json::to_writer(&mut out, e).with_context(context)?;
        out.write_all(b"\n").with_context(context)?;
    }
    let file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(context)?;
    crate::files::sync_file_and_dir(&file, path)
}

fn cmd_replay(path: &std::path::Path, html: Option<&std::path::Path>) -> Result<ExitCode> {
    let loaded = SeedFile::load(path)?;
    // Made before the run: a bad path is found now, and an existing file is kept.
    let page = html
        .map(|p| crate::files::create_new(p).context("--html"))
        .transpose()?;
    let f = &loaded.file;
    let what = f
        .scenario
        .clone()
        .unwrap_or_else(|| "(config in file)".to_string());
    println!(
        "lakesim replay {}: seed {}, scenario {what}{}",
        path.display(),
        f.seed,
        f.bug
            .as_ref()
            .map(|b| format!(", planted bug {b}"))
            .unwrap_or_default()
    );
    let replay = loaded.replay_keeping(html.is_some());
    print_outcome(
        &replay.outcome,
        &format!(
            "lakesim replay {}",
            shell_quote(&path.display().to_string())
        ),
    );
    if let (Some(out), Some(mut file)) = (html, page) {
        use std::io::Write;
        let title = format!(
            "seed {}, {}{}",
            f.seed,
            what,
            f.bug
                .as_ref()
                .map(|b| format!(", bug {b}"))
                .unwrap_or_default()
        );
        let text = crate::timeline::render(&title, &replay.outcome);
        file.write_all(text.as_bytes())
            .with_context(|| format!("cannot write {}", out.display()))?;
        crate::files::sync_file_and_dir(&file, out)?;
        println!("timeline: {}", out.display());
    }
    let hash_now = format!("{:016x}", replay.outcome.trace_hash);
    if f.budget.is_some() {
        println!(
            "trace hash not compared: a budget failure depends on this machine's speed and memory"
        );
    } else if f.invariant == Some(lakesim_nodes::Invariant::Nondeterminism) {
        println!("trace hash not compared: the seed ran twice in this process and the two runs were compared");
    } else if replay.hash_matches {
        println!("trace hash matches the recorded one");
    } else {
        println!(
            "trace hash differs: recorded {}, now {hash_now} (nondeterminism, or a binary or plan whose behaviour changed: see 'lakesim pin')",
            f.trace_hash
        );
    }
    let expected = match f.expect {
        Expect::Pass => "pass".to_string(),
        Expect::Fail => format!(
            "fail with {}{}",
            f.invariant.map_or("?", |i| i.name()),
            f.caught_by
                .as_ref()
                .map(|c| format!(" caught by {c}"))
                .unwrap_or_default()
        ),
    };
    let got = replay
        .outcome
        .violation
        .as_ref()
        .map_or("pass".to_string(), |v| {
            format!("fail with {} caught by {}", v.invariant, v.caught_by)
        });
    match replay.as_expected {
        true => println!("expected: {expected}; as expected"),
        false => println!("expected: {expected}; NOT as expected: got {got}"),
    }
    // 0 only for a file that passes as it should, bit-exactly; a failure, a file that no
    // longer does what it records, or a different trace is 1.
    let clean = replay.as_expected && replay.hash_matches && replay.outcome.violation.is_none();
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn cmd_shrink(path: &std::path::Path, out: Option<PathBuf>, jobs: Option<u64>) -> Result<ExitCode> {
    let loaded = SeedFile::load(path)?;
    let out = out.unwrap_or_else(|| {
        let stem = path
            .file_stem()
            .map_or("seed".into(), |s| s.to_string_lossy());
        path.with_file_name(format!("{stem}-shrunk.toml"))
    });
    if out.exists() {
        anyhow::bail!("--out {} exists and is kept: choose another", out.display());
    }
    let jobs = jobs.map_or_else(default_jobs, |j| j as usize);
    println!(
        "lakesim shrink {}: seed {}",
        path.display(),
        loaded.file.seed
    );
    let shrunk = crate::shrink::shrink(&loaded, jobs, &|line| println!("  {line}"))?;
    let text = toml::to_string(&shrunk.file).context("seed file serialises")?;
    crate::files::write_new(&out, text.as_bytes())?;
    println!("fault events before ({}):", shrunk.events_before.len());
    for line in crate::shrink::describe_events(&shrunk.events_before) {
        println!("  {line}");
    }
    println!("fault events after ({}):", shrunk.events_after.len());
    for line in crate::shrink::describe_events(&shrunk.events_after) {
        println!("  {line}");
    }
    println!(
        "shrunk: {} -> {} fault events, {} -> {} work items, {} runs in {:.1}s",
        shrunk.events_before.len(),
        shrunk.events_after.len(),
        shrunk.items_before,
        shrunk.items_after,
        shrunk.runs,
        shrunk.wall.as_secs_f64()
    );
    println!(
        "saved {}; replay: lakesim replay {}",
        out.display(),
        shell_quote(&out.display().to_string())
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_merge(
    dirs: &[PathBuf],
    out: &std::path::Path,
    previous: Option<&std::path::Path>,
) -> Result<ExitCode> {
    let merged = crate::merge::merge(dirs, out, previous)?;
    print!("{}", crate::merge::markdown(&merged));
    println!(
        "\nmerged report: {} (summary.json, junit.xml, report.md, report.html)",
        out.display()
    );
    Ok(if merged.failures > 0 || !merged.complete {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The seed files in `dir`, sorted.
pub fn seed_files(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Rewrites a seed file's trace hash, and the line of the assertion that caught it when only
/// that moved; every other line is kept as it is.
fn repin(path: &std::path::Path, hash: &str, caught_by: Option<&str>) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut replaced = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("trace_hash") && !replaced {
                replaced = true;
                format!("trace_hash = \"{hash}\"")
            } else if let (true, Some(c)) = (line.trim_start().starts_with("caught_by"), caught_by)
            {
                format!("caught_by = \"{c}\"")
            } else {
                line.to_string()
            }
        })
        .collect();
    anyhow::ensure!(replaced, "{}: no trace_hash line to re-pin", path.display());
    crate::files::replace(path, (lines.join("\n") + "\n").as_bytes())
}

fn cmd_pin(paths: &[PathBuf]) -> Result<ExitCode> {
    let mut files = Vec::new();
    for p in paths {
        match p.is_dir() {
            true => files.extend(seed_files(p)?),
            false => files.push(p.clone()),
        }
    }
    let loaded: Vec<_> = files
        .iter()
        .map(|p| SeedFile::load(p).map(|l| (p, l)))
        .collect::<Result<_>>()?;
    let (mut changed, mut broken) = (0, 0);
    for (path, l) in loaded {
        let replay = l.replay();
        if !replay.as_expected {
            broken += 1;
            let got = replay
                .outcome
                .violation
                .as_ref()
                .map_or("pass".to_string(), |v| v.invariant.to_string());
            println!(
                "{}: no longer as expected (got {got}); left unchanged",
                path.display()
            );
            continue;
        }
        let caught_by = replay
            .outcome
            .violation
            .as_ref()
            .map(|v| v.caught_by.as_str());
        let moved = l.file.caught_by.as_deref() != caught_by && l.file.caught_by.is_some();
        if replay.hash_matches && !moved {
            continue;
        }
        let new_hash = format!("{:016x}", replay.outcome.trace_hash);
        repin(path, &new_hash, caught_by.filter(|_| moved))?;
        changed += 1;
        println!(
            "{}: re-pinned {} -> {new_hash}",
            path.display(),
            l.file.trace_hash
        );
    }
    println!(
        "{} files, {changed} re-pinned, {broken} no longer as expected",
        files.len()
    );
    Ok(if broken > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A panic inside a seed is a finding, reported with the run (message and last events); the
/// default hook's backtrace would only bury it. Panics elsewhere still print one line.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let in_seed = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("seed-"));
        if in_seed {
            crate::runner::note_panic_location(info.location());
            // For a person chasing a panic: LAKESIM_BACKTRACE=1 prints where it came from.
            if std::env::var_os("LAKESIM_BACKTRACE").is_some() {
                let bt = std::backtrace::Backtrace::force_capture();
                eprintln!("panic in a seed: {info}\n{bt}");
            }
        } else {
            eprintln!("lakesim: internal error: {info}");
        }
    }));
}

fn cmd_fuzz(campaign: &Campaign) -> Result<ExitCode> {
    let stop = Arc::new(Stopper::default());
    let signals = Arc::new(AtomicU64::new(0));
    let on_signal = stop.clone();
    // SIGINT, SIGTERM, SIGHUP: the first cuts the seeds in flight (within milliseconds) and
    // lets the campaign write its summary; a second exits at once (failure files and seed
    // lines already written are whole: each is written atomically).
    let handler = ctrlc::set_handler(move || {
        if signals.fetch_add(1, Ordering::SeqCst) == 0 {
            on_signal.request(StopReason::Signal);
        } else {
            eprintln!("lakesim: second interrupt: exiting now; the summary is not written (rerun with --resume to finish the campaign)");
            std::process::exit(130);
        }
    });
    if let Err(e) = handler {
        eprintln!(
            "lakesim: cannot handle signals ({e}); Ctrl-C will end the campaign without a summary"
        );
    }
    let summary = campaign.run(stop.clone())?;
    let console = Console::new(stop);
    console.line(&format!(
        "campaign {} (shard {}{}): {} seeds, {} failed, {:.1}s wall, {:.0} seeds/s, {:.0} simulated s per wall s{}",
        summary.scenario,
        summary.shard,
        summary.bug.as_ref().map(|b| format!(", planted bug {b}")).unwrap_or_default(),
        summary.seeds_run,
        summary.failures,
        summary.wall_seconds,
        summary.seeds_per_second,
        summary.simulated_seconds_per_wall_second,
        summary.stopped_by.as_ref().map(|r| format!(", stopped early: {r}")).unwrap_or_default(),
    ));
    for (invariant, n) in &summary.failures_by_invariant {
        let (seed, after) = summary.first_failure[invariant];
        console.line(&format!(
            "  {invariant}: {n} seeds failed; first seed {seed}, after {after} seeds"
        ));
    }
    if summary.determinism_rechecked > 0 {
        console.line(&format!(
            "determinism: {} seeds run twice in this process, {} differed",
            summary.determinism_rechecked,
            summary
                .failures_by_invariant
                .get("nondeterminism")
                .unwrap_or(&0)
        ));
    }
    let probes = summary.probes_hit.len();
    console.line(&format!(
        "probes: {} of {probes} reached by at least one seed{}",
        probes - summary.probes_never_hit.len(),
        match summary.probes_never_hit.is_empty() {
            true => String::new(),
            false => format!("; never reached: {}", summary.probes_never_hit.join(", ")),
        }
    ));
    console.line(&format!(
        "summary: {}",
        campaign.out.join(crate::outdir::SUMMARY).display()
    ));
    let unreached = campaign.require_probes && !summary.probes_never_hit.is_empty();
    if unreached {
        console.line("--require-probes: some probes were never reached");
    }
    Ok(if summary.failures > 0 || unreached {
        ExitCode::from(1)
    } else if summary.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// Puts SIGPIPE back to its default action (Rust ignores it, so a write to a closed pipe
/// fails, and `println!` panics on that failure).
fn restore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
