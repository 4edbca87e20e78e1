//! `chum`: the command-line tool for chum stores and objects.
//!
//! Results go to stdout; messages and errors go to stderr, one line each. Exit codes: 0 success,
//! 1 bad input or a failed operation, 2 bad usage. Logs go to stderr through `tracing`
//! (`RUST_LOG`). It never prompts: keys are stored unsealed unless `CHUM_PASSPHRASE` or
//! `--passphrase-file` is given.

mod api;
mod store_commands;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chum::Instance;
use chum::{Object, dagcbor, dagjson};
use clap::{Parser, Subcommand};

use crate::store_commands::{Sink, StoreCommand, Terminal, execute};

#[derive(Debug, Parser)]
#[command(
    name = "chum",
    version,
    about = "Local-first, content-addressed sync: the chum command-line tool"
)]
struct Cli {
    /// The store (before or after the command): a directory, or a `postgres://` URL of a
    /// database that holds it (a hub's store; several processes may serve it at once).
    #[arg(long, global = true, env = "CHUM_STORE", value_name = "DIR|URL")]
    store: Option<PathBuf>,
    /// A file whose first line is the passphrase sealing the keys (or CHUM_PASSPHRASE).
    #[arg(long, global = true, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with single objects: hash, encode and decode (no store, no recipe checks).
    #[command(subcommand)]
    Object(ObjectCommand),
    /// Create a store with a new person and instance, or join a person with an invitation.
    Init {
        /// An invitation (`chum invite` on an instance of the person, which must be serving).
        #[arg(long, value_name = "INVITATION")]
        join: Option<String>,
        /// Where the inviting instance listens, when the invitation names no address.
        #[arg(long, value_name = "URL")]
        address: Option<String>,
    },
    /// Make an invitation for a new instance of this person (printed on the last line).
    Invite {
        /// How long it stays valid, in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// How many distinct instances may use it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// The address to name (default: where `chum serve` listens for this store).
        #[arg(long, value_name = "URL")]
        address: Option<String>,
    },
    /// Print `person <id>` and `instance <id>` (and where a running server listens).
    Whoami,
    /// Store one DAG-JSON object; print its CID once durable (a versioned type: a new version).
    Put {
        /// DAG-JSON input (stdin when absent).
        file: Option<PathBuf>,
    },
    /// Store newline-delimited DAG-JSON objects; print each CID as it becomes durable.
    Import {
        /// Newline-delimited DAG-JSON (stdin when absent).
        file: Option<PathBuf>,
    },
    /// Print an object as DAG-JSON (an unknown CID exits non-zero).
    Get {
        /// The CID.
        cid: String,
    },
    /// List the stored CIDs, one a line.
    Ls {
        /// Only objects of this `$type`.
        #[arg(long = "type", value_name = "TYPE")]
        type_name: Option<String>,
    },
    /// Print the ID hash of a versioned object.
    Id {
        /// DAG-JSON input (stdin when absent).
        file: Option<PathBuf>,
    },
    /// Print the current merged state of a versioned object (by its ID hash) as DAG-JSON.
    Show {
        /// The ID hash.
        id: String,
    },
    /// Delete a versioned object (a tombstone version); print the tombstone's CID.
    Delete {
        /// The ID hash.
        id: String,
    },
    /// Serve the store in the foreground, syncing live with every peer that connects.
    Serve {
        /// Where to listen: ws://HOST:PORT or tcp://HOST:PORT (repeatable; port 0 = any).
        #[arg(long, required = true, value_name = "URL")]
        listen: Vec<String>,
        /// Serve as a hub: persons grant this instance access, it stores and forwards what
        /// they share with it, and answers each peer from what its person may see.
        #[arg(long)]
        hub: bool,
        /// Sessions served at once per listener.
        #[arg(long, default_value_t = 512, value_name = "N")]
        max_sessions: usize,
        /// Connections one address may open per second, sustained (and twice that at once):
        /// raise it when many devices share an address (a NAT, a load balancer, a test).
        #[arg(long, default_value_t = 16.0, value_name = "N")]
        per_address: f64,
        /// Serve only instances of this person (as `chum whoami` prints it) besides this
        /// store's own; repeatable. Without `--admit` or `--admit-file`, anyone is served.
        #[arg(long, value_name = "PERSON")]
        admit: Vec<String>,
        /// Like `--admit`, for every person in the file (one per line; blank lines and lines
        /// starting with `#` are skipped).
        #[arg(long, value_name = "PATH")]
        admit_file: Option<PathBuf>,
        /// With `--hub`: store at most N objects sent by one person (over all its instances
        /// and every process serving the store); beyond, what it sends is refused with a
        /// reason. Without it, no bound.
        #[arg(long, value_name = "N", requires = "hub")]
        quota: Option<u64>,
        /// Threads that run sessions (default: one per CPU core). Give several processes
        /// that share a machine (hubs over one database, say) a part each: one thread per
        /// process wakes fewer threads per message than several that hand work across.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
    },
    /// Connect once, sync both ways, and exit 0 once both sides hold the same visible set.
    Sync {
        /// ws://HOST:PORT or tcp://HOST:PORT.
        url: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Grant a person access to an object or an ID (prints the grant's CID).
    Grant {
        /// The CID or ID hash.
        target: String,
        /// The person, as `chum whoami` prints it.
        #[arg(long, value_name = "PERSON")]
        to: String,
    },
    /// Withdraw a grant (prints the revocation's CID).
    Revoke {
        /// The grant's CID.
        grant: String,
    },
    /// Re-hash every stored object; exit non-zero listing corrupt CIDs.
    Verify,
    /// Counts: objects, shared, local, types, peers.
    Stats,
}

#[derive(Debug, Subcommand)]
enum ObjectCommand {
    /// Read DAG-JSON and print the CID of its canonical DAG-CBOR encoding.
    Hash {
        /// DAG-JSON input (stdin when absent).
        file: Option<PathBuf>,
    },
    /// Read DAG-JSON and write its canonical DAG-CBOR bytes.
    Encode {
        /// DAG-JSON input (stdin when absent).
        file: Option<PathBuf>,
        /// Write lowercase hex and a newline instead of raw bytes.
        #[arg(long)]
        hex: bool,
    },
    /// Read canonical DAG-CBOR and write DAG-JSON; non-canonical input is refused.
    Decode {
        /// DAG-CBOR input (stdin when absent).
        file: Option<PathBuf>,
        /// Read hex (whitespace ignored) instead of raw bytes.
        #[arg(long)]
        hex: bool,
    },
}

/// Largest input read, so that no input makes the tool allocate without bound.
const MAX_INPUT: u64 = 64 << 20;

fn read_input(file: &Option<PathBuf>) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    let read = match file {
        Some(path) => std::fs::File::open(path)
            .map_err(|error| format!("cannot open {}: {error}", path.display()))?
            .take(MAX_INPUT + 1)
            .read_to_end(&mut bytes),
        None => std::io::stdin()
            .lock()
            .take(MAX_INPUT + 1)
            .read_to_end(&mut bytes),
    };
    read.map_err(|error| format!("cannot read input: {error}"))?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(format!("input larger than {MAX_INPUT} bytes"));
    }
    Ok(bytes)
}

fn parse_json(file: &Option<PathBuf>) -> Result<chum::Value, String> {
    let input = read_input(file)?;
    dagjson::from_slice(&input).map_err(|error| error.to_string())
}

fn run_object(command: ObjectCommand, out: &mut dyn Write) -> Result<(), String> {
    let write_error = |error: std::io::Error| format!("cannot write output: {error}");
    match command {
        ObjectCommand::Hash { file } => {
            let value = parse_json(&file)?;
            let object = Object::from_value(&value).map_err(|error| error.to_string())?;
            writeln!(out, "{}", object.cid()).map_err(write_error)?;
        }
        ObjectCommand::Encode { file, hex } => {
            let value = parse_json(&file)?;
            let bytes = dagcbor::encode(&value).map_err(|error| error.to_string())?;
            if hex {
                writeln!(out, "{}", hex::encode(bytes)).map_err(write_error)?;
            } else {
                out.write_all(&bytes).map_err(write_error)?;
            }
        }
        ObjectCommand::Decode { file, hex } => {
            let mut bytes = read_input(&file)?;
            if hex {
                let text: String = String::from_utf8_lossy(&bytes).split_whitespace().collect();
                bytes = hex::decode(text).map_err(|error| format!("invalid hex: {error}"))?;
            }
            let value = dagcbor::decode(&bytes).map_err(|error| error.to_string())?;
            let json = dagjson::to_string(&value).map_err(|error| error.to_string())?;
            writeln!(out, "{json}").map_err(write_error)?;
        }
    }
    out.flush().map_err(write_error)
}

fn passphrase(cli: &Cli) -> Result<Option<String>, String> {
    if let Some(path) = &cli.passphrase_file {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        return Ok(Some(text.lines().next().unwrap_or_default().to_owned()));
    }
    Ok(std::env::var("CHUM_PASSPHRASE")
        .ok()
        .filter(|p| !p.is_empty()))
}

/// Where a store is.
#[derive(Debug, Clone)]
enum Location {
    /// A directory holding a redb file.
    Dir(PathBuf),
    /// A PostgreSQL database (`postgres://…`).
    Postgres(String),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(dir) => write!(f, "{}", dir.display()),
            // Never a password in a message.
            Location::Postgres(url) => f.write_str(&redacted(url)),
        }
    }
}

/// `url` without the password of its user part.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{scheme}://{name}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn store_location(cli: &Cli) -> Result<Location, String> {
    let store = cli.store.clone().ok_or_else(|| {
        "no store: give --store DIR (or a postgres:// URL) or set CHUM_STORE".to_string()
    })?;
    match store.to_str() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Location::Postgres(url.to_owned()))
        }
        _ => Ok(Location::Dir(store)),
    }
}

/// A builder for the store at `location`.
fn builder(location: &Location, passphrase: Option<&str>) -> chum::Builder {
    let builder = match location {
        Location::Dir(dir) => Instance::builder().path(dir),
        Location::Postgres(url) => Instance::builder().postgres(url.as_str()),
    };
    match passphrase {
        Some(passphrase) => builder.passphrase(passphrase),
        None => builder,
    }
}

/// Opens the instance of an initialized store; `Ok(None)` when another process holds it (a
/// directory: PostgreSQL stores are shared by every process that opens them).
async fn open(location: &Location, passphrase: Option<&str>) -> Result<Option<Instance>, String> {
    open_with(location, passphrase, |builder| builder).await
}

/// [`open`] with the builder changed by `change` first.
async fn open_with(
    location: &Location,
    passphrase: Option<&str>,
    change: impl FnOnce(chum::Builder) -> chum::Builder,
) -> Result<Option<Instance>, String> {
    match change(builder(location, passphrase)).open_existing().await {
        Ok(instance) => Ok(Some(instance)),
        Err(chum::Error::StoreLocked(reason)) => {
            tracing::debug!(%reason, "the store is locked");
            Ok(None)
        }
        Err(chum::Error::NotFound(_)) => Err(format!(
            "{location} is not an initialized chum store: run `chum init --store {location}`"
        )),
        Err(error) => Err(error.to_string()),
    }
}

/// Runs a store command here, or through the server holding the store.
async fn run_store(cli: &Cli, command: StoreCommand, file: Option<PathBuf>) -> Result<u8, String> {
    let location = store_location(cli)?;
    let passphrase = passphrase(cli)?;
    let input = if command.takes_input() {
        Some(read_input(&file)?)
    } else {
        None
    };
    let Location::Dir(dir) = &location else {
        // A database store is opened by every process that uses it; the servers over it hear
        // of this command's writes from the database.
        let instance = open(&location, passphrase.as_deref())
            .await?
            .ok_or_else(|| format!("{location} is in use"))?;
        let code = execute(&instance, command, input, &mut Terminal).await;
        instance.close().await;
        return Ok(code);
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match open(&location, passphrase.as_deref()).await? {
            Some(instance) => {
                api::remove_stale(dir);
                let code = execute(&instance, command, input, &mut Terminal).await;
                instance.close().await;
                return Ok(code);
            }
            None => {
                if let Some(code) = api::forward(dir, &command, input.clone(), &mut Terminal).await
                {
                    return Ok(code);
                }
                // Held by a short command, or a server still starting: try again shortly.
                if tokio::time::Instant::now() >= deadline {
                    return Err(format!(
                        "{} is in use by another process that does not answer commands",
                        dir.display()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn init(cli: &Cli, join: Option<String>, address: Option<String>) -> Result<u8, String> {
    let location = store_location(cli)?;
    let passphrase = passphrase(cli)?;
    let exists = match &location {
        Location::Dir(dir) => dir.join(chum::STORE_FILE).exists(),
        Location::Postgres(_) => match builder(&location, passphrase.as_deref())
            .open_existing()
            .await
        {
            Ok(instance) => {
                instance.close().await;
                true
            }
            Err(chum::Error::NotFound(_)) => false,
            Err(error) => return Err(error.to_string()),
        },
    };
    if exists {
        return Err(format!("{location} is already a chum store"));
    }
    let mut builder = builder(&location, passphrase.as_deref());
    if let Some(text) = join {
        let invitation = chum::Invitation::from_text(&text).map_err(|error| error.to_string())?;
        builder = match address {
            Some(address) => builder.join_at(invitation, address),
            None => builder.join(invitation),
        };
    }
    let instance = match builder.open().await {
        Ok(instance) => instance,
        Err(error) => {
            // Leave nothing behind that makes the next `init` fail (a database store without
            // an identity is not one yet: `init` may run again).
            if let Location::Dir(dir) = &location {
                let _ = std::fs::remove_file(dir.join(chum::STORE_FILE));
            }
            return Err(error.to_string());
        }
    };
    let code = execute(&instance, StoreCommand::Whoami, None, &mut Terminal).await;
    instance.close().await;
    Ok(code)
}

/// `chum serve`'s limits on what it accepts.
#[derive(Debug, Clone)]
struct Limits {
    max_sessions: usize,
    per_address: f64,
    /// The only other persons served (`None`: anyone).
    admit: Option<Vec<chum::PersonId>>,
    /// On a hub: the objects one person may have it store.
    quota: Option<u64>,
}

/// The persons of `--admit` and `--admit-file` (`None` when neither is given).
fn admitted(
    persons: &[String],
    file: Option<&std::path::Path>,
) -> Result<Option<Vec<chum::PersonId>>, String> {
    if persons.is_empty() && file.is_none() {
        return Ok(None);
    }
    let mut lines: Vec<String> = persons.to_vec();
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .map_err(|error| format!("cannot read {}: {error}", file.display()))?;
        lines.extend(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(String::from),
        );
    }
    lines
        .iter()
        .map(|line| {
            let text = line.strip_prefix("person ").unwrap_or(line).trim();
            text.parse::<chum::Cid>()
                .map(chum::PersonId)
                .map_err(|error| format!("--admit: {text:?} is not a person: {error}"))
        })
        .collect::<Result<Vec<_>, String>>()
        .map(Some)
}

async fn serve(cli: &Cli, listen: Vec<String>, hub: bool, limits: Limits) -> Result<u8, String> {
    let location = store_location(cli)?;
    let passphrase = passphrase(cli)?;
    if limits.max_sessions == 0 || !(limits.per_address > 0.0 && limits.per_address.is_finite()) {
        return Err("--max-sessions and --per-address must be positive".into());
    }
    let burst = (limits.per_address * 2.0).ceil().min(f64::from(u32::MAX)) as u32;
    let defaults = chum::ListenerLimits::default();
    let listener_limits = chum::ListenerLimits {
        max_sessions: limits.max_sessions,
        per_second: limits.per_address,
        burst,
        handshakes_per_address: (burst as usize).max(defaults.handshakes_per_address),
        ..defaults
    };
    // Sessions waiting for admission scale with the sessions served; so do strangers' (a
    // device is one to a hub until the grants it brings arrive).
    let defaults = chum::HostLimits::default();
    let host_limits = chum::HostLimits {
        max_pending: limits.max_sessions.max(defaults.max_pending),
        max_pending_per_address: ((limits.per_address * 2.0).ceil() as usize)
            .max(defaults.max_pending_per_address),
        max_strangers: (limits.max_sessions / 4).max(defaults.max_strangers),
        ..defaults
    };
    let Some(instance) = open_with(&location, passphrase.as_deref(), |builder| {
        let builder = builder
            .listener_limits(listener_limits)
            .host_limits(host_limits);
        let builder = match limits.admit.clone() {
            Some(persons) => builder.admit_only(persons),
            None => builder,
        };
        let builder = match limits.quota {
            Some(objects) => builder.hub_quota(objects),
            None => builder,
        };
        if hub { builder.hub() } else { builder }
    })
    .await?
    else {
        return Err(format!(
            "{location} is already being served by another process"
        ));
    };
    if let Location::Dir(dir) = &location {
        api::remove_stale(dir);
    }
    let mut listeners = Vec::new();
    for url in &listen {
        let listener = instance
            .listen(url)
            .await
            .map_err(|error| error.to_string())?;
        Terminal.out(format!("{}\n", listener.url()).as_bytes());
        eprintln!("chum: listening on {}", listener.url());
        listeners.push(listener);
    }
    // Commands on a directory store reach its server through the command API; a database
    // store is opened by the commands themselves.
    let _api = match &location {
        Location::Dir(dir) => Some(
            api::serve(instance.clone(), dir)
                .await
                .map_err(|error| format!("cannot start the command API: {error}"))?,
        ),
        Location::Postgres(_) => None,
    };
    eprintln!(
        "chum: serving {location}{} as instance {} of person {}; stop with Ctrl-C",
        if hub { " as a hub" } else { "" },
        instance.instance_id(),
        instance.person()
    );
    // Sessions are logged by the instance itself (`RUST_LOG=chum=info`): no subscription to
    // its events here, which would have every stored object copied to this task.
    let stop = async {
        #[cfg(unix)]
        {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async {
                    match terminate.as_mut() {
                        Some(signal) => { signal.recv().await; }
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    };
    stop.await;
    eprintln!("chum: stopping");
    drop(_api);
    for listener in &listeners {
        listener.close();
    }
    instance.close().await;
    Ok(0)
}

/// mimalloc instead of the system allocator: a hub allocates and frees small buffers for every
/// frame of every session; with glibc's allocator that was about a tenth of its CPU under load
/// (`docs/load.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file or a pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let report = |message: String| {
        // A closed stdout (e.g. `| head`) is not worth a message.
        if !message.contains("Broken pipe") {
            let _ = writeln!(std::io::stderr(), "chum: error: {message}");
        }
        ExitCode::FAILURE
    };
    if let Command::Object(command) = cli.command {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        return match run_object(command, &mut out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => report(message),
        };
    }
    // Sessions run on one thread per core unless `serve --threads` says otherwise; the other
    // commands are short and need few.
    let threads = match &cli.command {
        Command::Serve { threads, .. } => threads.map(usize::from).unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        }),
        _ => 2,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return report(format!("cannot start the runtime: {error}")),
    };
    let result = runtime.block_on(async {
        let (command, file) = match &cli.command {
            Command::Object(_) => return Ok(0),
            Command::Init { join, address } => {
                return init(&cli, join.clone(), address.clone()).await;
            }
            Command::Serve {
                listen,
                hub,
                max_sessions,
                per_address,
                admit,
                admit_file,
                quota,
                threads: _,
            } => {
                let limits = Limits {
                    max_sessions: *max_sessions,
                    per_address: *per_address,
                    admit: admitted(admit, admit_file.as_deref())?,
                    quota: *quota,
                };
                return serve(&cli, listen.clone(), *hub, limits).await;
            }
            Command::Invite { ttl, uses, address } => (
                StoreCommand::Invite {
                    ttl_s: *ttl,
                    uses: *uses,
                    address: address.clone(),
                },
                None,
            ),
            Command::Whoami => (StoreCommand::Whoami, None),
            Command::Put { file } => (StoreCommand::Put, file.clone()),
            Command::Import { file } => (StoreCommand::Import, file.clone()),
            Command::Get { cid } => (StoreCommand::Get(cid.clone()), None),
            Command::Ls { type_name } => (StoreCommand::Ls(type_name.clone()), None),
            Command::Id { file } => (StoreCommand::Id, file.clone()),
            Command::Show { id } => (StoreCommand::Show(id.clone()), None),
            Command::Delete { id } => (StoreCommand::Delete(id.clone()), None),
            Command::Sync { url, timeout } => (
                StoreCommand::Sync {
                    url: url.clone(),
                    timeout_s: *timeout,
                },
                None,
            ),
            Command::Grant { target, to } => (
                StoreCommand::Grant {
                    target: target.clone(),
                    to: to.clone(),
                },
                None,
            ),
            Command::Revoke { grant } => (StoreCommand::Revoke(grant.clone()), None),
            Command::Verify => (StoreCommand::Verify, None),
            Command::Stats => (StoreCommand::Stats, None),
        };
        run_store(&cli, command, file).await
    });
    // Sessions may still be winding down; do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(code),
        Err(message) => report(message),
    }
}
