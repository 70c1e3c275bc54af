//! Nightly campaigns across machines: a campaign split into 4 shards by a Kubernetes Indexed
//! Job's environment, then merged, equals the same campaign in one process seed for seed
//! (results and trace hashes); a shard stopped half-way is reported incomplete, and after
//! `--resume` the merge is complete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LAKESIM: &str = env!("CARGO_BIN_EXE_lakesim");
fn fuzz(out: &Path, index: Option<u32>, extra: &[&str]) -> Command {
    fuzz_of("16", out, index, extra)
}

fn fuzz_of(seeds: &str, out: &Path, index: Option<u32>, extra: &[&str]) -> Command {
    let mut cmd = Command::new(LAKESIM);
    cmd.args([
        "fuzz",
        "--seeds",
        seeds,
        "--scenario",
        "storm",
        "--bug",
        "commit-old-term",
    ])
    .args(["--jobs", "1", "--out", out.to_str().unwrap()])
    .args(extra)
    .env_remove("JOB_COMPLETION_INDEX")
    .env_remove("SLURM_ARRAY_TASK_ID")
    .env_remove("AWS_BATCH_JOB_ARRAY_INDEX")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some(i) = index {
        cmd.env("JOB_COMPLETION_INDEX", i.to_string())
            .env("LAKESIM_SHARDS", "4");
    }
    cmd
}

/// seed -> (result, invariant, check, trace hash), from a campaign's seeds.jsonl.
fn results(dir: &Path) -> BTreeMap<u64, (String, String, String, String)> {
    let text = std::fs::read_to_string(dir.join("seeds.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
            (
                v["seed"].as_u64().unwrap(),
                (s("result"), s("invariant"), s("check"), s("trace_hash")),
            )
        })
        .collect()
}

fn merge(dirs: &[PathBuf], out: &Path) -> serde_json::Value {
    let mut args = vec!["report".to_string(), "merge".to_string()];
    args.extend(dirs.iter().map(|d| d.display().to_string()));
    args.extend(["--out".to_string(), out.display().to_string()]);
    let o = Command::new(LAKESIM).args(&args).output().unwrap();
    assert!(
        out.join("junit.xml").exists(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn four_indexed_job_shards_merge_to_the_one_process_campaign() {
    let base = std::env::temp_dir().join(format!("lakesim-nightly-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let one = base.join("one");
    let status = fuzz(&one, None, &[]).status().unwrap();
    assert_eq!(status.code(), Some(1), "commit-old-term fails seeds");
    let shards: Vec<PathBuf> = (0..4).map(|i| base.join(format!("s{i}"))).collect();
    for (i, dir) in shards.iter().enumerate() {
        let out = fuzz(dir, Some(i as u32), &[]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.starts_with(&format!("shard {}/4 from JOB_COMPLETION_INDEX={i}", i + 1)),
            "says where its shard came from: {stdout}"
        );
    }
    let mut sharded = BTreeMap::new();
    for dir in &shards {
        sharded.extend(results(dir));
    }
    assert_eq!(
        sharded,
        results(&one),
        "seed for seed, the same results and hashes"
    );
    let merged = merge(&shards, &base.join("merged"));
    assert_eq!(merged["complete"], true, "{merged}");
    assert_eq!(merged["seeds_run"], 16);
    let failures = results(&one).values().filter(|r| r.0 == "fail").count();
    assert_eq!(merged["failures"], failures as u64);
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn a_shard_stopped_half_way_is_incomplete_until_resumed() {
    let base = std::env::temp_dir().join(format!("lakesim-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let shards: Vec<PathBuf> = (0..4).map(|i| base.join(format!("s{i}"))).collect();
    for (i, dir) in shards.iter().enumerate().filter(|(i, _)| *i != 2) {
        fuzz_of("96", dir, Some(i as u32), &[]).status().unwrap();
    }
    // Shard 3/4 (24 seeds) is stopped after its first seed (a preempted pod).
    let mut child = fuzz_of("96", &shards[2], Some(2), &[]).spawn().unwrap();
    let log = shards[2].join("seeds.jsonl");
    let until = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&log).map_or(0, |t| t.lines().count()) < 1 {
        assert!(Instant::now() < until, "no seed finished");
        std::thread::sleep(Duration::from_millis(20));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    let merged = merge(&shards, &base.join("m1"));
    assert_eq!(merged["complete"], false, "{merged}");
    let third = &merged["shard_status"][2];
    assert!(third["incomplete"].is_string(), "{third}");
    let status = fuzz_of("96", &shards[2], Some(2), &["--resume"])
        .status()
        .unwrap();
    assert!(status.code().is_some());
    let merged = merge(&shards, &base.join("m2"));
    assert_eq!(merged["complete"], true, "{merged}");
    assert_eq!(merged["seeds_run"], 96);
    std::fs::remove_dir_all(&base).unwrap();
}
