//! Every file in seeds/ replays as it says: must-pass files pass, must-fail files fail with
//! their invariant, and every file reproduces its pinned trace hash.

use lakesim::seedfile::SeedFile;

#[test]
fn every_seed_file_replays_as_recorded() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let files = lakesim::cli::seed_files(&dir).unwrap();
    assert!(!files.is_empty(), "seeds/ is empty");
    let mut failures = Vec::new();
    for path in &files {
        let loaded = SeedFile::load(path).unwrap_or_else(|e| panic!("{e:#}"));
        let replay = loaded.replay();
        if !replay.as_expected || !replay.hash_matches {
            failures.push(format!(
                "{}: {} (trace hash {:016x}, pinned {}); replay: lakesim replay {}",
                path.display(),
                match &replay.outcome.violation {
                    Some(v) => format!("violated {}: {}", v.invariant, v.detail),
                    None => "passed".to_string(),
                },
                replay.outcome.trace_hash,
                loaded.file.trace_hash,
                path.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "seed files not as recorded:\n{}",
        failures.join("\n")
    );
}
