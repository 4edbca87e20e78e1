//! `cargo xtask`: the one entry point for the project's checks.
//!
//! - `cargo xtask test`: formatting, clippy (warnings denied), all tests (PostgreSQL installed
//!   when missing, for the hub store's throwaway clusters), docs (warnings denied),
//!   the wasm32 build of the I/O-free crates, the browser crates' tests in headless Chromium
//!   (Chromium, ChromeDriver and `wasm-bindgen-cli` installed when missing), a build of the
//!   fuzz targets and the benchmark report's quick mode.
//! - `cargo xtask fuzz TARGET SECONDS`: runs one fuzz target (nightly and cargo-fuzz are
//!   installed when missing).
//! - `cargo xtask load [--quick]`: hubs on PostgreSQL under load (two hub processes, simulated
//!   devices, a hub killed mid-run, the leak check); `test` runs the quick size.
//! - `cargo xtask bench-report [--quick]`: chum beside automerge, yrs, Loro and negentropy;
//!   regenerates `docs/benchmarks.md` and its plots.
//! - `cargo xtask soak-store N`: N kill -9 rounds against the redb store.
//! - `cargo xtask sim N` runs N simulation seeds (ends with `N passed, M failed`);
//!   `cargo xtask sim --seed S` replays one.

mod browser;
mod desktop;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Crates that do no I/O and must build for `wasm32-unknown-unknown`.
const WASM_CRATES: &[&str] = &[
    "chum-object",
    "chum-sketch",
    "chum-crdt",
    "chum-store",
    "chum-sync",
    "chum-access",
    "chum-host",
];
const WASM_TARGET: &str = "wasm32-unknown-unknown";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["test"] => test(),
        ["fuzz", target, seconds] => match seconds.parse::<u64>() {
            Ok(seconds) => fuzz(target, seconds),
            Err(_) => Err(format!("SECONDS must be a whole number, not {seconds:?}")),
        },
        ["fuzz-build"] => fuzz_build(),
        ["load"] => load(false),
        ["load", "--quick"] => load(true),
        ["bench-report"] => bench_report(false),
        ["bench-report", "--quick"] => bench_report(true),
        ["web"] => browser::web().map(drop),
        ["web-bench"] => browser::web_bench(),
        ["desktop", rest @ ..] => desktop::desktop(rest),
        ["desktop-e2e"] => desktop::e2e(),
        ["desktop-window"] => desktop::window_test(),
        ["desktop-bench"] => desktop::figures(),
        ["soak-store", rounds] => match rounds.parse::<u64>() {
            Ok(rounds) => soak_store(rounds),
            Err(_) => Err(format!("N must be a whole number, not {rounds:?}")),
        },
        ["sim", "--seed", seed] => sim(&["--seed", seed]),
        ["sim", count] => match count.parse::<u64>() {
            Ok(_) => sim(&[count]),
            Err(_) => Err(format!("N must be a whole number, not {count:?}")),
        },
        ["sim", "--access", "--seed", seed] => sim(&["--access", "--seed", seed]),
        ["sim", "--access", count] => match count.parse::<u64>() {
            Ok(_) => sim(&["--access", count]),
            Err(_) => Err(format!("N must be a whole number, not {count:?}")),
        },
        _ => Err(USAGE.trim().to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "
usage: cargo xtask test                    all checks CI runs
       cargo xtask fuzz TARGET SECONDS     run one fuzz target (see fuzz/fuzz_targets)
       cargo xtask fuzz-build              build every fuzz target
       cargo xtask web                     build chum-web's JavaScript package into target/chum-web/pkg
       cargo xtask web-bench               the browser peer's figures in headless Chromium
       cargo xtask desktop [--build] [--window] [-- ARGS]
                                           build the desktop app and run it (ARGS: chum-desktop's;
                                           --window: in a system-webview window)
       cargo xtask desktop-window          the window mode under Xvfb (a screenshot)
       cargo xtask desktop-e2e             the desktop app end to end in headless Chromium
       cargo xtask desktop-bench           the desktop app's figures (startup, RSS, send → enhanced)
       cargo xtask load [--quick]          hubs on PostgreSQL under load: 2 hub processes, 100 persons ×
                                           10 devices, a hub killed mid-run (--quick: small, debug)
       cargo xtask bench-report [--quick]  chum beside automerge, yrs, Loro and negentropy: regenerates
                                           docs/benchmarks.md and its plots (--quick: small sizes, into
                                           target/bench-report-quick)
       cargo xtask soak-store N            N kill -9 rounds against the redb store
       cargo xtask sim N                   N seeds of the network simulation
       cargo xtask sim --seed S            replay one simulation seed
       cargo xtask sim --access N          N seeds of the access scenario (grants, 3 persons)
";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(root());
    command
}

fn run(step: &str, command: &mut Command) -> Result<(), String> {
    eprintln!("xtask: == {step}");
    let start = Instant::now();
    let status = command
        .status()
        .map_err(|error| format!("{step}: cannot start: {error}"))?;
    eprintln!("xtask: {step}: {:.1} s", start.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("{step} failed ({status})"))
    }
}

fn succeeds(command: &mut Command) -> bool {
    command.output().is_ok_and(|output| output.status.success())
}

pub(crate) fn ensure_wasm_target() -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|output| {
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .any(|line| line == WASM_TARGET)
        })
        .unwrap_or(false);
    if installed {
        return Ok(());
    }
    run(
        "install the wasm32 target",
        Command::new("rustup").args(["target", "add", WASM_TARGET]),
    )
}

/// Installs Debian's PostgreSQL server when no `initdb` is found where the store's test
/// clusters look (`CHUM_PG_BIN`, `/usr/lib/postgresql/N/bin`): the PostgreSQL store's tests,
/// the hub tests and the load test start throwaway clusters with it.
pub(crate) fn ensure_postgres() -> Result<(), String> {
    if let Some(dir) = std::env::var_os("CHUM_PG_BIN")
        && Path::new(&dir).join("initdb").is_file()
    {
        return Ok(());
    }
    let installed = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| entry.path().join("bin/initdb").is_file());
    if installed {
        return Ok(());
    }
    browser::apt_install("PostgreSQL", &["postgresql"])
}

fn test() -> Result<(), String> {
    run("fmt", cargo().args(["fmt", "--all", "--check"]))?;
    ensure_postgres()?;
    run(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    run("tests", cargo().args(["test", "--workspace", "--locked"]))?;
    run(
        "docs",
        cargo()
            .args(["doc", "--workspace", "--no-deps", "--locked"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    ensure_wasm_target()?;
    let mut wasm = cargo();
    wasm.args(["build", "--locked", "--target", WASM_TARGET]);
    for krate in WASM_CRATES {
        wasm.args(["-p", krate]);
    }
    run("wasm32 build of the I/O-free crates", &mut wasm)?;
    run(
        "wasm32 build of the Instance API without its native parts",
        cargo().args([
            "build",
            "--locked",
            "--target",
            WASM_TARGET,
            "-p",
            "chum",
            "--no-default-features",
        ]),
    )?;
    run(
        "clippy of the browser crates (wasm32)",
        cargo().args([
            "clippy",
            "--locked",
            "--target",
            WASM_TARGET,
            "--all-targets",
            "-p",
            "chum-store-idb",
            "-p",
            "chum-web",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    run(
        "clippy of the browser driver and the Instance with its network (wasm32)",
        cargo().args([
            "clippy",
            "--locked",
            "--target",
            WASM_TARGET,
            "--lib",
            "-p",
            "chum-net",
            "-p",
            "chum",
            "--no-default-features",
            "--features",
            "chum/net",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    browser::test_in_chromium(&["chum-store-idb"])?;
    browser::page_tests()?;
    desktop::e2e()?;
    desktop::window_test()?;
    fuzz_build()?;
    run(
        "the benchmark report, quick (small sizes, debug build: it runs, its figures mean nothing)",
        cargo().args([
            "run",
            "--locked",
            "-p",
            "chum-benches",
            "--bin",
            "compare",
            "--",
            "report",
            "--quick",
        ]),
    )?;
    load(true)?;
    eprintln!("xtask: all checks passed");
    Ok(())
}

/// `cargo xtask load [--quick]`: the hub load test (`benches/src/bin/hub_load.rs`) against
/// the `chum` binary — release for the full size, debug for the quick one (it checks, its
/// figures mean nothing).
fn load(quick: bool) -> Result<(), String> {
    ensure_postgres()?;
    let profile: &[&str] = if quick { &[] } else { &["--release"] };
    run(
        "build chum and the load test",
        cargo()
            .args(["build", "--locked", "-p", "chum-cli", "-p", "chum-benches"])
            .args(["--bin", "chum", "--bin", "hub_load"])
            .args(profile),
    )?;
    let dir = root()
        .join("target")
        .join(if quick { "debug" } else { "release" });
    let mut command = Command::new(dir.join("hub_load"));
    command.arg("--chum").arg(dir.join("chum"));
    if quick {
        command.arg("--quick");
    }
    run("the hub load test", &mut command)
}

/// `cargo xtask bench-report [--quick]`: the comparison with the other sync libraries, in
/// release, every measurement in its own process (see `benches/src/bin/compare`).
fn bench_report(quick: bool) -> Result<(), String> {
    let mut command = cargo();
    command.args([
        "run",
        "--release",
        "--locked",
        "-p",
        "chum-benches",
        "--bin",
        "compare",
    ]);
    if !quick {
        // The full report includes iroh-blobs, whose networking stack is built only for it.
        command.args(["--features", "iroh"]);
    }
    command.args(["--", "report"]);
    if quick {
        command.arg("--quick");
    }
    run("the benchmark report", &mut command)
}

/// Builds the fuzz targets with the stable toolchain (no sanitizer instrumentation), which
/// proves they compile against the current API without needing nightly.
fn fuzz_build() -> Result<(), String> {
    run(
        "build fuzz targets",
        cargo().args(["build", "--manifest-path", "fuzz/Cargo.toml", "--bins"]),
    )
}

fn fuzz(target: &str, seconds: u64) -> Result<(), String> {
    if !succeeds(Command::new("rustup").args(["run", "nightly", "rustc", "--version"])) {
        run(
            "install nightly",
            Command::new("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
            ]),
        )?;
    }
    if !succeeds(cargo().args(["fuzz", "--version"])) {
        run(
            "install cargo-fuzz",
            cargo().args(["install", "cargo-fuzz"]),
        )?;
    }
    let corpus = root().join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&corpus)
        .map_err(|error| format!("cannot create {}: {error}", corpus.display()))?;
    let mut command = Command::new("rustup");
    command
        .current_dir(root().join("fuzz"))
        .args(["run", "nightly", "cargo", "fuzz", "run", target]);
    let seeds = root().join("fuzz/seeds").join(target);
    command.arg(&corpus);
    if seeds.is_dir() {
        command.arg(&seeds);
    }
    command.args([
        "--",
        &format!("-max_total_time={seconds}"),
        "-print_final_stats=1",
    ]);
    run(&format!("fuzz {target} for {seconds} s"), &mut command)
}

/// Runs the deterministic simulation (release build); it prints `N passed, M failed` last.
fn sim(args: &[&str]) -> Result<(), String> {
    run(
        &format!("simulate {}", args.join(" ")),
        cargo()
            .args([
                "run",
                "--release",
                "--quiet",
                "-p",
                "chum-sim",
                "--bin",
                "chum-sim",
                "--",
            ])
            .args(args),
    )
}

/// Kills a writer process N times at random moments and checks the store after each; the
/// binary prints `N passed, M failed` last.
fn soak_store(rounds: u64) -> Result<(), String> {
    run(
        &format!("soak the redb store for {rounds} rounds"),
        cargo()
            .args([
                "run",
                "--release",
                "--quiet",
                "-p",
                "chum-store-redb",
                "--bin",
                "chum-store-soak",
                "--",
                "soak",
            ])
            .arg(rounds.to_string()),
    )
}
