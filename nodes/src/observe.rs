//! The observation channel: what nodes tell the outside world about themselves.
//!
//! A node reports state changes (an acceptor's term and LSNs, a client commit acknowledged, a
//! message delivered) to the [`Observer`] its context carries. In production this would be
//! metrics and logs; in lakesim the harness implements it to hash the trace and check
//! invariants. Nodes never read anything back from it.

use crate::ids::{Lsn, NodeId, PageId, Term, Xid};

/// One thing a node reports.
#[derive(Clone, Copy, Debug)]
pub enum Observation {
    /// A message arrived (`kind` from [`crate::proto::Message::kind`]).
    Delivered {
        from: NodeId,
        kind: &'static str,
        term: Term,
    },
    /// The acceptor's state after every change: its durable term and flush LSN, the commit LSN
    /// it learned (in memory) and the one it persisted.
    /// `last_log_term` is the term that wrote the end of its durable log (the election's key).
    Acceptor {
        term: Term,
        last_log_term: Term,
        flush_lsn: Lsn,
        commit_lsn: Lsn,
        durable_commit_lsn: Lsn,
    },
    /// The acceptor cut its WAL at `lsn` (election truncation or a torn tail on restart).
    Truncated { lsn: Lsn },
    /// The node started (or restarted) and recovered its state from disk.
    Started,
    /// The process ended itself after an I/O error it cannot survive (see
    /// [`crate::process::abort`]); it starts again from disk.
    Aborted,
    /// A safekeeper found no timeline it can trust on its disk (none, or a control file whose
    /// every copy fails its checks) and stays out of the quorum: it neither votes nor answers.
    StaysOut,
    /// A write found the disk full: the node's work waits for space.
    DiskFull,
    /// The node's full mailbox dropped arrivals: `dropped` in all since the process started
    /// (see [`crate::net::RECV_BUFFER_MESSAGES`]).
    RecvOverflow { dropped: u64 },
    /// The proposer counted `voter`'s vote in `term` (the acceptor must have made its term
    /// durable before answering).
    VoteGranted { term: Term, voter: NodeId },
    /// The proposer incarnation `proposer` won an election in `term`; its log starts the term
    /// at `epoch_start_lsn`.
    Elected {
        term: Term,
        epoch_start_lsn: Lsn,
        proposer: u64,
    },
    /// The proposer left `term` because an acceptor is in a higher one.
    Deposed { term: Term },
    /// The client's request `request` (its number in the client's sequence) committed as
    /// `xid` and was acknowledged: its commit record spans `[lsn, end_lsn)`.
    CommitAcked {
        request: u64,
        xid: Xid,
        lsn: Lsn,
        end_lsn: Lsn,
    },
    /// The compute sent a GetPage for `page` at `lsn`: the latest version (`latest`, which
    /// must see every commit acknowledged before) or an older acknowledged one.
    GetPageSent {
        page: PageId,
        lsn: Lsn,
        latest: bool,
    },
    /// The compute got an answer to its GetPage for `page` at `lsn` (what it asked); the
    /// answer was labelled `answered_page` at `answered_lsn`. Then the page's CRC32C, whether
    /// its own checksum held, and how many records the pageserver applied to build it.
    PageRead {
        page: PageId,
        lsn: Lsn,
        answered_page: PageId,
        answered_lsn: Lsn,
        page_crc: u32,
        checksum_ok: bool,
        records_applied: u32,
        /// From sending the request to the answer, as the compute saw it.
        latency_ns: u64,
    },
    /// The pageserver answered a GetPage: records applied, layer files visited and bytes read
    /// to build the page, how long it waited for ingest to reach the LSN, and the time from
    /// then to the answer (the cost model's reads, the walredo queue and the redo).
    GetPageServed {
        page: PageId,
        lsn: Lsn,
        records_applied: u32,
        layers_visited: u32,
        bytes_read: u64,
        latency_ns: u64,
        wait_ns: u64,
    },
    /// A GetPage request failed (not yet ingested, pageserver starting, ...) or got no answer
    /// in time; it was sent `waited_ns` before.
    PageReadFailed {
        page: PageId,
        lsn: Lsn,
        waited_ns: u64,
    },
    /// The pageserver wrote an image layer of `page` labelled `lsn` (the harness reads the
    /// file itself).
    ImageCreated { page: PageId, lsn: Lsn },
    /// The pageserver has ingested committed WAL up to `lsn`.
    Ingested { lsn: Lsn },
    /// The pageserver made WAL up to `disk_consistent_lsn` durable in layer files, and the
    /// object store holds it up to `remote_consistent_lsn`.
    LayersFlushed {
        disk_consistent_lsn: Lsn,
        remote_consistent_lsn: Lsn,
    },
    /// The proposer's commit LSN moved.
    CommitLsn { term: Term, commit_lsn: Lsn },
    /// A safekeeper made `wal_start` durable and removed the WAL segments wholly below it.
    WalRemoved { wal_start: Lsn, segments: u32 },
    /// A compute started its leadership from a pageserver's basebackup at `lsn`: one per page,
    /// so the page it builds on can be checked.
    BasebackupPage {
        page: PageId,
        lsn: Lsn,
        page_crc: u32,
        checksum_ok: bool,
    },
}

/// Where a node sends its observations.
pub trait Observer: Send + Sync {
    fn observe(&self, node: NodeId, obs: Observation);
}

/// An observer that drops everything: for unit tests of node code.
pub struct NoObserver;

impl Observer for NoObserver {
    fn observe(&self, _: NodeId, _: Observation) {}
}
