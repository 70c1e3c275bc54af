//! `pg-trace`: the `fpw` and `images` measurements on real Postgres WAL: the shipped pgbench
//! traces (`traces/`, captured by `scripts/capture-pg-trace.sh` on PostgreSQL 15), replayed
//! record for record. WAL per transaction is set beside what the captured run wrote.

use super::plot::{line_chart, Chart};
use super::{
    base_config, cell, cost_section, fmt_num, md_table, measure, write_results, Measured, Options,
    Point,
};
use crate::config::{ImagePolicy, WorkloadKind};
use crate::files;
use crate::pgtrace::Trace;
use anyhow::{Context, Result};

/// The shipped traces, so that the experiment needs no files beside the binary.
pub const TRACE_FPW_OFF: &str = include_str!("../../../traces/pgbench-fpw-off.trace");
pub const TRACE_FPW_ON: &str = include_str!("../../../traces/pgbench-fpw-on.trace");

const METRICS: [&str; 9] = [
    "wal_bytes_per_txn",
    "fpi_share",
    "txns",
    "commits_per_s",
    "records_p99",
    "records_max",
    "latency_us_p99",
    "latency_us_p999",
    "storage_bytes_per_wal_byte",
];

pub fn run(o: &Options) -> Result<()> {
    let dir = o.out.join("traces");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let mut traces = Vec::new();
    for (name, text) in [
        ("pgbench-fpw-off", TRACE_FPW_OFF),
        ("pgbench-fpw-on", TRACE_FPW_ON),
    ] {
        let path = dir.join(format!("{name}.trace"));
        files::replace(&path, text.as_bytes())?;
        traces.push((name, path, Trace::parse(text)?));
    }
    let base = base_config(o.user_config.as_ref());
    let cases = [
        (0, false, ImagePolicy::PerPageRecords(8)),
        (1, true, ImagePolicy::PerPageRecords(8)),
        (1, false, ImagePolicy::PerPageRecords(8)),
        (0, false, ImagePolicy::LayerCount(3)),
        (0, false, ImagePolicy::None),
    ];
    let points: Vec<Point> = cases
        .iter()
        .map(|&(t, fpw, policy)| {
            let (name, path, _) = &traces[t];
            let mut c = base.clone();
            c.workload.kind = WorkloadKind::PgTrace;
            c.workload.trace = Some(path.clone());
            c.workload.clients = 128;
            c.workload.read_interval_ms = 1;
            c.cost.vcpus = 8;
            c.full_page_writes = fpw;
            c.image_policy = policy;
            c.fault_window_ms = 400;
            c.liveness_window_ms = 1500;
            let series = format!("{name}, FPW {}, {policy}", if fpw { "on" } else { "off" });
            Point {
                id: series.replace([',', ':', ' '], "-").replace("--", "-"),
                series,
                params: vec![("trace", t as f64), ("fpw", f64::from(u8::from(fpw)))],
                config: c,
                faults: None,
            }
        })
        .collect();
    let measured = measure(o, points)?;
    write_results(o, "pg-trace", &measured, &METRICS)?;
    plots(o, &measured)?;
    let report = report(
        &base,
        &measured,
        &traces.iter().map(|t| &t.2).collect::<Vec<_>>(),
    );
    files::replace(&o.out.join("report.md"), report.as_bytes())?;
    Ok(())
}

/// WAL per transaction the captured run wrote: records without images, and whole.
pub fn captured_per_txn(trace: &Trace) -> (f64, f64) {
    let txns = trace.header_number("transactions").unwrap_or(f64::NAN);
    (
        trace.header_number("rec_bytes").unwrap_or(f64::NAN) / txns,
        trace.header_number("tot_bytes").unwrap_or(f64::NAN) / txns,
    )
}

fn plots(o: &Options, measured: &[Measured]) -> Result<()> {
    let series = super::latency_by_case(measured);
    line_chart(
        &o.out.join("getpage_latency.svg"),
        &Chart {
            title: "GetPage latency replaying Postgres WAL (cases 1..5: see report.md)",
            x_label: "case",
            y_label: "latency (us, simulated)",
            log_x: false,
            log_y: true,
            legend_left: false,
        },
        &series,
    )
}

fn report(base: &crate::config::Config, measured: &[Measured], traces: &[&Trace]) -> String {
    let (off_rec, _) = captured_per_txn(traces[0]);
    let (on_rec, on_tot) = captured_per_txn(traces[1]);
    let wal = |i: usize| measured[i].get("wal_bytes_per_txn").mean;
    let rel = |a: f64, b: f64| format!("{:+.1}%", 100.0 * (a / b - 1.0));
    let wal_rows = vec![
        vec![
            "fpw-off capture replayed, FPW off".into(),
            fmt_num(off_rec),
            cell(&measured[0], "wal_bytes_per_txn"),
            rel(wal(0), off_rec),
        ],
        vec![
            "fpw-on capture replayed, FPW on (its own checkpoints)".into(),
            fmt_num(on_tot),
            cell(&measured[1], "wal_bytes_per_txn"),
            rel(wal(1), on_tot),
        ],
        vec![
            "fpw-on capture replayed, FPW off".into(),
            fmt_num(on_rec),
            cell(&measured[2], "wal_bytes_per_txn"),
            rel(wal(2), on_rec),
        ],
    ];
    let image_rows: Vec<Vec<String>> = measured
        .iter()
        .enumerate()
        .map(|(i, m)| {
            vec![
                format!("{}", i + 1),
                m.point.series.clone(),
                cell(m, "records_p99"),
                cell(m, "records_max"),
                cell(m, "latency_us_p99"),
                cell(m, "latency_us_p999"),
                cell(m, "storage_bytes_per_wal_byte"),
            ]
        })
        .collect();
    let mut s = String::from("# Experiment pg-trace: real Postgres WAL replayed\n\n");
    s += &format!(
        "Traces: pgbench (TPC-B-like, scale 1, 4 clients, 100 tps for 95 s) on PostgreSQL 15 with full_page_writes off and on, checkpoint_timeout 30 s (`traces/*.capture.toml`). Each record keeps its page and size; commits come in the captured order. With FPW on, lakesim logs an image at the first change of a page after each captured checkpoint's redo point. `captured` is the capture's own WAL per transaction: records without images (`rec`) for FPW off, whole records (`tot`) for FPW on; the FPW-on capture made {} full-page images.\n\n",
        traces[1].header.get("full_page_images").map_or("?", |s| s.as_str())
    );
    s += &cost_section(base);
    s += "\n## WAL per transaction: lakesim against the captured run\n\n";
    s += &md_table(
        &[
            "replay",
            "captured bytes/txn",
            "lakesim bytes/txn",
            "difference",
        ],
        &wal_rows,
    );
    let checkpoints = traces[1].header_number("checkpoints").unwrap_or(f64::NAN);
    let txns = traces[1].header_number("transactions").unwrap_or(f64::NAN);
    let pages = f64::from(crate::tpcb::Layout::new(1).accounts);
    s += &format!(
        "\nOn this capture full_page_writes on writes {}x the WAL of off ({} bytes per transaction against {}): {:.0}% less with it off. The capture had {} checkpoints over {} transactions on {} account pages: about {} updates per account page per checkpoint (see `lakesim experiment fpw` for how the saving falls as that grows).\n\nlakesim's commit record is 25 bytes where Postgres's is 34, and records of under 33 bytes grow to lakesim's smallest delta.\n\n## Image policies on the replay\n\n",
        fmt_num(on_tot / on_rec),
        fmt_num(on_tot),
        fmt_num(on_rec),
        100.0 * (1.0 - on_rec / on_tot),
        checkpoints,
        txns,
        pages,
        fmt_num(txns / checkpoints.max(1.0) / pages)
    );
    s += &md_table(
        &[
            "case",
            "replay",
            "records/GetPage p99",
            "max",
            "latency us p99",
            "p99.9",
            "storage bytes / WAL byte",
        ],
        &image_rows,
    );
    s += "\nPlot: `getpage_latency.svg`. The traces the runs replayed are in `traces/`, each point's config in `configs/`.\n";
    s
}
