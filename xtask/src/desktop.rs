//! The desktop app (`examples/desktop`, package `chum-desktop`): building it, running it, and
//! its end-to-end tests in headless Chromium.

use std::process::Command;

use crate::browser::{self, CHROMIUM};
use crate::{cargo, root, run};

/// Builds the renderer's package and the main binary (release).
fn build() -> Result<std::path::PathBuf, String> {
    let pkg = browser::web()?;
    run(
        "build chum-desktop (release)",
        cargo().args(["build", "--locked", "--release", "-p", "chum-desktop"]),
    )?;
    Ok(pkg)
}

/// `cargo xtask desktop [--build] [-- ARGS]`: builds, then (without `--build`) runs
/// `target/release/chum-desktop ARGS`, which opens the page in the system browser.
pub fn desktop(args: &[&str]) -> Result<(), String> {
    let (only_build, passed) = match args {
        ["--build", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let passed: Vec<&str> = passed.iter().copied().filter(|arg| *arg != "--").collect();
    let pkg = build()?;
    let binary = root().join("target/release/chum-desktop");
    if only_build {
        eprintln!(
            "xtask: built {} (renderer package: {})",
            binary.display(),
            pkg.display()
        );
        return Ok(());
    }
    run(
        "chum-desktop",
        Command::new(&binary)
            .args(&passed)
            .env("CHUM_DESKTOP_PKG", &pkg),
    )
}

/// The end-to-end tests (`examples/desktop/tests/e2e.mjs`): the real main binary and its
/// renderer in headless Chromium; screenshots into `docs/images/`.
pub fn e2e() -> Result<(), String> {
    browser::ensure_chromium()?;
    let pkg = browser::web()?;
    run(
        "build chum-desktop and the chum CLI",
        cargo().args(["build", "--locked", "-p", "chum-desktop", "-p", "chum-cli"]),
    )?;
    let tests = browser::npm_ci(&root().join("examples/desktop/tests"))?;
    run(
        "the desktop app end to end in headless Chromium",
        Command::new("node")
            .arg("e2e.mjs")
            .current_dir(&tests)
            .env("DESKTOP_BIN", root().join("target/debug/chum-desktop"))
            .env("CHUM_BIN", root().join("target/debug/chum"))
            .env("DESKTOP_PKG", &pkg)
            .env("SCREENSHOTS", root().join("docs/images"))
            .env("CHROMIUM", CHROMIUM),
    )
}

/// The desktop app's figures (`examples/desktop/tests/figures.mjs`, release build): startup
/// time, RSS, send → enhanced latency, catching up after being away.
pub fn figures() -> Result<(), String> {
    browser::ensure_chromium()?;
    let pkg = build()?;
    run(
        "build the chum CLI (release)",
        cargo().args(["build", "--locked", "--release", "-p", "chum-cli"]),
    )?;
    let tests = browser::npm_ci(&root().join("examples/desktop/tests"))?;
    run(
        "the desktop app's figures in headless Chromium",
        Command::new("node")
            .arg("figures.mjs")
            .current_dir(&tests)
            .env("DESKTOP_BIN", root().join("target/release/chum-desktop"))
            .env("CHUM_BIN", root().join("target/release/chum"))
            .env("DESKTOP_PKG", &pkg)
            .env("CHROMIUM", CHROMIUM),
    )
}
