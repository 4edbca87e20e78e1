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
    apt_install(
        "chromium and chromium-driver",
        &["chromium", "chromium-driver"],
    )
}

/// Installs Debian `packages` (apt-get update first), as root or through sudo.
pub fn apt_install(what: &str, packages: &[&str]) -> Result<(), String> {
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
    let mut install = vec!["install", "-y", "-q"];
    install.extend_from_slice(packages);
    run(&format!("install {what}"), &mut apt(&install))
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

/// Builds the JavaScript package of `chum-web` into `target/chum-web/pkg/` (ES module, wasm,
/// TypeScript types, `package.json`); returns that directory.
pub fn web() -> Result<std::path::PathBuf, String> {
    package(false)
}

/// Builds the package (with the `bench` helpers into `target/chum-web/bench-pkg/`).
fn package(bench: bool) -> Result<std::path::PathBuf, String> {
    crate::ensure_wasm_target()?;
    ensure_wasm_bindgen()?;
    let mut build = cargo();
    build.args([
        "build",
        "--locked",
        "--release",
        "--target",
        crate::WASM_TARGET,
        "-p",
        "chum-web",
    ]);
    if bench {
        build.args(["--features", "bench"]);
    }
    run("build chum-web (wasm32, release)", &mut build)?;
    let target = root().join("target");
    let out = target.join(if bench {
        "chum-web/bench-pkg"
    } else {
        "chum-web/pkg"
    });
    let wasm = target
        .join(crate::WASM_TARGET)
        .join("release/chum_web.wasm");
    run(
        "wasm-bindgen (ES module and TypeScript types)",
        Command::new("wasm-bindgen")
            .args(["--target", "web", "--out-dir"])
            .arg(&out)
            .arg(&wasm),
    )?;
    let optimized = out.join("chum_web_bg.wasm");
    if Command::new("wasm-opt").arg("--version").output().is_ok() {
        run(
            "wasm-opt -Oz (binaryen is installed)",
            Command::new("wasm-opt")
                .args([
                    "-Oz",
                    "--enable-bulk-memory",
                    "--enable-nontrapping-float-to-int",
                    "--enable-sign-ext",
                    "--enable-mutable-globals",
                    "-o",
                ])
                .arg(&optimized)
                .arg(&optimized),
        )?;
    }
    // The worker variant of the API (hand-written JavaScript beside the generated module).
    let js = root().join("crates/chum-web/js");
    for file in ["worker.js", "chum_worker.js", "worker.d.ts"] {
        std::fs::copy(js.join(file), out.join(file))
            .map_err(|error| format!("cannot copy {file} into the package: {error}"))?;
    }
    let version = env!("CARGO_PKG_VERSION");
    let manifest = format!(
        r#"{{
  "name": "chum-web",
  "version": "{version}",
  "description": "chum in the browser: local-first sync over IndexedDB and WebSocket",
  "license": "MIT OR Apache-2.0",
  "type": "module",
  "main": "chum_web.js",
  "types": "chum_web.d.ts",
  "exports": {{
    ".": {{ "types": "./chum_web.d.ts", "default": "./chum_web.js" }},
    "./worker": {{ "types": "./worker.d.ts", "default": "./worker.js" }},
    "./chum_worker.js": "./chum_worker.js",
    "./chum_web_bg.wasm": "./chum_web_bg.wasm"
  }},
  "files": ["chum_web.js", "chum_web_bg.wasm", "chum_web.d.ts", "chum_web_bg.wasm.d.ts", "worker.js", "chum_worker.js", "worker.d.ts"],
  "sideEffects": ["./snippets/*"]
}}
"#
    );
    std::fs::write(out.join("package.json"), manifest)
        .map_err(|error| format!("cannot write package.json: {error}"))?;
    let size = std::fs::metadata(&optimized).map_or(0, |meta| meta.len());
    eprintln!(
        "xtask: the package is in {} (chum_web_bg.wasm: {size} bytes)",
        out.display()
    );
    Ok(out)
}

/// The page tests (`crates/chum-web/tests/page/run.mjs`): the package in headless Chromium
/// against a native `chum serve`, driven by Playwright (npm's `playwright-core`, Debian's
/// Chromium).
pub fn page_tests() -> Result<(), String> {
    ensure_chromium()?;
    let pkg = web()?;
    run(
        "build the chum CLI",
        cargo().args(["build", "--locked", "-p", "chum-cli"]),
    )?;
    let tests = npm_packages()?;
    run(
        "page tests in headless Chromium",
        Command::new("node")
            .arg("run.mjs")
            .current_dir(&tests)
            .env("CHUM_BIN", root().join("target/debug/chum"))
            .env("CHUM_WEB_PKG", &pkg)
            .env("CHROMIUM", CHROMIUM),
    )
}

/// Installs the page tests' npm packages when missing.
fn npm_packages() -> Result<std::path::PathBuf, String> {
    npm_ci(&root().join("crates/chum-web/tests/page"))
}

/// `npm ci` in `tests` (a directory with a package-lock.json) unless its packages are there.
pub fn npm_ci(tests: &Path) -> Result<std::path::PathBuf, String> {
    let tests = tests.to_path_buf();
    if !tests.join("node_modules/playwright-core").exists() {
        run(
            "npm ci (playwright-core)",
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&tests),
        )?;
    }
    Ok(tests)
}

/// The browser peer's figures (`crates/chum-web/tests/page/bench.mjs`): package size, store
/// puts beside raw IndexedDB puts, the initial sync from a native peer, the main thread
/// meanwhile, live push latency. Prints a Markdown report.
pub fn web_bench() -> Result<(), String> {
    ensure_chromium()?;
    let pkg = package(true)?;
    run(
        "build the native peer (release)",
        cargo().args([
            "build",
            "--locked",
            "--release",
            "-p",
            "chum-benches",
            "--bin",
            "browser_peer",
        ]),
    )?;
    let tests = npm_packages()?;
    run(
        "the browser peer's figures in headless Chromium",
        Command::new("node")
            .arg("bench.mjs")
            .current_dir(&tests)
            .env("BROWSER_PEER", root().join("target/release/browser_peer"))
            .env("CHUM_WEB_PKG", &pkg)
            .env("CHROMIUM", CHROMIUM),
    )
}
