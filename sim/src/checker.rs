//! The checkers: the harness's side of the observation channel.
//!
//! Every observation goes into the trace (and so into the trace hash) and through the
//! invariants of DESIGN §5 that can be checked as it happens:
//!
//! - **wal-agreement**: an acceptor's term and persisted commit LSN never decrease (across
//!   restarts); its in-memory commit LSN never decreases within a process; and the bytes below
//!   any commit LSN any acceptor reports are the same on every acceptor, for the whole run: the
//!   checker keeps the longest committed prefix seen and compares each acceptor's newly
//!   committed bytes against it.
//! - **durability** (at the end): every commit acknowledged to the client lies in the final
//!   committed WAL, at its LSN, as a commit record of its xid. As it happens: a safekeeper
//!   removes WAL only below what every pageserver holds in the object store, since a pageserver
//!   that loses its disk rebuilds from there and needs the WAL after it.
//! - **liveness** (at the end): after the faults heal, commits are acknowledged again.
//!
//! The first violation is kept; the run stops soon after it.

use crate::oracle::Oracle;
use lakesim_faults::{Disk, Trace};
use lakesim_nodes::observe::{Observation, Observer};
use lakesim_nodes::pageserver::layers::{decode_delta, LayerName};
use lakesim_nodes::safekeeper::wal_store::read_wal;
use lakesim_nodes::wal::{decode_stream, RecordBody};
use lakesim_nodes::{Lsn, NodeId, PageId, Term, Xid};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub invariant: String,
    pub time_ms: u64,
    pub nodes: Vec<u32>,
    pub detail: String,
}

#[derive(Default)]
struct AcceptorView {
    term: Term,
    durable_commit_lsn: Lsn,
    commit_lsn: Lsn,
    /// Its WAL below this LSN was compared with the committed prefix and still holds.
    verified_lsn: Lsn,
    /// The election key of its durable log.
    last_log_term: Term,
    flush_lsn: Lsn,
}

#[derive(Default)]
struct State {
    violation: Option<Violation>,
    acceptors: BTreeMap<NodeId, AcceptorView>,
    /// The longest committed WAL prefix any acceptor has reported.
    committed: Vec<u8>,
    acked: Vec<(Xid, Lsn, Lsn)>,
    /// When each acknowledgement in `acked` came.
    ack_times: Vec<Duration>,
    last_ack: Option<Duration>,
    served: Vec<Served>,
    /// Each GetPage answer the compute got: when (ms) and its latency as the compute saw it.
    client_reads: Vec<(f64, u64)>,
    /// When each GetPage failed or went unanswered (ms).
    failed_read_times: Vec<f64>,
    /// The LSN of every image layer made.
    image_lsns: Vec<Lsn>,
    commits_acked: u64,
    elections: u64,
    oracle: Oracle,
    /// Pages served (or imaged) at LSNs the oracle has not replayed to yet.
    pending_pages: Vec<PendingPage>,
    pages: PageStats,
    /// Each pageserver's ingest position.
    ingested: BTreeMap<NodeId, Lsn>,
    /// Each pageserver's promise: WAL below this is durable in its layer files.
    disk_consistent: BTreeMap<NodeId, Lsn>,
    /// Files bit rot hit, by node: a fault beyond any durability promise.
    rotted: BTreeSet<(NodeId, String)>,
    last_read: Option<Duration>,
    /// Each pageserver's `remote_consistent_lsn`, highest seen: the object store never forgets.
    remote_consistent: BTreeMap<NodeId, Lsn>,
    segments_removed: u64,
    /// Basebackups computes started from, and the one whose pages arrive now.
    basebackups: u64,
    last_basebackup: Option<(NodeId, Lsn)>,
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

/// The harness's observer: records the trace and checks invariants.
pub struct Checker {
    trace: Trace,
    /// The safekeepers' disks.
    disks: BTreeMap<NodeId, Disk>,
    pageservers: Vec<NodeId>,
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

impl Checker {
    pub fn new(trace: Trace, disks: BTreeMap<NodeId, Disk>, pageservers: Vec<NodeId>) -> Checker {
        Checker {
            trace,
            disks,
            pageservers,
            state: Mutex::new(State::default()),
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
        let acks: Vec<(Lsn, Duration)> = s
            .acked
            .iter()
            .zip(&s.ack_times)
            .map(|((_, lsn, _), t)| (*lsn, *t))
            .collect();
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
            safekeeper_wal_held: self.disks.values().map(wal_held).max().unwrap_or(0),
        }
    }

    /// Records a violation (the first one wins).
    pub fn fail(&self, invariant: &str, nodes: &[NodeId], detail: String) {
        let mut s = self.state.lock().unwrap();
        self.fail_locked(&mut s, invariant, nodes, detail);
    }

    fn fail_locked(&self, s: &mut State, invariant: &str, nodes: &[NodeId], detail: String) {
        if s.violation.is_some() {
            return;
        }
        self.trace.record(0, "violation", 0, 0);
        s.violation = Some(Violation {
            invariant: invariant.to_string(),
            time_ms: self.trace.elapsed().as_millis() as u64,
            nodes: nodes.iter().map(|n| n.0).collect(),
            detail,
        });
    }

    fn on_acceptor(&self, s: &mut State, node: NodeId, term: Term, commit: Lsn, durable: Lsn) {
        let view = s.acceptors.entry(node).or_default();
        let mut broken = None;
        if term < view.term {
            broken = Some(format!("term went back from {} to {term}", view.term));
        } else if durable < view.durable_commit_lsn {
            broken = Some(format!(
                "persisted commit LSN went back from {} to {durable}",
                view.durable_commit_lsn
            ));
        } else if commit < view.commit_lsn {
            broken = Some(format!(
                "commit LSN went back from {} to {commit}",
                view.commit_lsn
            ));
        }
        view.term = term;
        view.durable_commit_lsn = durable;
        view.commit_lsn = commit;
        if let Some(detail) = broken {
            return self.fail_locked(s, "wal-agreement", &[node], detail);
        }
        self.check_committed_bytes(s, node, commit);
    }

    /// Compares the acceptor's WAL below `commit` with the committed prefix, and extends the
    /// prefix when the acceptor knows more.
    fn check_committed_bytes(&self, s: &mut State, node: NodeId, commit: Lsn) {
        let verified = s.acceptors[&node].verified_lsn;
        if commit <= verified {
            return;
        }
        let bytes = read_wal(&self.disks[&node], verified, commit).expect("acceptor disk");
        if (bytes.len() as u64) < commit.bytes_since(verified) {
            let detail = format!(
                "reports commit LSN {commit} but holds WAL only to {}",
                Lsn(verified.0 + bytes.len() as u64)
            );
            return self.fail_locked(s, "wal-agreement", &[node], detail);
        }
        let from = verified.0 as usize;
        let overlap = s.committed.len().saturating_sub(from).min(bytes.len());
        if let Some(i) = (0..overlap).find(|i| s.committed[from + i] != bytes[*i]) {
            let detail = format!(
                "WAL at LSN {} disagrees with the committed WAL",
                Lsn((from + i) as u64)
            );
            return self.fail_locked(s, "wal-agreement", &[node], detail);
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

    /// True when `node`'s WAL holds the committed prefix up to `lsn`, byte for byte. Extends the
    /// node's verified prefix, so each byte is compared once.
    fn holds_committed(&self, s: &mut State, node: NodeId, lsn: Lsn) -> bool {
        let Some(view) = s.acceptors.get(&node) else {
            return false;
        };
        if view.verified_lsn >= lsn {
            return true;
        }
        if view.flush_lsn < lsn {
            return false;
        }
        let from = view.verified_lsn;
        let bytes = read_wal(&self.disks[&node], from, lsn).expect("acceptor disk");
        let expected = &s.committed[from.0 as usize..lsn.0 as usize];
        if bytes != expected {
            return false;
        }
        s.acceptors.get_mut(&node).unwrap().verified_lsn = lsn;
        true
    }

    /// Leader completeness, the heart of durability: whatever majority elects the next proposer,
    /// the log it adopts (highest last-log term, then flush LSN, as DESIGN §3 says) holds all the
    /// committed WAL. Checked on the acceptors' durable states after every change, so a commit
    /// that a future election could undo is caught when it is declared, not only if that
    /// election happens to run.
    fn check_committed_survives_elections(&self, s: &mut State) {
        let committed = Lsn(s.committed.len() as u64);
        if committed == Lsn::ZERO || s.violation.is_some() {
            return;
        }
        let ids: Vec<NodeId> = self.disks.keys().copied().collect();
        let quorum = ids.len() / 2 + 1;
        for mask in 0u32..(1 << ids.len()) {
            if mask.count_ones() as usize != quorum {
                continue;
            }
            let key = |s: &State, id: &NodeId| {
                s.acceptors
                    .get(id)
                    .map_or((Term(0), Lsn::ZERO), |v| (v.last_log_term, v.flush_lsn))
            };
            let members = ids.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0);
            let donor = *members
                .map(|(_, id)| id)
                .max_by_key(|id| key(s, id))
                .unwrap();
            if !self.holds_committed(s, donor, committed) {
                let (term, flush) = key(s, &donor);
                let voters: Vec<String> = ids
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, id)| id.to_string())
                    .collect();
                let detail = format!(
                    "WAL committed to {committed} would not survive an election by {{{}}}: its most advanced log ({donor}, last-log term {}, flush {flush}) does not hold it",
                    voters.join(","),
                    term.0
                );
                return self.fail_locked(s, "durability", &[donor], detail);
            }
        }
    }

    /// Invariant 5 for pageservers: each caught up with what was committed when the faults
    /// healed, and GetPage answered again after that.
    fn check_pageservers_caught_up(&self, s: &mut State, healed_at: Duration, target: Lsn) {
        let behind = s
            .ingested
            .iter()
            .find(|(_, lsn)| **lsn < target)
            .map(|(n, l)| (*n, *l));
        if let Some((node, lsn)) = behind {
            let detail = format!(
                "pageserver ingested only to {lsn}, short of the {target} committed when the faults healed"
            );
            return self.fail_locked(s, "liveness", &[node], detail);
        }
        if !s.ingested.is_empty() && s.last_read.is_none_or(|t| t < healed_at) {
            let detail = "no GetPage answered after the faults healed".to_string();
            self.fail_locked(s, "liveness", &[], detail);
        }
    }

    /// A safekeeper removed its WAL before `wal_start`: every pageserver must hold the WAL up
    /// to there in the object store, or one that loses its disk finds it nowhere.
    fn check_removal(&self, s: &mut State, node: NodeId, wal_start: Lsn) {
        let short = self.pageservers.iter().find_map(|ps| {
            let remote = s.remote_consistent.get(ps).copied().unwrap_or(Lsn::ZERO);
            (remote < wal_start).then_some((*ps, remote))
        });
        if let Some((ps, remote)) = short {
            let detail = format!(
                "safekeeper removed its WAL before {wal_start}, but pageserver {ps} has only to {remote} in the object store: after a disk loss it could not rebuild"
            );
            self.fail_locked(s, "durability", &[node, ps], detail);
        }
    }

    /// `node` lost its whole disk: its durability promises went with it (a fault beyond them).
    pub fn note_disk_loss(&self, node: NodeId) {
        self.state.lock().unwrap().disk_consistent.remove(&node);
    }

    /// Bit rot hit `file` on `node`'s disk.
    pub fn note_rot(&self, node: NodeId, file: String) {
        self.state.lock().unwrap().rotted.insert((node, file));
    }

    /// Right after a pageserver crash: the WAL it promised durable (`disk_consistent_lsn`) must
    /// be covered by intact delta layer files on what survived of its disk.
    pub fn check_layers_survived(&self, node: NodeId, disk: &Disk) {
        let mut s = self.state.lock().unwrap();
        let promised = s.disk_consistent.get(&node).copied().unwrap_or(Lsn::ZERO);
        let mut deltas: Vec<(Lsn, Lsn, String)> = disk
            .list()
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
            let rotted = s.rotted.contains(&(node, name.clone()));
            let intact = rotted
                || disk
                    .read_all(&name)
                    .is_ok_and(|b| decode_delta(&b, start, end, true).is_ok());
            if intact {
                covered = end;
            }
        }
        if covered < promised {
            let detail = format!(
                "pageserver promised WAL to {promised} durable in its layers, but after the crash they cover only to {covered}"
            );
            self.fail_locked(&mut s, "durability", &[node], detail);
        }
    }

    /// The committed WAL's length now (the runner notes it when the faults heal).
    pub fn committed_lsn(&self) -> Lsn {
        Lsn(self.state.lock().unwrap().committed.len() as u64)
    }

    /// Compares every pending page the oracle can now judge.
    fn check_pending_pages(&self, s: &mut State) {
        if let Some((page, lsn)) = s.oracle.reinitialised() {
            let detail = format!(
                "the committed WAL initialises page {} again at {lsn}: the compute that wrote it had lost the page from its view of the database",
                page.0
            );
            self.fail_locked(s, "page-reconstruction", &[], detail);
        }
        let pending = std::mem::take(&mut s.pending_pages);
        for p in pending {
            let Some(expected) = s.oracle.page_crc_at(p.page, p.lsn) else {
                s.pending_pages.push(p);
                continue;
            };
            if expected != p.crc && s.violation.is_none() {
                let changes: Vec<String> = s
                    .oracle
                    .changes(p.page, p.lsn)
                    .iter()
                    .rev()
                    .take(12)
                    .map(|l| l.to_string())
                    .collect();
                tracing::debug!(
                    page = p.page.0,
                    "oracle: page changed at {}",
                    changes.join(" ")
                );
                let detail = match p.source {
                    PageSource::ImageLayer => format!(
                        "image layer of page {} labelled {} differs from the replay of the WAL to that LSN",
                        p.page.0, p.lsn
                    ),
                    PageSource::GetPage => format!(
                        "GetPage(page {}, {}) returned a page that differs from the oracle's replay of the committed WAL",
                        p.page.0, p.lsn
                    ),
                    PageSource::Basebackup => format!(
                        "basebackup at {} holds a page {} that differs from the oracle's replay of the committed WAL",
                        p.lsn, p.page.0
                    ),
                };
                self.fail_locked(s, "page-reconstruction", &[p.node], detail);
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

    /// End of run: every acknowledged commit is in the committed WAL, and commits resumed after
    /// the faults healed at `healed_at`.
    pub fn check_end(&self, healed_at: Duration, committed_at_heal: Lsn) {
        let mut s = self.state.lock().unwrap();
        if s.violation.is_some() {
            return;
        }
        let mut wal = s.committed.clone();
        wal.extend_from_slice(&self.majority_tail(Lsn(wal.len() as u64)));
        let decoded = decode_stream(&wal, Lsn::ZERO, Some(Lsn::ZERO));
        let commits: BTreeSet<(Xid, Lsn)> = decoded
            .records
            .iter()
            .filter(|(_, r)| r.body == RecordBody::Commit)
            .map(|(lsn, r)| (r.xid, *lsn))
            .collect();
        s.oracle.advance(&wal);
        self.check_pending_pages(&mut s);
        if s.violation.is_some() {
            return;
        }
        let lost = s
            .acked
            .iter()
            .find(|(xid, lsn, _)| !commits.contains(&(*xid, *lsn)))
            .copied();
        if let Some((xid, lsn, end)) = lost {
            let detail = format!(
                "commit of xid {} at {lsn}..{end} was acknowledged but is not in the committed WAL (committed to {})",
                xid.0, decoded.end_lsn
            );
            return self.fail_locked(&mut s, "durability", &[], detail);
        }
        if s.last_ack.is_none_or(|t| t < healed_at) {
            let detail = format!(
                "no commit acknowledged after the faults healed at {:.3}s",
                healed_at.as_secs_f64()
            );
            return self.fail_locked(&mut s, "liveness", &[], detail);
        }
        self.check_pageservers_caught_up(&mut s, healed_at, committed_at_heal);
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

impl Checker {
    /// The WAL past `from` that a majority of acceptors hold byte for byte: durable, though the
    /// acceptors may not have heard yet that it is committed (the last acknowledgements of a run).
    fn majority_tail(&self, from: Lsn) -> Vec<u8> {
        let tails: Vec<Vec<u8>> = self
            .disks
            .values()
            .map(|d| read_wal(d, from, Lsn(u64::MAX / 2)).expect("acceptor disk"))
            .collect();
        let quorum = tails.len() / 2 + 1;
        let mut best: &[u8] = &[];
        for candidate in &tails {
            let mut shared: Vec<usize> = tails
                .iter()
                .map(|t| t.iter().zip(candidate).take_while(|(a, b)| a == b).count())
                .collect();
            shared.sort_unstable_by(|a, b| b.cmp(a));
            if shared[quorum - 1] > best.len() {
                best = &candidate[..shared[quorum - 1]];
            }
        }
        best.to_vec()
    }
}

impl Observer for Checker {
    fn observe(&self, node: NodeId, obs: Observation) {
        let n = node.0;
        let mut s = self.state.lock().unwrap();
        match obs {
            Observation::Delivered { from, kind, term } => {
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
                self.on_acceptor(&mut s, node, term, commit_lsn, durable_commit_lsn);
                self.check_committed_survives_elections(&mut s);
            }
            Observation::Truncated { lsn } => {
                self.trace.record(n, "truncated", lsn.0, 0);
                let view = s.acceptors.entry(node).or_default();
                view.verified_lsn = view.verified_lsn.min(lsn);
            }
            Observation::Started => {
                self.trace.record(n, "started", 0, 0);
                // A new process starts from its persisted commit LSN.
                if let Some(view) = s.acceptors.get_mut(&node) {
                    view.commit_lsn = Lsn::ZERO;
                }
                // A restarted pageserver has caught up only once it says so again.
                if let Some(ingested) = s.ingested.get_mut(&node) {
                    *ingested = Lsn::ZERO;
                }
            }
            Observation::Elected {
                term,
                epoch_start_lsn,
            } => {
                self.trace.record(n, "elected", term.0, epoch_start_lsn.0);
                s.elections += 1;
            }
            Observation::Deposed { term } => self.trace.record(n, "deposed", term.0, 0),
            Observation::CommitAcked { xid, lsn, end_lsn } => {
                self.trace.record(n, "commit-acked", xid.0, lsn.0);
                s.acked.push((xid, lsn, end_lsn));
                s.commits_acked += 1;
                let now = self.trace.elapsed();
                s.ack_times.push(now);
                s.last_ack = Some(now);
            }
            Observation::PageRead {
                page,
                lsn,
                page_crc,
                checksum_ok,
                records_applied,
                latency_ns,
            } => {
                self.trace.record(n, "page-read", u64::from(page.0), lsn.0);
                let at_ms = self.trace.elapsed().as_secs_f64() * 1e3;
                s.client_reads.push((at_ms, latency_ns));
                s.pages.reads += 1;
                s.pages.records_applied.push(records_applied);
                s.last_read = Some(self.trace.elapsed());
                if !checksum_ok {
                    let detail = format!(
                        "GetPage(page {}, {lsn}) returned a page whose checksum does not hold",
                        page.0
                    );
                    return self.fail_locked(&mut s, "no-corrupt-page", &[node], detail);
                }
                self.on_page(&mut s, node, page, lsn, page_crc, PageSource::GetPage);
            }
            Observation::GetPageServed {
                page,
                records_applied,
                layers_visited,
                bytes_read,
                latency_ns,
                wait_ns,
            } => s.served.push(Served {
                time_ms: self.trace.elapsed().as_secs_f64() * 1e3,
                node: n,
                page: page.0,
                records: records_applied,
                layers: layers_visited,
                bytes_read,
                latency_ns,
                wait_ns,
            }),
            Observation::PageReadFailed { page, lsn } => {
                s.failed_read_times
                    .push(self.trace.elapsed().as_secs_f64() * 1e3);
                self.trace
                    .record(n, "page-read-failed", u64::from(page.0), lsn.0);
                s.pages.failed_reads += 1;
            }
            Observation::ImageCreated {
                page,
                lsn,
                page_crc,
            } => {
                self.trace
                    .record(n, "image-created", u64::from(page.0), lsn.0);
                s.pages.images_created += 1;
                s.pages.image_bytes += lakesim_nodes::page::PAGE_SIZE as u64;
                s.image_lsns.push(lsn);
                self.on_page(&mut s, node, page, lsn, page_crc, PageSource::ImageLayer);
            }
            Observation::Ingested { lsn } => {
                s.ingested.insert(node, lsn);
            }
            Observation::LayersFlushed {
                disk_consistent_lsn,
                remote_consistent_lsn,
            } => {
                s.disk_consistent.insert(node, disk_consistent_lsn);
                let remote = s.remote_consistent.entry(node).or_default();
                *remote = (*remote).max(remote_consistent_lsn);
                self.trace.record(
                    n,
                    "layers-flushed",
                    disk_consistent_lsn.0,
                    remote_consistent_lsn.0,
                );
            }
            Observation::CommitLsn { term, commit_lsn } => {
                self.trace.record(n, "commit-lsn", term.0, commit_lsn.0);
            }
            Observation::WalRemoved {
                wal_start,
                segments,
            } => {
                self.trace
                    .record(n, "wal-removed", wal_start.0, u64::from(segments));
                s.segments_removed += u64::from(segments);
                self.check_removal(&mut s, node, wal_start);
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
                if !checksum_ok {
                    let detail = format!(
                        "basebackup at {lsn} holds page {} whose checksum does not hold",
                        page.0
                    );
                    return self.fail_locked(&mut s, "no-corrupt-page", &[node], detail);
                }
                self.on_page(&mut s, node, page, lsn, page_crc, PageSource::Basebackup);
            }
        }
    }
}
