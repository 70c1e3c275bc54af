//! `faults`: where it breaks. The same tpcb load and reads while a pageserver crashes and
//! re-ingests, loses its disk and rebuilds, the object store is down, or ingest is cut off
//! from the safekeepers: how long chains and read latency get while images lag, how many
//! reads fail, and how long after the fault chains are back to normal.

use super::plot::{time_chart, Series};
use super::{
    base_config, cost_section, fmt_num, md_table, measure, write_results, Measured, Options, Point,
};
use crate::files;
use crate::plan::{FaultAction, FaultEvent, Role, OBJECT_STORE};
use crate::tpcb::Layout;
use anyhow::Result;

const FAULT_AT_MS: u64 = 1200;
const WINDOW_MS: u64 = 3000;
const BUCKET_MS: f64 = 100.0;
const METRICS: [&str; 8] = [
    "records_p99",
    "records_max",
    "latency_us_p99",
    "latency_us_max",
    "client_read_us_p99",
    "failed_reads",
    "commits_per_s",
    "image_bytes",
];

/// The fault schedules: a name, when the fault ends, and its events.
fn schedules() -> Vec<(&'static str, u64, Vec<FaultEvent>)> {
    let ps = Role::Pageserver(1).id();
    let at = |at_ms, action| FaultEvent { at_ms, action };
    let cut = |from, up: bool| {
        (1..=3u32)
            .map(|sk| match up {
                false => at(FAULT_AT_MS, FaultAction::Cut { from: sk, to: ps }),
                true => at(from, FaultAction::Uncut { from: sk, to: ps }),
            })
            .collect::<Vec<_>>()
    };
    let mut ingest = cut(0, false);
    ingest.extend(cut(FAULT_AT_MS + 600, true));
    vec![
        ("no fault", FAULT_AT_MS, vec![]),
        (
            "pageserver crash",
            FAULT_AT_MS + 300,
            vec![
                at(FAULT_AT_MS, FaultAction::Crash { node: ps }),
                at(FAULT_AT_MS + 300, FaultAction::Restart { node: ps }),
            ],
        ),
        (
            "pageserver disk loss",
            FAULT_AT_MS + 300,
            vec![
                at(FAULT_AT_MS, FaultAction::LoseDisk { node: ps }),
                at(FAULT_AT_MS + 300, FaultAction::Restart { node: ps }),
            ],
        ),
        (
            "object store down",
            FAULT_AT_MS + 1000,
            vec![
                at(FAULT_AT_MS, FaultAction::Isolate { node: OBJECT_STORE }),
                at(
                    FAULT_AT_MS + 1000,
                    FaultAction::Rejoin { node: OBJECT_STORE },
                ),
            ],
        ),
        ("ingest cut off", FAULT_AT_MS + 600, ingest),
    ]
    .into_iter()
    .map(|(name, end, mut events)| {
        events.push(at(WINDOW_MS, FaultAction::HealAll));
        (name, end, events)
    })
    .collect()
}

pub fn run(o: &Options) -> Result<()> {
    let base = base_config(o.user_config.as_ref());
    let hot = Layout::new(base.workload.scale).first_branch_page();
    let points: Vec<Point> = schedules()
        .into_iter()
        .map(|(name, end, events)| {
            let mut c = base.clone();
            c.cost.vcpus = 2;
            c.workload.clients = 64;
            c.workload.hot_read_page = Some(hot);
            c.workload.hot_read_share = 0.5;
            c.workload.read_interval_ms = 2;
            c.fault_window_ms = WINDOW_MS;
            c.liveness_window_ms = 1500;
            Point {
                id: name.replace(' ', "-"),
                series: name.to_string(),
                params: vec![
                    ("fault_at_ms", FAULT_AT_MS as f64),
                    ("fault_end_ms", end as f64),
                ],
                config: c,
                faults: Some(events),
            }
        })
        .collect();
    let measured = measure(o, points)?;
    write_results(o, "faults", &measured, &METRICS)?;
    let timelines: Vec<Timeline> = measured.iter().map(timeline).collect();
    plots(o, &timelines)?;
    let report = report(&base, &measured, &timelines);
    files::replace(&o.out.join("report.md"), report.as_bytes())?;
    Ok(())
}

/// One 100 ms bucket: its start (ms), the longest chain, the slowest read as the compute saw
/// it (us), and the reads that failed or went unanswered.
type Bucket = (f64, f64, f64, f64);

/// Per 100 ms bucket, averaged over seeds.
struct Timeline {
    name: String,
    buckets: Vec<Bucket>,
    /// Over the fault and the 2 s after it.
    peak_records: f64,
    peak_latency_us: f64,
    failed: f64,
    /// From the fault's end until reads are back within 1.5x of the 0.8 s before the fault.
    recovery_ms: Option<f64>,
}

fn timeline(m: &Measured) -> Timeline {
    /// Per bucket over seeds: the sums and counts of the seeds that had reads there (a seed
    /// whose reads all failed adds no zero to the chain or latency), and failures.
    #[derive(Default)]
    struct Acc {
        records: (f64, u32),
        latency_us: (f64, u32),
        failed: f64,
    }
    let mut buckets: std::collections::BTreeMap<u64, Acc> = Default::default();
    let bucket = |t: f64| (t / BUCKET_MS) as u64;
    for r in &m.runs {
        type Seen = (Option<u32>, Option<u64>, u32);
        let mut per: std::collections::BTreeMap<u64, Seen> = Default::default();
        for s in &r.stats.served {
            let b = per.entry(bucket(s.time_ms)).or_default();
            b.0 = Some(b.0.unwrap_or(0).max(s.records));
        }
        for (t, latency) in &r.stats.client_reads {
            let b = per.entry(bucket(*t)).or_default();
            b.1 = Some(b.1.unwrap_or(0).max(*latency));
        }
        for t in &r.stats.failed_read_times {
            per.entry(bucket(*t)).or_default().2 += 1;
        }
        for (b, (rec, lat, failed)) in per {
            let e = buckets.entry(b).or_default();
            if let Some(rec) = rec {
                e.records = (e.records.0 + f64::from(rec), e.records.1 + 1);
            }
            if let Some(lat) = lat {
                e.latency_us = (e.latency_us.0 + lat as f64 / 1e3, e.latency_us.1 + 1);
            }
            e.failed += f64::from(failed);
        }
    }
    let seeds = m.runs.len().max(1) as f64;
    let mean = |(sum, n): (f64, u32)| if n == 0 { 0.0 } else { sum / f64::from(n) };
    let buckets: Vec<Bucket> = buckets
        .into_iter()
        .map(|(b, acc)| {
            (
                b as f64 * BUCKET_MS,
                mean(acc.records),
                mean(acc.latency_us),
                acc.failed / seeds,
            )
        })
        .collect();
    let (start, end) = (m.param("fault_at_ms"), m.param("fault_end_ms"));
    let during: Vec<&(f64, f64, f64, f64)> = buckets
        .iter()
        .filter(|b| b.0 >= start && b.0 <= end + 2000.0)
        .collect();
    let before: Vec<&(f64, f64, f64, f64)> = buckets
        .iter()
        .filter(|b| b.0 >= start - 800.0 && b.0 < start)
        .collect();
    let normal_latency = before.iter().map(|b| b.2).fold(0.0, f64::max);
    let normal_records = before.iter().map(|b| b.1).fold(0.0, f64::max);
    let recovery_ms = buckets
        .iter()
        .filter(|b| b.0 >= end)
        .find(|b| b.2 <= normal_latency * 1.5 && b.1 <= normal_records.max(1.0) * 1.5 && b.3 == 0.0)
        .map(|b| (b.0 - end).max(0.0));
    Timeline {
        name: m.point.series.clone(),
        peak_records: during.iter().map(|b| b.1).fold(0.0, f64::max),
        peak_latency_us: during.iter().map(|b| b.2).fold(0.0, f64::max),
        failed: during.iter().map(|b| b.3).sum(),
        buckets,
        recovery_ms,
    }
}

fn plots(o: &Options, timelines: &[Timeline]) -> Result<()> {
    let line = |f: &dyn Fn(&Bucket) -> f64| -> Vec<Series> {
        timelines
            .iter()
            .map(|t| Series::over_time(&t.name, t.buckets.iter().map(|b| (b.0, f(b)))))
            .collect()
    };
    time_chart(
        &o.out.join("chain_over_time.svg"),
        "Longest chain a GetPage applied (per 100 ms)",
        "records applied",
        &line(&|b| b.1),
    )?;
    time_chart(
        &o.out.join("latency_over_time.svg"),
        "Slowest GetPage as the compute saw it (per 100 ms)",
        "latency (us, simulated)",
        &line(&|b| b.2),
    )
}

fn report(base: &crate::config::Config, measured: &[Measured], timelines: &[Timeline]) -> String {
    let rows: Vec<Vec<String>> = measured
        .iter()
        .zip(timelines)
        .map(|(m, t)| {
            vec![
                t.name.clone(),
                format!("{}-{} ms", m.param("fault_at_ms"), m.param("fault_end_ms")),
                fmt_num(t.peak_records),
                fmt_num(t.peak_latency_us),
                fmt_num(t.failed),
                t.recovery_ms.map_or("not within the run".into(), |r| {
                    format!("{} ms", fmt_num(r))
                }),
                super::cell(m, "commits_per_s"),
            ]
        })
        .collect();
    let mut s = String::from("# Experiment faults: where it breaks\n\nWorkload: tpcb at scale 1 on 2 vCPUs, 64 clients, FPW off, per-page-records:8; a GetPage every 2 ms, half of them to the hot branch page. One fault at 1.2 s (after the load), then the run goes on to 4.5 s. Peaks are over the fault and the 2 s after it, averaged over seeds per 100 ms bucket; read latency is the compute's (network, any wait for ingest, layer reads and redo); recovery is the time from the fault's end until a 100 ms bucket has no failed read and its longest chain and slowest read are back within 1.5x of the 0.8 s before the fault. A read fails when no pageserver answers within 1.5 s (crash, disk loss) or its LSN is not ingested within 1 s.\n\n");
    s += &cost_section(base);
    s += "\n## Results\n\n";
    s += &md_table(
        &[
            "fault",
            "window",
            "peak chain (records)",
            "peak read latency seen by the compute (us)",
            "failed or unanswered reads",
            "recovery",
            "commits/s",
        ],
        &rows,
    );
    s += "\nWhile ingest is cut off or a pageserver re-ingests, images cannot be made for WAL it has not ingested: reads of recent LSNs wait, then catch up with a burst of records that per-page-records images right after each ingested chunk. A disk loss rebuilds from the object store and the safekeepers, so the whole timeline since the last upload is re-ingested. An object store outage does not touch reads: it holds back uploads, and with them the safekeepers' WAL removal (see `lakesim run` output for WAL held).\n\nPlots: `chain_over_time.svg`, `latency_over_time.svg`.\n";
    s
}
