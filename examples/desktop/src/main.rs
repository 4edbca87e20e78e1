//! `chum-desktop`: the desktop app's main process. One instance of the person on redb in the
//! data directory; on one loopback port it serves the renderer's files over HTTP, the
//! renderer's pairing endpoint, main's settings, and CHUM over WebSocket (`/chum`). It runs the
//! AI enhancer on every message that asks for it, exactly once.
//!
//! The renderer (`web/`) is a browser instance of the same person on `chum-web`: it pairs on
//! its first load and syncs with main by CHUM instead of IPC.

mod enhancer;
mod http;
mod pairing;
mod settings;
#[cfg(feature = "window")]
mod window;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

/// The desktop app's main process: serves the renderer on http://127.0.0.1:PORT and syncs
/// with it by CHUM over ws://127.0.0.1:PORT/chum.
#[derive(Debug, Parser)]
#[command(name = "chum-desktop", version)]
struct Args {
    /// The loopback port of the app (its HTTP page and its CHUM WebSocket). The renderer's
    /// data belongs to this origin: the app never moves to another port on its own.
    #[arg(long, default_value_t = 8765)]
    port: u16,
    /// Main's data directory [default: $XDG_DATA_HOME/chum-desktop, or
    /// ~/.local/share/chum-desktop].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Do not open the page in the system browser.
    #[arg(long)]
    no_open: bool,
    /// The renderer's `chum-web` package [default: CHUM_DESKTOP_PKG, else the `chum-web/pkg`
    /// that `cargo xtask desktop` builds beside this binary's target directory].
    #[arg(long)]
    pkg: Option<PathBuf>,
    /// Forget the paired renderer (revoking its instance) so that a new browser store can
    /// pair — e.g. after the browser's site data was cleared.
    #[arg(long)]
    unpair_renderer: bool,
    /// Show the page in a window of its own (the system webview) instead of a browser tab;
    /// closing the window stops main. (Built with the `window` feature.)
    #[cfg(feature = "window")]
    #[arg(long)]
    window: bool,
}

fn data_dir(args: &Args) -> PathBuf {
    if let Some(dir) = &args.data {
        return dir.clone();
    }
    if let Some(base) = std::env::var_os("XDG_DATA_HOME").filter(|base| !base.is_empty()) {
        return PathBuf::from(base).join("chum-desktop");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/share/chum-desktop")
}

fn pkg_dir(args: &Args) -> PathBuf {
    if let Some(dir) = &args.pkg {
        return dir.clone();
    }
    if let Some(dir) = std::env::var_os("CHUM_DESKTOP_PKG").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    // target/release/chum-desktop → target/chum-web/pkg
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("chum-web/pkg")))
        .unwrap_or_else(|| PathBuf::from("target/chum-web/pkg"))
}

/// Everything the connection handlers share.
#[derive(Debug)]
pub struct App {
    /// Main's instance.
    pub instance: chum::Instance,
    /// The loopback port.
    pub port: u16,
    /// The renderer's package directory.
    pub pkg: PathBuf,
    /// Pairing requests, one at a time.
    pub pairing: tokio::sync::Mutex<()>,
}

impl App {
    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where the renderer connects: `ws://127.0.0.1:PORT/chum`.
    pub fn chum_url(&self) -> String {
        format!("ws://127.0.0.1:{}/chum", self.port)
    }
}

/// Tells the caller main's address once it listens.
type Ready = std::sync::mpsc::Sender<String>;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("chum-desktop: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    #[cfg(feature = "window")]
    if args.window {
        return window::run(runtime, args);
    }
    let (ready, _address) = std::sync::mpsc::channel();
    finish(runtime.block_on(run(args, ready, stop_signal())))
}

/// Resolves on Ctrl-C (or SIGTERM).
async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("chum-desktop: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run(
    args: Args,
    ready: Ready,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let data = data_dir(&args);
    let pkg = pkg_dir(&args);
    if !pkg.join("chum_web_bg.wasm").exists() {
        return Err(format!(
            "the renderer's package is not in {} (build it with `cargo xtask desktop --build`, or pass --pkg DIR)",
            pkg.display()
        ));
    }
    // The port first: if it is taken, say so before touching the store.
    let address = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
            return Err(format!(
                "port {} is taken (is chum-desktop already running?). The renderer's data belongs to http://127.0.0.1:{}, so the app does not move to another port: stop the other program, or choose another with --port (a page on another port is another origin: it starts with no store of its own, and main pairs it only after --unpair-renderer)",
                args.port, args.port
            ));
        }
        Err(error) => return Err(format!("cannot listen on {address}: {error}")),
    };
    let port = listener
        .local_addr()
        .map_err(|error| error.to_string())?
        .port();
    std::fs::create_dir_all(&data).map_err(|error| {
        format!(
            "cannot create the data directory {}: {error}",
            data.display()
        )
    })?;
    let instance = chum::Instance::builder()
        .path(data.join("store"))
        .open()
        .await
        .map_err(|error| format!("cannot open main's store in {}: {error}", data.display()))?;
    let app = Arc::new(App {
        instance: instance.clone(),
        port,
        pkg,
        pairing: tokio::sync::Mutex::new(()),
    });
    if args.unpair_renderer {
        let revoked = pairing::unpair(&app)
            .await
            .map_err(|error| error.to_string())?;
        eprintln!("chum-desktop: {revoked}");
    }
    tokio::spawn(pairing::watch_renderer(Arc::clone(&app)));
    tokio::spawn(enhancer::run(instance.clone()));
    let url = format!("http://127.0.0.1:{port}");
    eprintln!("chum-desktop: main is person {}", instance.person());
    eprintln!("listening on {url}");
    #[cfg(feature = "window")]
    let in_window = args.window;
    #[cfg(not(feature = "window"))]
    let in_window = false;
    if !args.no_open && !in_window {
        open_browser(&url);
    }
    let _ = ready.send(url);
    let serve = http::serve(Arc::clone(&app), listener);
    tokio::select! {
        result = serve => result.map_err(|error| format!("the listener failed: {error}"))?,
        () = stop => eprintln!("chum-desktop: stopping"),
    }
    instance.close().await;
    Ok(())
}

/// Opens `url` in the system browser (`xdg-open`; `$BROWSER` when set), or says where to go.
fn open_browser(url: &str) {
    let opener = std::env::var("BROWSER").unwrap_or_else(|_| "xdg-open".into());
    match std::process::Command::new(&opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => {}
        Err(_) => eprintln!("chum-desktop: open {url} in your browser"),
    }
}
