//! The messages between compute (the walproposer), safekeepers (acceptors) and, later,
//! pageservers. Names follow Neon's safekeeper protocol.

use crate::ids::{Lsn, NodeId, PageId, Term};
use crate::invariant::Invariant;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One entry of a term history: `term` began writing WAL at `lsn`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct TermSwitch {
    pub term: Term,
    pub lsn: Lsn,
}

/// The terms that wrote an acceptor's WAL, oldest first (Neon: `TermHistory`).
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct TermHistory(pub Vec<TermSwitch>);

impl TermHistory {
    /// The term of the last entry: the term that wrote the end of the log.
    pub fn last_log_term(&self) -> Term {
        self.0.last().map_or(Term(0), |e| e.term)
    }

    /// The term that wrote the log ending at `flush_lsn`: Neon's last-log term, the first key of
    /// the election (`up_to(flush_lsn).last_log_term()`, without the allocation).
    pub fn term_at(&self, flush_lsn: Lsn) -> Term {
        self.0
            .iter()
            .rev()
            .find(|e| e.lsn <= flush_lsn)
            .map_or(Term(0), |e| e.term)
    }

    /// The history as it stood up to `lsn`: entries starting after it are dropped.
    pub fn up_to(&self, lsn: Lsn) -> TermHistory {
        TermHistory(self.0.iter().copied().filter(|e| e.lsn <= lsn).collect())
    }

    /// Neon's `find_highest_common_point`: the highest LSN up to which an acceptor's log (history
    /// `self`, ending at `flush_lsn`) agrees with the proposer's log, whose history `prop` ends
    /// with the proposer's own term. Two logs agree below a point when the same terms wrote it.
    pub fn common_point(&self, flush_lsn: Lsn, prop: &TermHistory) -> Lsn {
        let common = self
            .0
            .iter()
            .zip(&prop.0)
            .take_while(|(a, b)| a.term == b.term)
            .count();
        if common == 0 {
            return Lsn::ZERO;
        }
        let i = common - 1;
        invariant!(
            Invariant::WalAgreement,
            self.0[i].lsn == prop.0[i].lsn,
            "term {} began at two LSNs, {} and {} (two proposers in one term)",
            self.0[i].term,
            self.0[i].lsn,
            prop.0[i].lsn
        );
        // Past the last common term, each log moved on (or ended) at its own point.
        let mine_end = self
            .0
            .get(i + 1)
            .map_or(flush_lsn, |e| e.lsn)
            .min(flush_lsn);
        match prop.0.get(i + 1) {
            Some(next) => mine_end.min(next.lsn),
            None => mine_end,
        }
    }
}

/// One incarnation of a proposer: drawn at random when a compute process starts.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct ProposerId(pub u64);

/// A message on the wire. WAL bytes travel behind an `Arc` so that duplicating or fanning a
/// message out does not copy them.
#[derive(Clone, Debug)]
pub enum Message {
    /// Proposer asks for a vote in `term`. `proposer_id` names this incarnation of the proposer
    /// (Neon: `proposer_uuid`), so that a restarted compute on the same node is a new proposer.
    VoteRequest {
        term: Term,
        proposer_id: ProposerId,
    },
    /// Acceptor's answer, with what the proposer needs to find the most advanced log.
    VoteResponse {
        /// The proposer that asked: a restarted compute listens at the same address, and must
        /// not count votes its earlier incarnation asked for in the same term.
        proposer_id: ProposerId,
        term: Term,
        vote_given: bool,
        flush_lsn: Lsn,
        commit_lsn: Lsn,
        term_history: TermHistory,
    },
    /// The elected proposer tells an acceptor where its log and the new history agree;
    /// the acceptor truncates everything after `start_streaming_at`.
    ProposerElected {
        term: Term,
        proposer_id: ProposerId,
        start_streaming_at: Lsn,
        term_history: TermHistory,
    },
    /// WAL from `begin_lsn`, the proposer's commit LSN, and its `truncate_lsn` (Neon's name):
    /// committed WAL every acceptor has flushed, which no acceptor will need again.
    AppendRequest {
        term: Term,
        begin_lsn: Lsn,
        wal: Arc<Vec<u8>>,
        commit_lsn: Lsn,
        truncate_lsn: Lsn,
    },
    /// The acceptor's state after an append (or a refusal, when `term` is higher).
    AppendResponse {
        term: Term,
        flush_lsn: Lsn,
        commit_lsn: Lsn,
        /// The lowest WAL position every pageserver reported it ingested (Neon: the pageserver
        /// feedback a safekeeper relays to the compute); `Lsn::ZERO` until all have reported.
        ps_ingested_lsn: Lsn,
    },
    /// Asks for the acceptor's WAL in `[start, end)` (a proposer recovering from a donor).
    ReadWal {
        term: Term,
        start: Lsn,
        end: Lsn,
    },
    /// The WAL asked for, or `None` if the acceptor moved to another term. `start` is where
    /// the WAL returned begins: later than asked when the acceptor removed the WAL before it;
    /// `prev_lsn` is the start of the record that ends at `start`, to chain the next one.
    ReadWalResponse {
        term: Term,
        start: Lsn,
        prev_lsn: Lsn,
        wal: Option<Arc<Vec<u8>>>,
    },

    // Pageserver <-> safekeeper.
    /// A pageserver asks for committed WAL from `start` (Neon: the pageserver's WAL receiver).
    ReadCommitted {
        start: Lsn,
    },
    /// Committed WAL from `start` (whole records, up to the acceptor's commit LSN).
    CommittedWal {
        start: Lsn,
        wal: Arc<Vec<u8>>,
        commit_lsn: Lsn,
    },
    /// The acceptor removed its WAL below `wal_start`, so it cannot serve `start`.
    WalRemoved {
        start: Lsn,
        wal_start: Lsn,
    },
    /// A pageserver tells every safekeeper how far its WAL is in layers: on its own disk
    /// (`disk_consistent_lsn`) and in the object store (`remote_consistent_lsn`). Safekeepers
    /// keep WAL from the lowest `remote_consistent_lsn` on (Neon: pageserver feedback).
    PageserverFeedback {
        /// How far it ingested (its last record's end).
        last_record_lsn: Lsn,
        disk_consistent_lsn: Lsn,
        remote_consistent_lsn: Lsn,
    },

    // Compute <-> pageserver.
    /// GetPage@LSN.
    GetPage {
        request_id: u64,
        page: PageId,
        lsn: Lsn,
    },
    /// The page, or why there is none. `records_applied` is the delta chain replayed.
    GetPageResponse {
        request_id: u64,
        page: PageId,
        lsn: Lsn,
        result: Result<(Arc<Vec<u8>>, u32), String>,
    },
    /// Every page as of `lsn`: what a compute starts from when the WAL before `lsn` is gone.
    Basebackup {
        request_id: u64,
        lsn: Lsn,
    },
    BasebackupResponse {
        request_id: u64,
        lsn: Lsn,
        result: Result<Arc<Basebackup>, String>,
    },

    // Pageserver <-> object store.
    StorePut {
        request_id: u64,
        key: String,
        data: Arc<Vec<u8>>,
        /// A conditional write: the store keeps the object only if it holds no version of it
        /// at or above this one (as GCS's `ifGenerationMatch` or S3's `If-Match` guard an
        /// overwrite), so that a late PUT never rolls an object back. `None`: unconditional.
        version: Option<u64>,
    },
    StoreGet {
        request_id: u64,
        key: String,
    },
    StoreList {
        request_id: u64,
        prefix: String,
    },
    StoreDelete {
        request_id: u64,
        key: String,
    },
    /// The answer to any store request: the object for a get (`None` if absent), the keys for a
    /// list, nothing for a put or delete (an answer means it is durable).
    StoreResponse {
        request_id: u64,
        data: Option<Arc<Vec<u8>>>,
        keys: Vec<String>,
    },
}

impl Message {
    /// The term the message speaks for.
    pub fn term(&self) -> Term {
        match self {
            Message::VoteRequest { term, .. }
            | Message::VoteResponse { term, .. }
            | Message::ProposerElected { term, .. }
            | Message::AppendRequest { term, .. }
            | Message::AppendResponse { term, .. }
            | Message::ReadWal { term, .. }
            | Message::ReadWalResponse { term, .. } => *term,
            _ => Term(0),
        }
    }

    /// A short name for traces and reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::VoteRequest { .. } => "VoteRequest",
            Message::VoteResponse { .. } => "VoteResponse",
            Message::ProposerElected { .. } => "ProposerElected",
            Message::AppendRequest { .. } => "AppendRequest",
            Message::AppendResponse { .. } => "AppendResponse",
            Message::ReadWal { .. } => "ReadWal",
            Message::ReadWalResponse { .. } => "ReadWalResponse",
            Message::ReadCommitted { .. } => "ReadCommitted",
            Message::CommittedWal { .. } => "CommittedWal",
            Message::WalRemoved { .. } => "WalRemoved",
            Message::PageserverFeedback { .. } => "PageserverFeedback",
            Message::Basebackup { .. } => "Basebackup",
            Message::BasebackupResponse { .. } => "BasebackupResponse",
            Message::GetPage { .. } => "GetPage",
            Message::GetPageResponse { .. } => "GetPageResponse",
            Message::StorePut { .. } => "StorePut",
            Message::StoreGet { .. } => "StoreGet",
            Message::StoreList { .. } => "StoreList",
            Message::StoreDelete { .. } => "StoreDelete",
            Message::StoreResponse { .. } => "StoreResponse",
        }
    }
}

/// A pageserver's basebackup (Neon: the tarball a compute starts from): every page that exists
/// at an LSN, and the next transaction id to hand out.
#[derive(Clone, Debug)]
pub struct Basebackup {
    pub pages: Vec<(PageId, Arc<Vec<u8>>)>,
    pub next_xid: u64,
}

/// A message with its sender, as a receiver sees it.
#[derive(Debug)]
pub struct Envelope {
    pub from: NodeId,
    pub msg: Message,
}
