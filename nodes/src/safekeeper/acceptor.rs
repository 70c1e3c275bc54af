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
//!
//! Disk faults (see `safekeeper::run` for what the node does with an error): a WAL write that
//! finds the disk full fails the batch unacknowledged; WAL read back from disk is checked
//! before it is served or trusted, and a record that fails its checks is an error (damage),
//! never the end of the WAL; a failed fsync is an error, never retried.
//!
//! Appends that arrive together are group-committed: written, then one flush covers them all
//! and each sender hears the new flush LSN once (`process_batch`). An append that arrives
//! ahead of the WAL it continues (the network reorders) is held, bounded, until the gap fills;
//! it is never written out of order. The control file is persisted for the commit LSN or WAL
//! removal at most every [`PERSIST_INTERVAL`], and always before a vote or a new term is
//! acknowledged. Two planted bugs (ack-before-fsync, vote-before-persist) answer first and do
//! the durable work in [`Acceptor::settle`], which the safekeeper runs once the replies are sent;
//! without them, `settle` has nothing to do.

use super::control_file::{self, Loaded, SafekeeperState};
use super::wal_store::{Recovered, SegmentSize, WalStore};
use crate::bugs::{Bug, BugSet};
use crate::ids::{Lsn, NodeId, Term};
use crate::invariant::Invariant;
use crate::observe::{Observation, Observer};
use crate::proto::{Envelope, Message, ProposerId, TermHistory};
use crate::wal::{decode_one, scan_stream, Decoded, Scanned, Tail};
use lakesim_faults::disk::is_no_space;
use lakesim_faults::Disk;
use std::collections::BTreeMap;
use std::io::{Error, ErrorKind, Result};
use std::sync::Arc;

/// What a pageserver last told us: how far it ingested, and how far its layers reach on its
/// disk and in the object store. Each only grows while the WAL is needed.
#[derive(Clone, Copy, Default)]
struct Feedback {
    ingested: Lsn,
    disk: Lsn,
    remote: Lsn,
}

/// What writing an append led to.
enum Appended {
    /// Written to the cache: acknowledge it after the next flush, carrying this commit LSN.
    Written { commit_lsn: Lsn },
    /// Refused or ignored, with the answer to send now, if any.
    Reply(Option<Message>),
}

/// Largest chunk of committed WAL sent to a pageserver at once.
const READ_COMMITTED_MAX_BYTES: u64 = 1024 * 1024;

/// Appends held until the WAL before them arrives.
const MAX_EARLY_APPENDS: usize = 32;

/// Persist the commit LSN when it has moved this far since the last persist.
const COMMIT_LSN_PERSIST_BYTES: u64 = 32 * 1024;
/// Persist the control file for the commit LSN or WAL removal at most this often: each persist
/// is a write, two fsyncs and a rename, and at a high WAL rate the byte threshold alone would
/// have the safekeeper doing little else.
const PERSIST_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

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
    feedback: BTreeMap<NodeId, Feedback>,
    /// The highest `truncate_lsn` a proposer sent: WAL every acceptor has flushed.
    peer_horizon: Lsn,
    /// When the control file was last persisted.
    last_persist: madsim::time::Instant,
    /// Appends of the current term that arrived before the WAL they continue, by begin LSN.
    early: BTreeMap<Lsn, (Term, Arc<Vec<u8>>)>,
    /// The state last reported: (term, last-log term, flush, commit, persisted commit).
    reported: Option<(Term, Term, Lsn, Lsn, Lsn)>,
    /// Durability work a planted bug put off until the batch's replies are sent.
    owed: Owed,
    /// The sequence number of the last control-file persist.
    seq: u64,
}

/// What a safekeeper finds when it opens its disk.
pub enum Opened {
    Acceptor(Box<Acceptor>),
    /// Nothing it can trust (no timeline, a control file that fails every check, WAL damaged
    /// below its persisted commit LSN): it must stay out of the quorum. Says why.
    StaysOut(String),
}

/// WAL on our own disk that fails its checks: bit rot.
fn damaged(at: Lsn) -> Error {
    Error::new(ErrorKind::InvalidData, format!("WAL damaged at {at}"))
}

/// A reply, or none when the read behind it failed; damage stays an error.
fn unanswered_on_error(reply: Result<Message>) -> Result<Option<Message>> {
    match reply {
        Ok(reply) => Ok(Some(reply)),
        Err(e) if e.kind() == ErrorKind::InvalidData => Err(e),
        Err(e) => {
            crate::probe!(ReadErrorUnanswered);
            tracing::debug!(error = %e, "read failed, unanswered");
            Ok(None)
        }
    }
}

/// What [`Acceptor::settle`] still has to do: the fsync (with the commit LSN the appends
/// carried) that ack-before-fsync acknowledged ahead of, and the persist of a term that
/// vote-before-persist voted in ahead of.
#[derive(Default)]
struct Owed {
    flush: Option<Lsn>,
    persist: bool,
}

impl Acceptor {
    /// Recovers the acceptor from its disk: the control file, then the WAL with its torn tail
    /// cut. An I/O error fails it (the process restarts and tries again).
    pub async fn open(
        id: NodeId,
        disk: Disk,
        seg: SegmentSize,
        bugs: BugSet,
        observer: Arc<dyn Observer>,
    ) -> Result<Opened> {
        let trust_rot = bugs.has(Bug::RottedControlFileTrusted);
        let (state, seq) = match control_file::load(&disk, trust_rot).await? {
            Loaded::State(state, seq, true) => (state, seq),
            Loaded::State(state, seq, false) => {
                // One copy holds it (a persist a crash interrupted, a copy torn, rotted or
                // unreadable): both must before anything is acted on, or losing that copy
                // would take back a promise.
                crate::probe!(ControlFileOneCopy);
                let unsynced = bugs.has(Bug::ControlFileUnsynced);
                control_file::persist(&disk, seq + 1, &state, unsynced).await?;
                (state, seq + 1)
            }
            Loaded::Untrusted(why) => return Ok(Opened::StaysOut(format!("control file: {why}"))),
        };
        let start = (state.wal_start, state.wal_start_prev);
        let error_as_eof = bugs.has(Bug::ReadErrorAsEof);
        let recovered =
            WalStore::recover(disk.clone(), seg, start, state.commit_lsn, error_as_eof).await?;
        let (wal, cut) = match recovered {
            Recovered::Store(wal, cut) => (wal, cut),
            Recovered::Damaged(at) => {
                crate::probe!(WalDamagedStaysOut);
                let why = format!(
                    "WAL damaged at {at}, below its commit LSN {}",
                    state.commit_lsn
                );
                return Ok(Opened::StaysOut(why));
            }
        };
        if let Some(lsn) = cut {
            crate::probe!(WalTailCut);
            observer.observe(id, Observation::Truncated { lsn });
        }
        // Everything below a persisted commit LSN was flushed before it was persisted.
        invariant!(
            Invariant::Durability,
            state.commit_lsn <= wal.flush_lsn(),
            "acceptor {id} persisted commit LSN {} but holds WAL only to {}",
            state.commit_lsn,
            wal.flush_lsn()
        );
        invariant!(
            Invariant::Durability,
            state.wal_start <= state.commit_lsn,
            "acceptor {id} removed WAL it had not seen committed"
        );
        let commit_lsn = state.commit_lsn;
        let mut acceptor = Acceptor {
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
            last_persist: madsim::time::Instant::now(),
            early: BTreeMap::new(),
            reported: None,
            owed: Owed::default(),
            seq,
        };
        acceptor.report();
        Ok(Opened::Acceptor(Box::new(acceptor)))
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

    /// Reports the acceptor's state when it changed since the last report.
    fn report(&mut self) {
        let state = (
            self.durable.term,
            self.durable.term_history.term_at(self.wal.flush_lsn()),
            self.wal.flush_lsn(),
            self.commit_lsn,
            self.durable.commit_lsn,
        );
        if self.reported == Some(state) {
            return;
        }
        self.reported = Some(state);
        let obs = Observation::Acceptor {
            term: state.0,
            last_log_term: state.1,
            flush_lsn: state.2,
            commit_lsn: state.3,
            durable_commit_lsn: state.4,
        };
        self.observer.observe(self.id, obs);
    }

    async fn persist(&mut self) -> Result<()> {
        let unsynced = self.bugs.has(Bug::ControlFileUnsynced);
        self.seq += 1;
        if let Err(e) = control_file::persist(&self.disk, self.seq, &self.state, unsynced).await {
            // Not persisted, not promised: memory goes back to what the disk holds (a vote
            // or a term a full disk could not take is not given).
            crate::probe!(ControlPersistFailed);
            self.state = self.durable.clone();
            return Err(e);
        }
        self.durable = self.state.clone();
        self.last_persist = madsim::time::Instant::now();
        self.report();
        Ok(())
    }

    /// Handles a batch of messages that arrived together, in order, and returns the replies.
    /// Appends are group-committed: consecutive ones are written, then one fsync covers them
    /// all and each sender gets one acknowledgement (Neon's safekeeper flushes once per batch
    /// of received messages the same way). Any other message first flushes what is written.
    pub async fn process_batch(&mut self, batch: &[Envelope]) -> Result<Vec<(NodeId, Message)>> {
        let mut replies = Vec::new();
        let mut written: Option<Lsn> = None;
        let mut waiting: Vec<NodeId> = Vec::new();
        for env in batch {
            if let Message::AppendRequest {
                term,
                begin_lsn,
                wal,
                commit_lsn,
                truncate_lsn,
            } = &env.msg
            {
                match self.write_append(*term, *begin_lsn, wal, *commit_lsn, *truncate_lsn)? {
                    Appended::Written { commit_lsn } => {
                        written = Some(written.map_or(commit_lsn, |c| c.max(commit_lsn)));
                        if !waiting.contains(&env.from) {
                            waiting.push(env.from);
                        }
                    }
                    Appended::Reply(reply) => replies.extend(reply.map(|r| (env.from, r))),
                }
                continue;
            }
            if let Some(commit_lsn) = written.take() {
                self.flush_appends(commit_lsn, &mut waiting, &mut replies)
                    .await?;
            }
            if let Some(reply) = self.process_msg(env.from, &env.msg).await? {
                replies.push((env.from, reply));
            }
        }
        if let Some(commit_lsn) = written {
            self.flush_appends(commit_lsn, &mut waiting, &mut replies)
                .await?;
        }
        debug_assert!(waiting.is_empty(), "every append written is acknowledged");
        Ok(replies)
    }

    /// Handles one message from `from` that is not an append; returns the reply, if any.
    async fn process_msg(&mut self, from: NodeId, msg: &Message) -> Result<Option<Message>> {
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
            Message::PageserverFeedback {
                last_record_lsn,
                disk_consistent_lsn,
                remote_consistent_lsn,
            } => {
                let report = Feedback {
                    ingested: *last_record_lsn,
                    disk: *disk_consistent_lsn,
                    remote: *remote_consistent_lsn,
                };
                self.on_feedback(from, report);
                self.remove_old_wal().await?;
                Ok(None)
            }
            // A read error fails the read, unanswered: the reader asks again. Damage is not
            // an answer either, and the safekeeper must recover from it.
            Message::ReadCommitted { start } => {
                unanswered_on_error(self.handle_read_committed(*start).await)
            }
            Message::ReadWal { term, start, end } => {
                unanswered_on_error(self.handle_read(*term, *start, *end).await)
            }
            _ => Ok(None),
        }
    }

    fn vote_response(&self, to: ProposerId, vote_given: bool) -> Message {
        Message::VoteResponse {
            proposer_id: to,
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
            ps_ingested_lsn: self.ps_ingested_lsn(),
        }
    }

    async fn handle_vote_request(&mut self, from: ProposerId, term: Term) -> Result<Message> {
        let again = term == self.state.term
            && (self.state.voted_for == Some(from)
                || (self.state.voted_for.is_some() && self.bugs.has(Bug::VoteTwiceInTerm)));
        if term <= self.state.term && !again {
            crate::probe!(VoteRefused);
            return Ok(self.vote_response(from, false));
        }
        if !again {
            self.state.term = term;
            self.state.voted_for = Some(from);
            // The vote-before-persist bug answers now and persists once the reply is out.
            match self.bugs.has(Bug::VoteBeforePersist) {
                true => self.owed.persist = true,
                false => self.persist().await?,
            }
        }
        // The one assertion vote-before-persist must skip: the mistake it exists to catch.
        assert!(
            self.bugs.has(Bug::VoteBeforePersist)
                || self.bugs.has(Bug::VoteTwiceInTerm)
                || self.durable.voted_for == Some(from),
            "vote given without a durable term"
        );
        Ok(self.vote_response(from, true))
    }

    async fn handle_elected(
        &mut self,
        from: ProposerId,
        term: Term,
        start: Lsn,
        history: &TermHistory,
    ) -> Result<Option<Message>> {
        // One proposer wins a term, so a ProposerElected of our term comes from its winner,
        // whomever we voted for in it (Neon's safekeeper checks the term alone).
        if term < self.state.term {
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
        invariant!(
            Invariant::WalAgreement,
            start >= self.wal.start().0,
            "acceptor {} told to truncate at {start}, below its removed WAL ({})",
            self.id,
            self.wal.start().0
        );
        // Every log a proposer adopts holds the committed WAL, so the point where ours
        // diverges from it is never below what we know is committed.
        invariant!(
            Invariant::WalAgreement,
            start >= self.durable.commit_lsn.min(self.wal.flush_lsn()),
            "acceptor {} told to truncate at {start}, below its persisted commit LSN {}",
            self.id,
            self.durable.commit_lsn
        );
        if start < self.wal.write_lsn() && !self.bugs.has(Bug::SkipTruncateOnElect) {
            crate::probe!(ElectionTruncates);
            self.wal.truncate(start).await?;
            self.observer
                .observe(self.id, Observation::Truncated { lsn: start });
        }
        if self.wal.write_lsn() < start {
            // The proposer promised a start we do not reach: it will stream from our end.
            tracing::debug!(node = %self.id, %start, "elected start past our WAL end");
        }
        self.early.clear();
        self.state.term = term;
        self.state.voted_for = Some(from);
        self.state.term_history = history.clone();
        self.commit_lsn = self.commit_lsn.min(self.wal.flush_lsn());
        self.persist().await?;
        Ok(Some(self.append_response()))
    }

    /// Writes an append into the WAL's cache; it is acknowledged once flushed.
    fn write_append(
        &mut self,
        term: Term,
        begin: Lsn,
        bytes: &[u8],
        commit_lsn: Lsn,
        truncate_lsn: Lsn,
    ) -> Result<Appended> {
        if term < self.state.term {
            return Ok(Appended::Reply(Some(self.append_response())));
        }
        if term > self.state.term || self.state.term_history.last_log_term() != term {
            // No ProposerElected from this term yet: the proposer will resend it.
            return Ok(Appended::Reply(None));
        }
        self.peer_horizon = self.peer_horizon.max(truncate_lsn);
        if begin > self.wal.write_lsn() {
            self.hold_early(term, begin, bytes);
        } else {
            self.write_from(begin, bytes)?;
        }
        // Appends that arrived ahead of this one may continue it now.
        while let Some(entry) = self.early.first_entry() {
            if *entry.key() > self.wal.write_lsn() {
                break;
            }
            let (begin, (held_term, held)) = entry.remove_entry();
            if held_term == term {
                self.write_from(begin, &held)?;
            }
        }
        Ok(Appended::Written { commit_lsn })
    }

    /// Writes the part of an append from `begin` that lies past the write position. On a full
    /// disk it fails, and the append goes unacknowledged (the enospc-ack-anyway bug claims it
    /// written).
    fn write_from(&mut self, begin: Lsn, bytes: &[u8]) -> Result<()> {
        let write_lsn = self.wal.write_lsn();
        let end = begin.advance(bytes.len() as u64);
        if end <= write_lsn && !bytes.is_empty() {
            crate::probe!(DuplicateAppendIgnored);
        }
        if begin <= write_lsn && end > write_lsn {
            let skip = write_lsn.bytes_since(begin) as usize;
            match self.wal.write(write_lsn, &bytes[skip..]) {
                Err(e) if is_no_space(&e) && self.bugs.has(Bug::EnospcAckAnyway) => {
                    self.wal.pretend_written(bytes.len() - skip);
                }
                other => other?,
            }
            assert_eq!(
                self.wal.write_lsn(),
                end,
                "a write reaches the append's end"
            );
        }
        Ok(())
    }

    /// Holds an append that arrived before the one it continues (the network reorders; a
    /// proposer streams several at once), so that one late datagram does not stall the stream
    /// until the proposer resends. Bounded: past [`MAX_EARLY_APPENDS`] the latest are dropped,
    /// and the proposer resends them.
    fn hold_early(&mut self, term: Term, begin: Lsn, bytes: &[u8]) {
        if self.early.len() < MAX_EARLY_APPENDS {
            crate::probe!(AppendHeldEarly);
            self.early.insert(begin, (term, Arc::new(bytes.to_vec())));
        }
        assert!(self.early.len() <= MAX_EARLY_APPENDS);
    }

    /// One fsync for every append written since the last: then the commit LSN may move, old
    /// WAL may go, and every sender that waits hears the new flush LSN.
    async fn flush_appends(
        &mut self,
        commit_lsn: Lsn,
        waiting: &mut Vec<NodeId>,
        replies: &mut Vec<(NodeId, Message)>,
    ) -> Result<()> {
        if self.bugs.has(Bug::AckBeforeFsync) {
            // The acknowledgement names the flush LSN the fsync will reach; the fsync, and
            // what waits for it, run in `settle` once the replies are out.
            let reply = Message::AppendResponse {
                term: self.state.term,
                flush_lsn: self.wal.write_lsn(),
                commit_lsn: self.commit_lsn,
                ps_ingested_lsn: self.ps_ingested_lsn(),
            };
            replies.extend(waiting.drain(..).map(|to| (to, reply.clone())));
            self.owed.flush = Some(self.owed.flush.map_or(commit_lsn, |c| c.max(commit_lsn)));
            return Ok(());
        }
        self.flush_and_advance(commit_lsn).await?;
        let reply = self.append_response();
        replies.extend(waiting.drain(..).map(|to| (to, reply.clone())));
        Ok(())
    }

    /// Makes every write durable; then the commit LSN may move and old WAL may go.
    async fn flush_and_advance(&mut self, commit_lsn: Lsn) -> Result<()> {
        let flushed = match self.wal.flush().await {
            // fsyncgate: the retry succeeds with nothing left to write, the data is gone.
            Err(_) if self.bugs.has(Bug::FsyncRetryAfterEio) => self.wal.flush().await?,
            other => other?,
        };
        assert_eq!(flushed, self.wal.write_lsn(), "a flush covers every write");
        self.advance_commit_lsn(commit_lsn.min(flushed)).await?;
        self.remove_old_wal().await.map(|_| ())
    }

    /// Runs the durability work a planted bug put off until the replies were sent (nothing,
    /// without one). The safekeeper calls it after sending each batch's replies.
    pub async fn settle(&mut self) -> Result<()> {
        let owed = std::mem::take(&mut self.owed);
        if owed.persist {
            self.persist().await?;
        }
        if let Some(commit_lsn) = owed.flush {
            self.flush_and_advance(commit_lsn).await?;
        }
        Ok(())
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
        // Said before the persist is tried: the commit LSN is known (and served) even if a
        // full disk stops the persist.
        self.report();
        // BUGGIFY: persisting the commit LSN early or late must be equally safe.
        let due = commit_lsn.bytes_since(self.durable.commit_lsn) >= COMMIT_LSN_PERSIST_BYTES
            && self.last_persist.elapsed() >= PERSIST_INTERVAL;
        if due || crate::buggify::buggify(self.buggify, 0.05) {
            self.state.commit_lsn = commit_lsn;
            // A due persist carries the WAL removal with it: both are paced by the same
            // interval, so under steady appends a removal of its own would never be due.
            if !self.remove_old_wal().await? {
                self.persist().await?;
            }
        }
        Ok(())
    }

    fn on_feedback(&mut self, from: NodeId, report: Feedback) {
        if !self.pageservers.contains(&from) {
            return;
        }
        // Feedback may arrive late or twice; the LSNs only grow while the WAL is needed.
        let seen = self.feedback.entry(from).or_default();
        *seen = Feedback {
            ingested: seen.ingested.max(report.ingested),
            disk: seen.disk.max(report.disk),
            remote: seen.remote.max(report.remote),
        };
    }

    /// The lowest ingest position among the pageservers, once every one has reported.
    fn ps_ingested_lsn(&self) -> Lsn {
        let reported = self.pageservers.iter().map(|ps| self.feedback.get(ps));
        reported
            .map(|f| f.map_or(Lsn::ZERO, |f| f.ingested))
            .min()
            .unwrap_or(Lsn(u64::MAX))
    }

    /// The WAL below this no one can need again, once every pageserver has reported.
    fn removal_horizon(&self) -> Option<Lsn> {
        let mut horizon = self.commit_lsn.min(self.peer_horizon);
        for ps in &self.pageservers {
            let seen = self.feedback.get(ps)?;
            // The wal-removed-before-upload bug trusts the pageserver's local disk, which a
            // disk loss takes away.
            let needed = match self.bugs.has(Bug::WalRemovedBeforeUpload) {
                true => seen.disk,
                false => seen.remote,
            };
            horizon = horizon.min(needed);
        }
        Some(horizon)
    }

    /// Removes the WAL segments below the removal horizon: first the new WAL start is made
    /// durable, then the segments go. At most one control-file write per [`PERSIST_INTERVAL`];
    /// true when it wrote one (with the commit LSN too, so a due commit persist can ride on it).
    async fn remove_old_wal(&mut self) -> Result<bool> {
        let Some(horizon) = self.removal_horizon() else {
            return Ok(false);
        };
        let (start, start_prev) = self.wal.start();
        let seg = self.wal.segment_size();
        if seg.segno(horizon) <= seg.segno(start) {
            if seg.segno(self.commit_lsn.min(self.peer_horizon)) > seg.segno(start) {
                crate::probe!(WalRemovalHeldByPageserver);
            }
            return Ok(false); // no whole segment to remove
        }
        if self.last_persist.elapsed() < PERSIST_INTERVAL {
            return Ok(false); // later, with more segments at once
        }
        let Ok(wal) = self.wal.read(start, horizon).await else {
            return Ok(false); // unreadable for now: the next removal tries again
        };
        let decoded = scan_stream(&wal, start, Some(start_prev));
        if decoded.tail == Tail::Corrupt || self.cut_record_damaged(&decoded, horizon).await? {
            return Err(damaged(decoded.end_lsn));
        }
        invariant!(
            Invariant::WalAgreement,
            decoded.end_lsn == horizon,
            "removal horizon {horizon} is not a record boundary of the WAL from {start}"
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
        Ok(true)
    }

    /// Whether the record that a scan of our WAL up to `end`, a point known to be a record
    /// boundary (a flush or commit LSN, a removal horizon), found cut short by `end` is
    /// damage rather than a boundary inside a record. Rot in a record's length looks like a
    /// record that runs past `end`; read whole, as far as our WAL reaches, a damaged record
    /// fails its checks or runs past our WAL's end, while a record `end` truly falls inside is
    /// whole and valid (for the WAL-agreement invariant to report).
    async fn cut_record_damaged(&self, scanned: &Scanned, end: Lsn) -> Result<bool> {
        if scanned.tail != Tail::Partial || scanned.end_lsn >= end {
            return Ok(false);
        }
        let rest = self.wal.read(scanned.end_lsn, self.wal.write_lsn()).await?;
        // (`rest` may be short: the read-error-as-eof bug ends a read at an error. Short, the
        // record is not whole, which is what that bug's WAL looks like.)
        let whole = matches!(decode_one(&rest, scanned.last_lsn), Decoded::Record(..));
        Ok(!whole)
    }

    /// Our WAL in `[start, end)` (`start` a record boundary), checked: whole records only (a
    /// record cut by `end` is left for the next read), and a record that fails its checks is
    /// damage, an error, never served. When `end` is a record boundary too (a flush or commit
    /// LSN), a record it cuts whose bytes are damaged is damage as well: rot in a length would
    /// otherwise end every read there, short, for as long as the process runs.
    async fn read_verified(&self, start: Lsn, end: Lsn, end_is_boundary: bool) -> Result<Vec<u8>> {
        let mut wal = self.wal.read(start, end).await?;
        let decoded = scan_stream(&wal, start, None);
        let cut_damaged = end_is_boundary && self.cut_record_damaged(&decoded, end).await?;
        if decoded.tail == Tail::Corrupt || cut_damaged {
            crate::probe!(ServedWalDamaged);
            return Err(damaged(decoded.end_lsn));
        }
        wal.truncate(decoded.end_lsn.bytes_since(start) as usize);
        Ok(wal)
    }

    /// Committed WAL for a pageserver: whole records from `start` up to our commit LSN, which
    /// is always a record boundary (the proposer appends whole records only).
    async fn handle_read_committed(&mut self, start: Lsn) -> Result<Message> {
        let wal_start = self.wal.start().0;
        if start < wal_start {
            return Ok(Message::WalRemoved { start, wal_start });
        }
        let commit = self.commit_lsn.min(self.wal.flush_lsn());
        if start > commit {
            return Ok(Message::CommittedWal {
                start,
                wal: Arc::new(Vec::new()),
                commit_lsn: commit,
            });
        }
        let end = Lsn(commit.0.min(start.0 + READ_COMMITTED_MAX_BYTES));
        let wal = self.read_verified(start, end, end == commit).await?;
        Ok(Message::CommittedWal {
            start,
            wal: Arc::new(wal),
            commit_lsn: commit,
        })
    }

    /// The WAL in `[start, end)` for a recovering proposer, from our WAL start if it is later.
    async fn handle_read(&mut self, term: Term, start: Lsn, end: Lsn) -> Result<Message> {
        let (wal_start, wal_start_prev) = self.wal.start();
        let start = start.max(wal_start);
        let wal = if term == self.state.term && start <= end && end <= self.wal.flush_lsn() {
            // `end` is a flush LSN of ours the proposer heard: a record boundary.
            Some(Arc::new(self.read_verified(start, end, true).await?))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Xid;
    use crate::observe::NoObserver;
    use crate::proto::TermSwitch;
    use crate::wal::{RecordBody, WalRecord};
    use lakesim_faults::DiskConfig;

    const PROPOSER: NodeId = NodeId(101);

    /// Three chained commit records from LSN 0, each as its own append: (begin, bytes).
    fn appends() -> Vec<(Lsn, Vec<u8>)> {
        let (mut out, mut prev, mut lsn) = (Vec::new(), Lsn::ZERO, Lsn::ZERO);
        for xid in 1..=3 {
            let rec = WalRecord {
                xid: Xid(xid),
                prev_lsn: prev,
                body: RecordBody::Commit,
            };
            out.push((lsn, rec.encode()));
            prev = lsn;
            lsn = lsn.advance(rec.encoded_len() as u64);
        }
        out
    }

    fn append(term: Term, begin: Lsn, wal: &[u8]) -> Envelope {
        Envelope {
            from: PROPOSER,
            msg: Message::AppendRequest {
                term,
                begin_lsn: begin,
                wal: Arc::new(wal.to_vec()),
                commit_lsn: Lsn::ZERO,
                truncate_lsn: Lsn::ZERO,
            },
        }
    }

    /// An acceptor that voted for and accepted a proposer in term 1, its disk recording into
    /// `trace`.
    async fn elected_with(trace: Option<lakesim_faults::Trace>) -> Acceptor {
        elected_with_bugs(trace, BugSet::none()).await
    }

    async fn elected_with_bugs(trace: Option<lakesim_faults::Trace>, bugs: BugSet) -> Acceptor {
        let disk = Disk::new(1, DiskConfig::default(), 1, trace);
        control_file::create(&disk).await.unwrap();
        let opened = Acceptor::open(
            NodeId(1),
            disk,
            SegmentSize::DEFAULT,
            bugs,
            Arc::new(NoObserver),
        )
        .await
        .unwrap();
        let Opened::Acceptor(a) = opened else {
            panic!("a created timeline opens")
        };
        let mut a = *a;
        let id = ProposerId(7);
        let history = TermHistory(vec![TermSwitch {
            term: Term(1),
            lsn: Lsn::ZERO,
        }]);
        let greet = [
            Message::VoteRequest {
                term: Term(1),
                proposer_id: id,
            },
            Message::ProposerElected {
                term: Term(1),
                proposer_id: id,
                start_streaming_at: Lsn::ZERO,
                term_history: history,
            },
        ];
        for msg in greet {
            let env = Envelope {
                from: PROPOSER,
                msg,
            };
            a.process_batch(std::slice::from_ref(&env)).await.unwrap();
        }
        a
    }

    async fn elected() -> Acceptor {
        elected_with(None).await
    }

    /// [`elected`], with [`appends`] written and flushed.
    async fn elected_with_appends() -> Acceptor {
        let mut a = elected().await;
        let batch: Vec<Envelope> = appends()
            .iter()
            .map(|(begin, wal)| append(Term(1), *begin, wal))
            .collect();
        a.process_batch(&batch).await.unwrap();
        a
    }

    #[test]
    fn appends_that_arrive_together_share_one_flush_and_one_reply() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        rt.block_on(async {
            let trace = lakesim_faults::Trace::new(true);
            let mut a = elected_with(Some(trace.clone())).await;
            let syncs = |t: &lakesim_faults::Trace| {
                let events = t.events().expect("kept");
                events.iter().filter(|e| e.kind == "disk.sync").count()
            };
            let before = syncs(&trace);
            let batch: Vec<Envelope> = appends()
                .iter()
                .map(|(begin, wal)| append(Term(1), *begin, wal))
                .collect();
            let replies = a.process_batch(&batch).await.unwrap();
            let end = appends().last().map(|(l, w)| l.advance(w.len() as u64)).unwrap();
            assert_eq!(replies.len(), 1, "one acknowledgement for the batch");
            // One fsync per WAL copy (the segment and its mirror), issued together.
            assert_eq!(syncs(&trace) - before, 2, "one fsync for the three appends");
            assert!(matches!(replies[0].1, Message::AppendResponse { flush_lsn, .. } if flush_lsn == end));
        });
    }

    #[test]
    fn a_record_cut_by_a_record_boundary_is_damage_only_if_it_is_not_whole() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(2, madsim::Config::default());
        rt.block_on(async {
            let a = elected_with_appends().await;
            let second = appends()[1].0;
            let horizon = second.advance(10);
            async fn cut(a: &Acceptor, horizon: Lsn) -> Scanned {
                let wal = a.wal.read(Lsn::ZERO, horizon).await.unwrap();
                scan_stream(&wal, Lsn::ZERO, Some(Lsn::ZERO))
            }
            // Intact: the second record is whole past the horizon, so the horizon falls inside
            // a record, for the WAL-agreement invariant to report.
            let scanned = cut(&a, horizon).await;
            assert_eq!((scanned.end_lsn, scanned.tail), (second, Tail::Partial));
            assert!(!a.cut_record_damaged(&scanned, horizon).await.unwrap());
            // Rot in the primary's copy of its length: longer than the WAL, or failing the
            // CRC, it is damage.
            for length in [4000u32, 30] {
                let file = "wal/00000000";
                a.disk.write(file, second.0, &length.to_le_bytes()).unwrap();
                let scanned = cut(&a, horizon).await;
                assert_eq!(
                    scanned.tail,
                    Tail::Partial,
                    "the length runs past the horizon"
                );
                assert!(
                    a.cut_record_damaged(&scanned, horizon).await.unwrap(),
                    "{length}"
                );
                // Served up to a boundary, it is an error; up to an arbitrary point (a read's
                // size limit), the WAL before it, the rest left for the next read.
                let served = a.read_verified(Lsn::ZERO, horizon, true).await;
                assert_eq!(served.unwrap_err().kind(), ErrorKind::InvalidData);
                let served = a.read_verified(Lsn::ZERO, horizon, false).await.unwrap();
                assert_eq!(served.len() as u64, second.0);
            }
            // A scan that ends at the horizon, or one that found a corrupt record, is not
            // this question.
            let clean = Scanned {
                end_lsn: horizon,
                last_lsn: Some(second),
                tail: Tail::Clean,
            };
            assert!(!a.cut_record_damaged(&clean, horizon).await.unwrap());
        });
    }

    #[test]
    fn a_recovering_proposer_gets_only_wal_this_acceptor_flushed_in_its_term() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(3, madsim::Config::default());
        rt.block_on(async {
            let mut a = elected_with_appends().await;
            let end = a.wal.flush_lsn();
            let wal_of = |m: Message| match m {
                Message::ReadWalResponse { wal, .. } => wal.map(|w| w.len() as u64),
                other => panic!("not a ReadWalResponse: {other:?}"),
            };
            assert_eq!(
                wal_of(a.handle_read(Term(1), Lsn::ZERO, end).await.unwrap()),
                Some(end.0)
            );
            // Past its flush LSN, in another term, or an empty range: no WAL.
            assert_eq!(
                wal_of(
                    a.handle_read(Term(1), Lsn::ZERO, end.advance(1))
                        .await
                        .unwrap()
                ),
                None
            );
            assert_eq!(
                wal_of(a.handle_read(Term(2), Lsn::ZERO, end).await.unwrap()),
                None
            );
            assert_eq!(
                wal_of(a.handle_read(Term(1), end, Lsn(1)).await.unwrap()),
                None
            );
        });
    }

    #[test]
    fn an_append_ahead_of_its_gap_is_held_until_the_gap_fills() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(2, madsim::Config::default());
        rt.block_on(async {
            let mut a = elected().await;
            let parts = appends();
            let end = parts
                .last()
                .map(|(l, w)| l.advance(w.len() as u64))
                .unwrap();
            // The third and second arrive first: nothing can be written yet.
            for i in [2, 1] {
                let (begin, wal) = &parts[i];
                a.process_batch(&[append(Term(1), *begin, wal)])
                    .await
                    .unwrap();
                assert_eq!(a.wal.flush_lsn(), Lsn::ZERO, "written out of order");
            }
            let (begin, wal) = &parts[0];
            a.process_batch(&[append(Term(1), *begin, wal)])
                .await
                .unwrap();
            assert_eq!(a.wal.flush_lsn(), end, "the held appends follow the first");
            assert!(a.early.is_empty());
        });
    }

    fn batch() -> (Vec<Envelope>, Lsn) {
        let parts = appends();
        let end = parts
            .last()
            .map(|(l, w)| l.advance(w.len() as u64))
            .unwrap();
        let batch = parts.iter().map(|(b, w)| append(Term(1), *b, w)).collect();
        (batch, end)
    }

    /// The WAL bytes the acceptor's disk holds, past every fault.
    fn held(a: &Acceptor) -> usize {
        a.disk
            .peek("wal/00000000", 0, usize::MAX)
            .map_or(0, |w| w.len())
    }

    #[test]
    fn a_full_disk_stops_acknowledgements_until_space_returns() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(4, madsim::Config::default());
        rt.block_on(async {
            let mut a = elected().await;
            let (batch, end) = batch();
            a.disk.fill();
            let e = a.process_batch(&batch).await.unwrap_err();
            assert!(is_no_space(&e), "{e}");
            assert_eq!(a.wal.flush_lsn(), Lsn::ZERO, "nothing acknowledged");
            a.disk.free_space();
            let replies = a.process_batch(&batch).await.unwrap();
            assert!(matches!(replies[0].1, Message::AppendResponse { flush_lsn, .. } if flush_lsn == end));
            assert_eq!(held(&a) as u64, end.0);
        });
    }

    #[test]
    fn the_enospc_bug_acknowledges_what_it_could_not_write() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(4, madsim::Config::default());
        rt.block_on(async {
            let mut a = elected_with_bugs(None, BugSet::of([Bug::EnospcAckAnyway])).await;
            let (batch, end) = batch();
            a.disk.fill();
            let replies = a.process_batch(&batch).await.unwrap();
            assert!(matches!(replies[0].1, Message::AppendResponse { flush_lsn, .. } if flush_lsn == end));
            assert_eq!(held(&a), 0, "acknowledged WAL that is not on disk");
        });
    }

    #[test]
    fn a_failed_fsync_fails_the_batch_and_the_retry_bug_trusts_a_second_one() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(4, madsim::Config::default());
        rt.block_on(async {
            let (batch, end) = batch();
            let mut a = elected().await;
            a.disk.fail_next_sync();
            assert!(a.process_batch(&batch).await.is_err(), "EIO is an error");
            let mut a = elected_with_bugs(None, BugSet::of([Bug::FsyncRetryAfterEio])).await;
            a.disk.fail_next_sync();
            let replies = a.process_batch(&batch).await.unwrap();
            assert!(matches!(replies[0].1, Message::AppendResponse { flush_lsn, .. } if flush_lsn == end));
            let mirror = a.disk.peek("walmirror/00000000", 0, usize::MAX).map_or(0, |w| w.len());
            assert!(
                (held(&a).min(mirror) as u64) < end.0,
                "the failed fsync dropped what it acknowledged from one copy"
            );
        });
    }

    #[test]
    fn no_trusted_control_file_keeps_a_safekeeper_out() {
        let rt = madsim::runtime::Runtime::with_seed_and_config(4, madsim::Config::default());
        rt.block_on(async {
            let open = |disk: Disk| {
                let observer: Arc<dyn Observer> = Arc::new(NoObserver);
                Acceptor::open(
                    NodeId(1),
                    disk,
                    SegmentSize::DEFAULT,
                    BugSet::none(),
                    observer,
                )
            };
            let disk = Disk::new(1, DiskConfig::default(), 1, None);
            let opened = open(disk.clone()).await.unwrap();
            assert!(
                matches!(opened, Opened::StaysOut(_)),
                "a lost disk is not a fresh one"
            );
            control_file::create(&disk).await.unwrap();
            for name in ["safekeeper.control.0", "safekeeper.control.1"] {
                disk.write(name, 20, &[0xff]).unwrap();
            }
            let opened = open(disk.clone()).await.unwrap();
            assert!(matches!(opened, Opened::StaysOut(why) if why.contains("checksum")));
        });
    }
}
