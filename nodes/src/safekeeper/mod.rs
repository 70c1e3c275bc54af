//! The safekeeper node: an acceptor behind a network loop. The loop hands the acceptor every
//! message that has arrived, at most [`MAX_BATCH`] at a time, so that appends that arrive
//! together are made durable by one fsync (group commit).

pub mod acceptor;
pub mod control_file;
pub mod wal_store;

use crate::bugs::BugSet;
use crate::ids::NodeId;
use crate::invariant::{broken, Invariant};
use crate::net::Net;
use crate::observe::{Observation, Observer};
use acceptor::Acceptor;
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
    pub duplicate_probability: f64,
    pub buggify: bool,
    /// The pageservers that read this timeline's WAL: removal waits for their feedback.
    pub pageservers: Vec<NodeId>,
    /// The timeline's WAL segment size.
    pub wal_segment_size: wal_store::SegmentSize,
}

/// Runs a safekeeper until the process is killed.
pub async fn run(cfg: SafekeeperConfig) {
    cfg.observer.observe(cfg.id, Observation::Started);
    // A control file that fails its checksum is state the acceptor promised to keep and lost:
    // it must not start and vote as if it had never voted.
    let opened = Acceptor::open(
        cfg.id,
        cfg.disk,
        cfg.wal_segment_size,
        cfg.bugs,
        cfg.observer.clone(),
    )
    .await;
    let mut acceptor = match opened {
        Ok(acceptor) => acceptor
            .with_buggify(cfg.buggify)
            .with_pageservers(cfg.pageservers.clone()),
        Err(e) => broken(
            Invariant::Durability,
            format!(
                "safekeeper {} cannot recover its durable state: {e}",
                cfg.id
            ),
        ),
    };
    let net = Net::bind(cfg.id, cfg.observer.clone(), cfg.duplicate_probability)
        .await
        .expect("bind");
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        batch.push(net.recv().await.expect("network"));
        while batch.len() < MAX_BATCH {
            match net.try_recv() {
                Some(env) => batch.push(env),
                None => break,
            }
        }
        let replies = acceptor
            .process_batch(&batch)
            .await
            .expect("safekeeper disk I/O failed");
        batch.clear();
        for (to, reply) in replies {
            net.send(to, reply);
        }
        acceptor.settle().await.expect("safekeeper disk I/O failed");
    }
}
