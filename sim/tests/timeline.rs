//! The timeline page in a real browser: headless Chromium (Debian's `chromium` package) loads
//! `lakesim replay seeds/fail-commit-old-term.toml --html`, runs its script, and the rendered
//! page must show the violation inside the window. Skipped, saying so, where no Chromium is
//! installed (`apt-get install -y chromium`; `.ci/run` installs it when it can).

use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

#[test]
fn the_timeline_renders_in_chromium_with_the_violation_on_screen() {
    let Some(browser) = chromium() else {
        eprintln!(
            "skipped: no chromium on this machine (apt-get install -y chromium runs this test)"
        );
        return;
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("timeline");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("fail-commit-old-term.html");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds/fail-commit-old-term.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_lakesim"))
        .args([
            "replay",
            corpus.to_str().unwrap(),
            "--html",
            page.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the file fails on replay");
    let url = format!("file://{}", page.display());
    let headless = |extra: &[&str]| {
        Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .args(["--window-size=1400,900", "--virtual-time-budget=3000"])
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    let dom = headless(&["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("data-violation-on-screen=\"yes\""),
        "the violation is not on screen: {}",
        &dom[..dom.len().min(2000)]
    );
    assert!(dom.contains("VIOLATION durability"), "the banner names it");
    let shot = dir.join("fail-commit-old-term.png");
    let arg = format!("--screenshot={}", shot.display());
    headless(&[&arg]);
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000),
        "a screenshot at {}",
        shot.display()
    );
    eprintln!("screenshot: {}", shot.display());
}
