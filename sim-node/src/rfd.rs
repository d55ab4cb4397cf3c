//! The RFD 184 payload and platforms the simulated procedure uses (the
//! walk itself is `cargo xtask rollout`'s phase 1).

/// The RFD's example payload (with an image added).
pub const RFD_PAYLOAD: &str = r#"{"alias":"cloud-image-builder","hostname":"cloud-image-builder","brand":"builder","limit_priv":"default,proc_clock_highres,sys_dl_config","max_physical_memory":8192,"tmpfs":8192,"fs_allowed":"ufs,pcfs,tmpfs","cpu_cap":600,"image_uuid":"e44ed3e0-910b-11ed-a5d4-00151714048c","zfs_root_compression":"lz4","quota":50,"delegate_dataset":true,"resolvers":["8.8.8.8","8.8.4.4"],"nics":[{"allow_ip_spoofing":true,"nic_tag":"admin","ip":"dhcp"}]}"#;
/// The image the payload names.
pub const IMAGE_UUID: &str = "e44ed3e0-910b-11ed-a5d4-00151714048c";
/// The platform a node boots first (without builder).
pub const OLD_STAMP: &str = crate::init::DEFAULT_STAMP;
/// The platform with builder the procedure upgrades to.
pub const NEW_STAMP: &str = "20261101T000000Z";
