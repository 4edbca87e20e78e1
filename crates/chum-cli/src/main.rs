//! `chum`: the command-line tool for chum stores and objects.
//!
//! Results go to stdout; messages and errors go to stderr, one line each. Exit codes: 0 success,
//! 1 bad input or a failed operation, 2 bad usage.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use chum_object::{Object, dagcbor, dagjson};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "chum",
    version,
    about = "Local-first, content-addressed sync: the chum command-line tool"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with single objects: hash, encode and decode (no store, no recipe checks).
    #[command(subcommand)]
    Object(ObjectCommand),
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

fn parse_json(file: &Option<PathBuf>) -> Result<chum_object::Value, String> {
    let input = read_input(file)?;
    dagjson::from_slice(&input).map_err(|error| error.to_string())
}

fn run(cli: Cli, out: &mut dyn Write) -> Result<(), String> {
    let write_error = |error: std::io::Error| format!("cannot write output: {error}");
    match cli.command {
        Command::Object(ObjectCommand::Hash { file }) => {
            let value = parse_json(&file)?;
            let object = Object::from_value(&value).map_err(|error| error.to_string())?;
            writeln!(out, "{}", object.cid()).map_err(write_error)?;
        }
        Command::Object(ObjectCommand::Encode { file, hex }) => {
            let value = parse_json(&file)?;
            let bytes = dagcbor::encode(&value).map_err(|error| error.to_string())?;
            if hex {
                writeln!(out, "{}", hex::encode(bytes)).map_err(write_error)?;
            } else {
                out.write_all(&bytes).map_err(write_error)?;
            }
        }
        Command::Object(ObjectCommand::Decode { file, hex }) => {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match run(cli, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // A closed stdout (e.g. `| head`) is not worth a message.
            if !message.contains("Broken pipe") {
                let _ = writeln!(std::io::stderr(), "chum: error: {message}");
            }
            ExitCode::FAILURE
        }
    }
}
