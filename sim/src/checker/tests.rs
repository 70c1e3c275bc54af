//! Each check fed a hand-made sequence of observations (and disk contents) that breaks it.

use super::*;
use lakesim_faults::DiskConfig;
use lakesim_nodes::compute::workload::{DeltaSpec, WorkItem};
use lakesim_nodes::wal::{RecordBody, WalRecord};

const SK: [NodeId; 3] = [NodeId(1), NodeId(2), NodeId(3)];
const PS: NodeId = NodeId(10);
const COMPUTE: NodeId = NodeId(20);

struct Fixture {
    checker: Checker,
    disks: BTreeMap<NodeId, Disk>,
    client: ClientLog,
}

fn fixture() -> Fixture {
    let disk = |id: u32| Disk::new(id, DiskConfig::default(), u64::from(id), None);
    let disks: BTreeMap<NodeId, Disk> = SK.iter().map(|id| (*id, disk(id.0))).collect();
    let client = ClientLog::default();
    let sources = Sources {
        image_policy: ImagePolicy::PerPageRecords(2),
        safekeeper_disks: disks.clone(),
        wal_segment_size: SegmentSize::DEFAULT,
        remote_prefixes: [(PS, RemotePrefix("pageserver1/".into()))]
            .into_iter()
            .collect(),
        pageserver_disks: [(PS, disk(PS.0))].into_iter().collect(),
        bucket: Bucket::default(),
        client: client.clone(),
    };
    let checker = Checker::new(Trace::new(false), sources);
    Fixture {
        checker,
        disks,
        client,
    }
}

/// Runs `f` inside a madsim runtime (the trace reads the simulated clock) and returns the
/// check that caught a violation.
fn caught(f: impl FnOnce(&Fixture) + Send + 'static) -> Option<Check> {
    let rt = madsim::runtime::Runtime::new();
    rt.block_on(async move {
        let fx = fixture();
        f(&fx);
        let v = fx.checker.violation()?;
        Some(check_named(&v.caught_by))
    })
}

fn check_named(caught_by: &str) -> Check {
    *Check::ALL
        .iter()
        .find(|c| caught_by == format!("check {}", c.name()))
        .unwrap_or_else(|| panic!("not a check: {caught_by}"))
}

#[test]
fn every_check_has_its_own_name() {
    let names: std::collections::BTreeSet<&str> = Check::ALL.iter().map(|c| c.name()).collect();
    assert_eq!(names.len(), Check::ALL.len());
}

/// A WAL of `bodies` (xid 1), and each record's end LSN.
fn wal_of(bodies: Vec<RecordBody>) -> (Vec<u8>, Vec<Lsn>) {
    let (mut wal, mut prev, mut ends) = (Vec::new(), Lsn::ZERO, Vec::new());
    for body in bodies {
        let rec = WalRecord {
            xid: Xid(1),
            prev_lsn: prev,
            body,
        };
        prev = Lsn(wal.len() as u64);
        rec.encode_into(&mut wal);
        ends.push(Lsn(wal.len() as u64));
    }
    (wal, ends)
}

fn put_wal(disk: &Disk, wal: &[u8]) {
    disk.create("wal/00000000").unwrap();
    disk.write("wal/00000000", 0, wal).unwrap();
}

fn acceptor(fx: &Fixture, node: NodeId, term: u64, flush: Lsn, commit: Lsn) {
    let obs = Observation::Acceptor {
        term: Term(term),
        last_log_term: Term(term),
        flush_lsn: flush,
        commit_lsn: commit,
        durable_commit_lsn: Lsn::ZERO,
    };
    fx.checker.observe(node, obs);
}

fn delta(page: u32, bytes: &[u8]) -> RecordBody {
    RecordBody::PageDelta {
        page: PageId(page),
        offset: 0,
        bytes: bytes.to_vec(),
    }
}

/// Three acceptors hold `wal`, report it flushed in term 1, then committed.
fn commit_everywhere(fx: &Fixture, wal: &[u8]) -> Lsn {
    let end = Lsn(wal.len() as u64);
    for sk in SK {
        put_wal(&fx.disks[&sk], wal);
        acceptor(fx, sk, 1, end, Lsn::ZERO);
    }
    for sk in SK {
        acceptor(fx, sk, 1, end, end);
    }
    end
}

fn end_of_run(fx: &Fixture) {
    fx.checker.check_end(EndOfRun {
        healed_at: Duration::ZERO,
        catch_up_target: Lsn::ZERO,
        at_heal: Default::default(),
    });
}

#[test]
fn a_clean_history_passes() {
    assert_eq!(
        caught(|fx| {
            let (wal, ends) = wal_of(vec![delta(1, b"ab"), RecordBody::Commit]);
            commit_everywhere(fx, &wal);
            fx.checker.observe(
                COMPUTE,
                Observation::Elected {
                    term: Term(1),
                    epoch_start_lsn: Lsn::ZERO,
                    proposer: 7,
                },
            );
            let obs = Observation::CommitLsn {
                term: Term(1),
                commit_lsn: ends[1],
            };
            fx.checker.observe(COMPUTE, obs);
        }),
        None
    );
}

#[test]
fn an_xid_committed_twice_is_caught() {
    let check = caught(|fx| {
        // Both commits carry xid 1.
        let (wal, _) = wal_of(vec![RecordBody::Commit, RecordBody::Commit]);
        commit_everywhere(fx, &wal);
        end_of_run(fx);
    });
    assert_eq!(check, Some(Check::XidCommittedOnce));
}

#[test]
fn a_term_going_back_breaks_monotonicity() {
    let check = caught(|fx| {
        acceptor(fx, SK[0], 3, Lsn::ZERO, Lsn::ZERO);
        acceptor(fx, SK[0], 2, Lsn::ZERO, Lsn::ZERO);
    });
    assert_eq!(check, Some(Check::AcceptorMonotonic));
}

#[test]
fn acceptors_that_disagree_below_their_commit_lsn_are_caught() {
    let check = caught(|fx| {
        // SK[0] and SK[2] hold one log of term 2; SK[1] another, of term 1.
        let (wal, ends) = wal_of(vec![delta(1, b"ab")]);
        let (other, _) = wal_of(vec![delta(1, b"xy")]);
        for (sk, bytes, term) in [(SK[0], &wal, 2), (SK[1], &other, 1), (SK[2], &wal, 2)] {
            put_wal(&fx.disks[&sk], bytes);
            acceptor(fx, sk, term, ends[0], Lsn::ZERO);
        }
        acceptor(fx, SK[0], 2, ends[0], ends[0]);
        assert_eq!(fx.checker.violation(), None);
        acceptor(fx, SK[1], 2, ends[0], ends[0]);
    });
    assert_eq!(check, Some(Check::CommittedWalAgrees));
}

#[test]
fn committed_wal_lost_in_a_clean_crash_is_caught() {
    let check = caught(|fx| {
        let (wal, _) = wal_of(vec![delta(1, b"ab"), delta(1, b"cd")]);
        let end = commit_everywhere(fx, &wal);
        // Two acceptors lose the tail cleanly (no torn bytes, so no truncation report) and
        // come back claiming their old flush LSN: the checker reads their disks again, and a
        // majority of them would elect a log that lacks the committed WAL.
        for sk in &SK[..2] {
            fx.disks[sk].set_len("wal/00000000", 10).unwrap();
            fx.checker.note_crash(*sk);
            fx.checker.observe(*sk, Observation::Started);
            acceptor(fx, *sk, 1, end, Lsn::ZERO);
        }
    });
    assert_eq!(check, Some(Check::LeaderCompleteness));
}

#[test]
fn two_proposers_in_one_term_break_election_safety() {
    let check = caught(|fx| {
        for (node, proposer) in [(COMPUTE, 1), (NodeId(21), 2)] {
            let obs = Observation::Elected {
                term: Term(4),
                epoch_start_lsn: Lsn(100),
                proposer,
            };
            fx.checker.observe(node, obs);
        }
    });
    assert_eq!(check, Some(Check::ElectionSafety));
}

#[test]
fn a_commit_lsn_past_the_quorum_flush_is_caught() {
    let check = caught(|fx| {
        acceptor(fx, SK[0], 2, Lsn(500), Lsn::ZERO);
        acceptor(fx, SK[1], 2, Lsn(300), Lsn::ZERO);
        let obs = Observation::CommitLsn {
            term: Term(2),
            commit_lsn: Lsn(400),
        };
        fx.checker.observe(COMPUTE, obs);
    });
    assert_eq!(check, Some(Check::CommitNeedsQuorum));
}

/// The compute acknowledges xid 1's commit at 50..75.
fn ack_commit_at_50(fx: &Fixture) {
    let ack = Observation::CommitAcked {
        request: 0,
        xid: Xid(1),
        lsn: Lsn(50),
        end_lsn: Lsn(75),
    };
    fx.checker.observe(COMPUTE, ack);
}

/// The compute asks for the latest version of page 1 at LSN 60, below that commit's end.
fn read_latest_at_60(fx: &Fixture) {
    let sent = Observation::GetPageSent {
        page: PageId(1),
        lsn: Lsn(60),
        latest: true,
    };
    fx.checker.observe(COMPUTE, sent);
}

#[test]
fn a_latest_read_below_an_acknowledged_commit_is_caught() {
    let check = caught(|fx| {
        ack_commit_at_50(fx);
        read_latest_at_60(fx);
    });
    assert_eq!(check, Some(Check::ReadYourWrites));
}

/// The read above, after safekeeper SK[1] cut its WAL below the acknowledged commit over rot:
/// in one copy, it should have repaired it, and the read is caught; in both copies (a double
/// fault it cannot tell from a torn tail), the commit may be gone with it, and is not judged.
#[test]
fn a_commit_a_double_fault_took_back_is_not_judged() {
    let read_after_rot = |both_copies: bool| {
        caught(move |fx| {
            ack_commit_at_50(fx);
            {
                // What `note_rot` records for rot in the primary copy and the mirror.
                let mut s = fx.checker.state.lock().unwrap();
                s.wal_flips
                    .entry(SK[1])
                    .or_default()
                    .insert(Lsn(45), (1, 0));
                if both_copies {
                    s.mirror_flips.entry(SK[1]).or_default().insert(Lsn(46));
                }
            }
            let cut = Observation::Truncated { lsn: Lsn(40) };
            fx.checker.observe(SK[1], cut);
            read_latest_at_60(fx);
        })
    };
    assert_eq!(read_after_rot(false), Some(Check::ReadYourWrites));
    assert_eq!(read_after_rot(true), None);
}

#[test]
fn an_acknowledged_transaction_missing_a_write_is_caught() {
    let check = caught(|fx| {
        let write = DeltaSpec {
            page: 1,
            offset: 0,
            len: 2,
            seed: 9,
        };
        let asked = WorkItem::Txn {
            deltas: vec![write.clone(), DeltaSpec { seed: 3, ..write }],
        };
        let mut source = fx
            .client
            .record(Box::new(lakesim_nodes::compute::workload::Items::new(
                vec![asked],
            )));
        source.next();
        // The WAL holds the first write and the commit, not the second write.
        let (wal, ends) = wal_of(vec![delta(1, &[9, 40]), RecordBody::Commit]);
        commit_everywhere(fx, &wal);
        let ack = Observation::CommitAcked {
            request: 0,
            xid: Xid(1),
            lsn: ends[0],
            end_lsn: ends[1],
        };
        fx.checker.observe(COMPUTE, ack);
        end_of_run(fx);
    });
    assert_eq!(check, Some(Check::AckedTxnInWal));
}

fn page_read(fx: &Fixture, asked: (u32, Lsn), answered: (u32, Lsn), crc: u32, ok: bool) {
    let obs = Observation::PageRead {
        page: PageId(asked.0),
        lsn: asked.1,
        answered_page: PageId(answered.0),
        answered_lsn: answered.1,
        page_crc: crc,
        checksum_ok: ok,
        records_applied: 0,
        latency_ns: 0,
    };
    fx.checker.observe(COMPUTE, obs);
}

#[test]
fn an_answer_for_another_page_is_caught() {
    let check = caught(|fx| page_read(fx, (1, Lsn(10)), (2, Lsn(10)), 0, true));
    assert_eq!(check, Some(Check::AnswerAsAsked));
}

#[test]
fn a_page_failing_its_checksum_is_caught() {
    let check = caught(|fx| page_read(fx, (1, Lsn(10)), (1, Lsn(10)), 0, false));
    assert_eq!(check, Some(Check::PageChecksum));
}

#[test]
fn a_page_that_differs_from_the_replay_is_caught() {
    let check = caught(|fx| {
        let (wal, ends) = wal_of(vec![delta(1, b"ab")]);
        commit_everywhere(fx, &wal);
        page_read(fx, (1, ends[0]), (1, ends[0]), 12345, true);
    });
    assert_eq!(check, Some(Check::PageMatchesOracle));
}

#[test]
fn a_page_served_beyond_the_committed_wal_is_caught_at_the_end() {
    let check = caught(|fx| {
        page_read(fx, (1, Lsn(1000)), (1, Lsn(1000)), 0, true);
        end_of_run(fx);
    });
    assert_eq!(check, Some(Check::ServedWithinCommitted));
}

#[test]
fn committed_wal_that_stops_decoding_is_caught() {
    let check = caught(|fx| {
        let (mut wal, _) = wal_of(vec![delta(1, b"ab"), delta(1, b"cd")]);
        let last = wal.len() - 1;
        wal[last] ^= 0xff;
        commit_everywhere(fx, &wal);
    });
    assert_eq!(check, Some(Check::CommittedWalDecodes));
}

#[test]
fn ingest_past_the_committed_wal_is_caught() {
    let check = caught(|fx| {
        fx.checker
            .observe(PS, Observation::Ingested { lsn: Lsn(10) })
    });
    assert_eq!(check, Some(Check::PageserverLsnOrder));
}

/// A damaged acceptor (out of the WAL checks) was the only one told of a commit: the committed
/// prefix, grown from witnesses' disks only, lags it, and a pageserver that ingested WAL it
/// served up to that commit is not blamed (storm seed 1379 after madsim patch 7); past it, it is.
#[test]
fn ingest_up_to_a_commit_only_a_damaged_acceptor_heard_is_not_blamed() {
    let ingest_to = |lsn: u64| {
        caught(move |fx| {
            fx.checker.observe(SK[1], Observation::StaysOut);
            acceptor(fx, SK[1], 1, Lsn(10), Lsn(10));
            fx.checker
                .observe(PS, Observation::Ingested { lsn: Lsn(lsn) })
        })
    };
    assert_eq!(ingest_to(10), None);
    assert_eq!(ingest_to(11), Some(Check::PageserverLsnOrder));
}

#[test]
fn wal_removed_without_an_index_in_the_store_is_caught() {
    let check = caught(|fx| {
        let obs = Observation::WalRemoved {
            wal_start: Lsn(65536),
            segments: 1,
        };
        fx.checker.observe(SK[0], obs);
    });
    assert_eq!(check, Some(Check::RemovalCoveredByStore));
}

#[test]
fn durable_metadata_ahead_of_the_durable_layers_is_caught() {
    let rt = madsim::runtime::Runtime::new();
    let check = rt.block_on(async {
        let fx = fixture();
        let metadata = Metadata {
            disk_consistent_lsn: Lsn(100),
            prev_record_lsn: Lsn(80),
        };
        let disk = fx.checker.src.pageserver_disks[&PS].clone();
        let bytes = lakesim_nodes::durable::encode_checked(Metadata::MAGIC, &metadata);
        disk.create("metadata").unwrap();
        disk.write("metadata", 0, &bytes).unwrap();
        fx.checker.check_layers_durable(PS);
        assert_eq!(
            fx.checker.violation(),
            None,
            "an unsynced promise is no promise yet"
        );
        disk.sync("metadata").await.unwrap();
        disk.sync_dir().await.unwrap();
        fx.checker.audit();
        fx.checker.violation().map(|v| check_named(&v.caught_by))
    });
    assert_eq!(check, Some(Check::LayersSurviveCrash));
}

#[test]
fn a_vote_counted_before_the_voter_made_it_durable_is_caught() {
    let check = caught(|fx| {
        let obs = Observation::VoteGranted {
            term: Term(3),
            voter: SK[1],
        };
        fx.checker.observe(COMPUTE, obs);
    });
    assert_eq!(check, Some(Check::VoteIsDurable));
}

#[test]
fn no_commit_after_the_heal_breaks_liveness() {
    let check = caught(end_of_run);
    assert_eq!(check, Some(Check::CommitsResume));
}

#[test]
fn a_pageserver_that_never_catches_up_breaks_liveness() {
    let check = caught(|fx| {
        // A client that ran out of work owes no commits after the heal.
        fx.client.lock().exhausted = true;
        fx.checker
            .observe(PS, Observation::Ingested { lsn: Lsn::ZERO });
        fx.checker.check_end(EndOfRun {
            healed_at: Duration::ZERO,
            catch_up_target: Lsn(100),
            at_heal: Default::default(),
        });
    });
    assert_eq!(check, Some(Check::PageserversCatchUp));
}

#[test]
fn a_getpage_failing_well_after_the_heal_breaks_liveness() {
    let rt = madsim::runtime::Runtime::new();
    let check = rt.block_on(async {
        let fx = fixture();
        fx.client.lock().exhausted = true;
        page_read(&fx, (1, Lsn::ZERO), (1, Lsn::ZERO), zero_page_crc(), true);
        madsim::time::sleep(LIVENESS_BOUND * 3).await;
        let failed = Observation::PageReadFailed {
            page: PageId(1),
            lsn: Lsn::ZERO,
            waited_ns: 1_000_000,
        };
        fx.checker.observe(COMPUTE, failed);
        fx.checker.check_end(EndOfRun {
            healed_at: Duration::ZERO,
            catch_up_target: Lsn::ZERO,
            at_heal: Default::default(),
        });
        fx.checker.violation().map(|v| check_named(&v.caught_by))
    });
    assert_eq!(check, Some(Check::GetPageAnswered));
}

/// A run whose commits and reads are fine, ended with `at_heal`.
fn end_with(fx: &Fixture, at_heal: AtHeal) {
    fx.client.lock().exhausted = true;
    fx.checker
        .observe(PS, Observation::Ingested { lsn: Lsn::ZERO });
    page_read(fx, (1, Lsn::ZERO), (1, Lsn::ZERO), zero_page_crc(), true);
    fx.checker.check_end(EndOfRun {
        healed_at: Duration::ZERO,
        catch_up_target: Lsn::ZERO,
        at_heal,
    });
}

#[test]
fn uploads_short_of_what_was_flushed_at_heal_break_liveness() {
    let check = caught(|fx| {
        let at_heal = AtHeal {
            flushed: [(PS, Lsn(100))].into_iter().collect(),
            ..AtHeal::default()
        };
        end_with(fx, at_heal);
    });
    assert_eq!(check, Some(Check::UploadsCatchUp));
}

#[test]
fn wal_still_held_below_the_horizon_at_heal_breaks_liveness() {
    let at_heal = |retired| AtHeal {
        committed: Lsn(3 * SegmentSize::DEFAULT.bytes()),
        safekeeper_retired: retired,
        ..AtHeal::default()
    };
    let hold_segment_zero = |fx: &Fixture| {
        for sk in SK {
            fx.disks[&sk].create("wal/00000000").unwrap();
        }
    };
    let check = caught(move |fx| {
        hold_segment_zero(fx);
        end_with(fx, at_heal(false));
    });
    assert_eq!(check, Some(Check::WalRemovalResumes));
    // With a safekeeper lost for good, truncate_lsn cannot move: not judged.
    let check = caught(move |fx| {
        hold_segment_zero(fx);
        end_with(fx, at_heal(true));
    });
    assert_eq!(check, None);
    // Nor when a safekeeper finds its WAL damaged only after the heal (at a restart) and
    // stays out: the damaged set is read at the end, not at the heal (storm seed 1379 of
    // the binary before the send path changed was this case).
    let check = caught(move |fx| {
        hold_segment_zero(fx);
        fx.checker.observe(SK[0], Observation::StaysOut);
        end_with(fx, at_heal(false));
    });
    assert_eq!(check, None);
}

fn zero_page_crc() -> u32 {
    crc32c::crc32c(lakesim_nodes::page::Page::zeroed().as_bytes())
}

/// The rot excuse covers the rotted version of a layer only: once the file is rewritten
/// (here, cut short), the promise it broke counts again.
#[test]
fn the_rot_excuse_ends_when_the_file_is_rewritten() {
    let rt = madsim::runtime::Runtime::new();
    let check = rt.block_on(async {
        let fx = fixture();
        let disk = fx.checker.src.pageserver_disks[&PS].clone();
        let (wal, ends) = wal_of(vec![delta(1, b"ab")]);
        let name = lakesim_nodes::pageserver::layers::delta_name(Lsn::ZERO, ends[0]);
        let layer =
            lakesim_nodes::pageserver::layers::encode_delta(Lsn::ZERO, ends[0], Lsn::ZERO, &wal);
        let metadata = Metadata {
            disk_consistent_lsn: ends[0],
            prev_record_lsn: Lsn::ZERO,
        };
        let meta = lakesim_nodes::durable::encode_checked(Metadata::MAGIC, &metadata);
        for (file, bytes) in [(name.as_str(), &layer), ("metadata", &meta)] {
            disk.create(file).unwrap();
            disk.write(file, 0, bytes).unwrap();
            disk.sync(file).await.unwrap();
        }
        disk.sync_dir().await.unwrap();
        fx.checker.audit();
        assert_eq!(
            fx.checker.violation(),
            None,
            "an intact layer covers the promise"
        );
        let rotted = disk.rot_bit(0).expect("a durable file");
        fx.checker.note_rot(PS, rotted.clone());
        fx.checker.audit();
        assert_eq!(fx.checker.violation(), None, "rot is beyond the promise");
        disk.set_len(&name, 10).unwrap();
        disk.sync(&name).await.unwrap();
        fx.checker.note_crash(PS);
        fx.checker.audit();
        fx.checker.violation().map(|v| check_named(&v.caught_by))
    });
    assert_eq!(check, Some(Check::LayersSurviveCrash));
}

/// `per-page-records:2`: after an image pass at a chunk's end, a read must not need more than
/// 2 records plus those of the page that arrived since.
#[test]
fn a_chain_longer_than_the_image_policy_allows_is_caught() {
    let read = |fx: &Fixture, lsn: Lsn| {
        let served = Observation::GetPageServed {
            page: PageId(1),
            lsn,
            records_applied: 0,
            layers_visited: 0,
            bytes_read: 0,
            latency_ns: 0,
            wait_ns: 0,
        };
        fx.checker.observe(PS, served);
    };
    let check = caught(move |fx| {
        let bodies = (0..5u8).map(|i| delta(1, &[i])).collect();
        let (wal, ends) = wal_of(bodies);
        commit_everywhere(fx, &wal);
        fx.checker.observe(PS, Observation::Started);
        fx.checker
            .observe(PS, Observation::Ingested { lsn: Lsn::ZERO });
        read(fx, ends[4]);
        assert_eq!(fx.checker.violation(), None, "no pass yet: not judged");
        fx.checker
            .observe(PS, Observation::Ingested { lsn: ends[1] });
        read(fx, ends[4]);
        assert_eq!(
            fx.checker.violation(),
            None,
            "5 records <= 2 + the 3 since the pass"
        );
        fx.checker
            .observe(PS, Observation::Ingested { lsn: ends[3] });
        read(fx, ends[4]);
    });
    assert_eq!(check, Some(Check::ChainWithinPolicy));
}
