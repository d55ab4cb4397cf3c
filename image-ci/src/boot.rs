//! Boot tests. On SmartOS this is where a bhyve VM is booted from the
//! built image (in the builder zone, which has `/dev/vmmctl` and
//! `/dev/viona`) and the guest must come up. That needs illumos; elsewhere
//! the `bhyve` boot test returns an "only on illumos" error.
//!
//! The sim-level check (`DiskSignature`) stands in where no hypervisor
//! exists: it gunzips the image and requires a disk image whose first
//! sector ends with the 0x55AA boot signature, whose size is a whole number
//! of 512-byte sectors, and which fits the manifest's `image_size` (MiB).
//! The triton-cloud-images artifact is a ZFS send stream of the zvol; on
//! the sim the stand-in build writes the raw disk in its place.

use std::path::Path;

use flate2::read::GzDecoder;
use serde_json::Value;

use crate::error::{Error, Result};

/// A boot test of a built image.
pub trait BootTest {
    /// A short name for reports (`disk-signature`, `bhyve`).
    fn name(&self) -> &'static str;
    /// Boot (or examine) `image` (the `.zfs.gz`) described by `manifest`.
    /// `Ok` carries a one-line detail; any `Err` means the image must not
    /// ship.
    fn boot(&self, image: &Path, manifest: &Value) -> Result<String>;
}

/// The sim-level check: a gzipped MBR disk image within `image_size`.
#[derive(Debug, Default, Clone, Copy)]
pub struct DiskSignature;

/// The result of examining a disk image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskFacts {
    pub size: u64,
    pub boot_signature: bool,
}

/// Read a (decompressed) disk image stream.
pub fn examine_disk(mut r: impl std::io::Read) -> std::io::Result<DiskFacts> {
    let mut first = [0u8; 512];
    let mut got = 0;
    while got < 512 {
        let n = r.read(&mut first[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let rest = std::io::copy(&mut r, &mut std::io::sink())?;
    Ok(DiskFacts {
        size: got as u64 + rest,
        boot_signature: got == 512 && first[510] == 0x55 && first[511] == 0xaa,
    })
}

/// Judge disk facts against the manifest's `image_size` (MiB).
pub fn judge_disk(
    f: &DiskFacts,
    image_size_mib: Option<u64>,
) -> std::result::Result<String, String> {
    if f.size < 512 {
        return Err(format!(
            "not a disk image: {} bytes, less than one sector",
            f.size
        ));
    }
    if f.size & 511 != 0 {
        return Err(format!(
            "not a disk image: {} bytes is not a whole number of 512-byte sectors",
            f.size
        ));
    }
    if !f.boot_signature {
        return Err("no boot signature: the first sector does not end with 0x55AA".into());
    }
    let Some(mib) = image_size_mib.filter(|m| *m > 0) else {
        return Err("manifest has no positive image_size".into());
    };
    if f.size > mib * 1024 * 1024 {
        return Err(format!(
            "disk is {} bytes, more than image_size {mib} MiB",
            f.size
        ));
    }
    Ok(format!(
        "MBR disk image, {} sectors, boot signature 0x55AA, within image_size {mib} MiB",
        f.size / 512
    ))
}

impl BootTest for DiskSignature {
    fn name(&self) -> &'static str {
        "disk-signature"
    }

    fn boot(&self, image: &Path, manifest: &Value) -> Result<String> {
        let f = std::fs::File::open(image).map_err(|e| Error::io(image, e))?;
        let facts = examine_disk(GzDecoder::new(std::io::BufReader::new(f)))
            .map_err(|e| Error::io(image, format!("cannot gunzip: {e}")))?;
        judge_disk(&facts, manifest["image_size"].as_u64())
            .map_err(|m| Error::Invalid(format!("{}: {m}", image.display())))
    }
}

/// Boot a bhyve VM from the image in the builder zone (illumos only).
#[derive(Debug, Clone)]
pub struct Bhyve {
    /// The builder zone to boot the test VM in.
    pub zone: String,
}

impl BootTest for Bhyve {
    fn name(&self) -> &'static str {
        "bhyve"
    }

    #[cfg(target_os = "illumos")]
    fn boot(&self, _image: &Path, _manifest: &Value) -> Result<String> {
        Err(Error::NotImplemented(format!(
            "bhyve boot test in zone {} (zfs receive into a zvol, bhyve with a serial console, wait for the guest's login prompt)",
            self.zone
        )))
    }

    #[cfg(not(target_os = "illumos"))]
    fn boot(&self, _image: &Path, _manifest: &Value) -> Result<String> {
        Err(Error::OnlyOnIllumos(format!(
            "bhyve boot test in zone {}",
            self.zone
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write as _;

    fn disk(sectors: usize, sig: bool) -> Vec<u8> {
        let mut d = vec![0u8; sectors * 512];
        if sig && sectors > 0 {
            d[510] = 0x55;
            d[511] = 0xaa;
        }
        d
    }

    #[test]
    fn judges_disks() {
        let f = examine_disk(&disk(8, true)[..]).unwrap();
        assert_eq!(
            f,
            DiskFacts {
                size: 4096,
                boot_signature: true
            }
        );
        assert!(judge_disk(&f, Some(1)).unwrap().contains("8 sectors"));
        assert!(judge_disk(&f, None).unwrap_err().contains("image_size"));
        let big = DiskFacts {
            size: 2 * 1024 * 1024,
            boot_signature: true,
        };
        assert!(judge_disk(&big, Some(1))
            .unwrap_err()
            .contains("more than image_size"));
        let f = examine_disk(&disk(8, false)[..]).unwrap();
        assert!(judge_disk(&f, Some(1)).unwrap_err().contains("0x55AA"));
        let f = examine_disk(&b"hello"[..]).unwrap();
        assert!(judge_disk(&f, Some(1))
            .unwrap_err()
            .contains("less than one sector"));
        let mut odd = disk(2, true);
        odd.push(0);
        let f = examine_disk(&odd[..]).unwrap();
        assert!(judge_disk(&f, Some(1))
            .unwrap_err()
            .contains("whole number"));
    }

    #[test]
    fn disk_signature_reads_gzip_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.zfs.gz");
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(&disk(16, true)).unwrap();
        std::fs::write(&p, e.finish().unwrap()).unwrap();
        let m = serde_json::json!({"image_size": 10240});
        assert!(DiskSignature.boot(&p, &m).is_ok());
        std::fs::write(&p, disk(16, true)).unwrap();
        assert!(DiskSignature
            .boot(&p, &m)
            .unwrap_err()
            .to_string()
            .contains("cannot gunzip"));
    }

    #[cfg(not(target_os = "illumos"))]
    #[test]
    fn bhyve_is_illumos_only() {
        let e = Bhyve { zone: "z".into() }
            .boot(Path::new("/x"), &Value::Null)
            .unwrap_err();
        assert!(matches!(e, Error::OnlyOnIllumos(_)));
        assert!(e.to_string().ends_with("only on illumos"));
    }
}
