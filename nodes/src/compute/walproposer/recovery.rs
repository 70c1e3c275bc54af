//! Recovery, between winning the votes and leading: the proposer adopts the most advanced log
//! among its voters (highest last-log term, then highest flush LSN), fetches it from that donor,
//! and rebuilds its view of the database from it. When the donor no longer holds the WAL from
//! LSN 0 (safekeepers remove what every pageserver holds in the object store), the view starts
//! from a pageserver's basebackup at the donor's WAL start, whose pages are checked, and the
//! donor's WAL is replayed on top, as a Neon compute starts from a basebackup.

use super::{DonorWal, Phase, Proposer};
use crate::bugs::Bug;
use crate::compute::workload::Database;
use crate::ids::{Lsn, NodeId, PageId, Term};
use crate::invariant::Invariant;
use crate::observe::Observation;
use crate::page::Page;
use crate::proto::{Basebackup, Message, TermHistory, TermSwitch};
use crate::redo::WalRedo;
use std::sync::Arc;

impl Proposer {
    /// The most advanced log among the voters: by last-log term, then flush LSN.
    fn pick_donor(&self) -> (NodeId, Lsn, TermHistory) {
        let by_flush_only = self.bugs.has(Bug::ElectByFlushLsn);
        let mut best: Option<(NodeId, Lsn, TermHistory)> = None;
        for (id, peer) in &self.peers {
            let Some((flush, history)) = &peer.log else {
                continue;
            };
            let key = |f: Lsn, h: &TermHistory| {
                let last_term = if by_flush_only { Term(0) } else { h.term_at(f) };
                (last_term, f)
            };
            if best
                .as_ref()
                .is_none_or(|(_, bf, bh)| key(*flush, history) > key(*bf, bh))
            {
                best = Some((*id, *flush, history.clone()));
            }
        }
        best.expect("a quorum voted")
    }

    pub(super) fn start_recovery(&mut self) {
        let (donor, flush_lsn, history) = self.pick_donor();
        self.phase = Phase::Recovering {
            donor,
            flush_lsn,
            history,
            waited_ticks: 0,
            donor_wal: None,
        };
        self.request_donor_wal();
    }

    pub(super) fn request_donor_wal(&self) {
        if let Phase::Recovering {
            donor, flush_lsn, ..
        } = &self.phase
        {
            let req = Message::ReadWal {
                term: self.term,
                start: Lsn::ZERO,
                end: *flush_lsn,
            };
            self.net.send(*donor, req);
        }
    }

    pub(super) fn on_donor_wal(
        &mut self,
        from: NodeId,
        term: Term,
        start: Lsn,
        prev: Lsn,
        wal: Option<Arc<Vec<u8>>>,
    ) {
        let Phase::Recovering {
            donor,
            flush_lsn,
            donor_wal,
            waited_ticks,
            ..
        } = &mut self.phase
        else {
            return;
        };
        if from != *donor || term != self.term || donor_wal.is_some() {
            return;
        }
        let Some(bytes) = wal.filter(|w| start.advance(w.len() as u64) == *flush_lsn) else {
            return self.campaign();
        };
        *donor_wal = Some(DonorWal { start, prev, bytes });
        *waited_ticks = 0;
        if start == Lsn::ZERO {
            self.become_leader(None);
        } else {
            self.request_basebackup();
        }
    }

    /// Asks a pageserver for every page as of the donor's WAL start.
    pub(super) fn request_basebackup(&mut self) {
        let Phase::Recovering {
            donor_wal: Some(w), ..
        } = &self.phase
        else {
            return;
        };
        invariant!(
            Invariant::Durability,
            !self.pageservers.is_empty(),
            "the WAL before {} was removed, but there is no pageserver to start from",
            w.start
        );
        self.next_backup_request += 1;
        let to = self.pageservers[self.next_backup_request as usize % self.pageservers.len()];
        let msg = Message::Basebackup {
            request_id: self.next_backup_request,
            lsn: w.start,
        };
        self.net.send(to, msg);
    }

    pub(super) fn on_basebackup(&mut self, lsn: Lsn, result: Result<Arc<Basebackup>, String>) {
        let Phase::Recovering {
            donor_wal: Some(w), ..
        } = &self.phase
        else {
            return;
        };
        // Any answer at this LSN will do: the pages at an LSN are the same whoever asked.
        let Ok(backup) = result else {
            return; // the next request may find the pageserver caught up
        };
        if lsn != w.start {
            return;
        }
        let mut pages = Vec::with_capacity(backup.pages.len());
        for (id, bytes) in &backup.pages {
            let page = Page::from_bytes(bytes).filter(Page::verify);
            let obs = Observation::BasebackupPage {
                page: *id,
                lsn,
                page_crc: crc32c::crc32c(bytes),
                checksum_ok: page.is_some(),
            };
            self.observer.observe(self.id, obs);
            pages.extend(page.map(|p| (*id, p)));
        }
        // A damaged page fails the whole backup: the next request may get an intact one.
        if pages.len() == backup.pages.len() {
            self.become_leader(Some((pages, backup.next_xid)));
        }
    }

    /// Recovery is done: the database is rebuilt from the donor's WAL (after `backup`'s verified
    /// pages and next xid, when the donor's WAL does not start at 0), and this proposer leads
    /// from the donor's flush LSN.
    pub(super) fn become_leader(&mut self, backup: Option<(Vec<(PageId, Page)>, u64)>) {
        let Phase::Recovering {
            flush_lsn,
            history,
            donor_wal: Some(w),
            ..
        } = std::mem::replace(&mut self.phase, Phase::Leader)
        else {
            unreachable!("a leader is made from a finished recovery");
        };
        let mut history = history.up_to(flush_lsn);
        history.0.push(TermSwitch {
            term: self.term,
            lsn: flush_lsn,
        });
        self.db = match backup {
            None => Database::default(),
            Some((pages, next_xid)) => {
                crate::probe!(ComputeFromBasebackup);
                Database::from_basebackup(pages.into_iter(), w.start, w.prev, next_xid)
            }
        }
        .with_redo(WalRedo::new(&self.bugs), &self.bugs);
        self.db.replay(&w.bytes);
        assert_eq!(
            self.db.end_lsn(),
            flush_lsn,
            "the donor's WAL ends at its flush LSN"
        );
        self.wal = Arc::unwrap_or_clone(w.bytes);
        self.wal_start = w.start;
        self.history = history;
        self.epoch_start_lsn = flush_lsn;
        self.commit_lsn = Lsn::ZERO;
        let obs = Observation::Elected {
            term: self.term,
            epoch_start_lsn: flush_lsn,
            proposer: self.proposer_id.0,
        };
        self.observer.observe(self.id, obs);
        let voters: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.log.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in voters {
            self.send_elected(id);
        }
    }
}
