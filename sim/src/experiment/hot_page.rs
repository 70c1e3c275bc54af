//! `hot-page`: one very hot page (pgbench_branches at scale 1: every transaction updates
//! it) read all the time, under each image policy: its chain length and GetPage latency over
//! time.

use super::plot::{time_chart, Series};
use super::{
    base_config, cost_section, fmt_num, md_table, measure, write_results, Measured, Options, Point,
};
use crate::config::ImagePolicy;
use crate::files;
use crate::tpcb::Layout;
use anyhow::Result;
use std::fmt::Write as _;

const N: usize = 8;
const BUCKET_MS: f64 = 100.0;
const METRICS: [&str; 6] = [
    "records_p99",
    "records_max",
    "latency_us_p99",
    "latency_us_max",
    "image_bytes",
    "commits_per_s",
];

pub fn run(o: &Options) -> Result<()> {
    let base = base_config(o.user_config.as_ref());
    let hot = Layout::new(base.workload.scale).first_branch_page();
    let policies = [
        ImagePolicy::PerPageRecords(N),
        ImagePolicy::LayerCount(3),
        ImagePolicy::None,
    ];
    let points: Vec<Point> = policies
        .iter()
        .map(|policy| {
            let mut c = base.clone();
            c.image_policy = *policy;
            c.cost.vcpus = 2;
            c.workload.clients = 64;
            c.workload.hot_read_page = Some(hot);
            c.workload.hot_read_share = 0.5;
            c.workload.read_interval_ms = 2;
            c.fault_window_ms = 2000;
            Point {
                id: policy.to_string().replace(':', "-"),
                series: policy.to_string(),
                params: vec![("hot_page", f64::from(hot))],
                config: c,
                faults: None,
            }
        })
        .collect();
    let measured = measure(o, points)?;
    write_results(o, "hot-page", &measured, &METRICS)?;
    let series = series_csv(o, &measured, hot)?;
    plots(o, &series)?;
    let report = report(&base, &measured, hot, &series);
    files::replace(&o.out.join("report.md"), report.as_bytes())?;
    Ok(())
}

/// Per policy: per 100 ms bucket, the mean over seeds of the bucket's largest chain and
/// largest latency of reads of the hot page.
struct HotSeries {
    policy: String,
    /// (bucket start ms, max records, max latency us), averaged over seeds.
    buckets: Vec<(f64, f64, f64)>,
    max_records: u32,
}

fn series_csv(o: &Options, measured: &[Measured], hot: u32) -> Result<Vec<HotSeries>> {
    let mut csv = String::from("policy,seed,time_ms,records,layers,latency_us\n");
    let mut out = Vec::new();
    for m in measured {
        let mut per_bucket: std::collections::BTreeMap<u64, (f64, f64, u32)> = Default::default();
        let mut max_records = 0;
        for r in &m.runs {
            let mut seed_buckets: std::collections::BTreeMap<u64, (u32, u64)> = Default::default();
            for s in r.stats.served.iter().filter(|s| s.page == hot) {
                writeln!(
                    csv,
                    "{},{},{:.3},{},{},{:.3}",
                    m.point.series,
                    r.seed,
                    s.time_ms,
                    s.records,
                    s.layers,
                    s.latency_ns as f64 / 1e3
                )?;
                let b = seed_buckets
                    .entry((s.time_ms / BUCKET_MS) as u64)
                    .or_default();
                *b = (b.0.max(s.records), b.1.max(s.latency_ns));
                max_records = max_records.max(s.records);
            }
            for (b, (rec, lat)) in seed_buckets {
                let e = per_bucket.entry(b).or_default();
                *e = (e.0 + f64::from(rec), e.1 + lat as f64 / 1e3, e.2 + 1);
            }
        }
        out.push(HotSeries {
            policy: m.point.series.clone(),
            buckets: per_bucket
                .into_iter()
                .map(|(b, (rec, lat, n))| {
                    (b as f64 * BUCKET_MS, rec / f64::from(n), lat / f64::from(n))
                })
                .collect(),
            max_records,
        });
    }
    files::replace(&o.out.join("hot_page_reads.csv"), csv.as_bytes())?;
    Ok(out)
}

fn plots(o: &Options, series: &[HotSeries]) -> Result<()> {
    let line = |f: &dyn Fn(&(f64, f64, f64)) -> f64| -> Vec<Series> {
        series
            .iter()
            .map(|s| Series::over_time(&s.policy, s.buckets.iter().map(|b| (b.0, f(b)))))
            .collect()
    };
    time_chart(
        &o.out.join("hot_page_chain.svg"),
        "Hot page: records applied per GetPage (max per 100 ms)",
        "records applied",
        &line(&|b| b.1),
    )?;
    time_chart(
        &o.out.join("hot_page_latency.svg"),
        "Hot page: GetPage latency (max per 100 ms)",
        "latency (us, simulated)",
        &line(&|b| b.2),
    )
}

fn report(
    base: &crate::config::Config,
    measured: &[Measured],
    hot: u32,
    series: &[HotSeries],
) -> String {
    let max_of = |p: &str| {
        series
            .iter()
            .find(|s| s.policy == p)
            .map_or(0, |s| s.max_records)
    };
    let bounded = max_of(&ImagePolicy::PerPageRecords(N).to_string());
    let rows: Vec<Vec<String>> = measured
        .iter()
        .zip(series)
        .map(|(m, s)| {
            vec![
                s.policy.clone(),
                format!("{}", s.max_records),
                format!(
                    "{}x",
                    fmt_num(f64::from(s.max_records) / f64::from(bounded.max(1)))
                ),
                super::cell(m, "latency_us_p99"),
                super::cell(m, "latency_us_max"),
                format!("{:.1} MB", m.get("image_bytes").mean / 1e6),
            ]
        })
        .collect();
    let mut s = format!("# Experiment hot-page: one page every transaction updates\n\nWorkload: tpcb at scale 1 on 2 vCPUs with 64 clients: page {hot} (pgbench_branches, one row) takes an update in every transaction, several thousand a second. Half the reads go to it. per-page-records:{N} is checked after every chunk of WAL ingest takes, before the reads waiting for that WAL are answered; a page changed more than {N} times gets an image at its last change, so a read applies at most {N} records plus the page's records in the last chunk. layer-count:3 makes images once 3 delta layers (1 MiB each here, 256 MiB in Neon) cover the page since its last image; none never does.\n\n");
    s += &cost_section(base);
    s += "\n## Results\n\n";
    s += &md_table(
        &[
            "policy",
            "max records per hot read",
            "vs per-page-records",
            "latency us p99 (all reads)",
            "max",
            "image bytes",
        ],
        &rows,
    );
    s += &format!("\nUnder per-page-records:{N} the hot page's chain never exceeded {bounded} records; layer-count:3 and none let it grow {} and {} times as long. With Neon's 256 MiB layers the layer-count chain would be 256 times longer still: about 3 x 256 MiB / 430 bytes per transaction, some 1.9 million records, unless something else bounds it.\n\nPlots: `hot_page_chain.svg`, `hot_page_latency.svg`; every hot read: `hot_page_reads.csv`.\n",
        fmt_num(f64::from(max_of("layer-count:3")) / f64::from(bounded.max(1))),
        fmt_num(f64::from(max_of("none")) / f64::from(bounded.max(1))));
    s
}
