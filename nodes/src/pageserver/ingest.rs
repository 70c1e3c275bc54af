//! The WAL receiver: streams committed WAL from one safekeeper at a time, switching to the next
//! when its source fails or falls behind.
//!
//! Guarantees: records are ingested in LSN order, each exactly once: a chunk is taken only if it
//! starts where ingest stands, and its first record must name the last ingested one as its
//! `prev_lsn`, so a switch of source can neither skip nor repeat a record. Safekeepers serve
//! only committed WAL, so ingest never passes the commit LSN.

use super::layers::LayerMap;
use crate::bugs::{Bug, BugSet};
use crate::ids::{Lsn, NodeId};
use crate::invariant::Invariant;
use crate::net::Net;
use crate::proto::Message;
use crate::wal::{decode_stream, Tail};
use std::collections::BTreeSet;
use std::time::Duration;

/// Switch safekeeper after this long without new WAL.
const SWITCH_AFTER: Duration = Duration::from_millis(300);
/// Ask again after this long without an answer.
const RETRY_AFTER: Duration = Duration::from_millis(100);

pub struct WalReceiver {
    safekeepers: Vec<NodeId>,
    source: usize,
    last_record_lsn: Lsn,
    last_record_start: Lsn,
    since_progress: Duration,
    since_request: Option<Duration>,
    bugs: BugSet,
    /// The ingest-skip-on-switch bug: drop the next record.
    skip_next: bool,
    /// Safekeepers that answered they removed the WAL at `last_record_lsn`.
    removed: BTreeSet<NodeId>,
}

impl WalReceiver {
    /// A receiver that resumes after the record starting at `prev` and ending at `lsn`.
    pub fn new(
        safekeepers: Vec<NodeId>,
        lsn: Lsn,
        prev: Lsn,
        bugs: BugSet,
        first: usize,
    ) -> WalReceiver {
        assert!(!safekeepers.is_empty());
        WalReceiver {
            source: first % safekeepers.len(),
            safekeepers,
            last_record_lsn: lsn,
            last_record_start: prev,
            since_progress: Duration::ZERO,
            since_request: None,
            bugs,
            skip_next: false,
            removed: BTreeSet::new(),
        }
    }

    pub fn last_record_lsn(&self) -> Lsn {
        self.last_record_lsn
    }

    pub fn last_record_start(&self) -> Lsn {
        self.last_record_start
    }

    pub fn source(&self) -> NodeId {
        self.safekeepers[self.source]
    }

    /// Asks the current source for more WAL; switches source when it has gone quiet.
    pub fn tick(&mut self, net: &Net) {
        self.since_progress += super::TICK;
        if self.since_progress >= SWITCH_AFTER {
            self.switch();
        }
        if let Some(waited) = self.since_request.as_mut() {
            *waited += super::TICK;
            if *waited < RETRY_AFTER {
                return;
            }
        }
        self.request(net);
    }

    /// Asks the current source for the committed WAL after what was ingested. After a chunk
    /// that left more behind, the pageserver asks again at once: WAL streams as fast as the
    /// round trips allow, not one chunk a tick.
    pub fn request(&mut self, net: &Net) {
        self.since_request = Some(Duration::ZERO);
        let msg = Message::ReadCommitted {
            start: self.last_record_lsn,
        };
        net.send(self.source(), msg);
    }

    /// The source removed the WAL we need next: try the others. If every safekeeper removed
    /// it, committed WAL that no layer in the object store holds is gone for good.
    pub fn on_wal_removed(&mut self, from: NodeId, start: Lsn, wal_start: Lsn) {
        if from != self.source() || start != self.last_record_lsn {
            return;
        }
        crate::probe!(IngestWalRemoved);
        self.removed.insert(from);
        invariant!(
            Invariant::Durability,
            self.removed.len() < self.safekeepers.len(),
            "every safekeeper removed the WAL before {wal_start}, but this pageserver \
             needs it from {start} (its layers reach no further, here or in the object store)"
        );
        self.switch();
    }

    fn switch(&mut self) {
        if self.bugs.has(Bug::IngestNeverSwitch) {
            return;
        }
        crate::probe!(IngestSwitchSource);
        self.source = (self.source + 1) % self.safekeepers.len();
        self.since_progress = Duration::ZERO;
        self.since_request = None;
        self.skip_next = self.bugs.has(Bug::IngestSkipOnSwitch);
    }

    /// Takes a chunk of committed WAL; returns how many of its bytes, from its start, are the
    /// whole records ingested.
    pub fn on_wal(
        &mut self,
        from: NodeId,
        start: Lsn,
        wal: &[u8],
        map: &mut LayerMap,
    ) -> Option<usize> {
        if from != self.source() || start != self.last_record_lsn {
            return None;
        }
        self.since_request = None;
        let decoded = decode_stream(wal, start, Some(self.last_record_start));
        invariant!(
            Invariant::WalAgreement,
            decoded.tail != Tail::Corrupt || !decoded.records.is_empty() || wal.is_empty(),
            "committed WAL from {from} does not continue the ingested WAL at {start}"
        );
        if decoded.records.is_empty() {
            return None;
        }
        for (lsn, rec) in decoded.records {
            if std::mem::take(&mut self.skip_next) {
                continue;
            }
            map.add_record(lsn, rec);
        }
        self.last_record_start = decoded.last_lsn.expect("records were decoded");
        self.last_record_lsn = decoded.end_lsn;
        self.since_progress = Duration::ZERO;
        self.removed.clear();
        Some(decoded.end_lsn.bytes_since(start) as usize)
    }
}
