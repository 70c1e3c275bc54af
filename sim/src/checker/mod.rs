//! The checkers: the harness's side of the observation channel.
//!
//! Every observation goes into the trace (and so into the trace hash) and through the checks
//! of [`Check`], each guarding one invariant of DESIGN §5. A node's report is a claim to
//! check, not a fact to build on: the checks read the acceptors' and pageservers' disks, the
//! object store's bucket, and what the client asked for ([`client::ClientLog`]); pages are
//! judged at the page and LSN the compute asked for, by an oracle that shares no code with the
//! nodes ([`crate::oracle`]).
//!
//! - **wal-agreement**: terms and persisted commit LSNs never go back; the bytes below any
//!   acceptor's commit LSN, read from its disk, are the same on every acceptor for the whole
//!   run; one proposer and one start LSN per term.
//! - **durability**: whatever majority elects the next proposer adopts a log (read from its
//!   disk) that holds the committed WAL; a proposer commits only what a quorum flushed in its
//!   term; every acknowledged transaction's commit and writes, as the client asked for them,
//!   are in the committed WAL; latest reads see every acknowledged commit; WAL goes only below
//!   what the bucket's index holds; a crashed pageserver's metadata is covered by its layers;
//!   `remote <= disk_consistent <= ingested <= committed`.
//! - **page-reconstruction**: every page served, imaged (read from the layer file) or sent in
//!   a basebackup equals the oracle's, and gets its verdict by the end of the run.
//! - **no-corrupt-page**: no page served fails its own checksum.
//! - **liveness** (at the end): commits resume at a rate, every pageserver catches up within a
//!   bound, and GetPage is answered (and no longer fails) after the faults heal.
//!
//! The first violation is kept; the run stops soon after it.

pub mod check;
pub mod client;
#[cfg(test)]
mod tests;

pub use check::{Check, Violation};

use crate::config::ImagePolicy;
use crate::oracle::Oracle;
use client::{expected_write, ClientLog};
use lakesim_faults::disk::Rotted;
use lakesim_faults::{Disk, Trace};
use lakesim_nodes::object_store::Bucket;
use lakesim_nodes::observe::{Observation, Observer};
use lakesim_nodes::pageserver::layers::{decode_delta, LayerChecks, LayerName, IMAGE_HEADER};
use lakesim_nodes::pageserver::remote::{IndexPart, RemotePrefix, INDEX_KEY};
use lakesim_nodes::pageserver::Metadata;
use lakesim_nodes::safekeeper::wal_store::{peek_wal, SegmentSize};
use lakesim_nodes::wal::{common_prefix, decode_stream};
use lakesim_nodes::{Lsn, NodeId, PageId, Term, Xid};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Liveness: at least this many commits are acknowledged after the faults heal (unless the
/// client runs out of work), the last of them within [`LIVENESS_BOUND`] of the end.
pub const MIN_ACKS_AFTER_HEAL: usize = 10;
/// Liveness: a pageserver is at most this far behind the commit LSN at the end of the run, and
/// a GetPage sent this long after the heal must not fail.
pub const LIVENESS_BOUND: Duration = Duration::from_millis(1000);

#[derive(Default)]
struct AcceptorView {
    term: Term,
    durable_commit_lsn: Lsn,
    commit_lsn: Lsn,
    /// Its WAL on disk below this LSN was compared with the committed prefix and holds; never
    /// above its flush LSN, and reset when it crashes.
    verified_lsn: Lsn,
    /// The election key of its durable log.
    last_log_term: Term,
    flush_lsn: Lsn,
}

/// One acknowledged commit.
#[derive(Clone, Copy)]
struct Ack {
    request: u64,
    xid: Xid,
    lsn: Lsn,
    end: Lsn,
    at: Duration,
}

/// A pageserver's LSNs as it reported them (claims, checked against each other), and what the
/// read-amplification check knows of it.
#[derive(Default)]
struct PageserverView {
    /// Where ingest stands; `None` until reported since the last start.
    ingested: Option<Lsn>,
    disk_consistent: Lsn,
    remote_consistent: Lsn,
    /// Where each chunk of WAL ingested by this process ended (an image pass follows each),
    /// in order; the position startup reports is not one.
    chunks: Vec<Lsn>,
    /// The process just started: its next ingest report is startup's, and its image layers
    /// are read from its disk then.
    starting: bool,
    /// Its image layers, by page (from its disk at start, then as it makes them).
    images: BTreeMap<PageId, std::collections::BTreeSet<Lsn>>,
    /// Its disk is full now: image passes fail.
    disk_full: bool,
    /// Space returned and no image pass ran since.
    space_returned: bool,
    /// Image passes before this LSN may have failed for want of space: reads that rely on
    /// them are not judged.
    passes_judged_from: Lsn,
}

#[derive(Default)]
struct State {
    violation: Option<Violation>,
    /// The trace's last events when the violation was found.
    events_before_violation: Option<Vec<lakesim_faults::Event>>,
    acceptors: BTreeMap<NodeId, AcceptorView>,
    /// The highest flush LSN each acceptor reported while its log's last term was a term.
    flushed_in_term: BTreeMap<(NodeId, Term), Lsn>,
    /// Each term's elected proposer: its node, incarnation and start LSN.
    elected: BTreeMap<Term, (NodeId, u64, Lsn)>,
    /// The longest committed WAL prefix any acceptor has reported.
    committed: Vec<u8>,
    acked: Vec<Ack>,
    /// The end of the last commit each compute acknowledged.
    last_acked_end: BTreeMap<NodeId, Lsn>,
    last_ack: Option<Duration>,
    served: Vec<Served>,
    /// Each GetPage answer the compute got: when (ms) and its latency as the compute saw it.
    client_reads: Vec<(f64, u64)>,
    /// When each GetPage failed or went unanswered (ms).
    failed_read_times: Vec<f64>,
    /// When the last GetPage that failed had been sent.
    last_failed_read_sent: Option<Duration>,
    /// The LSN of every image layer made.
    image_lsns: Vec<Lsn>,
    commits_acked: u64,
    elections: u64,
    oracle: Oracle,
    /// Pages served (or imaged) at LSNs the oracle has not replayed to yet.
    pending_pages: Vec<PendingPage>,
    pages: PageStats,
    pageservers: BTreeMap<NodeId, PageserverView>,
    /// Files bit rot hit, by node and name: the CRC32C of the rotted contents. The excuse
    /// holds for exactly that version of the file.
    rotted: BTreeMap<(NodeId, String), u32>,
    /// Safekeepers whose WAL on disk is no longer a witness: their disk was lost, rot hit a WAL
    /// segment, or they said they stay out. Their WAL is not compared with the committed WAL,
    /// and elections they would take part in are not judged (a damaged acceptor finds the
    /// damage when it reads the WAL back, and stays out or cuts it).
    damaged_acceptors: std::collections::BTreeSet<NodeId>,
    /// The highest commit LSN a damaged acceptor reported. The committed prefix grows only from
    /// witnesses' disks, so when a damaged acceptor is the only one told of a commit (the other
    /// member of the quorum was cut off before it heard), the prefix lags that commit; a
    /// pageserver that ingested WAL the damaged acceptor served up to it is not judged past
    /// the committed prefix (its pages are still judged against the oracle).
    unwitnessed_commit: Lsn,
    /// Acceptors that cut WAL they had acknowledged because rot hit both copies of a record
    /// (a double fault they cannot tell from a torn tail): where each cut, and when. Such an
    /// acceptor goes on voting with the shorter log, so a commit whose quorum counted its lost
    /// bytes may be lost with them: acknowledgements made before the cut and ending past it
    /// are not judged by the client-facing durability checks (the WAL checks already leave
    /// the acceptor out).
    amnesia: Vec<(Lsn, Duration)>,
    /// Bits rot flipped in safekeepers' WAL, by node and LSN, with the rotted byte: the checker
    /// reads their WAL as it was written (the acceptor finds the damage when it reads it back,
    /// and repairs it from its mirror). A flip no longer applies once the byte changed (the
    /// acceptor repaired or rewrote it) or the acceptor truncated its WAL there.
    wal_flips: BTreeMap<NodeId, BTreeMap<Lsn, (u8, u8)>>,
    /// Where rot flipped bits in safekeepers' WAL mirrors, by node.
    mirror_flips: BTreeMap<NodeId, std::collections::BTreeSet<Lsn>>,
    /// Durable delta layers found intact, and how far each pageserver's durable layers were
    /// found to reach: the audit's memory, forgotten when a crash, rot or disk loss hits.
    intact_layers: std::collections::BTreeSet<(NodeId, String)>,
    audited: BTreeMap<NodeId, Lsn>,
    last_read: Option<Duration>,
    segments_removed: u64,
    /// Basebackups computes started from, and the one whose pages arrive now.
    basebackups: u64,
    /// Messages delivered (for `lakesim bench`).
    messages: u64,
    last_basebackup: Option<(NodeId, Lsn)>,
}

impl State {
    fn forget_audit(&mut self, node: NodeId) {
        self.intact_layers.retain(|(n, _)| *n != node);
        self.audited.remove(&node);
    }
}

/// A page to compare with the oracle's once it has replayed far enough.
struct PendingPage {
    node: NodeId,
    page: PageId,
    lsn: Lsn,
    crc: u32,
    source: PageSource,
}

/// Where a page came from.
#[derive(Clone, Copy)]
enum PageSource {
    GetPage,
    ImageLayer,
    Basebackup,
}

impl PageSource {
    fn describe(self, page: PageId, lsn: Lsn) -> String {
        match self {
            PageSource::GetPage => format!("GetPage(page {}, {lsn})", page.0),
            PageSource::ImageLayer => format!("image layer of page {} labelled {lsn}", page.0),
            PageSource::Basebackup => format!("page {} of the basebackup at {lsn}", page.0),
        }
    }
}

/// One GetPage answer as the pageserver reported it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Served {
    pub time_ms: f64,
    pub node: u32,
    pub page: u32,
    pub records: u32,
    pub layers: u32,
    pub bytes_read: u64,
    /// From the end of the wait for ingest to the answer.
    pub latency_ns: u64,
    /// Waiting for ingest to reach the LSN asked for.
    pub wait_ns: u64,
}

/// What GetPage and image creation cost, for the summary.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PageStats {
    pub reads: u64,
    pub failed_reads: u64,
    /// Records applied per GetPage, one entry per read.
    pub records_applied: Vec<u32>,
    pub images_created: u64,
    pub image_bytes: u64,
}

/// What the checker reads besides the observations: the real state of the run.
pub struct Sources {
    /// When pageservers make images (the read-amplification check's promise).
    pub image_policy: ImagePolicy,
    /// The safekeepers' disks, and the WAL segment size they use.
    pub safekeeper_disks: BTreeMap<NodeId, Disk>,
    pub wal_segment_size: SegmentSize,
    /// Each pageserver's prefix in the bucket.
    pub remote_prefixes: BTreeMap<NodeId, RemotePrefix>,
    /// The pageservers' disks.
    pub pageserver_disks: BTreeMap<NodeId, Disk>,
    pub bucket: Bucket,
    pub client: ClientLog,
}

/// The harness's observer: records the trace and checks invariants.
pub struct Checker {
    trace: Trace,
    src: Sources,
    state: Mutex<State>,
}

/// What the run did, for the summary.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub commits_acked: u64,
    pub elections: u64,
    pub committed_bytes: u64,
    /// Committed WAL bytes by record kind.
    pub wal_bytes: BTreeMap<&'static str, u64>,
    pub pages: PageStats,
    /// Bytes made durable by fsync on every disk (whole sectors), filled in by the runner.
    pub bytes_fsynced: u64,
    /// WAL segments the safekeepers removed, and the most WAL any one holds at the end.
    pub segments_removed: u64,
    pub safekeeper_wal_held: u64,
    /// Times a compute started from a pageserver's basebackup.
    pub basebackups: u64,
    /// Messages delivered to nodes.
    pub messages: u64,
    /// The measurements experiments and `--json` report.
    pub metrics: crate::metrics::Metrics,
    /// Every GetPage answer, in order (for time series; left out of `--json`).
    #[serde(skip)]
    pub served: Vec<Served>,
    /// Every answer the compute got, `(ms, latency ns)`, and when reads failed (ms).
    #[serde(skip)]
    pub client_reads: Vec<(f64, u64)>,
    #[serde(skip)]
    pub failed_read_times: Vec<f64>,
}

/// When the faults healed and what the end-of-run checks compare with.
#[derive(Clone, Debug)]
pub struct EndOfRun {
    pub healed_at: Duration,
    /// The committed LSN [`LIVENESS_BOUND`] before the end: every pageserver must reach it.
    pub catch_up_target: Lsn,
    /// What the faults left when they healed.
    pub at_heal: AtHeal,
}

/// The pipeline's position when the faults healed, read from the disks: what the uploads and
/// the WAL removal must have caught up with by the end.
#[derive(Clone, Debug, Default)]
pub struct AtHeal {
    /// Each pageserver's durable `disk_consistent_lsn`.
    pub flushed: BTreeMap<NodeId, Lsn>,
    /// The committed LSN.
    pub committed: Lsn,
    /// Whether a safekeeper was lost for good. Membership changes are not modelled, so (as in
    /// Neon until the control plane replaces it) the lost acceptor holds the proposer's
    /// `truncate_lsn` back and WAL removal cannot resume: that check is then not made.
    pub safekeeper_retired: bool,
}

impl Checker {
    pub fn new(trace: Trace, src: Sources) -> Checker {
        let mut state = State::default();
        for ps in src.pageserver_disks.keys() {
            state.pageservers.insert(*ps, PageserverView::default());
        }
        Checker {
            trace,
            src,
            state: Mutex::new(state),
        }
    }

    pub fn violation(&self) -> Option<Violation> {
        self.state.lock().unwrap().violation.clone()
    }

    /// What the run did. `load_txns`: the workload loads a database first in that many
    /// transactions; measurements then start at the checkpoint that ends the load.
    pub fn stats(&self, load_txns: Option<u64>) -> Stats {
        let s = self.state.lock().unwrap();
        let decoded = decode_stream(&s.committed, Lsn::ZERO, Some(Lsn::ZERO));
        let mut wal_bytes = BTreeMap::new();
        for (_, rec) in &decoded.records {
            *wal_bytes.entry(rec.body.kind().name()).or_default() += rec.encoded_len() as u64;
        }
        let acks: Vec<(Lsn, Duration)> = s.acked.iter().map(|a| (a.lsn, a.at)).collect();
        let metrics = crate::metrics::Metrics::measure(
            &decoded.records,
            load_txns,
            &acks,
            &s.served,
            &s.client_reads,
            &s.image_lsns,
        );
        Stats {
            metrics,
            served: s.served.clone(),
            client_reads: s.client_reads.clone(),
            failed_read_times: s.failed_read_times.clone(),
            commits_acked: s.commits_acked,
            elections: s.elections,
            committed_bytes: s.committed.len() as u64,
            wal_bytes,
            pages: s.pages.clone(),
            bytes_fsynced: 0,
            segments_removed: s.segments_removed,
            basebackups: s.basebackups,
            messages: s.messages,
            safekeeper_wal_held: self
                .src
                .safekeeper_disks
                .values()
                .map(wal_held)
                .max()
                .unwrap_or(0),
        }
    }

    /// Records a violation of `check` (the first one wins).
    fn fail(&self, s: &mut State, check: Check, nodes: &[NodeId], detail: String) {
        if s.violation.is_some() {
            return;
        }
        self.trace.record(0, "violation", 0, 0);
        s.events_before_violation = Some(self.trace.recent());
        let at = self.trace.elapsed().as_millis() as u64;
        let nodes = nodes.iter().map(|n| n.0).collect();
        s.violation = Some(Violation::of_check(check, at, nodes, detail));
    }

    fn now_ms(&self) -> f64 {
        self.trace.elapsed().as_secs_f64() * 1e3
    }

    /// The events up to the violation's own, as they were when it was found (the run goes on
    /// a little after a violation, and a report shows what led to it).
    pub fn events_before_violation(&self) -> Option<Vec<lakesim_faults::Event>> {
        self.state.lock().unwrap().events_before_violation.clone()
    }

    /// The committed WAL's length now.
    pub fn committed_lsn(&self) -> Lsn {
        Lsn(self.state.lock().unwrap().committed.len() as u64)
    }
}

/// Acceptors: monotonic state, agreement on the committed bytes, leader completeness.
impl Checker {
    fn on_acceptor(&self, s: &mut State, node: NodeId, term: Term, commit: Lsn, durable: Lsn) {
        let view = s.acceptors.entry(node).or_default();
        let broken = if term < view.term {
            Some(format!("term went back from {} to {term}", view.term))
        } else if durable < view.durable_commit_lsn {
            Some(format!(
                "persisted commit LSN went back from {} to {durable}",
                view.durable_commit_lsn
            ))
        } else if commit < view.commit_lsn {
            Some(format!(
                "commit LSN went back from {} to {commit}",
                view.commit_lsn
            ))
        } else {
            None
        };
        (view.term, view.durable_commit_lsn, view.commit_lsn) = (term, durable, commit);
        if let Some(detail) = broken {
            return self.fail(s, Check::AcceptorMonotonic, &[node], detail);
        }
        self.check_committed_bytes(s, node, commit);
    }

    /// Compares the acceptor's WAL below `commit` with the committed prefix, and extends the
    /// prefix when the acceptor knows more.
    fn check_committed_bytes(&self, s: &mut State, node: NodeId, commit: Lsn) {
        let verified = s.acceptors[&node].verified_lsn;
        if s.damaged_acceptors.contains(&node) {
            s.unwitnessed_commit = s.unwitnessed_commit.max(commit);
            return;
        }
        if commit <= verified {
            return;
        }
        let bytes = self.witness_wal(&s.wal_flips, node, verified, commit);
        if (bytes.len() as u64) < commit.bytes_since(verified) {
            let detail = format!(
                "reports commit LSN {commit} but holds WAL only to {}",
                Lsn(verified.0 + bytes.len() as u64)
            );
            return self.fail(s, Check::CommittedWalAgrees, &[node], detail);
        }
        let from = verified.0 as usize;
        let overlap = s.committed.len().saturating_sub(from).min(bytes.len());
        let i = common_prefix(&s.committed[from..from + overlap], &bytes[..overlap]);
        if i < overlap {
            let detail = format!(
                "WAL at LSN {} disagrees with the committed WAL",
                Lsn((from + i) as u64)
            );
            return self.fail(s, Check::CommittedWalAgrees, &[node], detail);
        }
        if from + bytes.len() > s.committed.len() {
            s.committed.extend_from_slice(&bytes[overlap..]);
            let State {
                oracle, committed, ..
            } = &mut *s;
            oracle.advance(committed);
            self.check_pending_pages(s);
        }
        s.acceptors.get_mut(&node).unwrap().verified_lsn = commit;
    }

    /// True when `node`'s WAL on disk holds the committed prefix up to `lsn`, byte for byte.
    /// Extends the node's verified prefix, so each byte is compared once per process.
    fn holds_committed(&self, s: &mut State, node: NodeId, lsn: Lsn) -> bool {
        let Some(view) = s.acceptors.get(&node) else {
            return false;
        };
        if view.flush_lsn < lsn {
            return false;
        }
        if view.verified_lsn >= lsn {
            return true;
        }
        let from = view.verified_lsn;
        let bytes = self.witness_wal(&s.wal_flips, node, from, lsn);
        if bytes != s.committed[from.0 as usize..lsn.0 as usize] {
            return false;
        }
        s.acceptors.get_mut(&node).unwrap().verified_lsn = lsn;
        true
    }

    /// Leader completeness, the heart of durability: whatever majority elects the next proposer,
    /// the log it adopts (highest last-log term, then flush LSN, as DESIGN §3 says) holds all the
    /// committed WAL, on its disk. Checked on the acceptors' states after every change, so a
    /// commit that a future election could undo is caught when it is declared, not only if
    /// that election happens to run.
    fn check_committed_survives_elections(&self, s: &mut State) {
        let committed = Lsn(s.committed.len() as u64);
        if committed == Lsn::ZERO || s.violation.is_some() {
            return;
        }
        let ids: Vec<NodeId> = self.src.safekeeper_disks.keys().copied().collect();
        let quorum = ids.len() / 2 + 1;
        let key = |s: &State, id: &NodeId| {
            s.acceptors
                .get(id)
                .map_or((Term(0), Lsn::ZERO), |v| (v.last_log_term, v.flush_lsn))
        };
        for mask in 0u32..(1 << ids.len()) {
            if mask.count_ones() as usize != quorum {
                continue;
            }
            let members: Vec<NodeId> = (0..ids.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| ids[i])
                .collect();
            if members.iter().any(|m| s.damaged_acceptors.contains(m)) {
                continue;
            }
            let donor = *members.iter().max_by_key(|id| key(s, id)).unwrap();
            if !self.holds_committed(s, donor, committed) {
                let (term, flush) = key(s, &donor);
                let voters: Vec<String> = members.iter().map(|id| id.to_string()).collect();
                let detail = format!(
                    "WAL committed to {committed} would not survive an election by {{{}}}: its most advanced log ({donor}, last-log term {}, flush {flush}) does not hold it",
                    voters.join(","),
                    term.0
                );
                return self.fail(s, Check::LeaderCompleteness, &[donor], detail);
            }
        }
    }

    /// An acceptor crashed: what it verified before may be gone (a clean cut of unsynced WAL
    /// leaves no torn tail and so no truncation report). Its WAL is compared again from the
    /// lowest segment it still holds.
    pub fn note_crash(&self, node: NodeId) {
        let mut s = self.state.lock().unwrap();
        s.forget_audit(node);
        if let Some(disk) = self.src.safekeeper_disks.get(&node) {
            let first = lowest_wal_lsn(disk, self.src.wal_segment_size);
            if let Some(view) = s.acceptors.get_mut(&node) {
                view.verified_lsn = view.verified_lsn.min(first);
            }
        }
    }
}

/// The `disk_consistent_lsn` of the metadata a crash would keep on a pageserver's disk.
fn durable_consistent_lsn(disk: &Disk) -> Lsn {
    let metadata = disk.read_durable(lakesim_nodes::pageserver::METADATA);
    metadata
        .and_then(|b| Metadata::decode(&b))
        .map_or(Lsn::ZERO, |m| m.disk_consistent_lsn)
}

impl Checker {
    /// `node`'s WAL in `[from, to)` as its disk holds it, with the bits rot flipped put back.
    fn witness_wal(
        &self,
        flips: &BTreeMap<NodeId, BTreeMap<Lsn, (u8, u8)>>,
        node: NodeId,
        from: Lsn,
        to: Lsn,
    ) -> Vec<u8> {
        let disk = &self.src.safekeeper_disks[&node];
        let mut bytes = peek_wal(disk, self.src.wal_segment_size, from, to);
        let end = from.advance(bytes.len() as u64);
        for (lsn, (mask, rotted)) in flips
            .get(&node)
            .into_iter()
            .flat_map(|f| f.range(from..end))
        {
            let byte = &mut bytes[lsn.bytes_since(from) as usize];
            if *byte == *rotted {
                *byte ^= mask;
            }
        }
        bytes
    }
}

/// Rot in both WAL copies within this many bytes past a cut counts as one record hit twice
/// (records are at most a page image and a header).
const DOUBLE_ROT_SPAN: u64 = 16 * 1024;

/// The start LSN of the lowest WAL segment on a safekeeper's disk.
fn lowest_wal_lsn(disk: &Disk, seg: SegmentSize) -> Lsn {
    let first = disk
        .list()
        .iter()
        .filter_map(|n| u64::from_str_radix(n.strip_prefix("wal/")?, 16).ok())
        .min();
    first.map_or(Lsn::ZERO, |segno| seg.start(segno))
}

/// Proposers: one per term; commits only with a quorum of the term.
impl Checker {
    fn on_elected(&self, s: &mut State, node: NodeId, term: Term, start: Lsn, proposer: u64) {
        s.elections += 1;
        match s.elected.get(&term) {
            None => {
                s.elected.insert(term, (node, proposer, start));
            }
            Some(&(other, other_id, other_start))
                if other_id != proposer || other_start != start =>
            {
                let detail = format!(
                    "two proposers elected in {term}: {other} (start {other_start}) and {node} (start {start})"
                );
                self.fail(s, Check::ElectionSafety, &[other, node], detail)
            }
            Some(_) => {}
        }
    }

    /// A proposer counted `voter`'s vote in `term`: the voter's control file, as a crash would
    /// leave it, must already hold that term.
    fn on_vote_granted(&self, s: &mut State, node: NodeId, term: Term, voter: NodeId) {
        use lakesim_nodes::safekeeper::control_file;
        let Some(disk) = self.src.safekeeper_disks.get(&voter) else {
            return;
        };
        if s.damaged_acceptors.contains(&voter) {
            return; // its disk was lost since: the vote went with it, and it stays out
        }
        let durable = control_file::durable_state(disk).map_or(Term(0), |state| state.term);
        if durable < term {
            let detail = format!(
                "proposer counted {voter}'s vote in {term}, but a crash would leave that acceptor in {durable}, free to vote again"
            );
            self.fail(s, Check::VoteIsDurable, &[voter, node], detail);
        }
    }

    fn on_commit_lsn(&self, s: &mut State, node: NodeId, term: Term, commit_lsn: Lsn) {
        let quorum = self.src.safekeeper_disks.len() / 2 + 1;
        let holders = self
            .src
            .safekeeper_disks
            .keys()
            .filter(|sk| {
                s.flushed_in_term
                    .get(&(**sk, term))
                    .is_some_and(|f| *f >= commit_lsn)
            })
            .count();
        if holders < quorum {
            let detail = format!(
                "proposer in {term} moved its commit LSN to {commit_lsn}, but only {holders} acceptors reported flushing that far in the term (quorum {quorum})"
            );
            self.fail(s, Check::CommitNeedsQuorum, &[node], detail);
        }
    }

    fn on_ack(&self, s: &mut State, node: NodeId, ack: Ack) {
        s.acked.push(ack);
        s.commits_acked += 1;
        s.last_ack = Some(ack.at);
        let last = s.last_acked_end.entry(node).or_default();
        *last = (*last).max(ack.end);
    }

    /// An acknowledgement a double fault may have taken back: made before an acceptor cut
    /// WAL below its end (see `State::amnesia`).
    fn lost_to_amnesia(s: &State, acked_at: Duration, end: Lsn) -> bool {
        s.amnesia
            .iter()
            .any(|(cut, at)| acked_at <= *at && end > *cut)
    }

    fn on_get_page_sent(&self, s: &mut State, node: NodeId, page: PageId, lsn: Lsn, latest: bool) {
        let acked = s.last_acked_end.get(&node).copied().unwrap_or(Lsn::ZERO);
        // The acknowledgements above the LSN asked, if a double fault may have lost them all.
        let excused = || {
            s.acked
                .iter()
                .filter(|a| a.end > lsn)
                .all(|a| Self::lost_to_amnesia(s, a.at, a.end))
        };
        if latest && lsn < acked && !excused() {
            let detail = format!(
                "GetPage(page {}) for the latest version asked at {lsn}, below the commit acknowledged to {acked}",
                page.0
            );
            self.fail(s, Check::ReadYourWrites, &[node], detail);
        }
    }
}

/// Pageservers: LSN order, removal against the bucket, layers that survive a crash.
impl Checker {
    fn on_ingested(&self, s: &mut State, node: NodeId, lsn: Lsn) {
        let committed = Lsn(s.committed.len() as u64);
        let view = s.pageservers.entry(node).or_default();
        view.ingested = Some(lsn);
        if std::mem::take(&mut view.starting) {
            view.images = self.image_layers_on_disk(node);
        } else {
            view.chunks.push(lsn);
            if std::mem::take(&mut view.space_returned) {
                view.passes_judged_from = lsn;
            }
        }
        if lsn > committed && lsn > s.unwitnessed_commit {
            let detail = format!("pageserver ingested to {lsn}, past the committed {committed}");
            self.fail(s, Check::PageserverLsnOrder, &[node], detail);
        }
    }

    fn on_layers_flushed(&self, s: &mut State, node: NodeId, disk: Lsn, remote: Lsn) {
        let view = s.pageservers.entry(node).or_default();
        view.disk_consistent = disk;
        view.remote_consistent = view.remote_consistent.max(remote);
        let (ingested, remote) = (view.ingested, view.remote_consistent);
        let detail = if remote > disk {
            format!("remote_consistent_lsn {remote} is past disk_consistent_lsn {disk}")
        } else if ingested.is_some_and(|i| disk > i) {
            format!(
                "disk_consistent_lsn {disk} is past the ingested {}",
                ingested.unwrap()
            )
        } else {
            return;
        };
        self.fail(s, Check::PageserverLsnOrder, &[node], detail);
    }

    /// A safekeeper removed its WAL below `wal_start`: the object store must hold an index
    /// whose layers (every one present in the bucket) reach that far, or a pageserver that
    /// loses its disk finds the WAL nowhere.
    fn check_removal(&self, s: &mut State, node: NodeId, wal_start: Lsn) {
        for (ps, prefix) in &self.src.remote_prefixes {
            if let Some(detail) = self.store_short_of(prefix, wal_start) {
                let detail = format!("safekeeper removed its WAL before {wal_start}, but {detail}");
                return self.fail(s, Check::RemovalCoveredByStore, &[node, *ps], detail);
            }
        }
    }

    /// Why the bucket under `prefix` does not hold a pageserver's state up to `lsn`, if it
    /// does not: no index, a layer the index names is missing, or the index stops short.
    fn store_short_of(&self, prefix: &RemotePrefix, lsn: Lsn) -> Option<String> {
        let bucket = &self.src.bucket;
        let index: Option<IndexPart> = bucket
            .object(&prefix.key(INDEX_KEY))
            .and_then(|data| serde_json::from_slice(&data).ok());
        let Some(index) = index else {
            return Some(format!(
                "the object store holds no index under {}",
                prefix.0
            ));
        };
        if let Some(layer) = index
            .layers
            .iter()
            .find(|l| bucket.object(&prefix.key(l)).is_none())
        {
            return Some(format!(
                "layer {layer} that the index under {} names is not in the object store",
                prefix.0
            ));
        }
        let reach = index.consistent.disk_consistent_lsn;
        (reach < lsn).then(|| {
            format!(
                "the index under {} reaches only {reach}: after a disk loss that pageserver could not rebuild",
                prefix.0
            )
        })
    }

    /// `node`'s disk filled (`true`) or has space again (`false`): a pageserver's image passes
    /// fail meanwhile, and read amplification is judged again from its first pass after.
    pub fn note_disk_full(&self, node: NodeId, full: bool) {
        let mut s = self.state.lock().unwrap();
        if let Some(view) = s.pageservers.get_mut(&node) {
            view.space_returned |= view.disk_full && !full;
            view.disk_full = full;
        } else if full && self.src.pageserver_disks.contains_key(&node) {
            s.pageservers.entry(node).or_default().disk_full = true;
        }
    }

    /// `node` lost its whole disk: its rotted files went with it.
    pub fn note_disk_loss(&self, node: NodeId) {
        let mut s = self.state.lock().unwrap();
        s.rotted.retain(|(n, _), _| *n != node);
        s.forget_audit(node);
        if self.src.safekeeper_disks.contains_key(&node) {
            s.damaged_acceptors.insert(node);
        }
    }

    /// Bit rot hit `file` on `node`'s disk: that version of the file, and no later one, is
    /// excused from the durability promise.
    pub fn note_rot(&self, node: NodeId, rotted: Rotted) {
        let file = rotted.file;
        if self.src.safekeeper_disks.contains_key(&node) {
            // A rotted control file copy is the safekeeper's to survive (it has two); rotted
            // WAL is read as written, so that the checks judge what the acceptor acknowledged.
            let lsn_in = |copy: &str| {
                let segno = u64::from_str_radix(file.strip_prefix(copy)?, 16).ok()?;
                Some(
                    self.src
                        .wal_segment_size
                        .start(segno)
                        .advance(rotted.offset),
                )
            };
            if let Some(lsn) = lsn_in("walmirror/") {
                let mut s = self.state.lock().unwrap();
                s.mirror_flips.entry(node).or_default().insert(lsn);
            }
            if let Some(lsn) = lsn_in("wal/") {
                let disk = &self.src.safekeeper_disks[&node];
                // The durable copy: the name may be gone from the cache (a removal not yet
                // synced), and a crash brings it back as rot left it.
                let durable = disk.read_durable(&file);
                let Some(&now) = durable.as_ref().and_then(|d| d.get(rotted.offset as usize))
                else {
                    return;
                };
                let mut s = self.state.lock().unwrap();
                s.wal_flips
                    .entry(node)
                    .or_default()
                    .insert(lsn, (rotted.mask, now));
            }
            return;
        }
        let disk = self.src.pageserver_disks.get(&node);
        let Some(bytes) = disk.and_then(|d| d.read_durable(&file)) else {
            return;
        };
        let crc = crc32c::crc32c(&bytes);
        let mut s = self.state.lock().unwrap();
        s.rotted.insert((node, file), crc);
        s.forget_audit(node);
    }

    /// Every pageserver's promise against its disk, as the runner's clock ticks: the
    /// `disk_consistent_lsn` in its durable metadata must be covered by durable, intact delta
    /// layers at every moment, not only when a crash happens to test it.
    pub fn audit(&self) {
        for node in self.src.pageserver_disks.keys() {
            self.check_layers_durable(*node);
        }
    }

    /// The `disk_consistent_lsn` in the metadata a crash would keep must be covered by delta
    /// layers a crash would keep, intact: what a restarted process trusts is there. Checked
    /// right after each crash and at every audit.
    pub fn check_layers_durable(&self, node: NodeId) {
        let Some(disk) = self.src.pageserver_disks.get(&node) else {
            return;
        };
        let mut s = self.state.lock().unwrap();
        let promised = durable_consistent_lsn(disk);
        if s.audited
            .get(&node)
            .is_some_and(|covered| promised <= *covered)
        {
            return;
        }
        let mut deltas: Vec<(Lsn, Lsn, String)> = disk
            .list_durable()
            .into_iter()
            .filter_map(|name| match LayerName::parse(&name) {
                Some(LayerName::Delta { start, end }) => Some((start, end, name)),
                _ => None,
            })
            .collect();
        deltas.sort();
        let mut covered = Lsn::ZERO;
        for (start, end, name) in deltas {
            if start > covered || end <= covered {
                continue;
            }
            let key = (node, name);
            if s.intact_layers.contains(&key) {
                covered = end;
                continue;
            }
            let Some(bytes) = disk.read_durable(&key.1) else {
                continue;
            };
            let excused = s
                .rotted
                .get(&key)
                .is_some_and(|crc| *crc == crc32c::crc32c(&bytes));
            let intact = decode_delta(&bytes, start, end, LayerChecks::ALL).is_ok();
            if intact {
                s.intact_layers.insert(key);
            }
            if intact || excused {
                covered = end;
            }
        }
        s.audited.insert(node, covered);
        if covered < promised {
            let detail = format!(
                "pageserver's durable metadata promises WAL to {promised} in its layers, but its durable layers cover only to {covered}"
            );
            self.fail(&mut s, Check::LayersSurviveCrash, &[node], detail);
        }
    }

    /// The image layers on a pageserver's disk, by page.
    fn image_layers_on_disk(
        &self,
        node: NodeId,
    ) -> BTreeMap<PageId, std::collections::BTreeSet<Lsn>> {
        let mut images: BTreeMap<PageId, std::collections::BTreeSet<Lsn>> = BTreeMap::new();
        let Some(disk) = self.src.pageserver_disks.get(&node) else {
            return images;
        };
        for name in disk.list() {
            if let Some(LayerName::Image { page, lsn }) = LayerName::parse(&name) {
                images.entry(page).or_default().insert(lsn);
            }
        }
        images
    }

    /// A pageserver answered GetPage(`page`, `lsn`): with `per-page-records:N`, the records a
    /// reconstruction needs (counted by the oracle, from the newest image layer the
    /// pageserver made at or below `lsn`) are at most N plus the page's records since the end
    /// of the last chunk ingested at or below `lsn`, after which the pageserver promises an
    /// image pass. Reads before this process's first pass are not judged (the slack for a
    /// restart: images in flight when it crashed are made again at its first pass).
    fn check_read_amplification(&self, s: &mut State, node: NodeId, page: PageId, lsn: Lsn) {
        let ImagePolicy::PerPageRecords(n) = self.src.image_policy else {
            return;
        };
        if lsn.0 > s.oracle.end() {
            return;
        }
        let Some(view) = s.pageservers.get(&node) else {
            return;
        };
        let i = view.chunks.partition_point(|c| *c <= lsn);
        let Some(pass) = i.checked_sub(1).map(|i| view.chunks[i]) else {
            return;
        };
        if view.disk_full || view.space_returned || pass < view.passes_judged_from {
            return; // the pass may have failed for want of space: it promises nothing
        }
        let image = view
            .images
            .get(&page)
            .and_then(|l| l.range(..=lsn).next_back());
        let base = image.map(|l| l.0);
        let chain = s.oracle.chain_len(page.0, base, lsn.0);
        let since = s.oracle.records_between(page.0, pass.0, lsn.0);
        if chain > n + since {
            let detail = format!(
                "GetPage(page {}, {lsn}) needs {chain} records from {}, more than the policy's {n} plus the {since} that arrived since the image pass at {pass}",
                page.0,
                base.map_or("the page's first record".into(), |b| format!("its image at {}", Lsn(b)))
            );
            self.fail(s, Check::ChainWithinPolicy, &[node], detail);
        }
    }

    /// An image layer was made: its page is the bytes in the file on the pageserver's disk.
    fn on_image_created(&self, s: &mut State, node: NodeId, page: PageId, lsn: Lsn) {
        s.pages.images_created += 1;
        s.pages.image_bytes += lakesim_nodes::page::PAGE_SIZE as u64;
        s.image_lsns.push(lsn);
        let name = lakesim_nodes::pageserver::layers::image_name(page, lsn);
        let file = self
            .src
            .pageserver_disks
            .get(&node)
            .and_then(|d| d.peek(&name, 0, usize::MAX));
        let Some(bytes) = file else {
            let detail =
                format!("pageserver reported image layer {name}, which is not on its disk");
            return self.fail(s, Check::PageMatchesOracle, &[node], detail);
        };
        let crc = crc32c::crc32c(bytes.get(IMAGE_HEADER..).unwrap_or(&[]));
        let view = s.pageservers.entry(node).or_default();
        view.images.entry(page).or_default().insert(lsn);
        self.on_page(s, node, page, lsn, crc, PageSource::ImageLayer);
    }
}

/// Pages: every one served gets a verdict from the oracle.
impl Checker {
    /// Compares every pending page the oracle can now judge.
    fn check_pending_pages(&self, s: &mut State) {
        if let Some((page, lsn)) = s.oracle.reinitialised() {
            let detail = format!(
                "the committed WAL initialises page {page} again at {}: the compute that wrote it had lost the page from its view of the database",
                Lsn(lsn)
            );
            self.fail(s, Check::PageInitialisedOnce, &[], detail);
        }
        if let Some((xid, lsn)) = s.oracle.xid_reused() {
            let detail = format!(
                "the committed WAL commits xid {xid} again at {}: a compute restarted below an xid already used",
                Lsn(lsn)
            );
            self.fail(s, Check::XidCommittedOnce, &[], detail);
        }
        if let Some((at, why)) = s.oracle.stalled() {
            let detail = format!("the committed WAL stops decoding at {}: {why}", Lsn(at));
            self.fail(s, Check::CommittedWalDecodes, &[], detail);
        }
        let pending = std::mem::take(&mut s.pending_pages);
        for p in pending {
            let Some(expected) = s.oracle.page_crc_at(p.page.0, p.lsn.0) else {
                s.pending_pages.push(p);
                continue;
            };
            if expected != p.crc {
                let changes: Vec<String> = s
                    .oracle
                    .changes(p.page.0, p.lsn.0)
                    .iter()
                    .rev()
                    .take(12)
                    .map(|l| Lsn(*l).to_string())
                    .collect();
                tracing::debug!(
                    page = p.page.0,
                    "oracle: page changed at {}",
                    changes.join(" ")
                );
                let detail = format!(
                    "{} differs from the oracle's replay of the committed WAL",
                    p.source.describe(p.page, p.lsn)
                );
                self.fail(s, Check::PageMatchesOracle, &[p.node], detail);
            }
        }
    }

    fn on_page(
        &self,
        s: &mut State,
        node: NodeId,
        page: PageId,
        lsn: Lsn,
        crc: u32,
        source: PageSource,
    ) {
        s.pending_pages.push(PendingPage {
            node,
            page,
            lsn,
            crc,
            source,
        });
        self.check_pending_pages(s);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_page_read(
        &self,
        s: &mut State,
        node: NodeId,
        asked: (PageId, Lsn),
        answered: (PageId, Lsn),
        page_crc: u32,
        checksum_ok: bool,
    ) {
        let (page, lsn) = asked;
        if answered != asked {
            let detail = format!(
                "GetPage(page {}, {lsn}) was answered with page {} at {}",
                page.0, answered.0 .0, answered.1
            );
            return self.fail(s, Check::AnswerAsAsked, &[node], detail);
        }
        self.on_served_page(
            s,
            node,
            (page, lsn),
            page_crc,
            checksum_ok,
            PageSource::GetPage,
        );
    }

    /// A page a compute received (a GetPage answer or a basebackup page): its own checksum
    /// must hold, then the oracle judges it.
    fn on_served_page(
        &self,
        s: &mut State,
        node: NodeId,
        (page, lsn): (PageId, Lsn),
        crc: u32,
        checksum_ok: bool,
        source: PageSource,
    ) {
        if !checksum_ok {
            let detail = format!(
                "{} returned a page whose checksum does not hold",
                source.describe(page, lsn)
            );
            return self.fail(s, Check::PageChecksum, &[node], detail);
        }
        self.on_page(s, node, page, lsn, crc, source);
    }
}

/// The end of the run.
impl Checker {
    /// End of run: every page served has its verdict; every acknowledged transaction is in
    /// the committed WAL as the client asked for it; and the pipeline is live again.
    pub fn check_end(&self, end: EndOfRun) {
        let mut s = self.state.lock().unwrap();
        if s.violation.is_some() {
            return;
        }
        let mut wal = s.committed.clone();
        wal.extend_from_slice(&self.majority_tail(&s.wal_flips, Lsn(wal.len() as u64)));
        s.oracle.advance(&wal);
        self.check_pending_pages(&mut s);
        self.check_served_within_committed(&mut s);
        self.check_acked_in_wal(&mut s);
        self.check_liveness(&mut s, &end);
        self.check_pipeline_liveness(&mut s, &end.at_heal);
    }

    /// The pipeline's position now, read from the disks, for [`EndOfRun::at_heal`].
    pub fn at_heal(&self, safekeeper_retired: bool) -> AtHeal {
        let flushed = self
            .src
            .pageserver_disks
            .iter()
            .map(|(node, disk)| (*node, durable_consistent_lsn(disk)))
            .collect();
        AtHeal {
            flushed,
            committed: self.committed_lsn(),
            safekeeper_retired,
        }
    }

    /// Uploads and WAL removal caught up with where the pipeline stood at heal.
    fn check_pipeline_liveness(&self, s: &mut State, heal: &AtHeal) {
        if s.violation.is_some() {
            return;
        }
        for (node, lsn) in heal.flushed.iter().filter(|(_, lsn)| **lsn > Lsn::ZERO) {
            let prefix = &self.src.remote_prefixes[node];
            if let Some(short) = self.store_short_of(prefix, *lsn) {
                let detail = format!(
                    "the pageserver had flushed to {lsn} when the faults healed, but by the end {short}"
                );
                return self.fail(s, Check::UploadsCatchUp, &[*node], detail);
            }
        }
        // A safekeeper out of the quorum for good (retired, or staying out of a damaged disk)
        // holds the others' removal back. Damage can come to light after the heal, when a
        // safekeeper restarts and finds it, so the set is read now, at the end.
        if heal.safekeeper_retired || !s.damaged_acceptors.is_empty() {
            return;
        }
        let flushed = heal
            .flushed
            .values()
            .min()
            .copied()
            .unwrap_or(heal.committed);
        let horizon = flushed.min(heal.committed);
        let seg = self.src.wal_segment_size;
        for (node, disk) in &self.src.safekeeper_disks {
            let lowest = lowest_wal_lsn(disk, seg);
            if seg.segno(lowest) < seg.segno(horizon) {
                let detail = format!(
                    "the safekeeper still holds WAL from {lowest} by the end, though every pageserver had flushed and the quorum committed to {horizon} when the faults healed: {} whole segments of {} bytes that WAL removal should have freed",
                    seg.segno(horizon) - seg.segno(lowest),
                    seg.bytes()
                );
                return self.fail(s, Check::WalRemovalResumes, &[*node], detail);
            }
        }
    }

    /// Pages still waiting for a verdict lie beyond the committed WAL: they were served at
    /// an LSN no quorum holds.
    fn check_served_within_committed(&self, s: &mut State) {
        let Some(p) = s.pending_pages.first() else {
            return;
        };
        let detail = format!(
            "{} was served beyond the committed WAL (which ends at {})",
            p.source.describe(p.page, p.lsn),
            Lsn(s.oracle.end())
        );
        let node = p.node;
        self.fail(s, Check::ServedWithinCommitted, &[node], detail);
    }

    /// Every acknowledged commit is a commit record of its xid at its LSN, preceded by its
    /// transaction's writes exactly as the client asked for them.
    fn check_acked_in_wal(&self, s: &mut State) {
        let client = self.src.client.lock();
        let mut broken = None;
        for ack in &s.acked {
            let commit = s.oracle.commit_at(ack.lsn.0).filter(|c| c.xid == ack.xid.0);
            if commit.is_none() && Self::lost_to_amnesia(s, ack.at, ack.end) {
                continue;
            }
            let Some(commit) = commit else {
                broken = Some(format!(
                    "commit of xid {} at {}..{} was acknowledged but is not in the committed WAL (committed to {})",
                    ack.xid.0, ack.lsn, ack.end, Lsn(s.oracle.end())
                ));
                break;
            };
            let asked = client
                .writes
                .get(ack.request as usize)
                .and_then(Option::as_ref);
            let expected: Vec<_> = asked.into_iter().flatten().map(expected_write).collect();
            let written: Vec<_> = commit
                .writes
                .iter()
                .map(|w| (w.page, w.offset, w.len, w.crc))
                .collect();
            if written != expected {
                broken = Some(format!(
                    "transaction xid {} (request {}) was acknowledged at {}, but the committed WAL holds {} of its writes where the client asked for {}: {:?} instead of {:?}",
                    ack.xid.0, ack.request, ack.lsn, written.len(), expected.len(), written, expected
                ));
                break;
            }
        }
        drop(client);
        if let Some(detail) = broken {
            self.fail(s, Check::AckedTxnInWal, &[], detail);
        }
    }

    fn check_liveness(&self, s: &mut State, end: &EndOfRun) {
        let now = self.trace.elapsed();
        let after_heal = s.acked.iter().filter(|a| a.at >= end.healed_at).count();
        let exhausted = self.src.client.lock().exhausted;
        let recent = s.last_ack.is_some_and(|t| t + LIVENESS_BOUND >= now);
        if !exhausted && (after_heal < MIN_ACKS_AFTER_HEAL || !recent) {
            let detail = format!(
                "{after_heal} commits acknowledged after the faults healed at {:.3}s, the last at {}: commits did not resume at a rate",
                end.healed_at.as_secs_f64(),
                s.last_ack.map_or("never".into(), |t| format!("{:.3}s", t.as_secs_f64()))
            );
            return self.fail(s, Check::CommitsResume, &[], detail);
        }
        let behind = s.pageservers.iter().find_map(|(n, v)| {
            let at = v.ingested.unwrap_or(Lsn::ZERO);
            (at < end.catch_up_target).then_some((*n, at))
        });
        if let Some((node, at)) = behind {
            let detail = format!(
                "pageserver ingested only to {at} by the end, short of the {} committed {:.1}s before it",
                end.catch_up_target,
                LIVENESS_BOUND.as_secs_f64()
            );
            return self.fail(s, Check::PageserversCatchUp, &[node], detail);
        }
        if !s.pageservers.is_empty() && s.last_read.is_none_or(|t| t < end.healed_at) {
            let detail = "no GetPage answered after the faults healed".to_string();
            return self.fail(s, Check::GetPageAnswered, &[], detail);
        }
        if let Some(sent) = s.last_failed_read_sent {
            if sent >= end.healed_at + LIVENESS_BOUND {
                let detail = format!(
                    "a GetPage sent at {:.3}s, {:.1}s after the faults healed, failed",
                    sent.as_secs_f64(),
                    (sent - end.healed_at).as_secs_f64()
                );
                self.fail(s, Check::GetPageAnswered, &[], detail);
            }
        }
    }

    /// The WAL past `from` that a majority of acceptors hold byte for byte: durable, though the
    /// acceptors may not have heard yet that it is committed (the last acknowledgements of a run).
    fn majority_tail(
        &self,
        flips: &BTreeMap<NodeId, BTreeMap<Lsn, (u8, u8)>>,
        from: Lsn,
    ) -> Vec<u8> {
        let tails: Vec<Vec<u8>> = self
            .src
            .safekeeper_disks
            .keys()
            .map(|node| self.witness_wal(flips, *node, from, Lsn(u64::MAX / 2)))
            .collect();
        let quorum = tails.len() / 2 + 1;
        let mut best: &[u8] = &[];
        for candidate in &tails {
            let mut shared: Vec<usize> =
                tails.iter().map(|t| common_prefix(t, candidate)).collect();
            shared.sort_unstable_by(|a, b| b.cmp(a));
            if shared[quorum - 1] > best.len() {
                best = &candidate[..shared[quorum - 1]];
            }
        }
        best.to_vec()
    }
}

/// The bytes of WAL segments on a safekeeper's disk.
fn wal_held(disk: &Disk) -> u64 {
    disk.list()
        .iter()
        .filter(|n| n.starts_with("wal/"))
        .map(|n| disk.len(n).unwrap_or(0))
        .sum()
}

impl Observer for Checker {
    fn observe(&self, node: NodeId, obs: Observation) {
        let n = node.0;
        let mut s = self.state.lock().unwrap();
        let s = &mut *s;
        match obs {
            Observation::Delivered { from, kind, term } => {
                s.messages += 1;
                self.trace.record(n, kind, u64::from(from.0), term.0)
            }
            Observation::Acceptor {
                term,
                last_log_term,
                flush_lsn,
                commit_lsn,
                durable_commit_lsn,
            } => {
                self.trace.record(n, "acceptor", term.0, flush_lsn.0);
                let view = s.acceptors.entry(node).or_default();
                view.last_log_term = last_log_term;
                view.flush_lsn = flush_lsn;
                view.verified_lsn = view.verified_lsn.min(flush_lsn);
                let flushed = s.flushed_in_term.entry((node, last_log_term)).or_default();
                *flushed = (*flushed).max(flush_lsn);
                self.on_acceptor(s, node, term, commit_lsn, durable_commit_lsn);
                self.check_committed_survives_elections(s);
            }
            Observation::Truncated { lsn } => {
                self.trace.record(n, "truncated", lsn.0, 0);
                // Rot in both copies of the WAL just past the cut: a double fault, which the
                // acceptor cannot tell from a torn tail; it is out of the WAL checks from here.
                let past = |l: &Lsn| (lsn..lsn.advance(DOUBLE_ROT_SPAN)).contains(l);
                let primary = s.wal_flips.get(&node).is_some_and(|f| f.keys().any(past));
                let mirror = s
                    .mirror_flips
                    .get(&node)
                    .is_some_and(|f| f.iter().any(past));
                if primary && mirror {
                    s.damaged_acceptors.insert(node);
                    s.amnesia.push((lsn, self.trace.elapsed()));
                }
                if let Some(flips) = s.wal_flips.get_mut(&node) {
                    flips.split_off(&lsn);
                }
                if let Some(flips) = s.mirror_flips.get_mut(&node) {
                    flips.split_off(&lsn);
                }
                let view = s.acceptors.entry(node).or_default();
                view.verified_lsn = view.verified_lsn.min(lsn);
            }
            Observation::Aborted => self.trace.record(n, "aborted", 0, 0),
            Observation::StaysOut => {
                self.trace.record(n, "stays-out", 0, 0);
                s.damaged_acceptors.insert(node);
            }
            Observation::DiskFull => self.trace.record(n, "disk-full", 0, 0),
            Observation::RecvOverflow { dropped } => {
                self.trace.record(n, "recv-overflow", dropped, 0)
            }
            Observation::Started => {
                self.trace.record(n, "started", 0, 0);
                // A new process starts from its persisted commit LSN.
                if let Some(view) = s.acceptors.get_mut(&node) {
                    view.commit_lsn = Lsn::ZERO;
                }
                // A restarted pageserver has caught up only once it says so again; its image
                // passes start over.
                if let Some(view) = s.pageservers.get_mut(&node) {
                    view.ingested = None;
                    view.chunks.clear();
                    view.starting = true;
                }
            }
            Observation::Elected {
                term,
                epoch_start_lsn,
                proposer,
            } => {
                self.trace.record(n, "elected", term.0, epoch_start_lsn.0);
                self.on_elected(s, node, term, epoch_start_lsn, proposer);
            }
            Observation::VoteGranted { term, voter } => self.on_vote_granted(s, node, term, voter),
            Observation::Deposed { term } => self.trace.record(n, "deposed", term.0, 0),
            Observation::CommitAcked {
                request,
                xid,
                lsn,
                end_lsn,
            } => {
                self.trace.record(n, "commit-acked", xid.0, lsn.0);
                let at = self.trace.elapsed();
                let ack = Ack {
                    request,
                    xid,
                    lsn,
                    end: end_lsn,
                    at,
                };
                self.on_ack(s, node, ack);
            }
            Observation::GetPageSent { page, lsn, latest } => {
                self.on_get_page_sent(s, node, page, lsn, latest)
            }
            Observation::PageRead {
                page,
                lsn,
                answered_page,
                answered_lsn,
                page_crc,
                checksum_ok,
                records_applied,
                latency_ns,
            } => {
                self.trace.record(n, "page-read", u64::from(page.0), lsn.0);
                s.client_reads.push((self.now_ms(), latency_ns));
                s.pages.reads += 1;
                s.pages.records_applied.push(records_applied);
                s.last_read = Some(self.trace.elapsed());
                let answered = (answered_page, answered_lsn);
                self.on_page_read(s, node, (page, lsn), answered, page_crc, checksum_ok);
            }
            Observation::GetPageServed {
                page,
                lsn,
                records_applied,
                layers_visited,
                bytes_read,
                latency_ns,
                wait_ns,
            } => {
                s.served.push(Served {
                    time_ms: self.now_ms(),
                    node: n,
                    page: page.0,
                    records: records_applied,
                    layers: layers_visited,
                    bytes_read,
                    latency_ns,
                    wait_ns,
                });
                self.check_read_amplification(s, node, page, lsn);
            }
            Observation::PageReadFailed {
                page,
                lsn,
                waited_ns,
            } => {
                s.failed_read_times.push(self.now_ms());
                self.trace
                    .record(n, "page-read-failed", u64::from(page.0), lsn.0);
                s.pages.failed_reads += 1;
                let sent = self
                    .trace
                    .elapsed()
                    .saturating_sub(Duration::from_nanos(waited_ns));
                s.last_failed_read_sent = Some(sent);
            }
            Observation::ImageCreated { page, lsn } => {
                self.trace
                    .record(n, "image-created", u64::from(page.0), lsn.0);
                self.on_image_created(s, node, page, lsn);
            }
            Observation::Ingested { lsn } => self.on_ingested(s, node, lsn),
            Observation::LayersFlushed {
                disk_consistent_lsn,
                remote_consistent_lsn,
            } => {
                self.trace.record(
                    n,
                    "layers-flushed",
                    disk_consistent_lsn.0,
                    remote_consistent_lsn.0,
                );
                self.on_layers_flushed(s, node, disk_consistent_lsn, remote_consistent_lsn);
            }
            Observation::CommitLsn { term, commit_lsn } => {
                self.trace.record(n, "commit-lsn", term.0, commit_lsn.0);
                self.on_commit_lsn(s, node, term, commit_lsn);
            }
            Observation::WalRemoved {
                wal_start,
                segments,
            } => {
                self.trace
                    .record(n, "wal-removed", wal_start.0, u64::from(segments));
                s.segments_removed += u64::from(segments);
                self.check_removal(s, node, wal_start);
            }
            Observation::BasebackupPage {
                page,
                lsn,
                page_crc,
                checksum_ok,
            } => {
                self.trace
                    .record(n, "basebackup-page", u64::from(page.0), lsn.0);
                if s.last_basebackup.replace((node, lsn)) != Some((node, lsn)) {
                    s.basebackups += 1;
                }
                let source = PageSource::Basebackup;
                self.on_served_page(s, node, (page, lsn), page_crc, checksum_ok, source);
            }
        }
    }
}
