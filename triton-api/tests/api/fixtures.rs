//! Every answer captured from the sim reads into its type and writes back
//! unchanged (unknown members, string-spelled numbers, nulls of unknown
//! members and all).

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use triton_api::*;

use crate::common::fixture_json;

fn round_trip<T: DeserializeOwned + Serialize>(name: &str) -> T {
    let wire = fixture_json(name);
    let t: T = serde_json::from_value(wire.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(serde_json::to_value(&t).unwrap(), wire, "{name}");
    t
}

fn round_trip_list<T: DeserializeOwned + Serialize>(name: &str) -> Vec<T> {
    round_trip::<Vec<T>>(name)
}

#[test]
fn every_fixture_round_trips() {
    let p: Package = round_trip("papi-package.json");
    assert!(
        p.extra.is_empty(),
        "every PAPI member is typed: {:?}",
        p.extra
    );
    assert_eq!(round_trip_list::<Package>("papi-list.json").len(), 1);
    let vm: Vm = round_trip("vmapi-vm.json");
    assert_eq!(vm.extra["destroyed"], Value::Null);
    assert_eq!(round_trip_list::<Vm>("vmapi-list.json").len(), 1);
    round_trip::<JobRef>("vmapi-create.json");
    let job: Job = round_trip("vmapi-job.json");
    assert!(job.succeeded());
    round_trip_list::<Vm>("vminfod-vms.json");
    round_trip_list::<Vm>("vminfod-mixed.json");
    let s: Server = round_trip("cnapi-server.json");
    assert!(
        !s.sysinfo.unwrap().extra.contains_key("Network Interfaces"),
        "typed"
    );
    round_trip_list::<Server>("cnapi-servers.json");
    let a: Allocation = round_trip("cnapi-allocate.json");
    assert!(a.server.sysinfo.is_some());
    let img: Image = round_trip("imgapi-image.json");
    assert!(img.is_active());
    round_trip::<Image>("imgapi-imported.json");
    round_trip::<Image>("imgapi-file-added.json");
    round_trip_list::<Image>("imgapi-list.json");
    round_trip_list::<Channel>("imgapi-channels.json");
    round_trip::<AuthInfo>("mahi-account.json");
    round_trip::<AuthInfo>("mahi-user.json");
    for e in [
        "papi-invalid.json",
        "vmapi-invalid.json",
        "cnapi-no-servers.json",
        "mahi-404.json",
    ] {
        round_trip::<TritonError>(e);
    }
}

#[test]
fn typed_fields_read_from_real_shapes() {
    let s: Server = serde_json::from_value(fixture_json("cnapi-server.json")).unwrap();
    let si = s.sysinfo.as_ref().unwrap();
    // sysinfo spells these as strings; they read as numbers and booleans
    assert_eq!(si.mib_of_memory.val(), Some(32768));
    assert_eq!(si.mib_of_memory.as_ref().unwrap().text(), Some("32768"));
    assert_eq!(si.setup.val(), Some(true));
    assert_eq!(si.boot_time.val(), Some(1796014172));
    assert_eq!(si.sdc_version.as_deref(), Some("7.0"));
    assert!(si.boot_parameters.is_some());
    assert_eq!(s.platform(), si.live_image.as_deref());
    assert_eq!(s.reservation_ratio.val(), Some(0.15));
    assert!(s.is_setup() && !s.is_reserved());

    let vms: Vec<Vm> = serde_json::from_value(fixture_json("vminfod-mixed.json")).unwrap();
    let brands: Vec<&str> = vms.iter().filter_map(|v| v.brand.as_deref()).collect();
    assert_eq!(brands, ["builder", "bhyve", "futurebrand"]);
    assert_eq!(
        vms[0].nics.as_ref().unwrap()[0].allow_ip_spoofing.val(),
        Some(true)
    );
    assert_eq!(vms[0].ips(), Vec::<String>::new(), "dhcp is not an address");
    assert_eq!(vms[1].quota.val(), Some(10));
    assert!(vms[1].is_hvm());
    assert_eq!(vms[1].disks.as_ref().unwrap()[0].size.val(), Some(10240));
    assert_eq!(vms[1].ips(), ["192.0.2.10"]);
    assert_eq!(vms[2].extra["quantum_entanglement"]["partners"][1], "y");

    let a: AuthInfo = serde_json::from_value(fixture_json("mahi-user.json")).unwrap();
    let rsa_fp = std::fs::read_to_string(crate::common::key_file("id_rsa.md5")).unwrap();
    assert!(a
        .user
        .as_ref()
        .unwrap()
        .key(rsa_fp.trim())
        .unwrap()
        .starts_with("ssh-rsa "));
    assert!(a.account.is_admin());
}
