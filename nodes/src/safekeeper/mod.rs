//! The safekeeper node: an acceptor behind a network loop. The loop hands the acceptor every
//! message that has arrived, at most [`MAX_BATCH`] at a time, so that appends that arrive
//! together are made durable by one fsync (group commit). [`run`] says what it does with disk
//! errors; [`provision`] is the control plane creating the timeline on it.

pub mod acceptor;
pub mod control_file;
pub mod wal_store;

use crate::bugs::BugSet;
use crate::ids::NodeId;
use crate::net::Net;
use crate::observe::{Observation, Observer};
use crate::process;
use acceptor::{Acceptor, Opened};
use lakesim_faults::disk::is_no_space;
use lakesim_faults::Disk;
use std::sync::Arc;

/// Messages handled as one batch: the appends among them share one fsync (group commit).
const MAX_BATCH: usize = 64;

/// Everything a safekeeper process starts with.
#[derive(Clone)]
pub struct SafekeeperConfig {
    pub id: NodeId,
    pub disk: Disk,
    pub bugs: BugSet,
    pub observer: Arc<dyn Observer>,
    /// The network's faults (duplication, latency spikes), which its interface applies.
    pub links: lakesim_faults::Links,
    pub buggify: bool,
    /// The pageservers that read this timeline's WAL: removal waits for their feedback.
    pub pageservers: Vec<NodeId>,
    /// The timeline's WAL segment size.
    pub wal_segment_size: wal_store::SegmentSize,
}

/// Runs a safekeeper until the process is killed.
///
/// What it does with a disk error, following Postgres after fsyncgate and Neon's safekeeper:
/// - a full disk (ENOSPC) fails the batch it hit, unacknowledged, and the safekeeper goes on:
///   it answers again once space returns (the proposer resends what was not acknowledged);
/// - a read error while serving WAL leaves that request unanswered (the reader asks again);
/// - any other error (a failed fsync, WAL that fails its checks, WAL recovery cannot read in
///   either copy) ends the process, which restarts from its disk ([`crate::process::abort`]):
///   a failed fsync is never retried and trusted;
/// - a disk without a timeline it can verify keeps it out of the quorum for good: it neither
///   votes nor answers (see [`control_file`]).
pub async fn run(cfg: SafekeeperConfig) {
    cfg.observer.observe(cfg.id, Observation::Started);
    let opened = Acceptor::open(
        cfg.id,
        cfg.disk.clone(),
        cfg.wal_segment_size,
        cfg.bugs.clone(),
        cfg.observer.clone(),
    )
    .await;
    let mut acceptor = match opened {
        Ok(Opened::Acceptor(acceptor)) => acceptor
            .with_buggify(cfg.buggify)
            .with_pageservers(cfg.pageservers.clone()),
        Ok(Opened::StaysOut(why)) => stay_out(&cfg, &why).await,
        Err(e) => process::abort(cfg.id, cfg.observer.as_ref(), &e).await,
    };
    let net = match Net::bind(cfg.id, cfg.observer.clone(), cfg.links.clone()).await {
        Ok(net) => net,
        Err(e) => process::abort(cfg.id, cfg.observer.as_ref(), &e).await,
    };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        batch.push(net.recv().await);
        while batch.len() < MAX_BATCH {
            match net.try_recv() {
                Some(env) => batch.push(env),
                None => break,
            }
        }
        let processed = acceptor.process_batch(&batch).await;
        batch.clear();
        match processed {
            Ok(replies) => {
                for (to, reply) in replies {
                    net.send(to, reply);
                }
            }
            Err(e) if is_no_space(&e) => {
                crate::probe!(SkBatchDiskFull);
                cfg.observer.observe(cfg.id, Observation::DiskFull);
                continue;
            }
            Err(e) => process::abort(cfg.id, cfg.observer.as_ref(), &e).await,
        }
        if let Err(e) = acceptor.settle().await {
            process::abort(cfg.id, cfg.observer.as_ref(), &e).await;
        }
    }
}

/// Stays out of the quorum: says so once, and never answers.
async fn stay_out(cfg: &SafekeeperConfig, why: &str) -> ! {
    crate::probe!(SkStaysOut);
    tracing::warn!(node = %cfg.id, why, "no timeline it can trust: staying out of the quorum");
    cfg.observer.observe(cfg.id, Observation::StaysOut);
    std::future::pending().await
}

/// The control plane creates the timeline on a new safekeeper's disk (Neon's timeline creation
/// call): without it, or after the disk is lost, the safekeeper stays out.
pub async fn provision(disk: &Disk) -> std::io::Result<()> {
    control_file::create(disk).await
}
