//! `fpw`: what `full_page_writes = off` buys on pgbench's TPC-B-like load.
//!
//! Part A sweeps updates per page per checkpoint (checkpoint interval x scale) and measures WAL
//! bytes per transaction with full-page writes on and off. A short checkpoint interval at
//! scale 1-3 stands for a large database at Postgres's usual 5-minute interval: what decides
//! the FPI volume is how often a page is updated between checkpoints, `x = tps x
//! checkpoint_timeout / pages`, and a 1 TB database at 10,000 tps and 5 minutes has x = 0.02.
//! Part B sweeps compute vCPUs and link bandwidth at small x and measures commits/s, to show
//! where the gain appears (the WAL is the bottleneck) and where it does not (CPU).

use super::plot::{line_chart, Chart, Series};
use super::{
    base_config, cost_section, fmt_num, md_table, measure, ratio, spread_cell, write_results,
    Measured, Options, Point,
};
use crate::files;
use crate::tpcb::Layout;
use anyhow::Result;

const METRICS: [&str; 6] = [
    "wal_bytes_per_txn",
    "fpi_share",
    "commits_per_s",
    "txns",
    "checkpoints",
    "latency_us_p99",
];

pub fn run(o: &Options) -> Result<()> {
    let base = base_config(o.user_config.as_ref());
    let mut points = Vec::new();
    for (scale, timeouts) in [
        (1u32, &[10u64, 40, 160, 640, 2560][..]),
        (3, &[10, 40, 160][..]),
    ] {
        for &timeout_ms in timeouts {
            for fpw in [true, false] {
                let mut c = base.clone();
                c.workload.scale = scale;
                c.cost.vcpus = 2;
                c.checkpoint_timeout_ms = timeout_ms;
                c.full_page_writes = fpw;
                c.fault_window_ms = (4 * timeout_ms + 600).max(1000);
                points.push(Point {
                    id: format!("wal-s{scale}-t{timeout_ms}-{}", on_off(fpw)),
                    series: format!("scale {scale}, FPW {}", on_off(fpw)),
                    params: vec![
                        ("part", 1.0),
                        ("scale", f64::from(scale)),
                        ("checkpoint_timeout_ms", timeout_ms as f64),
                        ("vcpus", 2.0),
                        ("link_mbit_per_s", c.cost.link_mbit_per_s),
                        ("fpw", f64::from(u8::from(fpw))),
                    ],
                    config: c,
                    faults: None,
                });
            }
        }
    }
    for link in [1000.0, 10_000.0] {
        for vcpus in [1usize, 2, 8, 32] {
            for fpw in [true, false] {
                let mut c = base.clone();
                c.cost.vcpus = vcpus;
                c.cost.link_mbit_per_s = link;
                c.workload.clients = (64 * vcpus).min(2048);
                c.checkpoint_timeout_ms = 20;
                c.full_page_writes = fpw;
                c.fault_window_ms = 800;
                points.push(Point {
                    id: format!("tput-l{link}-c{vcpus}-{}", on_off(fpw)),
                    series: format!("{} Gbit/s, FPW {}", link / 1000.0, on_off(fpw)),
                    params: vec![
                        ("part", 2.0),
                        ("scale", 1.0),
                        ("checkpoint_timeout_ms", 20.0),
                        ("vcpus", vcpus as f64),
                        ("link_mbit_per_s", link),
                        ("fpw", f64::from(u8::from(fpw))),
                    ],
                    config: c,
                    faults: None,
                });
            }
        }
    }
    let measured = measure(o, points)?;
    write_results(o, "fpw", &measured, &METRICS)?;
    let pairs = pairs(&measured);
    let (wal_rows, tput_rows) = (wal_rows(&pairs), tput_rows(&pairs));
    plots(o, &pairs)?;
    let report = report(&base, &pairs, &wal_rows, &tput_rows);
    files::replace(&o.out.join("report.md"), report.as_bytes())?;
    println!(
        "\n{}",
        report
            .lines()
            .skip_while(|l| !l.starts_with("| x"))
            .take_while(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    );
    Ok(())
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// Each FPW-on point with its FPW-off twin.
struct Pair<'a> {
    on: &'a Measured,
    off: &'a Measured,
}

impl Pair<'_> {
    fn part(&self) -> u32 {
        self.on.param("part") as u32
    }

    /// Updates of an account page per checkpoint, as the FPW-on runs measured it.
    fn x(&self) -> f64 {
        let pages = f64::from(Layout::new(self.on.param("scale") as u32).accounts);
        let per_run: Vec<f64> = self
            .on
            .runs
            .iter()
            .map(|r| {
                let checkpoints = r.metrics["checkpoints"].max(1.0);
                r.metrics["txns"] / checkpoints / pages
            })
            .collect();
        per_run.iter().sum::<f64>() / per_run.len().max(1) as f64
    }
}

fn pairs(measured: &[Measured]) -> Vec<Pair<'_>> {
    measured
        .chunks(2)
        .map(|c| Pair {
            on: &c[0],
            off: &c[1],
        })
        .collect()
}

fn wal_rows(pairs: &[Pair]) -> Vec<(f64, Vec<String>)> {
    let mut rows: Vec<(f64, Vec<String>)> = pairs
        .iter()
        .filter(|p| p.part() == 1)
        .map(|p| {
            let x = p.x();
            let r = ratio(p.on, p.off, "wal_bytes_per_txn");
            (
                x,
                vec![
                    fmt_num(x),
                    fmt_num(p.on.param("scale")),
                    format!("{} ms", p.on.param("checkpoint_timeout_ms")),
                    spread_cell(p.on.get("wal_bytes_per_txn")),
                    spread_cell(p.off.get("wal_bytes_per_txn")),
                    spread_cell(r),
                    format!("{:.1}%", 100.0 * (1.0 - 1.0 / r.mean.max(1e-9))),
                    format!("{:.0}%", 100.0 * p.on.get("fpi_share").mean),
                ],
            )
        })
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    rows
}

fn tput_rows(pairs: &[Pair]) -> Vec<Vec<String>> {
    pairs
        .iter()
        .filter(|p| p.part() == 2)
        .map(|p| {
            vec![
                fmt_num(p.on.param("vcpus")),
                format!("{} Gbit/s", p.on.param("link_mbit_per_s") / 1000.0),
                spread_cell(p.on.get("commits_per_s")),
                spread_cell(p.off.get("commits_per_s")),
                spread_cell(ratio(p.off, p.on, "commits_per_s")),
                fmt_num(p.on.get("wal_bytes_per_txn").mean),
            ]
        })
        .collect()
}

fn plots(o: &Options, pairs: &[Pair]) -> Result<()> {
    let mut wal: Vec<Series> = Vec::new();
    let mut amp: Vec<Series> = Vec::new();
    for scale in [1.0, 3.0] {
        let part: Vec<&Pair> = pairs
            .iter()
            .filter(|p| p.part() == 1 && p.on.param("scale") == scale)
            .collect();
        for (name, pick) in [("FPW on", true), ("FPW off", false)] {
            wal.push(Series {
                name: format!("{name}, scale {scale}"),
                points: part
                    .iter()
                    .map(|p| {
                        let s = if pick { p.on } else { p.off }.get("wal_bytes_per_txn");
                        (p.x(), s.mean, s.min, s.max)
                    })
                    .collect(),
            });
        }
        amp.push(Series {
            name: format!("scale {scale}"),
            points: part
                .iter()
                .map(|p| {
                    let r = ratio(p.on, p.off, "wal_bytes_per_txn");
                    (p.x(), r.mean, r.min, r.max)
                })
                .collect(),
        });
    }
    line_chart(
        &o.out.join("wal_per_txn.svg"),
        &Chart {
            title: "WAL bytes per transaction (tpcb)",
            x_label: "updates per account page per checkpoint",
            y_label: "WAL bytes per transaction",
            log_x: true,
            log_y: true,
            legend_left: false,
        },
        &wal,
    )?;
    line_chart(
        &o.out.join("wal_amplification.svg"),
        &Chart {
            title: "WAL with full_page_writes on / off",
            x_label: "updates per account page per checkpoint",
            y_label: "WAL on / WAL off",
            log_x: true,
            log_y: false,
            legend_left: false,
        },
        &amp,
    )?;
    let mut tput: Vec<Series> = Vec::new();
    let mut gain: Vec<Series> = Vec::new();
    for link in [1000.0, 10_000.0] {
        let part: Vec<&Pair> = pairs
            .iter()
            .filter(|p| p.part() == 2 && p.on.param("link_mbit_per_s") == link)
            .collect();
        for (name, pick) in [("FPW on", true), ("FPW off", false)] {
            tput.push(Series {
                name: format!("{name}, {} Gbit/s", link / 1000.0),
                points: part
                    .iter()
                    .map(|p| {
                        let s = if pick { p.on } else { p.off }.get("commits_per_s");
                        (p.on.param("vcpus"), s.mean, s.min, s.max)
                    })
                    .collect(),
            });
        }
        gain.push(Series {
            name: format!("{} Gbit/s link", link / 1000.0),
            points: part
                .iter()
                .map(|p| {
                    let r = ratio(p.off, p.on, "commits_per_s");
                    (p.on.param("vcpus"), r.mean, r.min, r.max)
                })
                .collect(),
        });
    }
    line_chart(
        &o.out.join("throughput.svg"),
        &Chart {
            title: "Commits per simulated second (tpcb, closed loop)",
            x_label: "compute vCPUs",
            y_label: "commits/s",
            log_x: true,
            log_y: true,
            legend_left: true,
        },
        &tput,
    )?;
    line_chart(
        &o.out.join("throughput_gain.svg"),
        &Chart {
            title: "Throughput with full_page_writes off / on",
            x_label: "compute vCPUs",
            y_label: "commits/s off / on",
            log_x: true,
            log_y: false,
            legend_left: true,
        },
        &gain,
    )
}

fn report(
    base: &crate::config::Config,
    pairs: &[Pair],
    wal_rows: &[(f64, Vec<String>)],
    tput_rows: &[Vec<String>],
) -> String {
    let lowest = pairs
        .iter()
        .filter(|p| p.part() == 1)
        .min_by(|a, b| a.x().total_cmp(&b.x()));
    let highest = pairs
        .iter()
        .filter(|p| p.part() == 1)
        .max_by(|a, b| a.x().total_cmp(&b.x()));
    let at = |p: Option<&Pair>| {
        p.map_or((f64::NAN, f64::NAN), |p| {
            (p.x(), ratio(p.on, p.off, "wal_bytes_per_txn").mean)
        })
    };
    let ((x_lo, r_lo), (x_hi, r_hi)) = (at(lowest), at(highest));
    let mut holds94: Vec<f64> = pairs
        .iter()
        .filter(|p| p.part() == 1 && ratio(p.on, p.off, "wal_bytes_per_txn").mean >= 1.0 / 0.06)
        .map(|p| p.x())
        .collect();
    holds94.sort_by(f64::total_cmp);
    let gains: Vec<(f64, f64, f64)> = pairs
        .iter()
        .filter(|p| p.part() == 2)
        .map(|p| {
            (
                p.on.param("vcpus"),
                p.on.param("link_mbit_per_s"),
                ratio(p.off, p.on, "commits_per_s").mean,
            )
        })
        .collect();
    let wal_bound = gains
        .iter()
        .find(|g| g.0 == 32.0 && g.1 == 1000.0)
        .map_or(f64::NAN, |g| g.2);
    let cpu_bound = gains
        .iter()
        .find(|g| g.0 == 1.0 && g.1 == 10_000.0)
        .map_or(f64::NAN, |g| g.2);
    let rows: Vec<Vec<String>> = wal_rows.iter().map(|(_, r)| r.clone()).collect();
    let mut s = String::from("# Experiment fpw: full_page_writes on vs off (tpcb)\n\n");
    s += "Workload: pgbench's TPC-B-like transaction (`sim/src/tpcb.rs`: record sizes and page fill from a real PostgreSQL 15 pgbench run), closed-loop clients. Each FPW-on point runs beside an FPW-off twin with the same seeds.\n\n";
    s += &cost_section(base);
    s += "\n## Public claims beside the measurements\n\n";
    s += &md_table(
        &["claim", "measured here", "holds when", "does not hold when"],
        &[
            vec![
                "WAL traffic -94% with full_page_writes off (TPROC-C: 58 KB -> under 4 KB per transaction)".into(),
                format!("{:.1}% less WAL at {} updates per page per checkpoint (on/off = {}x); {:.1}% at {} (on/off = {}x)", 100.0 * (1.0 - 1.0 / r_lo), fmt_num(x_lo), fmt_num(r_lo), 100.0 * (1.0 - 1.0 / r_hi), fmt_num(x_hi), fmt_num(r_hi)),
                format!("pages are updated rarely between checkpoints: -94% needs on/off >= 16.7x, seen here at x in {{{}}}: large databases (x = tps x checkpoint_timeout / pages is 0.02 for 1 TB at 10,000 tps and 5 min), short checkpoint intervals", holds94.iter().map(|x| fmt_num(*x)).collect::<Vec<_>>().join(", ")),
                "hot, small working sets: once a page takes several updates per checkpoint, only its first pays an image, and the saving falls towards the share of first touches".into(),
            ],
            vec![
                "\"up to 15x\" WAL growth from full-page images on write-heavy loads".into(),
                format!("up to {}x at the fewest updates per page per checkpoint", fmt_num(r_lo)),
                "every update is a page's first after a checkpoint: the image (8 KiB less the page's hole) dwarfs the record (72-171 bytes)".into(),
                "the same pages are rewritten many times per checkpoint".into(),
            ],
            vec![
                "write throughput up to 5x (HammerDB TPROC-C: +20% at 4 vCPU, 2.8x at 16, 4.5x at 32)".into(),
                format!("{}x at 32 vCPUs on a 1 Gbit/s link (WAL-bound); {}x at 1 vCPU on 10 Gbit/s (CPU-bound)", fmt_num(wal_bound), fmt_num(cpu_bound)),
                "the WAL path is the bottleneck: the compute's link to the safekeepers (1 Gbit/s carries 125 MB/s, a third of it per safekeeper copy), their disks, or the pageservers' ingest (the compute stops starting work while they lag 16 MiB behind, as Neon's does at max_replication_write_lag): more vCPUs make more WAL than it carries with images on".into(),
                "CPU or fsync latency bounds throughput: full-page images cost only their copy and CRC (about 8 us each here), so the gain is near 1x".into(),
            ],
        ],
    );
    s += "\n## A: WAL per transaction\n\nx: updates per account page per checkpoint, measured on the FPW-on runs (transactions / checkpoints / account pages). Ratio: per-seed WAL(on)/WAL(off).\n\n";
    s += &md_table(
        &[
            "x",
            "scale",
            "checkpoint_timeout",
            "WAL/txn FPW on",
            "WAL/txn FPW off",
            "on/off",
            "saved by off",
            "FPI share (on)",
        ],
        &rows,
    );
    s += "\nPlots: `wal_per_txn.svg`, `wal_amplification.svg`.\n\n## B: throughput\n\nScale 1, checkpoint_timeout 20 ms (x about 0.1), clients 64 per vCPU (at most 2,048). Gain: per-seed commits/s off/on.\n\n";
    s += &md_table(
        &[
            "vCPUs",
            "link",
            "commits/s FPW on",
            "commits/s FPW off",
            "gain off/on",
            "WAL/txn on",
        ],
        tput_rows,
    );
    s += "\nWhere FPW-on throughput stops growing with vCPUs, the WAL path is full: on 1 Gbit/s the link (each of the three safekeepers gets its own copy), on 10 Gbit/s the pageservers' ingest, which backpressure holds the compute to. With FPW off the same vCPUs stay CPU-bound much longer, which is where a gain of several times comes from; with one vCPU both are CPU-bound and the gain is the images' copy and CRC cost only.\n\nPlots: `throughput.svg`, `throughput_gain.svg`.\n\n## Where the complexity moved\n\nWith FPW off the pageservers make the images the compute no longer logs: see `lakesim experiment images` for the bytes they write per WAL byte and what reads pay for chains.\n\n## Reproduce\n\nEvery point's config is in `configs/`; `runs.csv` lists every run's seed and trace hash: `lakesim run --seed S --config configs/POINT.toml --json` gives the same numbers.\n";
    s
}
