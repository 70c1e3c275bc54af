//! What a run measured, for `lakesim run --json` and the experiments: WAL volume per
//! transaction and its full-page-image share, commits/s on the simulated clock, GetPage work
//! and latency, and the bytes storage wrote per WAL byte.
//!
//! Everything is computed from real state or from what the client saw: WAL volume from the
//! committed WAL itself (decoded), commits/s from the acknowledgements the client received,
//! bytes written from the simulated disks. GetPage work and latency are the pageserver's own
//! report of each answer (a metric, not a check: the oracle judges the pages).
//!
//! When the workload loads a database first (tpcb, pg-trace), measurements start at the
//! checkpoint that ends the load: the first checkpoint record after the load's last commit.

use crate::checker::Served;
use lakesim_nodes::wal::{RecordBody, RecordKind, WalRecord};
use lakesim_nodes::Lsn;
use serde::Serialize;
use std::time::Duration;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Metrics {
    /// Where measurement starts: 0, or the checkpoint that ends the load.
    pub measured_from_lsn: u64,
    /// Transactions committed in the measured WAL (commit records).
    pub txns: u64,
    /// Committed WAL bytes in the measured range, and per transaction.
    pub wal_bytes: u64,
    pub wal_bytes_per_txn: f64,
    /// Full-page-image bytes in the measured range and their share of it.
    pub fpi_bytes: u64,
    pub fpi_share: f64,
    /// Checkpoint records in the measured range.
    pub checkpoints: u64,
    /// Acknowledged commits per simulated second over the measured range, and its length.
    pub commits_per_s: f64,
    pub measured_s: f64,
    pub getpage: GetPageMetrics,
    /// GetPage latency as the compute saw it (network and any wait for ingest included), us.
    pub client_read_us_p50: f64,
    pub client_read_us_p99: f64,
    /// Bytes of the image layers made in the measured range.
    pub image_bytes: u64,
    /// Bytes written to the safekeepers' and the pageservers' disks in the measured range (from
    /// the first sample of the disks' counters, taken every 100 ms, at or past its start).
    pub safekeeper_bytes_written: u64,
    pub pageserver_bytes_written: u64,
    /// Both per committed WAL byte in the measured range: the write amplification storage pays.
    pub storage_bytes_per_wal_byte: f64,
}

/// GetPage answers in the measured range (percentiles are nearest-rank). Latency is the
/// pageserver's service time (layer reads, the walredo queue, redo), after any wait for ingest
/// to reach the LSN, which is reported apart.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GetPageMetrics {
    pub count: u64,
    pub records_p50: u32,
    pub records_p99: u32,
    pub records_max: u32,
    pub layers_p50: u32,
    pub layers_p99: u32,
    pub latency_us_p50: f64,
    pub latency_us_p99: f64,
    pub latency_us_p999: f64,
    pub latency_us_max: f64,
    /// Waiting for ingest to reach the LSN, before the latency above.
    pub wait_us_p50: f64,
    pub wait_us_p99: f64,
}

/// The value below which a share `q` of the sorted `values` lie (nearest rank).
pub fn percentile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

impl Metrics {
    pub fn measure(
        records: &[(Lsn, WalRecord)],
        load_txns: Option<u64>,
        acks: &[(Lsn, Duration)],
        served: &[Served],
        client_reads: &[(f64, u64)],
        image_lsns: &[Lsn],
    ) -> Metrics {
        let from = load_txns.map_or(Lsn::ZERO, |n| end_of_load(records, n));
        let images = image_lsns.iter().filter(|l| **l >= from).count() as u64;
        let mut m = Metrics {
            measured_from_lsn: from.0,
            image_bytes: images * lakesim_nodes::page::PAGE_SIZE as u64,
            ..Metrics::default()
        };
        for (_, rec) in records.iter().filter(|(l, _)| *l >= from) {
            let len = rec.encoded_len() as u64;
            m.wal_bytes += len;
            match rec.body.kind() {
                RecordKind::Commit => m.txns += 1,
                RecordKind::FullPageImage => m.fpi_bytes += len,
                RecordKind::Checkpoint => m.checkpoints += 1,
                _ => {}
            }
        }
        m.wal_bytes_per_txn = m.wal_bytes as f64 / m.txns.max(1) as f64;
        m.fpi_share = m.fpi_bytes as f64 / m.wal_bytes.max(1) as f64;
        let times: Vec<Duration> = acks
            .iter()
            .filter(|(l, _)| *l >= from)
            .map(|(_, t)| *t)
            .collect();
        if let (Some(first), Some(last)) = (times.first(), times.last()) {
            m.measured_s = (*last - *first).as_secs_f64();
            if m.measured_s > 0.0 {
                m.commits_per_s = (times.len() - 1) as f64 / m.measured_s;
            }
        }
        let since_ms = times.first().map_or(f64::MAX, |t| t.as_secs_f64() * 1e3);
        m.getpage = GetPageMetrics::of(served.iter().filter(|s| s.time_ms >= since_ms));
        let mut client: Vec<u64> = client_reads
            .iter()
            .filter(|(t, _)| *t >= since_ms)
            .map(|(_, l)| *l)
            .collect();
        client.sort_unstable();
        m.client_read_us_p50 = percentile(&client, 0.5) as f64 / 1e3;
        m.client_read_us_p99 = percentile(&client, 0.99) as f64 / 1e3;
        m
    }

    /// Fills in what the disks wrote in the measured range: `samples` are `(committed LSN,
    /// safekeeper bytes, pageserver bytes)` as the run went, `end` the counters at its end.
    pub fn set_storage_writes(&mut self, samples: &[(Lsn, u64, u64)], end: (u64, u64)) {
        let from = Lsn(self.measured_from_lsn);
        let (sk0, ps0) = samples
            .iter()
            .find(|(committed, _, _)| *committed >= from)
            .map_or(end, |(_, sk, ps)| (*sk, *ps));
        self.safekeeper_bytes_written = end.0.saturating_sub(sk0);
        self.pageserver_bytes_written = end.1.saturating_sub(ps0);
        let written = self.safekeeper_bytes_written + self.pageserver_bytes_written;
        self.storage_bytes_per_wal_byte = written as f64 / self.wal_bytes.max(1) as f64;
    }
}

/// The checkpoint after the `n`-th commit: where the load ends (`u64::MAX` if the run never
/// got there).
fn end_of_load(records: &[(Lsn, WalRecord)], n: u64) -> Lsn {
    let mut commits = 0;
    records
        .iter()
        .find(|(_, r)| {
            commits += u64::from(r.body == RecordBody::Commit);
            commits >= n && r.body == RecordBody::Checkpoint
        })
        .map_or(Lsn(u64::MAX), |(l, _)| *l)
}

impl GetPageMetrics {
    pub fn of<'a>(served: impl Iterator<Item = &'a Served>) -> GetPageMetrics {
        let served: Vec<&Served> = served.collect();
        let sorted = |f: &dyn Fn(&Served) -> u64| {
            let mut v: Vec<u64> = served.iter().map(|s| f(s)).collect();
            v.sort_unstable();
            v
        };
        let records = sorted(&|s| u64::from(s.records));
        let layers = sorted(&|s| u64::from(s.layers));
        let latency = sorted(&|s| s.latency_ns);
        let wait = sorted(&|s| s.wait_ns);
        let us = |q: f64| percentile(&latency, q) as f64 / 1e3;
        GetPageMetrics {
            count: served.len() as u64,
            records_p50: percentile(&records, 0.5) as u32,
            records_p99: percentile(&records, 0.99) as u32,
            records_max: records.last().copied().unwrap_or(0) as u32,
            layers_p50: percentile(&layers, 0.5) as u32,
            layers_p99: percentile(&layers, 0.99) as u32,
            latency_us_p50: us(0.5),
            latency_us_p99: us(0.99),
            latency_us_p999: us(0.999),
            latency_us_max: latency.last().copied().unwrap_or(0) as f64 / 1e3,
            wait_us_p50: percentile(&wait, 0.5) as f64 / 1e3,
            wait_us_p99: percentile(&wait, 0.99) as f64 / 1e3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[7u32], 0.999), 7);
        assert_eq!(percentile::<u32>(&[], 0.5), 0);
    }
}
