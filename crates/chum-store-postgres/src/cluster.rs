//! A throwaway PostgreSQL cluster for tests, benchmarks and load runs: `initdb` and `pg_ctl`
//! of an installed PostgreSQL (Debian's `postgresql` package: `/usr/lib/postgresql/N/bin`) in
//! a temporary directory, reachable through a unix socket in that directory (and, with
//! [`ClusterOptions::tls`], over TLS on 127.0.0.1), with trust authentication for its
//! `postgres` user. Stopped and removed on drop.
//!
//! PostgreSQL refuses to run as root: as root, the cluster runs as the `postgres` system user
//! (which the package creates) through `runuser`.
//!
//! ```no_run
//! use chum_store_postgres::cluster::TempCluster;
//! let cluster = TempCluster::start()?;
//! let url = cluster.url("postgres");
//! # Ok::<(), String>(())
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// How a [`TempCluster`] runs.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `fsync` on (durable, as a production database) or off (faster tests).
    pub fsync: bool,
    /// `max_connections`.
    pub max_connections: u32,
    /// `shared_buffers`, in MiB.
    pub shared_buffers_mb: u32,
    /// More `postgresql.conf` lines (e.g. `shared_preload_libraries = 'pg_stat_statements'`).
    pub settings: String,
    /// Also listen on 127.0.0.1 (a free port), for TLS connections only: plain TCP is
    /// refused. See [`TempCluster::tcp_url`].
    pub tls: Option<ClusterTls>,
}

/// The server's certificate for [`ClusterOptions::tls`].
#[derive(Debug, Clone)]
pub struct ClusterTls {
    /// The certificate chain, PEM, leaf first.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
}

impl Default for ClusterOptions {
    fn default() -> ClusterOptions {
        ClusterOptions {
            fsync: true,
            max_connections: 200,
            shared_buffers_mb: 128,
            settings: String::new(),
            tls: None,
        }
    }
}

/// A running throwaway cluster (see the module docs).
#[derive(Debug)]
pub struct TempCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// Run PostgreSQL's tools as this user (`Some` when this process is root).
    run_as: Option<String>,
}

/// Where PostgreSQL's server binaries are: `CHUM_PG_BIN`, `pg_config --bindir`, or the newest
/// `/usr/lib/postgresql/N/bin`. `Err` says how to get them.
pub fn find_bin() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("CHUM_PG_BIN") {
        let dir = PathBuf::from(dir);
        if dir.join("initdb").is_file() {
            return Ok(dir);
        }
        return Err(format!("CHUM_PG_BIN={} has no initdb", dir.display()));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("initdb").is_file() {
            return Ok(dir);
        }
    }
    Err(
        "PostgreSQL's server binaries (initdb, pg_ctl) are not installed: \
         `apt-get install postgresql` (cargo xtask test does), or set CHUM_PG_BIN"
            .into(),
    )
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// The uid and gid of a system user, from `/etc/passwd`.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != user {
            return None;
        }
        let uid = fields.nth(1)?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

impl TempCluster {
    /// Starts a cluster with the default options (fsync on).
    pub fn start() -> Result<TempCluster, String> {
        TempCluster::start_with(&ClusterOptions::default())
    }

    /// Starts a cluster with `options`.
    pub fn start_with(options: &ClusterOptions) -> Result<TempCluster, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let bin = find_bin()?;
        // Short: a unix socket path must fit in 107 bytes.
        let dir = std::env::temp_dir().join(format!(
            "chum-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
        let run_as = if is_root() {
            let (uid, gid) = user_ids("postgres").ok_or(
                "running as root, and there is no `postgres` user to run PostgreSQL as \
                 (the postgresql package creates it)",
            )?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|error| format!("cannot hand {} to postgres: {error}", dir.display()))?;
            Some("postgres".to_owned())
        } else {
            None
        };
        // Over TCP, a port of its own; a socket's number alone need not be free.
        let port = match &options.tls {
            Some(_) => std::net::TcpListener::bind(("127.0.0.1", 0))
                .and_then(|listener| listener.local_addr())
                .map_err(|error| format!("no free port on 127.0.0.1: {error}"))?
                .port(),
            None => 5432,
        };
        let cluster = TempCluster {
            dir,
            bin,
            port,
            run_as,
        };
        cluster.tool(
            "initdb",
            &[
                "-D",
                &cluster.data().display().to_string(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        )?;
        let tls = match &options.tls {
            Some(tls) => cluster.tls_files(tls)?,
            None => String::new(),
        };
        let settings = format!(
            "\nlisten_addresses = '{}'\nunix_socket_directories = '{}'\nport = {}\n\
             fsync = {}\nmax_connections = {}\nshared_buffers = {}MB\n{tls}{}\n",
            if options.tls.is_some() {
                "127.0.0.1"
            } else {
                ""
            },
            cluster.dir.display(),
            cluster.port,
            if options.fsync { "on" } else { "off" },
            options.max_connections,
            options.shared_buffers_mb,
            options.settings,
        );
        let conf = cluster.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)
            .map_err(|error| format!("cannot read {}: {error}", conf.display()))?;
        text.push_str(&settings);
        std::fs::write(&conf, text)
            .map_err(|error| format!("cannot write {}: {error}", conf.display()))?;
        cluster.tool(
            "pg_ctl",
            &[
                "-D",
                &cluster.data().display().to_string(),
                "-l",
                &cluster.dir.join("log").display().to_string(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Writes the certificate, its key and a `pg_hba.conf` that takes TCP over TLS only;
    /// returns the settings that use them.
    fn tls_files(&self, tls: &ClusterTls) -> Result<String, String> {
        use std::os::unix::fs::PermissionsExt;
        let write = |name: &str, text: &str| -> Result<PathBuf, String> {
            let path = self.dir.join(name);
            std::fs::write(&path, text)
                .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|error| format!("cannot restrict {}: {error}", path.display()))?;
            if self.run_as.is_some() {
                let (uid, gid) = user_ids("postgres").ok_or("no `postgres` user")?;
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).map_err(|error| {
                    format!("cannot hand {} to postgres: {error}", path.display())
                })?;
            }
            Ok(path)
        };
        let cert = write("server.crt", &tls.cert_pem)?;
        let key = write("server.key", &tls.key_pem)?;
        write(
            "data/pg_hba.conf",
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )?;
        Ok(format!(
            "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            cert.display(),
            key.display()
        ))
    }

    /// Runs one of PostgreSQL's tools (as the cluster's user).
    fn tool(&self, name: &str, args: &[&str]) -> Result<(), String> {
        let program = self.bin.join(name);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        let output = command
            .args(args)
            .current_dir(&self.dir)
            .output()
            .map_err(|error| format!("cannot run {}: {error}", program.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            Err(format!(
                "{name} failed ({}): {}{}\n{log}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// The directory holding the cluster's socket (and its data).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cluster's port (the number in its socket's name).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `postgres://` URL of database `database` (as user `postgres`, through the socket).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@localhost/{database}?host={}&port={}",
            self.dir.display(),
            self.port
        )
    }

    /// A `postgres://` URL of database `database` over TCP to `host` (`127.0.0.1` or
    /// `localhost`), for a cluster started with [`ClusterOptions::tls`] (add `sslmode` and
    /// `sslrootcert` to taste).
    pub fn tcp_url(&self, host: &str, database: &str) -> String {
        format!("postgres://postgres@{host}:{}/{database}", self.port)
    }

    /// Creates database `name` (through `psql`-free SQL on the `postgres` database).
    pub fn create_database(&self, name: &str) -> Result<(), String> {
        let quoted = name.replace('"', "\"\"");
        self.tool(
            "psql",
            &[
                "-h",
                &self.dir.display().to_string(),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-c",
                &format!("CREATE DATABASE \"{quoted}\""),
            ],
        )
    }

    /// Stops the cluster now (`pg_ctl stop -m fast`), keeping its files until drop.
    pub fn stop(&self) -> Result<(), String> {
        self.tool(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        )
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        let _ = self.tool(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
