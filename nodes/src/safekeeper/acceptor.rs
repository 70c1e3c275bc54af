//! The acceptor: the safekeeper's half of the Paxos-style protocol, as one state machine over
//! [`Message`]s (Neon: `SafeKeeper::process_msg`).
//!
//! Guarantees, each asserted where it is established:
//! - a vote in a term is given to at most one proposer, and only once the term is durable;
//! - an append is acknowledged only once it is fsynced (its `flush_lsn` is durable);
//! - appends are accepted only from the current term's proposer, after its `ProposerElected`
//!   has cut away any suffix that diverges from the proposer's log;
//! - the reported `commit_lsn` never decreases and never passes `flush_lsn`;
//! - WAL is removed only below what no one can need again: the lowest `remote_consistent_lsn`
//!   of every pageserver (so one that loses its disk can rebuild from the object store and the
//!   WAL after it), the proposer's `truncate_lsn` (so every acceptor can still be caught up),
//!   and our own commit LSN; the new WAL start is durable before any segment goes.

use super::control_file::{self, SafekeeperState};
use super::wal_store::{WalStore, SEGMENT_SIZE};
use crate::bugs::{Bug, BugSet};
use crate::ids::{Lsn, NodeId, Term};
use crate::observe::{Observation, Observer};
use crate::proto::{Message, ProposerId, TermHistory};
use crate::wal::decode_stream;
use lakesim_faults::Disk;
use std::collections::BTreeMap;
use std::io::Result;
use std::sync::Arc;

/// Largest chunk of committed WAL sent to a pageserver at once.
const READ_COMMITTED_MAX_BYTES: u64 = 64 * 1024;

/// Persist the commit LSN when it has moved this far since the last persist.
const COMMIT_LSN_PERSIST_BYTES: u64 = 32 * 1024;

pub struct Acceptor {
    id: NodeId,
    disk: Disk,
    /// The state as last persisted (the vote-before-persist bug lets memory run ahead of it).
    state: SafekeeperState,
    durable: SafekeeperState,
    wal: WalStore,
    /// The commit LSN learned from the proposer, in memory; `durable.commit_lsn` lags it.
    commit_lsn: Lsn,
    bugs: BugSet,
    observer: Arc<dyn Observer>,
    buggify: bool,
    /// The pageservers whose WAL needs hold back removal, and the feedback last heard from
    /// each: `(disk_consistent_lsn, remote_consistent_lsn)`, highest seen.
    pageservers: Vec<NodeId>,
    feedback: BTreeMap<NodeId, (Lsn, Lsn)>,
    /// The highest `truncate_lsn` a proposer sent: WAL every acceptor has flushed.
    peer_horizon: Lsn,
}

impl Acceptor {
    /// Recovers the acceptor from its disk: the control file, then the WAL with its torn tail cut.
    pub async fn open(
        id: NodeId,
        disk: Disk,
        bugs: BugSet,
        observer: Arc<dyn Observer>,
    ) -> Result<Acceptor> {
        let state = control_file::load(&disk)?;
        let (wal, cut) =
            WalStore::recover(disk.clone(), state.wal_start, state.wal_start_prev).await?;
        if let Some(lsn) = cut {
            observer.observe(id, Observation::Truncated { lsn });
        }
        // Everything below a persisted commit LSN was flushed before it was persisted.
        assert!(
            state.commit_lsn <= wal.flush_lsn(),
            "durability: acceptor {id} persisted commit LSN {} but holds WAL only to {}",
            state.commit_lsn,
            wal.flush_lsn()
        );
        assert!(
            state.wal_start <= state.commit_lsn,
            "durability: acceptor {id} removed WAL it had not seen committed"
        );
        let commit_lsn = state.commit_lsn;
        let acceptor = Acceptor {
            id,
            disk,
            durable: state.clone(),
            state,
            wal,
            commit_lsn,
            bugs,
            observer,
            buggify: false,
            pageservers: Vec::new(),
            feedback: BTreeMap::new(),
            peer_horizon: Lsn::ZERO,
        };
        acceptor.report();
        Ok(acceptor)
    }

    /// Turns the BUGGIFY points on.
    pub fn with_buggify(mut self, on: bool) -> Acceptor {
        self.buggify = on;
        self
    }

    /// Names the pageservers whose feedback WAL removal waits for (none: nothing is removed,
    /// as a safekeeper cannot know who might still need its WAL).
    pub fn with_pageservers(mut self, pageservers: Vec<NodeId>) -> Acceptor {
        self.pageservers = pageservers;
        self
    }

    fn report(&self) {
        let obs = Observation::Acceptor {
            term: self.durable.term,
            last_log_term: self.durable.term_history.term_at(self.wal.flush_lsn()),
            flush_lsn: self.wal.flush_lsn(),
            commit_lsn: self.commit_lsn,
            durable_commit_lsn: self.durable.commit_lsn,
        };
        self.observer.observe(self.id, obs);
    }

    async fn persist(&mut self) -> Result<()> {
        let unsynced = self.bugs.has(Bug::ControlFileUnsynced);
        control_file::persist(&self.disk, &self.state, unsynced).await?;
        self.durable = self.state.clone();
        self.report();
        Ok(())
    }

    /// Handles one message from `from`; returns the reply, if any.
    pub async fn process_msg(&mut self, from: NodeId, msg: &Message) -> Result<Option<Message>> {
        match msg {
            Message::VoteRequest { term, proposer_id } => self
                .handle_vote_request(*proposer_id, *term)
                .await
                .map(Some),
            Message::ProposerElected {
                term,
                proposer_id,
                start_streaming_at,
                term_history,
            } => {
                self.handle_elected(*proposer_id, *term, *start_streaming_at, term_history)
                    .await
            }
            Message::AppendRequest {
                term,
                begin_lsn,
                wal,
                commit_lsn,
                truncate_lsn,
            } => {
                let reply = self
                    .handle_append(*term, *begin_lsn, wal, *commit_lsn, *truncate_lsn)
                    .await?;
                self.remove_old_wal().await?;
                Ok(reply)
            }
            Message::PageserverFeedback {
                disk_consistent_lsn,
                remote_consistent_lsn,
            } => {
                self.on_feedback(from, *disk_consistent_lsn, *remote_consistent_lsn);
                self.remove_old_wal().await?;
                Ok(None)
            }
            Message::ReadCommitted { start } => Ok(self.handle_read_committed(*start)),
            Message::ReadWal { term, start, end } => {
                Ok(Some(self.handle_read(*term, *start, *end)?))
            }
            _ => Ok(None),
        }
    }

    fn vote_response(&self, vote_given: bool) -> Message {
        Message::VoteResponse {
            term: self.state.term,
            vote_given,
            flush_lsn: self.wal.flush_lsn(),
            commit_lsn: self.commit_lsn,
            term_history: self.state.term_history.clone(),
        }
    }

    fn append_response(&self) -> Message {
        Message::AppendResponse {
            term: self.state.term,
            flush_lsn: self.wal.flush_lsn(),
            commit_lsn: self.commit_lsn,
        }
    }

    async fn handle_vote_request(&mut self, from: ProposerId, term: Term) -> Result<Message> {
        let again = term == self.state.term && self.state.voted_for == Some(from);
        if term <= self.state.term && !again {
            return Ok(self.vote_response(false));
        }
        if !again {
            self.state.term = term;
            self.state.voted_for = Some(from);
            // The vote-before-persist bug answers now and leaves the term to a later persist.
            if !self.bugs.has(Bug::VoteBeforePersist) {
                self.persist().await?;
            }
        }
        assert!(
            self.bugs.has(Bug::VoteBeforePersist) || self.durable.voted_for == Some(from),
            "vote given without a durable term"
        );
        Ok(self.vote_response(true))
    }

    async fn handle_elected(
        &mut self,
        from: ProposerId,
        term: Term,
        start: Lsn,
        history: &TermHistory,
    ) -> Result<Option<Message>> {
        if term < self.state.term || (term == self.state.term && self.state.voted_for != Some(from))
        {
            return Ok(Some(self.append_response()));
        }
        assert_eq!(
            history.last_log_term(),
            term,
            "the proposer's history ends in its term"
        );
        if self.state.term_history.last_log_term() == term {
            // A duplicate: this term's appends may already have gone past `start`.
            return Ok(Some(self.append_response()));
        }
        // Removed WAL was committed, and every log a proposer adopts holds the committed WAL.
        assert!(
            start >= self.wal.start().0,
            "wal-agreement: acceptor {} told to truncate at {start}, below its removed WAL ({})",
            self.id,
            self.wal.start().0
        );
        if start < self.wal.write_lsn() && !self.bugs.has(Bug::SkipTruncateOnElect) {
            self.wal.truncate(start).await?;
            self.observer
                .observe(self.id, Observation::Truncated { lsn: start });
        }
        if self.wal.write_lsn() < start {
            // The proposer promised a start we do not reach: it will stream from our end.
            tracing::debug!(node = %self.id, %start, "elected start past our WAL end");
        }
        self.state.term = term;
        self.state.voted_for = Some(from);
        self.state.term_history = history.clone();
        self.commit_lsn = self.commit_lsn.min(self.wal.flush_lsn());
        self.persist().await?;
        Ok(Some(self.append_response()))
    }

    async fn handle_append(
        &mut self,
        term: Term,
        begin: Lsn,
        bytes: &[u8],
        commit_lsn: Lsn,
        truncate_lsn: Lsn,
    ) -> Result<Option<Message>> {
        if term < self.state.term {
            return Ok(Some(self.append_response()));
        }
        if term > self.state.term || self.state.term_history.last_log_term() != term {
            // No ProposerElected from this term yet: the proposer will resend it.
            return Ok(None);
        }
        self.peer_horizon = self.peer_horizon.max(truncate_lsn);
        let write_lsn = self.wal.write_lsn();
        let end = begin.advance(bytes.len() as u64);
        if begin <= write_lsn && end > write_lsn {
            let skip = write_lsn.bytes_since(begin) as usize;
            self.wal.write(write_lsn, &bytes[skip..])?;
        }
        let flushed = if self.bugs.has(Bug::AckBeforeFsync) {
            self.wal.pretend_flushed()
        } else {
            self.wal.flush().await?
        };
        self.advance_commit_lsn(commit_lsn.min(flushed)).await?;
        Ok(Some(self.append_response()))
    }

    async fn advance_commit_lsn(&mut self, commit_lsn: Lsn) -> Result<()> {
        if commit_lsn <= self.commit_lsn {
            self.report();
            return Ok(());
        }
        self.commit_lsn = commit_lsn;
        assert!(
            self.commit_lsn <= self.wal.flush_lsn(),
            "commit LSN past flush LSN"
        );
        // BUGGIFY: persisting the commit LSN early or late must be equally safe.
        let due = commit_lsn.bytes_since(self.durable.commit_lsn) >= COMMIT_LSN_PERSIST_BYTES;
        if due || crate::buggify::buggify(self.buggify, 0.05) {
            self.state.commit_lsn = commit_lsn;
            self.persist().await?;
        } else {
            self.report();
        }
        Ok(())
    }

    fn on_feedback(&mut self, from: NodeId, disk: Lsn, remote: Lsn) {
        if !self.pageservers.contains(&from) {
            return;
        }
        // Feedback may arrive late or twice; both LSNs only grow while the WAL is needed.
        let seen = self.feedback.entry(from).or_default();
        *seen = (seen.0.max(disk), seen.1.max(remote));
    }

    /// The WAL below this no one can need again, once every pageserver has reported.
    fn removal_horizon(&self) -> Option<Lsn> {
        let mut horizon = self.commit_lsn.min(self.peer_horizon);
        for ps in &self.pageservers {
            let (disk, remote) = self.feedback.get(ps)?;
            // The wal-removed-before-upload bug trusts the pageserver's local disk, which a
            // disk loss takes away.
            let needed = match self.bugs.has(Bug::WalRemovedBeforeUpload) {
                true => *disk,
                false => *remote,
            };
            horizon = horizon.min(needed);
        }
        Some(horizon)
    }

    /// Removes the WAL segments below the removal horizon: first the new WAL start is made
    /// durable, then the segments go.
    async fn remove_old_wal(&mut self) -> Result<()> {
        let Some(horizon) = self.removal_horizon() else {
            return Ok(());
        };
        let (start, start_prev) = self.wal.start();
        if horizon.0 / SEGMENT_SIZE <= start.0 / SEGMENT_SIZE {
            return Ok(()); // no whole segment to remove
        }
        let decoded = decode_stream(&self.wal.read(start, horizon)?, start, Some(start_prev));
        assert_eq!(
            decoded.end_lsn, horizon,
            "wal-agreement: removal horizon {horizon} is not a record boundary of the WAL from {start}"
        );
        let prev = decoded.last_lsn.unwrap_or(start_prev);
        (self.state.wal_start, self.state.wal_start_prev) = (horizon, prev);
        self.state.commit_lsn = self.state.commit_lsn.max(self.commit_lsn);
        self.persist().await?;
        let segments = self.wal.remove_before(horizon, prev)?;
        let obs = Observation::WalRemoved {
            wal_start: horizon,
            segments,
        };
        self.observer.observe(self.id, obs);
        Ok(())
    }

    /// Committed WAL for a pageserver: whole records from `start` up to our commit LSN, which
    /// is always a record boundary (the proposer appends whole records only).
    fn handle_read_committed(&mut self, start: Lsn) -> Option<Message> {
        let wal_start = self.wal.start().0;
        if start < wal_start {
            return Some(Message::WalRemoved { start, wal_start });
        }
        let commit = self.commit_lsn.min(self.wal.flush_lsn());
        if start > commit {
            return Some(Message::CommittedWal {
                start,
                wal: Arc::new(Vec::new()),
                commit_lsn: commit,
            });
        }
        let end = Lsn(commit.0.min(start.0 + READ_COMMITTED_MAX_BYTES));
        let wal = self.wal.read(start, end).ok()?;
        Some(Message::CommittedWal {
            start,
            wal: Arc::new(wal),
            commit_lsn: commit,
        })
    }

    /// The WAL in `[start, end)` for a recovering proposer, from our WAL start if it is later.
    fn handle_read(&mut self, term: Term, start: Lsn, end: Lsn) -> Result<Message> {
        let (wal_start, wal_start_prev) = self.wal.start();
        let start = start.max(wal_start);
        let wal = if term == self.state.term && start <= end && end <= self.wal.flush_lsn() {
            Some(Arc::new(self.wal.read(start, end)?))
        } else {
            None
        };
        // The record before `start` is known only at our WAL start; the proposer asks from 0.
        let prev_lsn = if start == wal_start {
            wal_start_prev
        } else {
            Lsn::ZERO
        };
        Ok(Message::ReadWalResponse {
            term: self.state.term,
            start,
            prev_lsn,
            wal,
        })
    }
}
