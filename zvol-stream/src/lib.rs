//! `zvol-stream`: Triton's image format for zvols — a (gzipped) ZFS send
//! stream of a zvol snapshot — written from and read into a raw disk,
//! without ZFS.
//!
//! - [`write_stream`] / [`write_stream_unsized`]: raw disk -> the full
//!   stream `zfs send pool/vol@snap` writes for a zvol holding that disk
//!   (all-zero blocks as holes), which `zfs receive` and `imgadm` accept.
//! - [`read_stream`] / [`read_stream_path`]: a full zvol stream (plain or
//!   gzipped) -> a sparse raw disk, refusing anything else with a typed
//!   [`Error`].
//! - [`dump()`]: a record summary of any stream.
//!
//! Memory use is constant (a block and the I/O buffers) whatever the disk
//! size. The format facts come from shared/oracle/openzfs/FORMAT.md; the
//! code is an independent implementation.
//!
//! ```no_run
//! use std::fs::File;
//! use zvol_stream::{write_stream, read_stream, WriteOptions};
//! # fn main() -> Result<(), zvol_stream::Error> {
//! let raw = File::open("disk.raw").unwrap();
//! let len = raw.metadata().unwrap().len();
//! let out = File::create("image.zfs").unwrap();
//! let opts = WriteOptions { volblocksize: 8192, ..Default::default() };
//! let summary = write_stream(raw, len, out, &opts)?;
//! println!("{} blocks of data, {} holes", summary.data_blocks, summary.hole_blocks);
//!
//! let mut disk = File::create("back.raw").unwrap();
//! read_stream(File::open("image.zfs").unwrap(), &mut disk)?;
//! # Ok(()) }
//! ```

pub mod dump;
pub mod error;
pub mod fletcher;
pub mod format;
pub mod parse;
pub mod read;
pub mod write;

pub use dump::{dump, DumpSummary, TypeCount};
pub use error::Error;
pub use parse::Begin;
pub use read::{open_stream, read_stream, read_stream_path, read_stream_to_writer, ReadSummary};
pub use write::{
    parse_volblocksize, validate_name, write_stream, write_stream_unsized, WriteOptions,
    WriteSummary, DEFAULT_NAME, DEFAULT_VOLBLOCKSIZE,
};

use std::fs::File;
use std::io;
use std::path::Path;

/// Write the stream of the raw disk at `raw` (`-` = stdin) to `stream`
/// (`-` = stdout).
///
/// A file is written to a temporary file beside `stream` and renamed over
/// it on success, so a refused disk leaves nothing behind; an existing
/// `stream` is an error unless `force`. The size of a regular file (or of
/// stdin redirected from one) is known up front; a pipe is read to its
/// end ([`write_stream_unsized`]).
pub fn write_stream_path(
    raw: &Path,
    stream: &Path,
    opts: &WriteOptions,
    force: bool,
) -> Result<WriteSummary, Error> {
    let stdin = raw == Path::new("-");
    let (input, len): (Box<dyn io::Read>, Option<u64>) = if stdin {
        // stdin redirected from a file: its size is known
        let len = std::fs::metadata("/dev/stdin")
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len());
        (Box::new(io::stdin().lock()), len)
    } else {
        let f = File::open(raw).map_err(|e| Error::io(format!("opening {}", raw.display()), e))?;
        let m = f
            .metadata()
            .map_err(|e| Error::io(format!("reading {}", raw.display()), e))?;
        let len = if m.is_file() { Some(m.len()) } else { None };
        (Box::new(f), len)
    };
    let run = |out: &mut dyn io::Write| match len {
        Some(n) => write_stream(input, n, out, opts),
        None => write_stream_unsized(input, out, opts),
    };
    if stream == Path::new("-") {
        return run(&mut io::stdout().lock());
    }
    if !force && stream.symlink_metadata().is_ok() {
        return Err(Error::Exists {
            path: stream.to_path_buf(),
        });
    }
    let mut tmp = read::temp_beside(stream)?;
    let summary = run(tmp.as_file_mut())?;
    read::persist(tmp, stream, force)?;
    Ok(summary)
}

/// Summarize the stream at `path` (`-` = stdin; plain or gzipped).
pub fn dump_path(path: &Path) -> Result<DumpSummary, Error> {
    dump(read::open_input(path)?)
}
