//! The desktop app (`examples/desktop`, package `chum-desktop`): building it, running it, and
//! its end-to-end tests in headless Chromium.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::browser::{self, CHROMIUM};
use crate::{cargo, root, run};

/// Installs what the window build needs (WebKitGTK and GTK development packages) and, for its
/// test, a virtual display and a screenshot tool, when missing.
fn ensure_window_packages(test: bool) -> Result<(), String> {
    let have_webkit = Command::new("pkg-config")
        .args(["--exists", "webkit2gtk-4.1", "gtk+-3.0"])
        .status()
        .is_ok_and(|status| status.success());
    let have_tools = !test
        || ["/usr/bin/Xvfb", "/usr/bin/xwd", "/usr/bin/convert"]
            .iter()
            .all(|tool| Path::new(tool).exists());
    if have_webkit && have_tools {
        return Ok(());
    }
    let mut packages = vec!["libwebkit2gtk-4.1-dev", "libgtk-3-dev", "pkg-config"];
    if test {
        packages.extend(["xvfb", "x11-apps", "imagemagick"]);
    }
    browser::apt_install("WebKitGTK and GTK (the desktop window)", &packages)
}

/// Builds the renderer's package and the main binary (release; with `window`, the window
/// feature).
fn build(window: bool) -> Result<std::path::PathBuf, String> {
    let pkg = browser::web()?;
    let mut command = cargo();
    command.args(["build", "--locked", "--release", "-p", "chum-desktop"]);
    if window {
        ensure_window_packages(false)?;
        command.args(["--features", "window"]);
    }
    run("build chum-desktop (release)", &mut command)?;
    Ok(pkg)
}

/// `cargo xtask desktop [--build] [-- ARGS]`: builds, then (without `--build`) runs
/// `target/release/chum-desktop ARGS`, which opens the page in the system browser.
pub fn desktop(args: &[&str]) -> Result<(), String> {
    let mut only_build = false;
    let mut window = false;
    let mut passed = Vec::new();
    let mut ours = true;
    for arg in args {
        match *arg {
            "--" if ours => ours = false,
            "--build" if ours => only_build = true,
            "--window" if ours => window = true,
            other => passed.push(other),
        }
    }
    if window {
        passed.push("--window");
    }
    let pkg = build(window)?;
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
    let pkg = build(false)?;
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

/// The window mode under a virtual display: `chum-desktop --window` starts, its page (in
/// WebKitGTK) loads, pairs and connects; a screenshot goes to `docs/images/desktop-window.png`;
/// SIGTERM stops it cleanly.
pub fn window_test() -> Result<(), String> {
    ensure_window_packages(true)?;
    let pkg = browser::web()?;
    run(
        "build chum-desktop with its window",
        cargo().args([
            "build",
            "--locked",
            "-p",
            "chum-desktop",
            "--features",
            "window",
        ]),
    )?;
    let display = format!(":{}", 90 + std::process::id() % 100);
    let mut xvfb = Command::new("Xvfb")
        .args([
            display.as_str(),
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| format!("cannot start Xvfb: {error}"))?;
    let result = window_in(&display, &pkg);
    let _ = xvfb.kill();
    let _ = xvfb.wait();
    result
}

fn window_in(display: &str, pkg: &Path) -> Result<(), String> {
    let data = std::env::temp_dir().join(format!("chum-desktop-window-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|error| error.to_string())?
        .port();
    std::thread::sleep(Duration::from_millis(500)); // Xvfb comes up
    let mut app = Command::new(root().join("target/debug/chum-desktop"))
        .args(["--window", "--port", &port.to_string(), "--pkg"])
        .arg(pkg)
        .arg("--data")
        .arg(&data)
        .env("DISPLAY", display)
        .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot start chum-desktop --window: {error}"))?;
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    if let Some(stderr) = app.stderr.take() {
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                eprintln!("  chum-desktop: {line}");
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut opened = false;
    let mut paired = false;
    while !(opened && paired) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                opened |= line.contains("the page is open in a window");
                paired |= line.contains("the renderer paired");
            }
            Err(_) => {
                let _ = app.kill();
                return Err(format!(
                    "the window's page did not pair within 90 s (window shown: {opened})"
                ));
            }
        }
    }
    eprintln!("xtask: the window shows the page, which paired with main");
    std::thread::sleep(Duration::from_secs(2)); // the page renders its first state
    let images = root().join("docs/images");
    let _ = std::fs::create_dir_all(&images);
    let shot = images.join("desktop-window.png");
    let screenshot = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "xwd -root -silent -display {display} | convert xwd:- -crop 1100x720+0+0 png:{}",
            shot.display()
        ))
        .status();
    let _ = Command::new("kill")
        .args(["-TERM", &app.id().to_string()])
        .status();
    let status = app.wait().map_err(|error| error.to_string())?;
    let _ = std::fs::remove_dir_all(&data);
    if !screenshot.is_ok_and(|status| status.success()) {
        return Err("cannot take a screenshot of the window".into());
    }
    if !status.success() {
        return Err(format!(
            "chum-desktop --window did not stop cleanly: {status}"
        ));
    }
    eprintln!("xtask: screenshot of the window: {}", shot.display());
    Ok(())
}
