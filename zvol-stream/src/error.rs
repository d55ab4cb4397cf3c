//! Typed errors: one variant per reason a stream or a disk is refused.
//! `Display` is the one line the CLI prints after `zvol-stream: `.

use std::path::PathBuf;

/// Everything that can go wrong writing, reading or dumping a stream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    // ---- reading a stream ----
    /// The input ended before anything was read.
    #[error("empty input: not a ZFS send stream")]
    EmptyStream,
    /// The first record does not carry `DMU_BACKUP_MAGIC`.
    #[error(
        "not a ZFS send stream: bad magic {found:#x} in the BEGIN record (expected 0x2f5bacbac)"
    )]
    BadMagic { found: u64 },
    /// The magic is byte-swapped: a big-endian sender.
    #[error("big-endian (byte-swapped) send stream: not supported")]
    BigEndian,
    /// The input ends before the END record (or inside a record).
    #[error("truncated stream: input ends at byte {offset}, {context}")]
    Truncated { offset: u64, context: String },
    /// A record's checksum trailer does not match the running checksum.
    #[error("bad checksum in {record} record #{index} at byte {offset} (stream damaged)")]
    RecordChecksum {
        record: &'static str,
        index: u64,
        offset: u64,
    },
    /// The END record's stream checksum does not match the data.
    #[error(
        "bad END checksum: the stream says {stream}, its data gives {computed} (stream damaged)"
    )]
    EndChecksum { stream: String, computed: String },
    /// An incremental stream (`zfs send -i`): fromguid != 0.
    #[error("incremental stream (fromguid {fromguid:#x}): only full streams can become a disk")]
    Incremental { fromguid: u64 },
    /// A compound stream (`zfs send -R`, `-p`, `-b`, `--holds`).
    #[error(
        "compound stream (zfs send -R/-p/-b/--holds): not supported, send the zvol snapshot alone"
    )]
    Compound,
    /// The objset is not a zvol.
    #[error("not a zvol stream: objset type {objset_type} ({name})")]
    NotZvol {
        objset_type: u32,
        name: &'static str,
    },
    /// The stream uses a feature (flag or record type) this reader lacks.
    #[error("unsupported stream feature: {feature}")]
    Unsupported { feature: String },
    /// A record that makes no sense for a zvol stream.
    #[error("invalid stream: {0}")]
    Invalid(String),
    /// No `size` in the zvol property ZAP (object 2).
    #[error("invalid stream: no zvol size property (object 2 \"size\") before END")]
    MissingSize,

    // ---- writing a stream ----
    /// The volblocksize is not a power of two from 512 to 128K.
    #[error("bad volblocksize {0:?}: want a power of two from 512 to 128K (e.g. 8K)")]
    BadVolblocksize(String),
    /// A snapshot name that `zfs receive` would not take.
    #[error("bad snapshot name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    /// A guid of zero.
    #[error("bad guid 0: a snapshot guid is never zero")]
    ZeroGuid,
    /// The raw disk is empty.
    #[error("the raw disk is empty: a zvol cannot have size 0")]
    EmptyDisk,
    /// The raw disk's size is not a multiple of the volblocksize.
    #[error("raw disk size {size} is not a multiple of the volblocksize {volblocksize} (use --pad to zero-pad the last block)")]
    NotMultiple { size: u64, volblocksize: u32 },
    /// The raw disk did not have the size given.
    #[error("raw disk changed size while reading: expected {expected} bytes, read {actual}")]
    SizeMismatch { expected: u64, actual: u64 },

    // ---- files ----
    /// The output exists and `force` was not given.
    #[error("{} exists (use -f to overwrite)", path.display())]
    Exists { path: PathBuf },
}

impl Error {
    /// An `Io` error with a context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// True for an I/O error whose reader went away (EPIPE), e.g. stdout
    /// piped into `head`.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}
