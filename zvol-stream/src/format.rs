//! The on-stream layout: constants and the 312-byte record header.
//!
//! Written from the facts in shared/oracle/openzfs/FORMAT.md (OpenZFS
//! include/sys/zfs_ioctl.h and friends); no OpenZFS code is used. Every
//! integer is little-endian (a big-endian sender's stream shows a
//! byte-swapped magic and is refused).

/// Size of `dmu_replay_record_t`.
pub const RECORD_LEN: usize = 312;
/// Offset of the per-record checksum trailer (`drr_checksum.drr_checksum`).
pub const TRAILER_OFF: usize = 280;

/// `DMU_BACKUP_MAGIC`.
pub const MAGIC: u64 = 0x2_f5ba_cbac;

// drr_type
pub const DRR_BEGIN: u32 = 0;
pub const DRR_OBJECT: u32 = 1;
pub const DRR_FREEOBJECTS: u32 = 2;
pub const DRR_WRITE: u32 = 3;
pub const DRR_FREE: u32 = 4;
pub const DRR_END: u32 = 5;
pub const DRR_WRITE_BYREF: u32 = 6;
pub const DRR_SPILL: u32 = 7;
pub const DRR_WRITE_EMBEDDED: u32 = 8;
pub const DRR_OBJECT_RANGE: u32 = 9;
pub const DRR_REDACT: u32 = 10;
/// Number of record types.
pub const DRR_NUMTYPES: usize = 11;

/// Record type names as `zstream dump` prints them (without `DRR_`).
pub const RECORD_NAMES: [&str; DRR_NUMTYPES] = [
    "BEGIN",
    "OBJECT",
    "FREEOBJECTS",
    "WRITE",
    "FREE",
    "END",
    "WRITE_BYREF",
    "SPILL",
    "WRITE_EMBEDDED",
    "OBJECT_RANGE",
    "REDACT",
];

/// The name of a record type, or `"unknown"`.
pub fn record_name(t: u32) -> &'static str {
    RECORD_NAMES.get(t as usize).copied().unwrap_or("unknown")
}

// drr_versioninfo header types
pub const DMU_SUBSTREAM: u64 = 1;
pub const DMU_COMPOUNDSTREAM: u64 = 2;

// feature flags (versioninfo bits 2..57, shifted down)
pub const FEATURE_DEDUP: u64 = 1 << 0;
pub const FEATURE_DEDUPPROPS: u64 = 1 << 1;
pub const FEATURE_SA_SPILL: u64 = 1 << 2;
pub const FEATURE_EMBED_DATA: u64 = 1 << 16;
pub const FEATURE_LZ4: u64 = 1 << 17;
pub const FEATURE_LARGE_BLOCKS: u64 = 1 << 19;
pub const FEATURE_RESUMING: u64 = 1 << 20;
pub const FEATURE_REDACTED: u64 = 1 << 21;
pub const FEATURE_COMPRESSED: u64 = 1 << 22;
pub const FEATURE_LARGE_DNODE: u64 = 1 << 23;
pub const FEATURE_RAW: u64 = 1 << 24;
pub const FEATURE_ZSTD: u64 = 1 << 25;
pub const FEATURE_HOLDS: u64 = 1 << 26;
pub const FEATURE_SWITCH_TO_LARGE_BLOCKS: u64 = 1 << 27;
pub const FEATURE_LONGNAME: u64 = 1 << 28;
pub const FEATURE_LARGE_MICROZAP: u64 = 1 << 29;

/// Feature bits with their names (`zfs send` option in parentheses).
pub const FEATURE_NAMES: &[(u64, &str)] = &[
    (FEATURE_DEDUP, "dedup"),
    (FEATURE_DEDUPPROPS, "dedupprops"),
    (FEATURE_SA_SPILL, "sa_spill"),
    (FEATURE_EMBED_DATA, "embed_data"),
    (FEATURE_LZ4, "lz4"),
    (FEATURE_LARGE_BLOCKS, "large_blocks"),
    (FEATURE_RESUMING, "resuming"),
    (FEATURE_REDACTED, "redacted"),
    (FEATURE_COMPRESSED, "compressed"),
    (FEATURE_LARGE_DNODE, "large_dnode"),
    (FEATURE_RAW, "raw"),
    (FEATURE_ZSTD, "zstd"),
    (FEATURE_HOLDS, "holds"),
    (FEATURE_SWITCH_TO_LARGE_BLOCKS, "switch_to_large_blocks"),
    (FEATURE_LONGNAME, "longname"),
    (FEATURE_LARGE_MICROZAP, "large_microzap"),
];

/// Names of the feature bits set in `features` (unknown bits as hex).
pub fn feature_names(features: u64) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = features;
    for &(bit, name) in FEATURE_NAMES {
        if features & bit != 0 {
            names.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        names.push(format!("{rest:#x}"));
    }
    names
}

// BEGIN drr_flags
pub const BEGIN_FLAG_CLONE: u32 = 1 << 0;
pub const BEGIN_FLAG_FREERECORDS: u32 = 1 << 2;
pub const BEGIN_FLAG_SPILL_BLOCK: u32 = 1 << 3;

// objset types
pub const DMU_OST_ZFS: u32 = 2;
pub const DMU_OST_ZVOL: u32 = 3;

/// Name of an objset type.
pub fn objset_type_name(t: u32) -> &'static str {
    match t {
        0 => "none",
        1 => "meta",
        DMU_OST_ZFS => "filesystem",
        DMU_OST_ZVOL => "zvol",
        4 => "other",
        _ => "unknown",
    }
}

// object numbers and types in a zvol objset
pub const ZVOL_OBJ: u64 = 1;
pub const ZVOL_ZAP_OBJ: u64 = 2;
pub const DMU_OT_ZVOL: u32 = 23;
pub const DMU_OT_ZVOL_PROP: u32 = 24;
/// Block size of the zvol property ZAP (one microzap block).
pub const ZAP_BLKSZ: u32 = 512;
/// Objects in one dnode block: a zvol's meta-dnode has one.
pub const DNODES_PER_BLOCK: u64 = 32;

pub const ZIO_CHECKSUM_OFF: u8 = 2;
/// `DMU_OBJECT_END`: a FREE length meaning "to the end of the object".
pub const OBJECT_END: u64 = u64::MAX;
/// Largest block a stream without LARGE_BLOCKS may carry (SPA_OLD_MAXBLOCKSIZE).
pub const OLD_MAX_BLOCKSIZE: u64 = 128 * 1024;
/// Smallest block (SPA_MINBLOCKSIZE).
pub const MIN_BLOCKSIZE: u64 = 512;

/// `mz_block_type` of a microzap block (ZBT_MICRO).
pub const ZBT_MICRO: u64 = (1 << 63) + 3;
/// Size of a microzap entry chunk, and where the chunks start.
pub const MZAP_ENT_LEN: usize = 64;
pub const MZAP_NAME_OFF: usize = 14;
pub const MZAP_NAME_LEN: usize = 50;

/// One 312-byte record header.
#[derive(Clone)]
pub struct Header(pub [u8; RECORD_LEN]);

impl Default for Header {
    fn default() -> Self {
        Header([0; RECORD_LEN])
    }
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Header({})", record_name(self.drr_type()))
    }
}

impl Header {
    /// A zeroed header of record type `t`.
    pub fn new(t: u32) -> Self {
        let mut h = Header::default();
        h.set_u32(0, t);
        h
    }
    pub fn u32_at(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.0[off..off + 4].try_into().unwrap())
    }
    pub fn u64_at(&self, off: usize) -> u64 {
        u64::from_le_bytes(self.0[off..off + 8].try_into().unwrap())
    }
    pub fn u8_at(&self, off: usize) -> u8 {
        self.0[off]
    }
    pub fn set_u32(&mut self, off: usize, v: u32) {
        self.0[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_u64(&mut self, off: usize, v: u64) {
        self.0[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }
    pub fn set_u8(&mut self, off: usize, v: u8) {
        self.0[off] = v;
    }
    pub fn drr_type(&self) -> u32 {
        self.u32_at(0)
    }
    pub fn payloadlen(&self) -> u32 {
        self.u32_at(4)
    }
    /// The checksum trailer bytes 280..312.
    pub fn trailer(&self) -> &[u8] {
        &self.0[TRAILER_OFF..]
    }
}

/// Field offsets (from the start of the record) per record type.
pub mod off {
    // BEGIN
    pub const BEGIN_MAGIC: usize = 8;
    pub const BEGIN_VERSIONINFO: usize = 16;
    pub const BEGIN_CREATION_TIME: usize = 24;
    pub const BEGIN_TYPE: usize = 32;
    pub const BEGIN_FLAGS: usize = 36;
    pub const BEGIN_TOGUID: usize = 40;
    pub const BEGIN_FROMGUID: usize = 48;
    pub const BEGIN_TONAME: usize = 56;
    pub const TONAME_LEN: usize = 256;
    // END
    pub const END_CHECKSUM: usize = 8;
    pub const END_TOGUID: usize = 40;
    // OBJECT
    pub const OBJECT_OBJECT: usize = 8;
    pub const OBJECT_TYPE: usize = 16;
    pub const OBJECT_BONUSTYPE: usize = 20;
    pub const OBJECT_BLKSZ: usize = 24;
    pub const OBJECT_BONUSLEN: usize = 28;
    pub const OBJECT_CHECKSUMTYPE: usize = 32;
    pub const OBJECT_COMPRESS: usize = 33;
    pub const OBJECT_DN_SLOTS: usize = 34;
    pub const OBJECT_FLAGS: usize = 35;
    pub const OBJECT_RAW_BONUSLEN: usize = 36;
    pub const OBJECT_TOGUID: usize = 40;
    // FREEOBJECTS
    pub const FREEOBJECTS_FIRSTOBJ: usize = 8;
    pub const FREEOBJECTS_NUMOBJS: usize = 16;
    pub const FREEOBJECTS_TOGUID: usize = 24;
    // WRITE
    pub const WRITE_OBJECT: usize = 8;
    pub const WRITE_TYPE: usize = 16;
    pub const WRITE_OFFSET: usize = 24;
    pub const WRITE_LOGICAL_SIZE: usize = 32;
    pub const WRITE_TOGUID: usize = 40;
    pub const WRITE_CHECKSUMTYPE: usize = 48;
    pub const WRITE_FLAGS: usize = 49;
    pub const WRITE_COMPRESSIONTYPE: usize = 50;
    pub const WRITE_COMPRESSED_SIZE: usize = 96;
    // FREE
    pub const FREE_OBJECT: usize = 8;
    pub const FREE_OFFSET: usize = 16;
    pub const FREE_LENGTH: usize = 24;
    pub const FREE_TOGUID: usize = 32;
    // SPILL (object @8, length @16, toguid @24, ...): payload = length,
    // or compressed_size @.. in raw sends; a zvol never has one.
    pub const SPILL_LENGTH: usize = 16;
    // WRITE_EMBEDDED: object @8, offset @16, length @24, toguid @32,
    // compression u8 @40, etype u8 @41, pad[6], lsize u32 @48, psize u32 @52
    pub const EMBEDDED_PSIZE: usize = 52;
    // REDACT: object @8, offset @16, length @24, toguid @32 (no payload)
}

/// Round `n` up to a multiple of 8 (`P2ROUNDUP(n, 8)`).
pub fn roundup8(n: u64) -> u64 {
    (n + 7) & !7
}
