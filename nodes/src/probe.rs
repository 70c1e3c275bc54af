//! Coverage probes: FoundationDB-style "sometimes assertions" at rare paths of node code.
//!
//! `probe!(ElectionTruncates)` records that a run reached that path; it changes nothing the
//! node does. A campaign reports how many seeds reached each probe and lists the probes no seed
//! reached (`lakesim fuzz --require-probes` fails the campaign then): proof that the faults
//! drove the system into the corners the checkers are there to judge, rather than a hope.
//!
//! Hits are kept per thread: a seed runs on its own thread, with every node of its simulation,
//! so [`take_hits`] at the end of a run gives exactly that run's probes. Recording is one
//! thread-local OR.

use std::cell::Cell;

macro_rules! probes {
    ($($variant:ident $name:literal $about:literal,)+) => {
        /// A rare path of node code (see the module doc).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u8)]
        pub enum Probe {
            $($variant,)+
        }

        impl Probe {
            pub const ALL: &'static [Probe] = &[$(Probe::$variant,)+];

            pub fn name(self) -> &'static str {
                match self {
                    $(Probe::$variant => $name,)+
                }
            }

            /// What reaching it shows.
            pub fn about(self) -> &'static str {
                match self {
                    $(Probe::$variant => $about,)+
                }
            }
        }
    };
}

probes! {
    ElectionTruncates "election-truncates" "a new leader's ProposerElected cut a divergent WAL suffix off an acceptor",
    VoteRefused "vote-refused" "an acceptor refused a vote for a stale or already-voted term",
    AppendHeldEarly "append-held-early" "an append that arrived ahead of a gap was held, not written out of order",
    DuplicateAppendIgnored "duplicate-append-ignored" "an append wholly below the acceptor's write position wrote nothing",
    WalTailCut "wal-tail-cut" "safekeeper recovery cut a torn or invalid WAL tail",
    ControlFileOneCopy "control-file-one-copy" "one control-file copy verified (or was readable), and the state was rewritten to both",
    ControlPersistFailed "control-persist-failed" "a control-file persist failed and memory went back to the disk's state",
    WalCopyRepaired "wal-copy-repaired" "safekeeper recovery wrote records back into one WAL copy from the other",
    WalRecoveryReadError "wal-recovery-read-error" "a WAL copy unreadable past the valid end failed recovery (retried) rather than cut WAL",
    WalDamagedStaysOut "wal-damaged-stays-out" "WAL bad in both copies below the persisted commit LSN kept a safekeeper from starting",
    ServedWalDamaged "served-wal-damaged" "WAL read back to be served failed its checks: damage, never the end of the WAL",
    ReadErrorUnanswered "read-error-unanswered" "a read error left a WAL read request unanswered (the reader asks again)",
    SkBatchDiskFull "sk-batch-disk-full" "a full disk failed a safekeeper batch, unacknowledged, and the node went on",
    SkStaysOut "sk-stays-out" "a safekeeper with no timeline it can trust stayed out of the quorum",
    WalRemovalHeldByPageserver "wal-removal-held-by-pageserver" "a whole WAL segment was removable but a pageserver's remote_consistent_lsn held it back",
    ProcessAborted "process-aborted" "a node ended its process on an I/O error it cannot survive (a failed fsync, say)",
    ProposerDeposed "proposer-deposed" "a leader saw a higher term and stepped down",
    StaleIncarnationVote "stale-incarnation-vote" "a vote meant for an earlier incarnation of the compute was ignored",
    RefusalsForceRecampaign "refusals-force-recampaign" "enough same-term refusals made a quorum impossible, so the proposer campaigned again",
    RefusedAcceptorBroughtIn "refused-acceptor-brought-in" "a leader brought an acceptor that refused in its term into its term",
    ComputeFromBasebackup "compute-from-basebackup" "a leader started from a pageserver basebackup because the donor's WAL no longer starts at 0",
    BasebackupTimedOut "basebackup-timed-out" "a basebackup got no answer in time and the compute campaigned again",
    IngestSwitchSource "ingest-switch-source" "a pageserver switched the safekeeper it streams WAL from",
    IngestWalRemoved "ingest-wal-removed" "the safekeeper a pageserver streamed from had removed the WAL it needed next",
    GetPageWaits "getpage-waits" "a GetPage or basebackup waited for ingest to reach its LSN",
    GetPageWaitExpired "getpage-wait-expired" "a GetPage waiting for ingest failed after the longest wait",
    ImageWhileGetPageWaits "image-while-getpage-waits" "an image layer was made while GetPages waited for WAL",
    ImagePassFullDisk "image-pass-full-disk" "a full disk failed an image pass; its pages are listed again",
    PsLayerWriteFullDisk "ps-layer-write-full-disk" "a layer write hit a full disk and was undone, to be retried",
    PsLayerRefetched "ps-layer-refetched" "a damaged local delta layer was fetched again from the object store",
    PsReingestAfterDamage "ps-reingest-after-damage" "a damaged layer not yet uploaded lowered disk_consistent_lsn, so its WAL is ingested again",
    PsRebuildFromStore "ps-rebuild-from-store" "a pageserver whose metadata was lost or untrusted rebuilt from the object store",
    StoreGetRetried "store-get-retried" "an object-store read at pageserver start timed out and was retried",
    LayerUploadRetried "layer-upload-retried" "a layer upload got no acknowledgement in time and was sent again",
    LateStoreResponseIgnored "late-store-response-ignored" "a late or duplicated upload acknowledgement was ignored",
    StaleIndexPutRejected "stale-index-put-rejected" "the object store refused an index PUT older than the one it holds",
}

thread_local! {
    static HITS: Cell<u64> = const { Cell::new(0) };
}

const _: () = assert!(Probe::ALL.len() <= 64, "hits are a 64-bit set");

/// Records that this thread's run reached `probe`.
pub fn hit(probe: Probe) {
    HITS.with(|h| h.set(h.get() | 1 << probe as u8));
}

/// The probes this thread's run reached since the last call, and forgets them.
pub fn take_hits() -> ProbeSet {
    ProbeSet(HITS.with(|h| h.replace(0)))
}

/// A set of probes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeSet(pub u64);

impl ProbeSet {
    pub fn contains(self, p: Probe) -> bool {
        self.0 & (1 << p as u8) != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Probe> {
        Probe::ALL
            .iter()
            .copied()
            .filter(move |p| self.contains(*p))
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Records a probe: `probe!(ElectionTruncates)`.
#[macro_export]
macro_rules! probe {
    ($p:ident) => {
        $crate::probe::hit($crate::probe::Probe::$p)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_are_per_thread_and_taken_once() {
        std::thread::spawn(|| {
            crate::probe!(VoteRefused);
            crate::probe!(StaleIndexPutRejected);
            let hits = take_hits();
            assert_eq!(hits.len(), 2);
            assert!(hits.contains(Probe::VoteRefused));
            assert!(take_hits().is_empty());
        })
        .join()
        .unwrap();
        let names: std::collections::BTreeSet<_> = Probe::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(names.len(), Probe::ALL.len(), "names are unique");
    }
}
