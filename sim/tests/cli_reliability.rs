//! The command line as a user meets it: bad input gets one line naming the problem and exit
//! status 2, never a panic, and nothing already saved is changed; signals and a closed stdout
//! end a campaign with its summary written and every failure file kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LAKESIM: &str = env!("CARGO_BIN_EXE_lakesim");

fn lakesim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(LAKESIM)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run lakesim");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lakesim-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut all = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                all.insert(p.clone(), std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    all
}

/// The fixtures bad inputs point at: config and seed files, an earlier campaign, a foreign
/// directory, a plain file.
struct Fixtures {
    dir: PathBuf,
}

impl Fixtures {
    fn new() -> Fixtures {
        let dir = scratch("bad-input");
        let f = Fixtures { dir };
        let configs: &[(&str, &str)] = &[
            ("good.toml", "fault_window_ms = 1000\n"),
            ("syntax.toml", "this is = = not toml [\n"),
            ("wrong-type.toml", "safekeepers = \"three\"\n"),
            ("negative.toml", "pageservers = -1\n"),
            ("too-many.toml", "safekeepers = 7\n"),
            ("unknown-key.toml", "bogus_key = 1\n"),
            ("nested-type.toml", "[workload]\npages = \"many\"\n"),
            ("u16.toml", "[workload]\nmax_delta_bytes = 70000\n"),
            ("huge-liveness.toml", "liveness_window_ms = 999999999\n"),
            ("slow-txns.toml", "[workload]\ntxn_interval_ms = 100000\n"),
            ("slow-reads.toml", "[workload]\nread_interval_ms = 5000\n"),
            (
                "slow-fsync.toml",
                "[cost]\nenabled = true\nsafekeeper_fsync_us = 10000000\n",
            ),
            ("segment.toml", "wal_segment_kb = 3\n"),
            ("loss.toml", "[faults]\nmax_packet_loss = 2.0\n"),
            ("rate.toml", "[faults]\npartitions_per_s = 100\n"),
            ("sector.toml", "[disk]\nsector_size = 100\n"),
            ("policy.toml", "image_policy = \"sometimes\"\n"),
            ("no-trace.toml", "[workload]\nkind = \"pg-trace\"\n"),
            (
                "too-many-txns.toml",
                "fault_window_ms = 600000\nliveness_window_ms = 600000\n[workload]\ntxn_interval_ms = 1\n",
            ),
            ("pages.toml", "[workload]\npages = 4000000000\n"),
            ("hot.toml", "[workload]\npages = 4\nhot_pages = 8\n"),
        ];
        for (name, text) in configs {
            f.write(name, text.as_bytes());
        }
        f.write("latin1.toml", b"safekeepers = 3 # caf\xe9\n");
        let seed = |body: &str| {
            format!("seed = 1\nscenario = \"calm\"\nexpect = \"pass\"\ntrace_hash = \"0123456789abcdef\"\n{body}")
        };
        let seeds: &[(&str, String)] = &[
            ("seed-string.toml", "seed = \"x\"\nscenario = \"calm\"\nexpect = \"pass\"\ntrace_hash = \"0123456789abcdef\"\n".into()),
            ("seed-huge.toml", "seed = \"99999999999999999999\"\nscenario = \"calm\"\nexpect = \"pass\"\ntrace_hash = \"0123456789abcdef\"\n".into()),
            ("seed-negative.toml", "seed = -1\nscenario = \"calm\"\nexpect = \"pass\"\ntrace_hash = \"0123456789abcdef\"\n".into()),
            ("hash.toml", "seed = 1\nscenario = \"calm\"\nexpect = \"pass\"\ntrace_hash = \"xyz\"\n".into()),
            ("fail-no-invariant.toml", "seed = 1\nscenario = \"calm\"\nexpect = \"fail\"\ntrace_hash = \"0123456789abcdef\"\n".into()),
            ("invariant.toml", "seed = 1\nscenario = \"calm\"\nexpect = \"fail\"\ninvariant = \"speed\"\ntrace_hash = \"0123456789abcdef\"\n".into()),
            ("catcher.toml", "seed = 1\nscenario = \"calm\"\nexpect = \"fail\"\ninvariant = \"durability\"\ncaught_by = \"check no-such-check\"\ntrace_hash = \"0123456789abcdef\"\n".into()),
            ("both.toml", seed("[config]\nsafekeepers = 3\n")),
            ("seed-bug.toml", seed("bug = \"no-such-bug\"\n")),
            ("seed-scenario.toml", "seed = 1\nscenario = \"nope\"\nexpect = \"pass\"\ntrace_hash = \"0123456789abcdef\"\n".into()),
            ("seed-unknown.toml", seed("colour = \"blue\"\n")),
            ("seed-syntax.toml", "seed = = 1\n".into()),
            ("plan-node.toml", seed("[plan.faults_chosen]\n[[plan.faults]]\nat_ms = 10\naction = \"crash\"\nnode = 77\n")),
            ("plan-order.toml", seed("[plan.faults_chosen]\n[[plan.faults]]\nat_ms = 500\naction = \"crash\"\nnode = 1\n[[plan.faults]]\nat_ms = 10\naction = \"restart\"\nnode = 1\n")),
            ("plan-late.toml", seed("[plan.faults_chosen]\n[[plan.faults]]\nat_ms = 99999999\naction = \"crash\"\nnode = 1\n")),
            ("plan-action.toml", seed("[plan.faults_chosen]\n[[plan.faults]]\nat_ms = 10\naction = \"explode\"\nnode = 1\n")),
            ("no-setup.toml", "seed = 1\nexpect = \"pass\"\ntrace_hash = \"0123456789abcdef\"\n".into()),
        ];
        for (name, text) in seeds {
            f.write(name, text.as_bytes());
        }
        f.write("plain-file", b"keep me\n");
        std::fs::create_dir_all(f.path("foreign")).unwrap();
        f.write("foreign/notes.txt", b"someone's notes\n");
        std::fs::create_dir_all(f.path("bad-manifest")).unwrap();
        f.write("bad-manifest/campaign.json", b"{ not json");
        std::fs::create_dir_all(f.path("experiment-out")).unwrap();
        f.write("experiment-out/report.md", b"an earlier experiment\n");
        let earlier = f.path("earlier");
        let (code, _, err) = lakesim(&[
            "fuzz",
            "--seeds",
            "1",
            "--scenario",
            "calm",
            "--jobs",
            "1",
            "--out",
            earlier.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "the earlier campaign runs: {err}");
        f
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.path(name), bytes).unwrap();
    }
}

/// One bad input: its arguments and a piece of the one line that must name the problem.
struct Case {
    args: Vec<String>,
    names: &'static str,
}

fn cases(f: &Fixtures) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |args: &[&str], names: &'static str| {
        cases.push(Case {
            args: args.iter().map(|s| s.to_string()).collect(),
            names,
        })
    };
    // Commands and arguments.
    add(&[], "no command given");
    add(&["bogus"], "'bogus'");
    add(&["list", "extra"], "'extra'");
    add(&["run"], "--seed");
    add(&["run", "--seed"], "--seed");
    add(&["run", "--seed", "abc"], "--seed");
    add(&["run", "--seed", "-1"], "-1");
    add(&["run", "--seed", "18446744073709551616"], "--seed");
    add(&["run", "--seed", "1", "--bogus"], "--bogus");
    add(
        &["run", "--seed", "1", "--scenario", "nope"],
        "unknown scenario 'nope'",
    );
    add(
        &["run", "--seed", "1", "--bug", "nope"],
        "unknown bug 'nope'",
    );
    let good = f.p("good.toml");
    add(
        &[
            "run",
            "--seed",
            "1",
            "--scenario",
            "calm",
            "--config",
            &good,
        ],
        "cannot be used with",
    );
    // Config files: the file, the line and the key.
    let missing = f.p("missing.toml");
    add(
        &["run", "--seed", "1", "--config", &missing],
        "missing.toml",
    );
    let dir = f.p("foreign");
    add(&["run", "--seed", "1", "--config", &dir], "foreign");
    let config_cases: &[(&str, &'static str)] = &[
        ("syntax.toml", "syntax.toml line 1 column"),
        ("wrong-type.toml", "key safekeepers"),
        ("negative.toml", "key pageservers"),
        ("too-many.toml", "safekeepers = 7"),
        ("unknown-key.toml", "bogus_key"),
        ("nested-type.toml", "key workload.pages"),
        ("u16.toml", "key workload.max_delta_bytes"),
        ("huge-liveness.toml", "liveness_window_ms = 999999999"),
        ("slow-txns.toml", "workload.txn_interval_ms = 100000"),
        ("slow-reads.toml", "workload.read_interval_ms = 5000"),
        ("slow-fsync.toml", "cost.safekeeper_fsync_us = 10000000"),
        ("segment.toml", "wal_segment_kb = 3"),
        ("loss.toml", "faults.max_packet_loss = 2"),
        ("rate.toml", "faults.partitions_per_s = 100"),
        ("sector.toml", "disk.sector_size = 100"),
        ("policy.toml", "key image_policy"),
        ("no-trace.toml", "workload.trace"),
        ("too-many-txns.toml", "transactions: at most"),
        ("pages.toml", "pages at most"),
        ("hot.toml", "hot_pages <= pages"),
        ("latin1.toml", "latin1.toml"),
    ];
    for (file, names) in config_cases {
        let path = f.p(file);
        add(&["run", "--seed", "1", "--config", &path], names);
    }
    // --trace never overwrites, and a bad path is found before the run.
    add(
        &["run", "--seed", "1", "--config", &good, "--trace", &good],
        "exists",
    );
    let nowhere = f.p("no-such-dir/trace.jsonl");
    add(&["run", "--seed", "1", "--trace", &nowhere], "trace.jsonl");
    // Campaign flags.
    add(&["fuzz", "--seeds", "0"], "--seeds");
    add(&["fuzz", "--seeds", "abc"], "--seeds");
    add(&["fuzz", "--jobs", "0"], "--jobs");
    add(&["fuzz", "--jobs", "100000"], "--jobs");
    add(&["fuzz", "--duration", "0s"], "--duration");
    add(&["fuzz", "--duration", "10x"], "--duration");
    add(
        &["fuzz", "--duration", "3381903080180084463m"],
        "--duration",
    );
    add(&["fuzz", "--duration", "721h"], "--duration");
    add(
        &["fuzz", "--seeds", "5", "--duration", "10s"],
        "cannot be used with",
    );
    add(&["fuzz", "--shard", "0/2"], "--shard");
    add(&["fuzz", "--shard", "3/2"], "--shard");
    add(&["fuzz", "--shard", "x"], "--shard");
    add(
        &["fuzz", "--start-seed", "18446744073709551616"],
        "--start-seed",
    );
    add(&["fuzz", "--seed-timeout", "0s"], "--seed-timeout");
    add(&["fuzz", "--seed-memory", "1"], "--seed-memory");
    add(&["fuzz", "--scenario", "nope"], "unknown scenario");
    add(&["fuzz", "--bug", "nope"], "unknown bug");
    let file = f.p("plain-file");
    add(&["fuzz", "--seeds", "1", "--out", &file], "not a directory");
    let earlier = f.p("earlier");
    add(
        &[
            "fuzz",
            "--seeds",
            "1",
            "--scenario",
            "calm",
            "--out",
            &earlier,
        ],
        "holds an earlier campaign",
    );
    add(
        &[
            "fuzz",
            "--seeds",
            "5",
            "--bug",
            "ack-before-fsync",
            "--out",
            &earlier,
        ],
        "--resume",
    );
    add(
        &[
            "fuzz",
            "--seeds",
            "1",
            "--scenario",
            "storm",
            "--out",
            &earlier,
            "--resume",
        ],
        "differs in scenario",
    );
    add(
        &["fuzz", "--seeds", "1", "--out", &dir],
        "not a lakesim campaign",
    );
    let bad_manifest = f.p("bad-manifest");
    add(
        &["fuzz", "--seeds", "1", "--out", &bad_manifest],
        "not a campaign manifest",
    );
    // Seed files.
    add(&["replay"], "<FILE>");
    add(&["replay", &missing], "missing.toml");
    let seed_cases: &[(&str, &'static str)] = &[
        ("seed-string.toml", "seed \"x\" is not a number"),
        ("seed-huge.toml", "99999999999999999999"),
        ("seed-negative.toml", "negative"),
        ("hash.toml", "trace_hash"),
        ("fail-no-invariant.toml", "needs the invariant"),
        ("invariant.toml", "unknown variant `speed`"),
        ("catcher.toml", "no check named \"no-such-check\""),
        ("both.toml", "either scenario or config"),
        ("seed-bug.toml", "unknown bug 'no-such-bug'"),
        ("seed-scenario.toml", "unknown scenario 'nope'"),
        ("seed-unknown.toml", "colour"),
        ("seed-syntax.toml", "seed-syntax.toml line 1 column"),
        ("plan-node.toml", "no node 77"),
        ("plan-order.toml", "must not go back"),
        ("plan-late.toml", "within the fault window"),
        ("plan-action.toml", "explode"),
        ("no-setup.toml", "needs a scenario"),
    ];
    for (file, names) in seed_cases {
        let path = f.p(file);
        add(&["replay", &path], names);
    }
    let nowhere_dir = f.p("no-such-dir");
    add(&["pin", &nowhere_dir], "no-such-dir");
    let bad_seed = f.p("hash.toml");
    add(&["pin", &bad_seed], "trace_hash");
    // Experiments and imports.
    add(&["experiment", "nope"], "unknown experiment 'nope'");
    add(&["experiment", "fpw", "--seeds", "0"], "--seeds 0");
    add(&["experiment", "fpw", "--jobs", "0"], "--jobs 0");
    let exp = f.p("experiment-out");
    add(&["experiment", "fpw", "--out", &exp], "experiment-out");
    add(
        &["import-wal", &missing, "--out", &f.p("t.trace")],
        "missing.toml",
    );
    add(&["import-wal", &good, "--out", &file], "exists");
    cases
}

#[test]
fn bad_input_gets_one_line_exit_2_and_changes_nothing() {
    let started = Instant::now();
    let f = Fixtures::new();
    let before = snapshot(&f.dir);
    let cases = cases(&f);
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut wrong = Vec::new();
    for case in &cases {
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let (code, _, err) = lakesim(&args);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        let problem = if code != 2 {
            Some(format!("exit {code}"))
        } else if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
            Some("panics".to_string())
        } else if lines.len() != 1 {
            Some(format!("{} lines", lines.len()))
        } else if !err.contains(case.names) {
            Some(format!("does not name {:?}", case.names))
        } else if snapshot(&f.dir) != before {
            Some("changed a saved file".to_string())
        } else {
            None
        };
        if let Some(p) = problem {
            wrong.push(format!("lakesim {}: {p}: {}", args.join(" "), err.trim()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    std::fs::remove_dir_all(&f.dir).unwrap();
    eprintln!("{} bad inputs in {:?}", cases.len(), started.elapsed());
}

#[test]
fn a_locked_directory_is_refused() {
    let dir = scratch("locked");
    let out = dir.join("c");
    std::fs::create_dir_all(&out).unwrap();
    let lock = std::fs::File::create(out.join(".lock")).unwrap();
    lock.lock().unwrap();
    let (code, _, err) = lakesim(&["fuzz", "--seeds", "1", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("another lakesim campaign is running"), "{err}");
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        1,
        "nothing written"
    );
    drop(lock);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A 10-minute `storm` campaign in which every seed fails (getpage-stale-lsn), stdout piped.
fn failing_campaign(out: &Path, jobs: &str) -> std::process::Child {
    Command::new(LAKESIM)
        .args([
            "fuzz",
            "--duration",
            "10m",
            "--jobs",
            jobs,
            "--scenario",
            "storm",
        ])
        .args(["--bug", "getpage-stale-lsn", "--out", out.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Starts a campaign whose every seed fails (so failure files pile up), stops it with
/// `signal` once 3 seeds finished, and checks that it ended within 2 s, wrote its summary, and
/// that every failure it reported or logged has its file.
fn stopped_campaign_keeps_everything(signal: &str) {
    let dir = scratch(&format!("signal-{signal}"));
    let out = dir.join("c");
    let mut child = failing_campaign(&out, "2");
    let log = out.join("seeds.jsonl");
    let until = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&log).map_or(0, |t| t.lines().count()) < 3 {
        assert!(
            Instant::now() < until,
            "the campaign finished no seed in 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = Instant::now();
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap().code();
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "SIG{signal} took {:?}",
        sent.elapsed()
    );
    assert_eq!(code, Some(1), "failures found: exit 1");
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    check_nothing_lost(&out, &stdout);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every seed line's failure file exists and parses, every FAIL line printed names a saved
/// file, and the summary counts the lines.
fn check_nothing_lost(out: &Path, stdout: &str) {
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["interrupted"], true, "{summary}");
    let lines = std::fs::read_to_string(out.join("seeds.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(summary["seeds_run"], lines.len() as u64);
    assert!(!lines.is_empty());
    for l in &lines {
        let file = l["file"].as_str().expect("a failing seed names its file");
        let text = std::fs::read_to_string(out.join(file)).unwrap();
        assert!(text.contains("expect = \"fail\""), "{file} is whole");
    }
    for line in stdout.lines().filter(|l| l.starts_with("FAIL seed")) {
        let saved = line
            .split("; saved ")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        assert!(Path::new(saved).exists(), "{saved} printed but missing");
    }
    let files = std::fs::read_dir(out).unwrap().flatten();
    let tmp: Vec<_> = files
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(tmp.is_empty(), "temporary files left: {tmp:?}");
}

#[test]
fn sigint_stops_a_campaign_with_its_summary_and_failures() {
    stopped_campaign_keeps_everything("INT");
}

#[test]
fn sigterm_stops_a_campaign_with_its_summary_and_failures() {
    stopped_campaign_keeps_everything("TERM");
}

#[test]
fn a_closed_stdout_stops_a_campaign_with_its_summary() {
    let dir = scratch("pipe");
    let out = dir.join("c");
    let mut child = failing_campaign(&out, "1");
    // Read the first line, then close the pipe, as `| head -1` does.
    let mut first = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.starts_with("FAIL seed"), "{first}");
    drop(stdout);
    let until = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        assert!(
            Instant::now() < until,
            "a closed stdout did not stop the campaign"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(1));
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(summary.contains("stdout was closed"), "{summary}");
    check_nothing_lost(&out, &first);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A short `storm` campaign in which every seed fails (getpage-stale-lsn), run to its end.
fn failing_seeds(out: &Path, seeds: &str, start: &str) {
    let out = out.to_str().unwrap();
    let (code, _, err) = lakesim(&[
        "fuzz",
        "--seeds",
        seeds,
        "--start-seed",
        start,
        "--scenario",
        "storm",
        "--bug",
        "getpage-stale-lsn",
        "--jobs",
        "1",
        "--out",
        out,
    ]);
    assert_eq!(code, 1, "every seed fails: {err}");
}

#[test]
fn a_seed_above_2_pow_63_is_saved_and_replays() {
    let dir = scratch("u64");
    let out = dir.join("c");
    failing_seeds(&out, "2", "18446744073709551614");
    let file = out.join("fail-18446744073709551615-page-reconstruction.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("seed = \"18446744073709551615\""), "{text}");
    let (code, stdout, _) = lakesim(&["replay", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stdout.contains("trace hash matches"), "{stdout}");
    assert!(stdout.contains("as expected"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_replay_that_does_not_reproduce_exits_1_and_says_what_differs() {
    let dir = scratch("mismatch");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds/pass-calm-1.toml");
    let text = std::fs::read_to_string(corpus).unwrap();
    let edited = dir.join("pass.toml");
    let hash = text
        .lines()
        .find(|l| l.starts_with("trace_hash"))
        .unwrap()
        .to_string();
    std::fs::write(
        &edited,
        text.replace(&hash, "trace_hash = \"0000000000000000\""),
    )
    .unwrap();
    let (code, stdout, _) = lakesim(&["replay", edited.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("trace hash differs: recorded 0000000000000000"),
        "{stdout}"
    );
    // A must-fail file that no longer fails: exit 1, and what happened instead.
    let fail = dir.join("fail.toml");
    let as_fail = text.replace(
        "expect = \"pass\"",
        "expect = \"fail\"\ninvariant = \"durability\"",
    );
    std::fs::write(&fail, as_fail).unwrap();
    let (code, stdout, _) = lakesim(&["replay", fail.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("NOT as expected: got pass"), "{stdout}");
    // `pin` accepts the file `replay` reported and re-pins it.
    let (code, stdout, err) = lakesim(&["pin", edited.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{err}");
    let (code, stdout, _) = lakesim(&["replay", edited.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_edited_plan_replays_as_written_and_pin_accepts_it() {
    let dir = scratch("edited-plan");
    let out = dir.join("c");
    failing_seeds(&out, "1", "0");
    let saved = out.join("fail-0-page-reconstruction.toml");
    let text = std::fs::read_to_string(&saved).unwrap();
    // Crash a safekeeper at 1 ms, before anything else: a hand edit of the schedule.
    let first = text.find("[[plan.faults]]").expect("a recorded schedule");
    let crash = "[[plan.faults]]\nat_ms = 1\naction = \"crash\"\nnode = 1\n\n";
    let edited = dir.join("edited.toml");
    std::fs::write(
        &edited,
        format!("{}{crash}{}", &text[..first], &text[first..]),
    )
    .unwrap();
    let (code, stdout, _) = lakesim(&["replay", edited.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stdout.contains("trace hash differs"), "{stdout}");
    let (code, stdout, err) = lakesim(&["pin", edited.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(stdout.contains("re-pinned"), "{stdout}");
    let (code, stdout, _) = lakesim(&["replay", edited.to_str().unwrap()]);
    assert_eq!(code, 1, "it still fails");
    assert!(stdout.contains("trace hash matches"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(&saved).unwrap(),
        text,
        "the original is kept"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
