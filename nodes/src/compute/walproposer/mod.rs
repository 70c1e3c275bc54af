//! The walproposer: the compute's proposer in the Paxos-style WAL protocol (Neon:
//! `walproposer.c`).
//!
//! A proposer campaigns for a new term, takes votes from a majority, adopts the most advanced
//! log among the voters (highest last-log term, then highest flush LSN), fetches that log from
//! its donor, tells every acceptor where its log agrees with the new one (`ProposerElected`, on
//! which the acceptor truncates the rest), and then streams WAL. `recovery` holds the step
//! from votes to leading: the donor's log, and the basebackup a proposer starts from when the
//! donor's WAL no longer begins at LSN 0.
//!
//! Guarantees:
//! - the commit LSN is the highest LSN flushed by a majority *in this term*, and never below the
//!   term's start (`epoch_start_lsn`): acknowledgements of older-term WAL alone commit nothing;
//! - a client commit is acknowledged only once its commit record is below the commit LSN;
//! - once any acceptor reports a higher term, the leader is deposed: its unacknowledged commits
//!   are abandoned, its appends are refused, and it campaigns again only after a pause;
//! - `truncate_lsn` (sent with every append) is committed WAL every acceptor has flushed: no
//!   acceptor can need it again, so it bounds what the proposer and the safekeepers keep.
//!
//! The client runs open loop (one piece of work per `txn_interval`) or closed loop (N clients,
//! each starting its next transaction when its last is acknowledged, as pgbench's). A
//! checkpoint is logged when `checkpoint_timeout` passed or enough WAL was written, as
//! Postgres's checkpointer does. With a cost model ([`ComputeCost`]), work runs on vCPUs on the
//! simulated clock (its WAL is streamed once it is done) and appends share the compute's link
//! to the safekeepers (a saturated link delays them by its backlog). No new work starts while
//! the pageservers' ingest, as the safekeepers relay it, lags the WAL by more than
//! [`MAX_REPLICATION_WRITE_LAG`] (backpressure, as Neon's compute applies).

mod recovery;

use super::reader::Reader;
use super::workload::{Client, Database, RequestId, WorkItem};
use crate::bugs::{Bug, BugSet};
use crate::ids::{Lsn, NodeId, Term, Xid};
use crate::invariant::Invariant;
use crate::net::Net;
use crate::observe::{Observation, Observer};
use crate::proto::{Message, ProposerId, TermHistory};
use rand::Rng;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Largest AppendRequest payload.
const MAX_APPEND_BYTES: usize = 128 * 1024;
/// An in-sync acceptor with nothing new hears from us at least every this many ticks.
const HEARTBEAT_TICKS: u32 = 5;
/// Client commits waiting for acknowledgement before the client pauses.
pub const MAX_IN_FLIGHT: usize = 32;
/// Ask a pageserver for a basebackup again after this long without one.
const BASEBACKUP_RETRY: Duration = Duration::from_millis(250);
/// Give up on a basebackup (and campaign again) after this long: a pageserver behind the WAL
/// start may take a while to catch up, and until then this compute cannot lead.
const BASEBACKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// Start no new work while the pageservers' ingest lags our WAL by more than this (Neon's
/// compute throttles at `max_replication_write_lag`, 500 MB by default; runs here last
/// seconds, so the bound is smaller): WAL the pageservers cannot keep up with would leave reads
/// waiting and safekeepers holding it.
const MAX_REPLICATION_WRITE_LAG: u64 = 16 * 1024 * 1024;
/// Drop WAL below `truncate_lsn` from memory once this much can go.
const TRIM_BYTES: u64 = 256 * 1024;

/// What running transactions costs the compute, on the simulated clock, and how it is
/// driven. All zero (the default) costs nothing: WAL is streamable the moment it is logged.
#[derive(Clone, Debug, Default)]
pub struct ComputeCost {
    /// Clients that each run their next transaction when the last one is acknowledged, as
    /// pgbench's do; 0 runs one transaction every `txn_interval` instead (open loop).
    pub clients: usize,
    /// vCPUs that run transactions in parallel.
    pub vcpus: usize,
    /// CPU time of one transaction, besides its WAL.
    pub cpu_per_txn: Duration,
    /// CPU nanoseconds per WAL byte inserted (copying it into the WAL buffers, its CRC).
    pub cpu_ns_per_wal_byte: f64,
    /// Bytes per second the compute's link carries to the safekeepers (0: unlimited). Each
    /// safekeeper gets its own copy of the WAL over it.
    pub link_bytes_per_s: f64,
    /// A checkpoint once this long has passed since the last (Postgres: `checkpoint_timeout`).
    pub checkpoint_timeout: Duration,
    /// A checkpoint once this much WAL was written since the last. Postgres starts one at
    /// `max_wal_size / (1 + checkpoint_completion_target)`; the caller passes that.
    pub checkpoint_wal_bytes: u64,
}

impl ComputeCost {
    /// CPU time of a piece of work: a transaction's fixed cost (none for records outside a
    /// transaction or a checkpoint) plus its WAL.
    fn cpu_time(&self, txn: bool, wal_bytes: usize) -> Duration {
        let ns = wal_bytes as f64 * self.cpu_ns_per_wal_byte;
        let fixed = if txn {
            self.cpu_per_txn
        } else {
            Duration::ZERO
        };
        fixed + Duration::from_nanos(ns as u64)
    }

    fn models_cpu(&self) -> bool {
        self.vcpus > 0 && (self.cpu_per_txn > Duration::ZERO || self.cpu_ns_per_wal_byte > 0.0)
    }
}

/// Timing of the proposer, in simulated time.
#[derive(Clone, Debug)]
pub struct ProposerTiming {
    pub tick: Duration,
    pub election_timeout: Duration,
    pub txn_interval: Duration,
}

/// What the proposer knows of one acceptor in its current term.
#[derive(Default, Clone)]
struct Peer {
    /// Its log (flush LSN, term history) as it reported in our term: with its vote; or, once
    /// we lead, with its refusal (it voted in our term for a proposer that lost, and takes our
    /// ProposerElected all the same, as a Neon safekeeper does: one proposer wins a term).
    log: Option<(Lsn, TermHistory)>,
    /// It refused us its vote in our term: it voted for another proposer in it.
    refused: bool,
    /// It processed our ProposerElected.
    confirmed: bool,
    flush_lsn: Lsn,
    next_lsn: Lsn,
    /// `flush_lsn` at the previous tick, to spot a stalled stream.
    flush_at_tick: Lsn,
    /// The commit LSN last sent to it, and ticks since anything was sent.
    commit_sent: Lsn,
    idle_ticks: u32,
}

enum Phase {
    Campaign {
        started_ticks: u32,
    },
    Recovering {
        donor: NodeId,
        flush_lsn: Lsn,
        history: TermHistory,
        waited_ticks: u32,
        /// The donor's WAL, once fetched: from its WAL start to `flush_lsn`.
        donor_wal: Option<DonorWal>,
    },
    Leader,
    /// Another proposer took a higher term. Like a Neon compute whose walproposer exits, this
    /// one starts over, after a random pause that lets a live rival make progress first.
    Deposed {
        wait_ticks: u32,
    },
}

/// The WAL a recovering proposer fetched from its donor.
struct DonorWal {
    start: Lsn,
    /// Start of the record that ends at `start`.
    prev: Lsn,
    bytes: Arc<Vec<u8>>,
}

pub struct Proposer {
    id: NodeId,
    /// This incarnation's identity in votes, fresh at every process start.
    proposer_id: ProposerId,
    net: Net,
    acceptors: Vec<NodeId>,
    observer: Arc<dyn Observer>,
    bugs: BugSet,
    timing: ProposerTiming,
    full_page_writes: bool,
    client: Arc<Client>,
    buggify: bool,
    reader: Reader,
    read_interval: Duration,
    pageservers: Vec<NodeId>,
    next_backup_request: u64,
    started: madsim::time::Instant,

    term: Term,
    max_seen_term: Term,
    phase: Phase,
    peers: BTreeMap<NodeId, Peer>,
    history: TermHistory,
    epoch_start_lsn: Lsn,
    /// The WAL from `wal_start`: the donor's log, then ours.
    wal: Vec<u8>,
    wal_start: Lsn,
    /// The last chunk streamed, by term and range: acceptors in step are sent the same range,
    /// which then shares one copy. A leader's log only grows within its term, so a range's
    /// bytes never change under the key.
    last_chunk: Option<(Term, Lsn, Lsn, Arc<Vec<u8>>)>,
    db: Database,
    commit_lsn: Lsn,
    truncate_lsn: Lsn,
    pending: VecDeque<(RequestId, Xid, Lsn, Lsn)>,
    client_done: bool,

    cost: ComputeCost,
    /// When each vCPU is next free.
    cpu_free: Vec<madsim::time::Instant>,
    /// Transactions still running on a vCPU: when each finishes and where its WAL starts.
    /// WAL from the first one's start is not streamable yet.
    running: VecDeque<(madsim::time::Instant, Lsn)>,
    /// How far every pageserver has ingested, as the safekeepers relay it.
    ps_ingested_lsn: Lsn,
    /// When the link to the safekeepers has sent everything put on it.
    link_free: madsim::time::Instant,
    last_checkpoint_at: madsim::time::Instant,
}

impl Proposer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        net: Net,
        acceptors: Vec<NodeId>,
        observer: Arc<dyn Observer>,
        bugs: BugSet,
        timing: ProposerTiming,
        full_page_writes: bool,
        client: Arc<Client>,
    ) -> Proposer {
        assert!(!acceptors.is_empty());
        Proposer {
            id: net.me(),
            proposer_id: ProposerId(madsim::rand::random()),
            net,
            acceptors,
            observer,
            bugs,
            timing,
            full_page_writes,
            client,
            buggify: false,
            reader: Reader::default(),
            read_interval: Duration::from_millis(50),
            pageservers: Vec::new(),
            next_backup_request: 0,
            started: madsim::time::Instant::now(),
            term: Term(0),
            max_seen_term: Term(0),
            phase: Phase::Deposed { wait_ticks: 0 },
            peers: BTreeMap::new(),
            history: TermHistory::default(),
            epoch_start_lsn: Lsn::ZERO,
            wal: Vec::new(),
            wal_start: Lsn::ZERO,
            last_chunk: None,
            db: Database::default(),
            commit_lsn: Lsn::ZERO,
            truncate_lsn: Lsn::ZERO,
            pending: VecDeque::new(),
            client_done: false,
            cost: ComputeCost::default(),
            cpu_free: Vec::new(),
            running: VecDeque::new(),
            link_free: madsim::time::Instant::now(),
            ps_ingested_lsn: Lsn::ZERO,
            last_checkpoint_at: madsim::time::Instant::now(),
        }
    }

    /// Charges transactions and WAL to the compute's CPU and link, and drives the client
    /// closed-loop when `cost.clients > 0`.
    pub fn with_cost(mut self, cost: ComputeCost) -> Proposer {
        self.cpu_free = vec![madsim::time::Instant::now(); cost.vcpus];
        self.cost = cost;
        self
    }

    /// Turns the BUGGIFY points on.
    pub fn with_buggify(mut self, on: bool) -> Proposer {
        self.buggify = on;
        self
    }

    /// Sends the client's GetPage@LSN reads (and basebackup requests) to `pageservers`, one
    /// read every `interval`.
    pub fn with_reads(
        mut self,
        pageservers: Vec<NodeId>,
        interval: Duration,
        hot_read: Option<(crate::ids::PageId, f64)>,
    ) -> Proposer {
        self.reader = Reader::new(
            pageservers.clone(),
            hot_read,
            self.bugs.has(Bug::ReadLsnTooOld),
        );
        self.pageservers = pageservers;
        self.read_interval = interval;
        self
    }

    fn quorum(&self) -> usize {
        self.acceptors.len() / 2 + 1
    }

    /// Runs until the process is killed.
    pub async fn run(mut self) {
        if self.bugs.has(Bug::ProcessGlobalCounter) {
            // Planted: a counter shared by every run in the process, where a seeded draw
            // belongs; two runs of one seed in one process then differ.
            static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            madsim::time::sleep(Duration::from_millis(1 + n % 5)).await;
        }
        self.campaign();
        let mut tick = madsim::time::interval(self.timing.tick);
        let mut txn = madsim::time::interval(self.timing.txn_interval);
        let mut read = madsim::time::interval(self.read_interval);
        loop {
            // A sleep made afresh each turn never fires while other events come faster than
            // madsim's 1 ms sleep floor: a due wake is also handled here, on any event.
            let wake = self.wake_at();
            if wake.is_some_and(|at| at <= madsim::time::Instant::now()) {
                self.on_wake();
            }
            // Timers before the network: under a flood of messages (a large closed-loop load)
            // the network is always ready, and a network-first `biased` select would starve
            // elections, transactions and reads.
            tokio::select! {
                biased;
                _ = tick.tick() => self.on_tick(),
                _ = txn.tick() => self.on_txn(),
                _ = read.tick() => self.on_read(),
                _ = sleep_until(wake) => self.on_wake(),
                env = self.net.recv() => self.on_message(env.from, env.msg),
            }
        }
    }

    /// When the first running transaction finishes, if one runs.
    fn wake_at(&self) -> Option<madsim::time::Instant> {
        self.running.front().map(|(at, _)| *at)
    }

    fn on_wake(&mut self) {
        let now = madsim::time::Instant::now();
        while self.running.front().is_some_and(|(at, _)| *at <= now) {
            self.running.pop_front();
        }
        if matches!(self.phase, Phase::Leader) {
            for i in 0..self.acceptors.len() {
                self.stream_to(self.acceptors[i]);
            }
        }
    }

    /// The end of the WAL the safekeepers may have: WAL of transactions still running on a
    /// vCPU is not inserted yet.
    fn stream_end(&self) -> Lsn {
        self.running
            .front()
            .map_or(self.db.end_lsn(), |(_, start)| *start)
    }

    fn campaign(&mut self) {
        self.term = Term(self.term.0.max(self.max_seen_term.0) + 1);
        self.peers = self
            .acceptors
            .iter()
            .map(|a| (*a, Peer::default()))
            .collect();
        self.phase = Phase::Campaign { started_ticks: 0 };
        self.pending.clear();
        self.running.clear();
        for a in self.acceptors.clone() {
            self.net.send(
                a,
                Message::VoteRequest {
                    term: self.term,
                    proposer_id: self.proposer_id,
                },
            );
        }
    }

    fn on_message(&mut self, from: NodeId, msg: Message) {
        if let Message::GetPageResponse {
            request_id,
            page,
            lsn,
            result,
        } = &msg
        {
            let observer = self.observer.clone();
            let elapsed = self.started.elapsed();
            return self.reader.on_response(
                self.id,
                &observer,
                *request_id,
                *page,
                *lsn,
                result,
                elapsed,
            );
        }
        if let Message::BasebackupResponse { lsn, result, .. } = msg {
            return self.on_basebackup(lsn, result);
        }
        if !self.peers.contains_key(&from) || matches!(self.phase, Phase::Deposed { .. }) {
            return;
        }
        match msg {
            Message::VoteResponse {
                proposer_id,
                term,
                vote_given,
                flush_lsn,
                term_history,
                ..
            } => {
                // An answer to an earlier incarnation of this compute (same address, same
                // term number) is not a vote for this one.
                if proposer_id != self.proposer_id {
                    crate::probe!(StaleIncarnationVote);
                    return;
                }
                if term > self.term {
                    return self.higher_term(term);
                }
                if vote_given && term == self.term {
                    self.on_vote(from, flush_lsn, term_history);
                } else if term == self.term {
                    self.on_refusal(from, flush_lsn, term_history);
                }
            }
            Message::ReadWalResponse {
                term,
                start,
                prev_lsn,
                wal,
            } => {
                if term > self.term {
                    return self.higher_term(term);
                }
                self.on_donor_wal(from, term, start, prev_lsn, wal);
            }
            Message::AppendResponse {
                term,
                flush_lsn,
                ps_ingested_lsn,
                ..
            } => {
                if term > self.term {
                    return self.higher_term(term);
                }
                self.ps_ingested_lsn = self.ps_ingested_lsn.max(ps_ingested_lsn);
                if term == self.term && matches!(self.phase, Phase::Leader) {
                    self.on_append_response(from, flush_lsn);
                }
            }
            _ => {}
        }
    }

    /// An acceptor is in a term above ours. Before we lead, we campaign again above it; a leader
    /// is deposed (a newer compute may have taken over) and campaigns again later.
    fn higher_term(&mut self, term: Term) {
        self.max_seen_term = self.max_seen_term.max(term);
        if matches!(self.phase, Phase::Leader) {
            crate::probe!(ProposerDeposed);
            self.observer
                .observe(self.id, Observation::Deposed { term: self.term });
            let timeout_ticks =
                self.timing.election_timeout.as_nanos() / self.timing.tick.as_nanos();
            let wait_ticks =
                madsim::rand::thread_rng().gen_range(timeout_ticks..3 * timeout_ticks + 1);
            self.phase = Phase::Deposed {
                wait_ticks: wait_ticks as u32,
            };
            self.pending.clear();
            self.running.clear();
        } else {
            self.campaign();
        }
    }

    /// An acceptor already voted for another proposer in our term (a compute that restarted
    /// starts from term 1, which is long taken). Once too many did for a quorum to remain, we
    /// campaign again above it at once, rather than after an election timeout: Neon's proposer
    /// learns the acceptors' terms (its greeting) before it asks for votes.
    ///
    /// Once we lead, a refusal in our term still brings that acceptor in: it voted for a
    /// proposer of our term that cannot have won, so it takes our ProposerElected (Neon's
    /// walproposer does the same past a quorum). Left out, it would never confirm, and
    /// `truncate_lsn` (so WAL removal everywhere) would stall for the rest of our term.
    fn on_refusal(&mut self, from: NodeId, flush_lsn: Lsn, history: TermHistory) {
        // The refused-acceptor-ignored bug leaves it out (a refusal counts only while campaigning).
        let ignore = self.bugs.has(Bug::RefusedAcceptorIgnored);
        if matches!(self.phase, Phase::Leader) && !ignore {
            let peer = self.peers.get_mut(&from).unwrap();
            if peer.log.is_none() {
                crate::probe!(RefusedAcceptorBroughtIn);
                peer.log = Some((flush_lsn, history));
                self.send_elected(from);
            }
            return;
        }
        if !matches!(self.phase, Phase::Campaign { .. }) {
            return;
        }
        self.peers.get_mut(&from).unwrap().refused = true;
        let refused = self.peers.values().filter(|p| p.refused).count();
        if refused > self.acceptors.len() - self.quorum() {
            crate::probe!(RefusalsForceRecampaign);
            self.max_seen_term = self.max_seen_term.max(self.term);
            self.campaign();
        }
    }

    fn on_vote(&mut self, from: NodeId, flush_lsn: Lsn, history: TermHistory) {
        let peer = self.peers.get_mut(&from).unwrap();
        if peer.log.is_some() {
            return;
        }
        peer.log = Some((flush_lsn, history));
        let obs = Observation::VoteGranted {
            term: self.term,
            voter: from,
        };
        self.observer.observe(self.id, obs);
        match self.phase {
            Phase::Campaign { .. } => {
                let votes = self.peers.values().filter(|p| p.log.is_some()).count();
                if votes >= self.quorum() {
                    self.start_recovery();
                }
            }
            Phase::Leader => self.send_elected(from),
            Phase::Recovering { .. } | Phase::Deposed { .. } => {}
        }
    }

    fn send_elected(&mut self, to: NodeId) {
        let peer = self.peers.get_mut(&to).unwrap();
        let (flush, history) = peer
            .log
            .as_ref()
            .expect("elected only to acceptors that reported their log");
        let start = history.common_point(*flush, &self.history);
        peer.next_lsn = start;
        let msg = Message::ProposerElected {
            term: self.term,
            proposer_id: self.proposer_id,
            start_streaming_at: start,
            term_history: self.history.clone(),
        };
        self.net.send(to, msg);
    }

    fn on_append_response(&mut self, from: NodeId, flush_lsn: Lsn) {
        let wal_end = self.db.end_lsn();
        let peer = self.peers.get_mut(&from).unwrap();
        peer.confirmed = true;
        peer.flush_lsn = peer.flush_lsn.max(flush_lsn);
        invariant!(
            Invariant::WalAgreement,
            peer.flush_lsn <= wal_end,
            "an acceptor flushed past our WAL end in our term"
        );
        if peer.next_lsn < peer.flush_lsn {
            peer.next_lsn = peer.flush_lsn;
        }
        self.update_commit_lsn();
        self.update_truncate_lsn();
        self.stream_to(from);
    }

    /// Committed WAL that every acceptor has flushed in this term: none of them can need it
    /// again, so neither this proposer nor the safekeepers keep it for them.
    fn update_truncate_lsn(&mut self) {
        if self.peers.values().any(|p| !p.confirmed) {
            return;
        }
        let min_flush = self.peers.values().map(|p| p.flush_lsn).min();
        let lsn = min_flush.expect("acceptors").min(self.commit_lsn);
        self.truncate_lsn = self.truncate_lsn.max(lsn);
        // After a recovery from a basebackup, our WAL may start past what we know is truncatable.
        let drop = self.truncate_lsn.0.saturating_sub(self.wal_start.0);
        if drop >= TRIM_BYTES {
            self.wal.drain(..drop as usize);
            self.wal_start = self.truncate_lsn;
        }
    }

    /// Our WAL in `[begin, end)`.
    fn wal_range(&self, begin: Lsn, end: Lsn) -> &[u8] {
        let from = begin.bytes_since(self.wal_start) as usize;
        &self.wal[from..from + end.bytes_since(begin) as usize]
    }

    fn update_commit_lsn(&mut self) {
        let mut flushed: Vec<Lsn> = self
            .peers
            .values()
            .filter(|p| p.confirmed)
            .map(|p| p.flush_lsn)
            .collect();
        if flushed.len() < self.quorum() {
            return;
        }
        flushed.sort_unstable_by(|a, b| b.cmp(a));
        let quorum_lsn = flushed[self.quorum() - 1];
        let counts = quorum_lsn >= self.epoch_start_lsn || self.bugs.has(Bug::CommitOldTerm);
        if !counts || quorum_lsn <= self.commit_lsn {
            return;
        }
        self.commit_lsn = quorum_lsn;
        let obs = Observation::CommitLsn {
            term: self.term,
            commit_lsn: quorum_lsn,
        };
        self.observer.observe(self.id, obs);
        while let Some((request, xid, lsn, end)) = self.pending.front().copied() {
            if end > self.commit_lsn {
                break;
            }
            self.pending.pop_front();
            self.observer.observe(
                self.id,
                Observation::CommitAcked {
                    request: request.0,
                    xid,
                    lsn,
                    end_lsn: end,
                },
            );
            self.reader.commit_acked(end);
        }
        if self.cost.clients > 0 && !self.client_done {
            self.start_txns();
        }
    }

    /// Sends the next chunk of WAL to `to`, if it is in sync with us and behind.
    fn stream_to(&mut self, to: NodeId) {
        let peer = &self.peers[&to];
        if !peer.confirmed || peer.next_lsn >= self.stream_end() {
            return;
        }
        let begin = peer.next_lsn;
        // Every acceptor flushed the WAL before `wal_start`; one that lost it broke its promise.
        invariant!(
            Invariant::Durability,
            begin >= self.wal_start,
            "acceptor {to} needs WAL from {begin}, before the WAL start {}",
            self.wal_start
        );
        // BUGGIFY: small appends push acceptors through many partial, interleaved writes.
        let max = if crate::buggify::buggify(self.buggify, 0.5) {
            256
        } else {
            MAX_APPEND_BYTES
        };
        let end = self.chunk_end(begin, max);
        let commit_lsn = self.commit_lsn;
        let peer = self.peers.get_mut(&to).unwrap();
        (peer.next_lsn, peer.commit_sent, peer.idle_ticks) = (end, commit_lsn, 0);
        let wal = self.chunk(begin, end);
        let delay = self.charge_link(wal.len());
        let msg = Message::AppendRequest {
            term: self.term,
            begin_lsn: begin,
            wal,
            commit_lsn: self.commit_lsn,
            truncate_lsn: self.truncate_lsn,
        };
        self.net.send_after(to, msg, delay);
    }

    /// Our WAL in `[begin, end)` as an append carries it: the last chunk's copy when it is the
    /// same range in the same term.
    fn chunk(&mut self, begin: Lsn, end: Lsn) -> Arc<Vec<u8>> {
        match &self.last_chunk {
            Some((term, b, e, wal)) if (*term, *b, *e) == (self.term, begin, end) => {
                debug_assert!(**wal == self.wal_range(begin, end));
                wal.clone()
            }
            _ => {
                let wal = Arc::new(self.wal_range(begin, end).to_vec());
                self.last_chunk = Some((self.term, begin, end, wal.clone()));
                wal
            }
        }
    }

    /// Puts `bytes` on the link to the safekeepers and returns how long until they have left:
    /// the backlog ahead of them plus their own transmission. Every byte counts, so a
    /// saturated link delays sends by what it carries (under 1 ms, `send_after` sends at once).
    fn charge_link(&mut self, bytes: usize) -> Duration {
        if self.cost.link_bytes_per_s <= 0.0 {
            return Duration::ZERO;
        }
        let now = madsim::time::Instant::now();
        let busy = Duration::from_secs_f64(bytes as f64 / self.cost.link_bytes_per_s);
        self.link_free = self.link_free.max(now) + busy;
        self.link_free - now
    }

    /// Where an append from `begin` of at most `max` bytes ends: always at a record boundary
    /// (at least one whole record), so that every acceptor's flush LSN is one, and a donor's WAL
    /// always decodes to whole records.
    fn chunk_end(&self, begin: Lsn, max: usize) -> Lsn {
        let base = self.wal_start.0 as usize;
        let wal_end = self.stream_end().0 as usize;
        let mut end = begin.0 as usize;
        while end < wal_end {
            let at = end - base;
            let len = self.wal.get(at..at + 4).map_or(0, |h| {
                u32::from_le_bytes(h.try_into().expect("4 bytes")) as usize
            });
            // Every acceptor in our term holds a prefix of our log, so its position is one of
            // our record boundaries; anything else means it kept WAL that is not ours.
            invariant!(
                Invariant::WalAgreement,
                len >= crate::wal::HEADER_LEN && end + len <= wal_end,
                "acceptor position {begin} is not a record boundary of our WAL"
            );
            if end + len - begin.0 as usize > max && end > begin.0 as usize {
                break;
            }
            end += len;
        }
        Lsn(end as u64)
    }

    /// Tells an in-sync acceptor the commit LSN when it moved, and otherwise now and then.
    fn heartbeat(&mut self, to: NodeId) {
        let commit_lsn = self.commit_lsn;
        let peer = self.peers.get_mut(&to).unwrap();
        peer.idle_ticks += 1;
        if commit_lsn == peer.commit_sent && peer.idle_ticks < HEARTBEAT_TICKS {
            return;
        }
        (peer.commit_sent, peer.idle_ticks) = (commit_lsn, 0);
        let msg = Message::AppendRequest {
            term: self.term,
            begin_lsn: peer.flush_lsn,
            wal: Arc::new(Vec::new()),
            commit_lsn,
            truncate_lsn: self.truncate_lsn,
        };
        self.net.send(to, msg);
    }

    fn on_tick(&mut self) {
        match &mut self.phase {
            Phase::Campaign { started_ticks } => {
                *started_ticks += 1;
                if *started_ticks as u128 * self.timing.tick.as_nanos()
                    > self.timing.election_timeout.as_nanos()
                {
                    return self.campaign();
                }
                for (id, peer) in &self.peers {
                    if peer.log.is_none() {
                        self.net.send(
                            *id,
                            Message::VoteRequest {
                                term: self.term,
                                proposer_id: self.proposer_id,
                            },
                        );
                    }
                }
            }
            Phase::Recovering {
                waited_ticks,
                donor_wal,
                ..
            } => {
                *waited_ticks += 1;
                let waited = self.timing.tick * *waited_ticks;
                if donor_wal.is_none() {
                    if waited > self.timing.election_timeout {
                        return self.campaign();
                    }
                    return self.request_donor_wal();
                }
                if waited > BASEBACKUP_TIMEOUT {
                    crate::probe!(BasebackupTimedOut);
                    return self.campaign();
                }
                let retry_ticks =
                    (BASEBACKUP_RETRY.as_nanos() / self.timing.tick.as_nanos()).max(1);
                if u128::from(*waited_ticks) % retry_ticks == 0 {
                    self.request_basebackup();
                }
            }
            Phase::Leader => self.leader_tick(),
            Phase::Deposed { wait_ticks } => {
                if *wait_ticks == 0 {
                    return self.campaign();
                }
                *wait_ticks -= 1;
            }
        }
    }

    /// Retries what got lost: votes and ProposerElected to acceptors not yet with us, and the
    /// WAL stream from the last acknowledged point where it stalled.
    fn leader_tick(&mut self) {
        let wal_end = self.stream_end();
        for i in 0..self.acceptors.len() {
            let id = self.acceptors[i];
            let peer = &self.peers[&id];
            let (voted, confirmed, flush_lsn) =
                (peer.log.is_some(), peer.confirmed, peer.flush_lsn);
            if !voted {
                self.net.send(
                    id,
                    Message::VoteRequest {
                        term: self.term,
                        proposer_id: self.proposer_id,
                    },
                );
            } else if !confirmed {
                self.send_elected(id);
            } else if flush_lsn < wal_end {
                let p = self.peers.get_mut(&id).unwrap();
                if p.flush_lsn == p.flush_at_tick {
                    p.next_lsn = p.flush_lsn;
                }
                p.flush_at_tick = p.flush_lsn;
                self.stream_to(id);
            } else {
                self.heartbeat(id);
            }
        }
    }

    /// The client reads a page back, while this compute leads.
    fn on_read(&mut self) {
        if !matches!(self.phase, Phase::Leader) {
            return;
        }
        let elapsed = self.started.elapsed();
        let db = &self.db;
        self.reader.tick(
            self.id,
            &self.observer,
            &self.net,
            elapsed,
            db.page_count(),
            |i| db.nth_page(i),
            self.commit_lsn,
        );
    }

    /// Open loop: runs the client's next piece of work, unless too many commits wait for
    /// acknowledgement. Closed loop: starts work for every idle client.
    fn on_txn(&mut self) {
        if !matches!(self.phase, Phase::Leader) || self.client_done {
            return;
        }
        if self.cost.clients > 0 {
            return self.start_txns();
        }
        if self.pending.len() >= MAX_IN_FLIGHT || self.throttled() {
            return;
        }
        self.run_next_item();
        self.stream_all();
    }

    /// Closed loop: every client without a transaction in flight starts its next one.
    fn start_txns(&mut self) {
        if !matches!(self.phase, Phase::Leader) {
            return;
        }
        let before = self.db.end_lsn();
        while !self.client_done && self.pending.len() < self.cost.clients && !self.throttled() {
            self.run_next_item();
        }
        if self.db.end_lsn() > before {
            self.stream_all();
        }
    }

    /// Backpressure: the pageservers are too far behind our WAL to take more now.
    fn throttled(&self) -> bool {
        self.db.end_lsn().0.saturating_sub(self.ps_ingested_lsn.0) > MAX_REPLICATION_WRITE_LAG
    }

    fn stream_all(&mut self) {
        for i in 0..self.acceptors.len() {
            self.stream_to(self.acceptors[i]);
        }
    }

    /// Logs the client's next piece of work (after a checkpoint, when one is due) and charges
    /// it to a vCPU: its WAL is streamable once the vCPU finishes it.
    fn run_next_item(&mut self) {
        let Some((request, item)) = self.client.next() else {
            self.client_done = true;
            return;
        };
        let start = self.db.end_lsn();
        self.checkpoint_if_due();
        let commit = self.db.execute(&item, self.full_page_writes, &mut self.wal);
        debug_assert_eq!(
            self.wal_start.advance(self.wal.len() as u64),
            self.db.end_lsn()
        );
        if self.cost.models_cpu() {
            let wal_bytes = self.db.end_lsn().bytes_since(start) as usize;
            self.charge_cpu(start, self.cost.cpu_time(commit.is_some(), wal_bytes));
        }
        if let Some((xid, lsn, end)) = commit {
            self.pending.push_back((request, xid, lsn, end));
        }
    }

    /// Postgres's checkpointer: a checkpoint once `checkpoint_timeout` has passed or enough WAL
    /// was written since the last one. Its record resets which pages need a full-page image.
    fn checkpoint_if_due(&mut self) {
        let now = madsim::time::Instant::now();
        let by_time = !self.cost.checkpoint_timeout.is_zero()
            && now - self.last_checkpoint_at >= self.cost.checkpoint_timeout;
        let by_volume = self.cost.checkpoint_wal_bytes > 0
            && self.db.wal_since_checkpoint() >= self.cost.checkpoint_wal_bytes;
        if by_time || by_volume {
            self.db
                .execute(&WorkItem::Checkpoint, self.full_page_writes, &mut self.wal);
            self.last_checkpoint_at = now;
            assert_eq!(
                self.db.wal_since_checkpoint() as usize,
                crate::wal::HEADER_LEN
            );
        }
    }

    /// Runs `cpu` of work whose WAL starts at `start` on the vCPU free first.
    fn charge_cpu(&mut self, start: Lsn, cpu: Duration) {
        let now = madsim::time::Instant::now();
        let (i, free) = self
            .cpu_free
            .iter()
            .copied()
            .enumerate()
            .min_by_key(|(_, at)| *at)
            .expect("a compute has vCPUs");
        let finished = free.max(now) + cpu;
        self.cpu_free[i] = finished;
        // WAL is inserted in order: a transaction's WAL is streamable once it and the one
        // before it are done (the vCPU itself is free at once).
        let streamable = self
            .running
            .back()
            .map_or(finished, |(last, _)| finished.max(*last));
        self.running.push_back((streamable, start));
    }
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<madsim::time::Instant>) {
    match at {
        Some(at) => madsim::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_modelled_from_either_cost_alone() {
        let per_txn = ComputeCost {
            vcpus: 1,
            cpu_per_txn: Duration::from_micros(100),
            ..ComputeCost::default()
        };
        let per_byte = ComputeCost {
            vcpus: 1,
            cpu_ns_per_wal_byte: 2.0,
            ..ComputeCost::default()
        };
        assert!(per_txn.models_cpu() && per_byte.models_cpu());
        assert!(!ComputeCost::default().models_cpu());
        assert_eq!(per_byte.cpu_time(true, 1000), Duration::from_nanos(2000));
        assert_eq!(per_txn.cpu_time(true, 1000), Duration::from_micros(100));
        assert_eq!(per_txn.cpu_time(false, 1000), Duration::ZERO);
    }
}
