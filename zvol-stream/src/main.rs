//! `zvol-stream`: write, read and dump ZFS send streams of zvols.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use zvol_stream::{Error, WriteOptions};

const ABOUT: &str = "Write and read Triton zvol images: ZFS send streams of a zvol <-> raw disks";

const LONG_ABOUT: &str = "\
zvol-stream converts between a raw disk image and the full ZFS send stream
of a zvol snapshot holding it (what `zfs send pool/vol@snap` writes, and
Triton's image format once gzipped), without ZFS: it runs on any OS.

Streams it writes are accepted by `zfs receive` and imgadm; streams it reads
may come from any ZFS (illumos/SmartOS or OpenZFS), gzipped or not. Memory
use is constant whatever the disk size.

A FILE argument of - means stdin or stdout. Exit status: 0 success, 1 error
(one line on stderr starting with `zvol-stream:`), 2 usage error. Set
ZVOL_STREAM_LOG=debug for debug logs on stderr.";

const EXAMPLES: &str = "\
Examples:
  zvol-stream write -b 8K disk.raw image.zfs
  zvol-stream write disk.raw - | gzip -1 > image.zfs.gz
  zvol-stream read image.zfs.gz disk.raw
  zvol-stream dump -j image.zfs.gz

See zvol-stream(1) for the full manual.";

#[derive(Parser, Debug)]
#[command(name = "zvol-stream", version, about = ABOUT, long_about = LONG_ABOUT, after_long_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Write the send stream of a zvol holding a raw disk.
    #[command(long_about = "\
Write the full send stream of a zvol snapshot whose volume holds RAW, as
`zfs send pool/vol@snap` writes it: BEGIN, the zvol data object (WRITE
records for blocks with data, FREE records for runs of all-zero blocks,
which stay holes), the property ZAP holding `size`, FREEOBJECTS, END, with
every checksum. The guid is random unless --guid is given.

RAW's size must be a multiple of the volblocksize unless --pad, which
zero-pads the last block (the volume size is then the padded size). When
RAW is a pipe its size is learnt at its end. STREAM is written to a
temporary file beside it and renamed on success; an existing STREAM is
refused unless -f.")]
    Write {
        /// Volume block size: bytes or with a K suffix, a power of two from 512 to 128K.
        #[arg(short = 'b', long = "volblocksize", value_name = "SIZE", default_value = "8K",
              value_parser = parse_vbs)]
        volblocksize: u32,
        /// Snapshot name written into the stream.
        #[arg(short = 'n', long = "name", value_name = "POOL/VOL@SNAP",
              default_value = zvol_stream::DEFAULT_NAME, value_parser = parse_name)]
        name: String,
        /// Zero-pad the last block when RAW's size is not a multiple of the volblocksize.
        #[arg(long)]
        pad: bool,
        /// Snapshot guid (hex with 0x, or decimal) instead of a random one.
        #[arg(long, value_name = "GUID", value_parser = parse_u64)]
        guid: Option<u64>,
        /// Snapshot creation time, seconds since the epoch (default: now).
        #[arg(long, value_name = "SECONDS")]
        creation_time: Option<u64>,
        /// Overwrite an existing STREAM.
        #[arg(short = 'f', long)]
        force: bool,
        /// The raw disk (- = stdin).
        raw: PathBuf,
        /// The stream to write (- = stdout).
        stream: PathBuf,
    },
    /// Read a full zvol send stream (plain or gzipped) into a sparse raw disk.
    #[command(long_about = "\
Read a full send stream of a zvol (plain, or gzipped: detected by its magic
number, not its name) and write the volume as a sparse raw disk: holes are
not written. The stream must be a single full substream of a zvol with
uncompressed WRITE records of at most 128K; anything else (truncated, a bad
checksum, bad magic, incremental, compressed/embedded/raw/dedup/large-block
records, not a zvol) is refused with one line and exit status 1.

RAW is written to a temporary file beside it and renamed once the whole
stream has checked out, so a refused stream leaves nothing behind. An
existing RAW is refused unless -f. RAW - writes the disk to stdout, holes
as zeros.")]
    Read {
        /// Overwrite an existing RAW.
        #[arg(short = 'f', long)]
        force: bool,
        /// The stream (- = stdin).
        stream: PathBuf,
        /// The raw disk to write (- = stdout).
        raw: PathBuf,
    },
    /// Summarize a stream: records per type, BEGIN fields, size, checksum.
    #[command(long_about = "\
Print a summary of a send stream (plain or gzipped): the BEGIN fields (name,
guid, objset type, header type, features, flags), the volblocksize and size
of a zvol, the bytes of zvol data, the records and payload bytes per record
type, and whether the END checksum holds. Every record checksum is verified;
a damaged stream is an error. Exit status 1 when the END checksum is bad.")]
    Dump {
        /// JSON output.
        #[arg(short = 'j', long)]
        json: bool,
        /// The stream (- = stdin).
        stream: PathBuf,
    },
}

fn parse_vbs(s: &str) -> Result<u32, String> {
    zvol_stream::parse_volblocksize(s).map_err(|e| e.to_string())
}

fn parse_name(s: &str) -> Result<String, String> {
    zvol_stream::validate_name(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    match r {
        Ok(0) => Err("a guid is never 0".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

/// Print to stdout; Err on a closed pipe.
fn out(text: &str) -> Result<(), Error> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())
        .and_then(|_| o.flush())
        .map_err(|e| Error::io("writing to stdout", e))
}

fn run(cli: Cli) -> Result<ExitCode, Error> {
    match cli.cmd {
        Cmd::Write {
            volblocksize,
            name,
            pad,
            guid,
            creation_time,
            force,
            raw,
            stream,
        } => {
            let opts = WriteOptions {
                volblocksize,
                name,
                pad,
                guid,
                creation_time,
            };
            zvol_stream::write_stream_path(&raw, &stream, &opts, force)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Read { force, stream, raw } => {
            zvol_stream::read_stream_path(&stream, &raw, force)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Dump { json, stream } => {
            let d = zvol_stream::dump_path(&stream)?;
            if json {
                let mut text = serde_json::to_string_pretty(&d).unwrap_or_default();
                text.push('\n');
                out(&text)?;
            } else {
                out(&d.to_text())?;
            }
            if d.end_checksum_ok {
                Ok(ExitCode::SUCCESS)
            } else {
                Err(Error::EndChecksum {
                    stream: d.end_checksum,
                    computed: d.computed_checksum,
                })
            }
        }
    }
}

fn init_logging() {
    let filter = std::env::var("ZVOL_STREAM_LOG").unwrap_or_else(|_| "warn".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn main() -> ExitCode {
    common::cli::completions_if_asked::<Cli>("zvol-stream");
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = out(&e.to_string());
                return ExitCode::SUCCESS;
            }
            let text = e.to_string();
            // One line: the message and its details, without the usage.
            let first: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:"))
                .map(str::trim)
                .filter(|l| {
                    !l.is_empty()
                        && !l.starts_with("tip:")
                        && !l.starts_with("For more information")
                })
                .collect();
            let first = first.join(" ");
            eprintln!(
                "zvol-stream: {} (see zvol-stream --help)",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    init_logging();
    match run(cli) {
        Ok(code) => code,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS, // reader went away: quietly
        Err(e) => {
            let msg = e.to_string().replace('\n', " ");
            eprintln!("zvol-stream: {msg}");
            ExitCode::from(1)
        }
    }
}
