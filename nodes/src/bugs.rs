//! Planted bugs: deliberate, realistic mistakes that node code makes when its config asks for
//! them, so that a test can show each checker catching the bug it exists for.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One planted bug. Each is a small guarded branch in the module that owns the mechanism.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    AckBeforeFsync,
    VoteBeforePersist,
    SkipTruncateOnElect,
    ElectByFlushLsn,
    CommitOldTerm,
    ControlFileUnsynced,
    GetpageStaleLsn,
    ImageWrongLsn,
    SkipLayerChecksum,
    ConsistentLsnBeforeSync,
    IngestSkipOnSwitch,
    WalRemovedBeforeUpload,
    IngestNeverSwitch,
    ImageLoadUnverified,
    VoteTwiceInTerm,
    RedoOffsetOffByOne,
    ReadLsnTooOld,
    TxnWriteLost,
    ObjectStoreSilent,
    ImagesNeverCreated,
    RefusedAcceptorIgnored,
    IndexNeverUploaded,
    ReplayKeepsNextXid,
    FsyncRetryAfterEio,
    EnospcAckAnyway,
    ReadErrorAsEof,
    RottedControlFileTrusted,
    ProcessGlobalCounter,
}

impl Bug {
    pub const ALL: [Bug; 28] = [
        Bug::AckBeforeFsync,
        Bug::VoteBeforePersist,
        Bug::SkipTruncateOnElect,
        Bug::ElectByFlushLsn,
        Bug::CommitOldTerm,
        Bug::ControlFileUnsynced,
        Bug::GetpageStaleLsn,
        Bug::ImageWrongLsn,
        Bug::SkipLayerChecksum,
        Bug::ConsistentLsnBeforeSync,
        Bug::IngestSkipOnSwitch,
        Bug::WalRemovedBeforeUpload,
        Bug::IngestNeverSwitch,
        Bug::ImageLoadUnverified,
        Bug::VoteTwiceInTerm,
        Bug::RedoOffsetOffByOne,
        Bug::ReadLsnTooOld,
        Bug::TxnWriteLost,
        Bug::ObjectStoreSilent,
        Bug::ImagesNeverCreated,
        Bug::RefusedAcceptorIgnored,
        Bug::IndexNeverUploaded,
        Bug::ReplayKeepsNextXid,
        Bug::FsyncRetryAfterEio,
        Bug::EnospcAckAnyway,
        Bug::ReadErrorAsEof,
        Bug::RottedControlFileTrusted,
        Bug::ProcessGlobalCounter,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bug::AckBeforeFsync => "ack-before-fsync",
            Bug::VoteBeforePersist => "vote-before-persist",
            Bug::SkipTruncateOnElect => "skip-truncate-on-elect",
            Bug::ElectByFlushLsn => "elect-by-flush-lsn",
            Bug::CommitOldTerm => "commit-old-term",
            Bug::ControlFileUnsynced => "control-file-unsynced",
            Bug::GetpageStaleLsn => "getpage-stale-lsn",
            Bug::ImageWrongLsn => "image-wrong-lsn",
            Bug::SkipLayerChecksum => "skip-layer-checksum",
            Bug::ConsistentLsnBeforeSync => "consistent-lsn-before-sync",
            Bug::IngestSkipOnSwitch => "ingest-skip-on-switch",
            Bug::WalRemovedBeforeUpload => "wal-removed-before-upload",
            Bug::IngestNeverSwitch => "ingest-never-switch",
            Bug::ImageLoadUnverified => "image-load-unverified",
            Bug::VoteTwiceInTerm => "vote-twice-in-term",
            Bug::RedoOffsetOffByOne => "redo-offset-off-by-one",
            Bug::ReadLsnTooOld => "read-lsn-too-old",
            Bug::TxnWriteLost => "txn-write-lost",
            Bug::ObjectStoreSilent => "object-store-silent",
            Bug::ImagesNeverCreated => "images-never-created",
            Bug::RefusedAcceptorIgnored => "refused-acceptor-ignored",
            Bug::IndexNeverUploaded => "index-never-uploaded",
            Bug::ReplayKeepsNextXid => "replay-keeps-next-xid",
            Bug::FsyncRetryAfterEio => "fsync-retry-after-eio",
            Bug::EnospcAckAnyway => "enospc-ack-anyway",
            Bug::ReadErrorAsEof => "read-error-as-eof",
            Bug::RottedControlFileTrusted => "rotted-control-file-trusted",
            Bug::ProcessGlobalCounter => "process-global-counter",
        }
    }

    /// What the bug does, for `lakesim list`.
    pub fn describe(self) -> &'static str {
        match self {
            Bug::AckBeforeFsync => {
                "acceptor acknowledges appends before the fsync that follows them"
            }
            Bug::VoteBeforePersist => {
                "acceptor grants a vote before the persist of its new term that follows it"
            }
            Bug::SkipTruncateOnElect => "acceptor keeps its divergent WAL suffix on election",
            Bug::ElectByFlushLsn => "proposer picks the highest flush LSN, ignoring last-log term",
            Bug::CommitOldTerm => "proposer counts acks below its term's start LSN toward commit",
            Bug::ControlFileUnsynced => "control file written without fsync and directory sync",
            Bug::GetpageStaleLsn => {
                "pageserver answers GetPage from what it has when the LSN is not yet ingested"
            }
            Bug::ImageWrongLsn => "image layer labelled one record before the state it holds",
            Bug::SkipLayerChecksum => {
                "pageserver loads layer files without checking the layer checksum"
            }
            Bug::ConsistentLsnBeforeSync => {
                "disk_consistent_lsn moves before the layer file's sync that follows it"
            }
            Bug::IngestSkipOnSwitch => "pageserver drops one record when it switches safekeeper",
            Bug::WalRemovedBeforeUpload => {
                "safekeepers remove WAL below a pageserver's disk_consistent_lsn, not its remote_consistent_lsn"
            }
            Bug::IngestNeverSwitch => {
                "pageserver keeps streaming from its first safekeeper, even when that one is gone"
            }
            Bug::ImageLoadUnverified => {
                "pageserver serves a stored image layer without verifying its checksums"
            }
            Bug::VoteTwiceInTerm => {
                "acceptor grants a second proposer its vote in a term it already voted in"
            }
            Bug::RedoOffsetOffByOne => {
                "walredo (compute and pageserver alike) writes a page delta one byte past its offset"
            }
            Bug::ReadLsnTooOld => {
                "compute reads the latest page version at the commit before its last acknowledged one"
            }
            Bug::TxnWriteLost => {
                "compute drops the last write of every 16th transaction from the WAL but logs its commit"
            }
            Bug::ObjectStoreSilent => "the object store takes every request and never answers",
            Bug::ImagesNeverCreated => "pageserver never creates an image layer",
            Bug::RefusedAcceptorIgnored => {
                "leader ignores an acceptor that voted for a lost proposer of its term, so WAL removal stalls"
            }
            Bug::IndexNeverUploaded => {
                "pageserver uploads its layers but never the index naming them"
            }
            Bug::ReplayKeepsNextXid => {
                "a compute rebuilt from WAL does not move its next xid past the xids it replays"
            }
            Bug::FsyncRetryAfterEio => {
                "safekeeper retries a WAL fsync that failed with EIO and trusts the retry (fsyncgate)"
            }
            Bug::EnospcAckAnyway => {
                "safekeeper acknowledges an append whose WAL write failed with ENOSPC"
            }
            Bug::ReadErrorAsEof => {
                "safekeeper takes a WAL read error for the end of its WAL and cuts the WAL there on recovery"
            }
            Bug::RottedControlFileTrusted => {
                "safekeeper trusts a control file copy whose checksum fails (rot) rather than pass it over"
            }
            Bug::ProcessGlobalCounter => {
                "proposer delays its first campaign by a process-wide counter, not its seeded RNG (state that leaks from one run into the next)"
            }
        }
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bug {
    type Err = String;

    fn from_str(s: &str) -> Result<Bug, String> {
        Bug::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
            format!("unknown bug '{s}'; known bugs: {}", names.join(", "))
        })
    }
}

/// The planted bugs a node runs with (at most a handful, so a sorted small vector).
#[derive(Clone, Default, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BugSet(Vec<Bug>);

impl BugSet {
    pub fn none() -> BugSet {
        BugSet::default()
    }

    pub fn of(bugs: impl IntoIterator<Item = Bug>) -> BugSet {
        let mut v: Vec<Bug> = bugs.into_iter().collect();
        v.sort();
        v.dedup();
        BugSet(v)
    }

    /// True when `bug` is planted.
    pub fn has(&self, bug: Bug) -> bool {
        self.0.contains(&bug)
    }
}
