//! The `lakesim` binary as a user meets it: exit codes, one-line errors, trace hashes that hold
//! across processes.

use std::process::{Command, Output};

fn lakesim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lakesim"))
        .args(args)
        .output()
        .unwrap()
}

fn trace_hash(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("trace hash: "))
        .unwrap_or_else(|| panic!("no trace hash in: {stdout}"))
        .to_string()
}

/// Bad input: exit 2, one line on stderr, no panic or backtrace.
fn assert_bad_input(args: &[&str], mentions: &str) {
    let out = lakesim(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(
        stderr.lines().filter(|l| !l.trim().is_empty()).count(),
        1,
        "{args:?}: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert!(
        stderr.contains(mentions),
        "{args:?} should mention {mentions:?}: {stderr}"
    );
}

#[test]
fn run_prints_a_stable_trace_hash_across_processes() {
    let a = lakesim(&["run", "--seed", "42"]);
    let b = lakesim(&["run", "--seed", "42"]);
    let c = lakesim(&["run", "--seed", "43"]);
    assert!(a.status.success() && b.status.success() && c.status.success());
    assert_eq!(trace_hash(&a), trace_hash(&b));
    assert_ne!(trace_hash(&a), trace_hash(&c));
}

#[test]
fn run_says_which_faults_the_seed_chose() {
    let out = lakesim(&["run", "--seed", "7", "--scenario", "storm"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("faults: safekeeper crashes"));
}

#[test]
fn bad_input_gets_one_line_and_exit_2() {
    assert_bad_input(&["run", "--seed", "abc"], "--seed");
    assert_bad_input(
        &["run", "--seed", "1", "--scenario", "nope"],
        "known scenarios",
    );
    assert_bad_input(&["run", "--seed", "1", "--bug", "nope"], "known bugs");
    assert_bad_input(&["frobnicate"], "frobnicate");
    let dir = std::env::temp_dir().join(format!("lakesim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("broken.toml", "this is = = not toml [\n", "broken.toml"),
        (
            "unknown.toml",
            "safekeepers = 3\nflux_capacitor = 1\n",
            "flux_capacitor",
        ),
        ("size.toml", "safekeepers = 4\n", "3 or 5"),
    ];
    for (name, text, mentions) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        assert_bad_input(
            &["run", "--seed", "1", "--config", path.to_str().unwrap()],
            mentions,
        );
    }
    let missing = dir.join("missing.toml");
    assert_bad_input(
        &["run", "--seed", "1", "--config", missing.to_str().unwrap()],
        "missing.toml",
    );
    let seedfile = dir.join("seed.toml");
    std::fs::write(&seedfile, "seed = \"x\"\n").unwrap();
    assert_bad_input(&["replay", seedfile.to_str().unwrap()], "seed.toml");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn list_names_scenarios_and_bugs() {
    let out = lakesim(&["list"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for name in [
        "calm",
        "storm",
        "storm-5",
        "ack-before-fsync",
        "commit-old-term",
    ] {
        assert!(stdout.contains(name), "list lacks {name}");
    }
}

fn failure_seeds(dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("fail-"))
        .collect()
}

/// getpage-stale-lsn fails every storm seed within a simulated second, so the failure files
/// name exactly the seeds a campaign ran: shards 1/2 and 2/2 together must name the same seeds
/// as the unsharded campaign, and every failure is saved while the campaign goes on.
#[test]
fn shards_partition_a_campaign_and_failures_are_saved() {
    let base = std::env::temp_dir().join(format!("lakesim-shards-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let run = |out: &str, extra: &[&str]| {
        let dir = base.join(out);
        let mut args = vec!["fuzz", "--seeds", "9", "--jobs", "2", "--scenario", "storm"];
        args.extend_from_slice(&["--bug", "getpage-stale-lsn", "--out", dir.to_str().unwrap()]);
        args.extend_from_slice(extra);
        let out = lakesim(&args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(dir.join("summary.json").exists());
        failure_seeds(&dir)
    };
    let all = run("all", &[]);
    let one = run("s1", &["--shard", "1/2"]);
    let two = run("s2", &["--shard", "2/2"]);
    assert_eq!(all.len(), 9, "every seed failed and was saved: {all:?}");
    assert!(one.is_disjoint(&two));
    assert_eq!(
        one.union(&two)
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        all
    );
    let file = base.join("all").join(all.iter().next().unwrap());
    let replay = lakesim(&["replay", file.to_str().unwrap()]);
    assert_eq!(replay.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&replay.stdout).contains("trace hash matches"));
    std::fs::remove_dir_all(&base).unwrap();
}
