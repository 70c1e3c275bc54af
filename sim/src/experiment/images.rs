//! `images`: what each image policy costs the pageserver and what reads pay for it, with
//! `full_page_writes` off, and FPW on for comparison. The write amplification that moved from
//! the compute (images in the WAL) to the pageserver (images it writes itself) shows in the
//! bytes storage writes per WAL byte.

use super::plot::{line_chart, Chart, Series};
use super::{
    base_config, cell, cost_section, fmt_num, md_table, measure, write_results, Measured, Options,
    Point,
};
use crate::config::{Config, ImagePolicy};
use crate::files;
use anyhow::Result;

const METRICS: [&str; 12] = [
    "records_p50",
    "records_p99",
    "records_max",
    "latency_us_p50",
    "latency_us_p99",
    "latency_us_p999",
    "layers_p99",
    "image_bytes",
    "storage_bytes_per_wal_byte",
    "wal_bytes_per_txn",
    "commits_per_s",
    "getpages",
];

/// The policies compared, with FPW on last.
fn cases() -> Vec<(ImagePolicy, bool)> {
    vec![
        (ImagePolicy::PerPageRecords(2), false),
        (ImagePolicy::PerPageRecords(8), false),
        (ImagePolicy::PerPageRecords(32), false),
        (ImagePolicy::LayerCount(1), false),
        (ImagePolicy::LayerCount(3), false),
        (ImagePolicy::None, false),
        (ImagePolicy::PerPageRecords(8), true),
    ]
}

pub fn run(o: &Options) -> Result<()> {
    let base = base_config(o.user_config.as_ref());
    let points: Vec<Point> = cases()
        .into_iter()
        .enumerate()
        .map(|(i, (policy, fpw))| {
            let mut c: Config = base.clone();
            c.image_policy = policy;
            c.full_page_writes = fpw;
            c.checkpoint_timeout_ms = 160;
            c.workload.read_interval_ms = 1;
            c.fault_window_ms = 1500;
            let name = format!("{policy}{}", if fpw { ", FPW on" } else { "" });
            Point {
                id: format!(
                    "{i}-{}",
                    name.replace([':', ',', ' '], "-").replace("--", "-")
                ),
                series: name,
                params: vec![("case", i as f64), ("fpw", f64::from(u8::from(fpw)))],
                config: c,
                faults: None,
            }
        })
        .collect();
    let measured = measure(o, points)?;
    write_results(o, "images", &measured, &METRICS)?;
    plots(o, &measured)?;
    let report = report(&base, &measured);
    files::replace(&o.out.join("report.md"), report.as_bytes())?;
    Ok(())
}

fn plots(o: &Options, measured: &[Measured]) -> Result<()> {
    let bar = |metric: &str| -> Vec<Series> {
        measured
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let s = m.get(metric);
                Series {
                    name: m.point.series.clone(),
                    points: vec![(i as f64 + 1.0, s.mean, s.min, s.max)],
                }
            })
            .collect()
    };
    let latency = super::latency_by_case(measured);
    line_chart(
        &o.out.join("getpage_latency.svg"),
        &Chart {
            title: "GetPage latency by case (1..7: see report.md)",
            x_label: "case",
            y_label: "latency (us, simulated)",
            log_x: false,
            log_y: true,
            legend_left: false,
        },
        &latency,
    )?;
    line_chart(
        &o.out.join("records_per_getpage.svg"),
        &Chart {
            title: "Records applied per GetPage, p99 (one point per case)",
            x_label: "case",
            y_label: "records applied (p99)",
            log_x: false,
            log_y: true,
            legend_left: false,
        },
        &bar("records_p99"),
    )?;
    line_chart(
        &o.out.join("write_amplification.svg"),
        &Chart {
            title: "Bytes storage writes per committed WAL byte",
            x_label: "case",
            y_label: "bytes written / WAL byte",
            log_x: false,
            log_y: false,
            legend_left: false,
        },
        &bar("storage_bytes_per_wal_byte"),
    )
}

fn report(base: &Config, measured: &[Measured]) -> String {
    let rows: Vec<Vec<String>> = measured
        .iter()
        .enumerate()
        .map(|(i, m)| {
            vec![
                format!("{}", i + 1),
                m.point.series.clone(),
                cell(m, "records_p50"),
                cell(m, "records_p99"),
                cell(m, "records_max"),
                cell(m, "latency_us_p50"),
                cell(m, "latency_us_p99"),
                cell(m, "latency_us_p999"),
                format!("{:.1} MB", m.get("image_bytes").mean / 1e6),
                cell(m, "storage_bytes_per_wal_byte"),
                cell(m, "wal_bytes_per_txn"),
            ]
        })
        .collect();
    let find = |series: &str| measured.iter().find(|m| m.point.series == series);
    let (off, on) = (
        find("per-page-records:8"),
        find("per-page-records:8, FPW on"),
    );
    let tail = |m: Option<&Measured>| m.map_or(f64::NAN, |m| m.get("latency_us_p99").mean);
    let (p99_off, p99_on) = (tail(off), tail(on));
    let change = 100.0 * (p99_off / p99_on - 1.0);
    let mut s = String::from("# Experiment images: image policies and what reads pay\n\n");
    s += "Workload: tpcb at scale 1 (closed loop, 128 clients), checkpoint_timeout 160 ms, one GetPage per ms over all pages (30% of them at an older acknowledged LSN). Latency is the pageserver's service time on the simulated clock (layer reads, queueing for the one walredo process, redo), after any wait for ingest to reach the LSN (reported apart as `wait_us_p99` in the CSV); network time is not in it.\n\n";
    s += &cost_section(base);
    s += "\n## Results\n\n";
    s += &md_table(
        &[
            "case",
            "policy",
            "records/GetPage p50",
            "p99",
            "max",
            "latency us p50",
            "p99",
            "p99.9",
            "image bytes",
            "storage bytes / WAL byte",
            "WAL/txn",
        ],
        &rows,
    );
    s += "\nPlots: `getpage_latency.svg`, `records_per_getpage.svg`, `write_amplification.svg`.\n\n## Public claims beside the measurements\n\n";
    s += &md_table(
        &["claim", "measured here", "holds when", "does not hold when"],
        &[vec![
            "p99 read latency -30% to -50% (Lakebase, FPW off)".into(),
            format!("GetPage p99 {} us with FPW off (per-page-records:8) vs {} us with FPW on: {:+.0}%", fmt_num(p99_off), fmt_num(p99_on), change),
            "reads that would replay long chains behind a full-page image in the WAL now start from a fresh pageserver image (per-page-records keeps chains at N), and less WAL means less ingest work ahead of reads".into(),
            "images lag (layer-count, none, or a pageserver behind): chains grow with the layer size or without bound, and the tail is the walredo queue".into(),
        ]],
    );
    s += "\n## Where the complexity moved\n\nWith FPW on, the compute pays for images in the WAL (its size, its fsyncs, its network). With FPW off, the pageserver writes images instead: `image bytes` and `storage bytes / WAL byte` above are that bill. per-page-records with a small N writes an image every N+1 changes of a page, so a hot page costs an 8 KiB image per few hundred bytes of WAL; layer-count writes far fewer images but leaves chains as long as a layer's worth of changes; none writes no images and reads replay everything.\n";
    s
}
