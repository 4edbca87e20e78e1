//! What the browser checks need, installed when missing: Debian's Chromium and ChromeDriver,
//! and `wasm-bindgen-cli` at exactly the `wasm-bindgen` version in `Cargo.lock`.

use std::path::Path;
use std::process::Command;

use crate::{cargo, root, run};

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's ChromeDriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Installs Chromium and ChromeDriver from Debian's packages when either is missing.
pub fn ensure_chromium() -> Result<(), String> {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return Ok(());
    }
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0");
    let apt = |args: &[&str]| {
        let mut command = if root_user {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    run("apt-get update", &mut apt(&["update", "-q"]))?;
    run(
        "install chromium and chromium-driver",
        &mut apt(&["install", "-y", "-q", "chromium", "chromium-driver"]),
    )
}

/// The `wasm-bindgen` version `Cargo.lock` holds.
pub fn locked_wasm_bindgen() -> Result<String, String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock"))
        .map_err(|error| format!("cannot read Cargo.lock: {error}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\""
            && let Some(version) = lines
                .next()
                .and_then(|next| next.strip_prefix("version = \""))
                .and_then(|rest| rest.strip_suffix('"'))
        {
            return Ok(version.to_owned());
        }
    }
    Err("Cargo.lock holds no wasm-bindgen".into())
}

/// Installs `wasm-bindgen-cli` at the locked version unless that version is installed.
pub fn ensure_wasm_bindgen() -> Result<(), String> {
    let version = locked_wasm_bindgen()?;
    let installed = Command::new("wasm-bindgen-test-runner")
        .arg("--version")
        .output()
        .is_ok_and(|output| {
            String::from_utf8_lossy(&output.stdout)
                .split_whitespace()
                .any(|word| word == version)
        });
    if installed {
        return Ok(());
    }
    run(
        &format!("install wasm-bindgen-cli {version}"),
        cargo().args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            &format!("={version}"),
        ]),
    )
}

/// `cargo test` for wasm32 in headless Chromium (through `wasm-bindgen-test-runner` and
/// ChromeDriver) for `packages`.
pub fn test_in_chromium(packages: &[&str]) -> Result<(), String> {
    ensure_chromium()?;
    ensure_wasm_bindgen()?;
    let mut command = cargo();
    command
        .args(["test", "--locked", "--target", crate::WASM_TARGET])
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
            "wasm-bindgen-test-runner",
        )
        .env("CHROMEDRIVER", CHROMEDRIVER)
        .env("WASM_BINDGEN_TEST_TIMEOUT", "900");
    for package in packages {
        command.args(["-p", package]);
    }
    run("tests in headless Chromium", &mut command)
}
