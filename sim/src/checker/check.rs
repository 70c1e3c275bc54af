//! Each check the harness makes, named, with the invariant it guards; and the violation a
//! failed check (or a node assertion) leaves.

use lakesim_nodes::Invariant;
use serde::{Deserialize, Serialize};

/// One check of the harness. Each guards one invariant of DESIGN §5.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Check {
    /// An acceptor's term and persisted commit LSN never go back; its commit LSN never goes
    /// back within a process.
    AcceptorMonotonic,
    /// The WAL below any acceptor's commit LSN, read from its disk, is the same everywhere.
    CommittedWalAgrees,
    /// At most one proposer is elected per term, with one term start LSN.
    ElectionSafety,
    /// A vote a proposer counts is durable on the voter's disk (its control file holds the
    /// term), so no crash can let the voter vote again in that term.
    VoteIsDurable,
    /// Whatever majority elects the next proposer, the log it adopts holds the committed WAL.
    LeaderCompleteness,
    /// A proposer's commit LSN never exceeds what a quorum reported flushed in its term.
    CommitNeedsQuorum,
    /// Every acknowledged transaction's commit record and writes are in the committed WAL.
    AckedTxnInWal,
    /// No xid commits twice in the committed WAL: a compute that restarts (from its WAL or a
    /// basebackup) continues past every xid used, or an old commit's identity becomes ambiguous.
    XidCommittedOnce,
    /// A GetPage at the latest LSN is at or above the last commit acknowledged before it.
    ReadYourWrites,
    /// WAL is removed only below what the object store's index holds, with every layer it
    /// names present in the bucket.
    RemovalCoveredByStore,
    /// After a pageserver crash, the metadata on its disk is covered by intact layers.
    LayersSurviveCrash,
    /// remote_consistent_lsn <= disk_consistent_lsn <= ingested <= committed.
    PageserverLsnOrder,
    /// A page served, imaged or sent in a basebackup equals the oracle's at its LSN.
    PageMatchesOracle,
    /// A GetPage answer is labelled with the page and LSN the compute asked for.
    AnswerAsAsked,
    /// No page is served at an LSN beyond the committed WAL.
    ServedWithinCommitted,
    /// The committed WAL decodes, record after record, to its end.
    CommittedWalDecodes,
    /// The committed WAL initialises each page once.
    PageInitialisedOnce,
    /// A page served carries a checksum that holds.
    PageChecksum,
    /// After the faults heal, commits are acknowledged again at a rate.
    CommitsResume,
    /// After the faults heal, every pageserver reaches the commit LSN within a bound.
    PageserversCatchUp,
    /// After the faults heal, GetPage is answered, and requests no longer fail.
    GetPageAnswered,
    /// By the end, the object store's index under each pageserver's prefix reaches the
    /// `disk_consistent_lsn` that pageserver's disk held when the faults healed.
    UploadsCatchUp,
    /// By the end, no safekeeper still in service holds a whole WAL segment below what every
    /// pageserver had flushed and the quorum had committed when the faults healed.
    WalRemovalResumes,
    /// A GetPage applies at most the image policy's threshold plus the page's records ingested
    /// since the pageserver's last image pass.
    ChainWithinPolicy,
}

impl Check {
    pub const ALL: [Check; 24] = {
        use Check::*;
        [
            AcceptorMonotonic,
            CommittedWalAgrees,
            ElectionSafety,
            VoteIsDurable,
            LeaderCompleteness,
            CommitNeedsQuorum,
            AckedTxnInWal,
            XidCommittedOnce,
            ReadYourWrites,
            RemovalCoveredByStore,
            LayersSurviveCrash,
            PageserverLsnOrder,
            PageMatchesOracle,
            AnswerAsAsked,
            ServedWithinCommitted,
            CommittedWalDecodes,
            PageInitialisedOnce,
            PageChecksum,
            CommitsResume,
            PageserversCatchUp,
            GetPageAnswered,
            UploadsCatchUp,
            WalRemovalResumes,
            ChainWithinPolicy,
        ]
    };

    pub fn invariant(self) -> Invariant {
        use Check::*;
        match self {
            AcceptorMonotonic | CommittedWalAgrees | ElectionSafety | VoteIsDurable => {
                Invariant::WalAgreement
            }
            LeaderCompleteness
            | CommitNeedsQuorum
            | AckedTxnInWal
            | XidCommittedOnce
            | ReadYourWrites
            | RemovalCoveredByStore
            | LayersSurviveCrash
            | PageserverLsnOrder => Invariant::Durability,
            PageMatchesOracle
            | AnswerAsAsked
            | ServedWithinCommitted
            | CommittedWalDecodes
            | PageInitialisedOnce => Invariant::PageReconstruction,
            PageChecksum => Invariant::NoCorruptPage,
            CommitsResume | PageserversCatchUp | GetPageAnswered | UploadsCatchUp
            | WalRemovalResumes => Invariant::Liveness,
            ChainWithinPolicy => Invariant::ReadAmplification,
        }
    }

    pub fn name(self) -> &'static str {
        use Check::*;
        match self {
            AcceptorMonotonic => "acceptor-monotonic",
            CommittedWalAgrees => "committed-wal-agrees",
            ElectionSafety => "election-safety",
            VoteIsDurable => "vote-is-durable",
            LeaderCompleteness => "leader-completeness",
            CommitNeedsQuorum => "commit-needs-quorum",
            AckedTxnInWal => "acked-txn-in-wal",
            XidCommittedOnce => "xid-committed-once",
            ReadYourWrites => "read-your-writes",
            RemovalCoveredByStore => "removal-covered-by-store",
            LayersSurviveCrash => "layers-survive-crash",
            PageserverLsnOrder => "pageserver-lsn-order",
            PageMatchesOracle => "page-matches-oracle",
            AnswerAsAsked => "answer-as-asked",
            ServedWithinCommitted => "served-within-committed",
            CommittedWalDecodes => "committed-wal-decodes",
            PageInitialisedOnce => "page-initialised-once",
            PageChecksum => "page-checksum",
            CommitsResume => "commits-resume",
            PageserversCatchUp => "pageservers-catch-up",
            GetPageAnswered => "getpage-answered",
            UploadsCatchUp => "uploads-catch-up",
            WalRemovalResumes => "wal-removal-resumes",
            ChainWithinPolicy => "chain-within-policy",
        }
    }
}

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub invariant: Invariant,
    /// What caught it: `check NAME` (the harness), `assertion at FILE:LINE` (node code),
    /// `time limit`, or `panic at FILE:LINE`.
    pub caught_by: String,
    pub time_ms: u64,
    pub nodes: Vec<u32>,
    pub detail: String,
}

impl Violation {
    pub fn of_check(check: Check, time_ms: u64, nodes: Vec<u32>, detail: String) -> Violation {
        Violation {
            invariant: check.invariant(),
            caught_by: format!("check {}", check.name()),
            time_ms,
            nodes,
            detail,
        }
    }
}
