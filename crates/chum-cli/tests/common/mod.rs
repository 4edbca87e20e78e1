//! Running the `chum` binary in tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `chum ARGS` with `stdin`, without the environment's store or passphrase.
pub fn chum(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chum"))
        .args(args)
        .env_remove("CHUM_STORE")
        .env_remove("CHUM_PASSPHRASE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// [`chum`], which must succeed: its stdout.
pub fn ok(args: &[&str], stdin: &[u8]) -> String {
    let output = chum(args, stdin);
    assert!(
        output.status.success(),
        "chum {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Starts `chum serve --store STORE --listen LISTEN [EXTRA…]`: the process and the address it
/// printed first.
pub fn serve(store: &str, listen: &str, extra: &[&str]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_chum"))
        .args(["serve", "--store", store, "--listen", listen])
        .args(extra)
        .env_remove("CHUM_STORE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("ws://") || line.starts_with("tcp://"),
        "{line:?}"
    );
    (child, line.trim().to_owned())
}
