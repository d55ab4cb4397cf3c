//! `vmadm-ext`: vmadm's knowledge of the builder brand, as a command.

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use serde_json::{Map, Value};

use vmadm_ext::create::{self, Runtime};
use vmadm_ext::list::{self, ListError, ListOptions};
use vmadm_ext::node::{LoadOptions, Node, StateSource};
use vmadm_ext::rescue::{self, Outcome};
use vmadm_ext::validate::{self, Invalid};
use vmadm_ext::{check, preflight, Table};

const ABOUT: &str =
    "vmadm's knowledge of the builder brand: validate, plan, list, preflight, rescue";

const LONG_ABOUT: &str = "\
vmadm-ext answers the questions vmadm(8) answers about SmartOS zones, with
the builder brand (a joyent zone that may use bhyve through /dev/vmm* and
/dev/viona) as a first-class brand, and adds the tools a rollback to an older
platform image needs.

It reads a node rooted at --root (default /): /etc/zones/index, the zone XML
files /etc/zones/<zone>.xml, <zonepath>/config/*.json, and, when zoneadm is
on PATH, `zoneadm list -p -c` for zone state. Host commands (zpool, imgadm,
zoneadm, svcadm) are run by bare name from PATH, so a directory of stand-ins
put first on PATH redirects them.

Output formats, messages and exit codes follow vmadm: 0 success, 1 error, 2
usage error. Errors are one line on stderr, starting with `vmadm-ext:`.";

const EXAMPLES: &str = "\
Examples:
  vmadm-ext validate create -f payload.json
  vmadm-ext create --dry-run -f payload.json
  vmadm-ext list brand=builder
  vmadm-ext lookup -j -1 alias=cloud-image-builder
  vmadm-ext preflight --platform 20240101T000000Z
  vmadm-ext rescue 4c3a4cce-7c4b-4e5a-9c3c-8a0a3c1d2e3f
  vmadm-ext check 4c3a4cce-7c4b-4e5a-9c3c-8a0a3c1d2e3f

See vmadm-ext(8) for the full manual.";

#[derive(Parser, Debug)]
#[command(name = "vmadm-ext", version, about = ABOUT, long_about = LONG_ABOUT, after_long_help = EXAMPLES)]
struct Cli {
    /// Root directory of the node to read and change (a SmartOS global zone is /).
    #[arg(
        long,
        global = true,
        default_value = "/",
        value_name = "DIR",
        env = "VMADM_EXT_ROOT"
    )]
    root: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Check a create or update payload as `vmadm validate` does.
    #[command(
        after_long_help = "Examples:
  vmadm-ext validate create -f builder.json
  echo '{\"cpu_cap\": 800}' | vmadm-ext validate update builder",
        long_about = "\
Check a JSON payload the way `vmadm validate` does, in vmadm's order: the
brand (an unknown or missing brand gives {\"bad_brand\": ...}), the pools
(`zpool list -H -p -o name`), every top-level property (allowed for the brand
and action? a valid value of its type?), the keys of nics/filesystems
entries, the required properties, and the image (`imgadm get -P <zpool>
<image_uuid>`, whose type must suit the brand).

`validate create` takes the brand from the payload; `validate update <brand>`
from its argument. On success it prints
    VALID 'create' payload for builder brand VMs.
and exits 0. Otherwise it prints the result object
{bad_values, bad_properties, missing_properties} as indented JSON on stderr
and exits 1. A boolean given as 1 or \"1\" passes with a deprecation warning.

The payload is read from FILE, or from stdin when -f is missing or -."
    )]
    Validate {
        /// create or update.
        action: String,
        /// The brand, for `validate update`.
        brand: Option<String>,
        /// The payload file (default: stdin).
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<String>,
    },
    /// Plan a `vmadm create`: the zonecfg text and the steps after it.
    #[command(
        after_long_help = "Examples:
  vmadm-ext create --dry-run -f builder.json
  vmadm-ext create --dry-run -j < builder.json",
        long_about = "\
Normalize a create payload as `vmadm create` does (integer conversion, list
splitting, create defaults, memory fixes, validation; properties not allowed
for the brand are removed with a warning on stderr, as vmadm does) and print
the plan as a shell script: the `zonecfg -z <zone>` command with the exact
text vmadm sends on its stdin, then `zoneadm install`, the zfs settings, the
delegated dataset, and the remaining steps as comments. Nothing is run.

When vmadm would refuse the payload, the same message is printed (for
example `Missing required properties: image_uuid`) and the exit status is 1.
Only OS brands (joyent, joyent-minimal, builder, lx) can be planned."
    )]
    Create {
        /// Print the plan only (required: vmadm-ext never creates zones).
        #[arg(long)]
        dry_run: bool,
        /// The payload file (default: stdin).
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<String>,
        /// Print the plan as JSON (normalized payload, zonecfg text, steps).
        #[arg(short = 'j', long)]
        json: bool,
    },
    /// Print one VM object as `vmadm get` does.
    #[command(
        after_long_help = "Example:
  vmadm-ext get 4c3a4cce-7c4b-4e5a-9c3c-8a0a3c1d2e3f",
        long_about = "\
Load a zone as vmadm does (zone XML, zone state, <zonepath>/config/*.json)
and print its VM object as indented JSON. An unknown UUID gives
`zoneadm: <uuid>: No such zone configured` and exit status 1."
    )]
    Get {
        /// The VM's UUID.
        uuid: String,
    },
    /// List VMs as `vmadm list` does.
    #[command(
        after_long_help = "Examples:
  vmadm-ext list brand=builder
  vmadm-ext list -p -o uuid,alias,nics.0.ip -s -ram
  vmadm-ext list -H -o uuid alias=~^cloud",
        long_about = "\
List VMs in vmadm's table format. Columns (-o) default to
uuid,type,ram,state,alias and sorting (-s) to ram,uuid; a sort key may start
with - (descending) or + (ascending). Any listable field may be a column, as
may nics.0.ip-style and tags.x-style keys. Columns are left-aligned to
vmadm's widths and separated by two spaces; a missing (or false, or 0) value
shows as -. -p prints values separated by : with no header; -H drops the
header.

Filters are key=value (exact match of the value as text) or key=~regex
(case-insensitive); all must match. nics.*.ip=x matches when any nic does."
    )]
    List {
        /// Columns, comma separated.
        #[arg(short = 'o', long = "order", value_name = "FIELD,...")]
        order: Option<String>,
        /// Sort keys, comma separated (prefix - to reverse).
        #[arg(
            short = 's',
            long = "sortby",
            value_name = "FIELD,...",
            allow_hyphen_values = true
        )]
        sort: Option<String>,
        /// No header line.
        #[arg(short = 'H')]
        no_header: bool,
        /// Parsable output: values joined by :, no header.
        #[arg(short = 'p', long = "parsable")]
        parsable: bool,
        /// key=value or key=~regex filters.
        filters: Vec<String>,
    },
    /// Find VMs as `vmadm lookup` does.
    #[command(
        after_long_help = "Examples:
  vmadm-ext lookup brand=builder
  vmadm-ext lookup -j -1 -o uuid,alias alias=cloud-image-builder",
        long_about = "\
Print the UUIDs of the VMs that match the filters (see list), one per line,
or with -j their VM objects as a JSON array. -o limits the objects to the
named fields (only with -j). -1 demands exactly one match and fails with
`Requested unique lookup but found N results.` otherwise."
    )]
    Lookup {
        /// JSON output.
        #[arg(short = 'j', long = "json")]
        json: bool,
        /// Exactly one match.
        #[arg(short = '1', long = "unique")]
        unique: bool,
        /// Fields of the JSON objects, comma separated.
        #[arg(short = 'o', long = "output", value_name = "FIELD,...")]
        output: Option<String>,
        /// key=value or key=~regex filters.
        filters: Vec<String>,
    },
    /// Name the zones that will not start on a platform image.
    #[command(
        after_long_help = "Examples:
  vmadm-ext preflight --platform 20240101T000000Z
  vmadm-ext preflight --platform /zones/boot/platform-20240101T000000Z",
        long_about = "\
Before activating an older platform image (piadm activate), find every zone
whose brand that image does not provide. A zone with a brand the platform
lacks fails to start (for builder zones, vmadm dumps core). The image's
brands are its usr/lib/brand/<brand>/platform.xml files, read from a
platform directory, or from the list of files in its
i86pc/amd64/boot_archive.manifest.

--platform takes a platform directory, or a PI stamp looked up as
<root>/<pool>/boot/platform-<stamp> (piadm's layout). Each broken zone is
printed with the command that rescues it; the exit status is 1 when any zone
would break, 0 when none would."
    )]
    Preflight {
        /// A PI stamp (see piadm list) or a platform directory.
        #[arg(long, value_name = "STAMP|DIR")]
        platform: String,
    },
    /// Turn a stopped builder zone into a joyent zone with the same access.
    #[command(
        after_long_help = "Example (rollback to a platform without builder):
  vmadm-ext preflight --platform 20240101T000000Z
  vmadm stop 4c3a4cce-7c4b-4e5a-9c3c-8a0a3c1d2e3f
  vmadm-ext rescue 4c3a4cce-7c4b-4e5a-9c3c-8a0a3c1d2e3f
  piadm activate 20240101T000000Z",
        long_about = "\
On a platform without the builder brand, make a builder zone start again:
set its brand to joyent, add device resources /dev/viona and /dev/vmm*, and
add proc_clock_highres and sys_dl_config to its limitpriv when missing. The
zone keeps the same effective access to bhyve.

The change holds the zone's lock, first keeps the original XML in
/etc/zones/<zone>.xml.builder-backup, writes the new XML atomically (temp
file, fsync, rename), and records what it changed in the zone as the attr
vmadm-ext-rescued. Running zones and non-builder zones are refused. Running
it again on a rescued zone does nothing. Undo with unrescue."
    )]
    Rescue {
        /// The VM's UUID.
        uuid: String,
    },
    /// Restore a rescued zone to the builder brand, byte for byte.
    #[command(
        after_long_help = "Example (after booting a platform with builder again):
  vmadm stop 4c3a4cce-7c4b-4e5a-9c3c-8a0a3c1d2e3f
  vmadm-ext unrescue 4c3a4cce-7c4b-4e5a-9c3c-8a0a3c1d2e3f",
        long_about = "\
Undo rescue: put back the original builder XML from the backup. This is
refused when the booted platform has no builder brand, when the zone is
running, and when the zone changed after the rescue (its XML is not what
rescue wrote); the backup is then left for a manual comparison. Running it
on a builder zone does nothing."
    )]
    Unrescue {
        /// The VM's UUID.
        uuid: String,
    },
    /// Say whether a zone can run bhyve image builds.
    #[command(
        after_long_help = "Example:
  vmadm-ext check 4c3a4cce-7c4b-4e5a-9c3c-8a0a3c1d2e3f",
        long_about = "\
Check what triton-cloud-images' build_all.sh needs from a build zone, one
line per requirement (ok: or FAIL:): /dev/vmmctl and /dev/viona visible in
the zone (computed from the brand's platform.xml, the zone's device
resources and the global /dev), a delegated dataset, allow_ip_spoofing on
the primary nic, and proc_clock_highres and sys_dl_config in limit_priv.
The exit status is 1 when any requirement fails."
    )]
    Check {
        /// The VM's UUID.
        uuid: String,
    },
}

/// A usage error (exit 2).
#[derive(Debug)]
struct Usage(String);
impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Usage {}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(msg.into()))
}

fn uuid_arg(cmd: &str, u: &str) -> anyhow::Result<()> {
    if common::uuid::is_uuid_ci(u) {
        Ok(())
    } else {
        Err(usage(format!("Invalid or missing UUID for {cmd}")))
    }
}

fn read_payload(file: Option<&str>, what: &str) -> anyhow::Result<Map<String, Value>> {
    let name = file.unwrap_or("-");
    let text = if name == "-" {
        if std::io::stdin().is_terminal() {
            return Err(usage(format!(
                "Will not {what} from stdin when stdin is a tty."
            )));
        }
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("Error reading: /dev/stdin")?;
        s
    } else {
        match std::fs::read_to_string(name) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("File: {name} does not exist.")
            }
            Err(e) => bail!("Error reading: {name} {e}"),
        }
    };
    let v: Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("Invalid JSON payload: {e}"))?;
    match v {
        Value::Object(o) => Ok(o),
        _ => bail!("Invalid JSON payload: not a JSON object"),
    }
}

/// Stop here when VMADM_EXT_PAUSE_AT names this step (tests kill the
/// process at each step of a rescue).
fn pause_hook(step: &str) {
    if std::env::var("VMADM_EXT_PAUSE_AT").as_deref() == Ok(step) {
        eprintln!("vmadm-ext: paused at {step}");
        if let Some(ms) = std::env::var("VMADM_EXT_PAUSE_MS")
            .ok()
            .and_then(|m| m.parse::<u64>().ok())
        {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            return;
        }
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let table = Table::get();
    let mut node = Node::new(&cli.root);
    node.state_source = match std::env::var("VMADM_EXT_STATE").as_deref() {
        Ok("index") => StateSource::Index,
        Ok("zoneadm") => StateSource::Zoneadm,
        _ => StateSource::Auto,
    };
    match cli.cmd {
        Cmd::Validate {
            action,
            brand,
            file,
        } => {
            if action != "create" && action != "update" {
                return Err(usage(format!("Will not validate without a valid action (create or update), got \"{action}\".")));
            }
            if action == "update" && brand.is_none() {
                return Err(usage("Will not validate without a valid action and brand."));
            }
            let payload = read_payload(file.as_deref(), "validate")?;
            let brand = if action == "update" {
                brand
            } else {
                payload.get("brand").map(|b| {
                    b.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| b.to_string())
                })
            };
            match validate::validate(
                table,
                brand.as_deref(),
                &action,
                &payload,
                &vmadm_ext::host::system(),
            ) {
                Ok(v) => {
                    for w in v.warnings {
                        eprintln!("Warning: {w}");
                    }
                    println!(
                        "{}",
                        validate::valid_line(&action, brand.as_deref().unwrap_or("undefined"))
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e @ (Invalid::BadBrand(_) | Invalid::Lists { .. })) => {
                    eprintln!("{}", e.render());
                    Ok(ExitCode::from(1))
                }
            }
        }
        Cmd::Create {
            dry_run,
            file,
            json,
        } => {
            if !dry_run {
                return Err(usage(
                    "create only plans: use --dry-run (vmadm create does the real thing)",
                ));
            }
            let payload = read_payload(file.as_deref(), "create")?;
            let rt = Runtime::generate(table.default_i64("provision_timeout"));
            let plan = create::plan(table, &payload, &vmadm_ext::host::system(), &rt)?;
            for w in &plan.warnings {
                eprintln!("{w}");
            }
            if json {
                let v = serde_json::json!({
                    "zonename": plan.zonename, "payload": plan.payload,
                    "zonecfg": plan.zonecfg, "steps": plan.steps,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", plan.script());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Get { uuid } => {
            uuid_arg("get", &uuid)?;
            let vm = node.get(&uuid)?;
            println!("{}", serde_json::to_string_pretty(&Value::Object(vm))?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::List {
            order,
            sort,
            no_header,
            parsable,
            filters,
        } => {
            let mut opts = ListOptions::new(table);
            if let Some(o) = order {
                opts.order = o;
            }
            if let Some(s) = sort {
                opts.sort = s;
            }
            opts.parsable = parsable;
            opts.header = !no_header && !parsable;
            let filters = list::parse_filters(table, &filters, false)?;
            let lister = list::Lister::new(table, &filters, &opts)?;
            // the keys as given: a sort key `-tags.x` does not read tags.json
            let keys = opts
                .order
                .split(',')
                .chain(opts.sort.split(','))
                .chain(filters.iter().map(|f| f.key.as_str()));
            let lo = LoadOptions {
                json: list::needs_config_json(keys),
                last_modified: false,
            };
            // rows hold a line and the sort values only
            let mut rows = Vec::new();
            let mut bad = Vec::new();
            node.each_vm(
                lo,
                &lister.fields(),
                |vm| lister.row(vm),
                |r| -> anyhow::Result<()> {
                    match r {
                        Ok(row) => rows.extend(row),
                        Err(e) => bad.push(e),
                    }
                    Ok(())
                },
            )?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            lister.write(rows, &mut out)?;
            std::io::Write::flush(&mut out)?;
            Ok(partial(&bad))
        }
        Cmd::Lookup {
            json,
            unique,
            output,
            filters,
        } => {
            if output.is_some() && !json {
                return Err(ListError::OutputWithoutJson.into());
            }
            let filters = list::parse_filters(table, &filters, true)?;
            let lookup = list::Lookup::new(table, &filters, json, unique, output.as_deref())?;
            // matching VMs are written as they come (a unique one is held)
            let mut out = lookup.output(std::io::BufWriter::new(std::io::stdout().lock()));
            let mut bad = Vec::new();
            node.each_vm(
                LoadOptions::FULL,
                &lookup.fields(),
                |vm| lookup.entry(vm),
                |r| -> anyhow::Result<()> {
                    match r {
                        Ok(Some(entry)) => out.push(entry)?,
                        Ok(None) => {}
                        Err(e) => bad.push(e),
                    }
                    Ok(())
                },
            )?;
            if let Some(e) = out.refused() {
                return Err(e.into());
            }
            out.finish()?;
            Ok(partial(&bad))
        }
        Cmd::Preflight { platform } => {
            let dir = preflight::find_platform(&cli.root, &platform)?;
            let pb = preflight::platform_brands(&dir)?;
            let (total, broken) = preflight::preflight(&node, &pb)?;
            println!(
                "platform {} provides brands: {}",
                pb.path.display(),
                pb.brands.join(", ")
            );
            if broken.is_empty() {
                println!("all {total} zones have their brand on this platform");
                return Ok(ExitCode::SUCCESS);
            }
            for b in &broken {
                let alias = b
                    .alias
                    .as_deref()
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default();
                match &b.fix {
                    Some(f) => println!(
                        "{}{alias}: brand {} missing, will not start; rescue with: {f}",
                        b.uuid, b.brand
                    ),
                    None => println!(
                        "{}{alias}: brand {} missing, will not start; no rescue available",
                        b.uuid, b.brand
                    ),
                }
            }
            println!(
                "{} of {total} zones will not start on this platform",
                broken.len()
            );
            Ok(ExitCode::from(1))
        }
        Cmd::Rescue { uuid } => {
            uuid_arg("rescue", &uuid)?;
            match rescue::rescue(&node, &uuid, &mut pause_hook)? {
                Outcome::Rescued {
                    added_devices,
                    added_privs,
                    backup,
                } => {
                    let list = |v: &[String]| {
                        if v.is_empty() {
                            "none".to_string()
                        } else {
                            v.join(", ")
                        }
                    };
                    println!(
                        "zone {uuid} rescued: brand builder -> joyent; devices added: {}; privileges added: {}; original kept in {}; undo with: vmadm-ext unrescue {uuid}",
                        list(&added_devices),
                        list(&added_privs),
                        backup.display()
                    );
                }
                _ => println!("zone {uuid} is already rescued; nothing to do"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Unrescue { uuid } => {
            uuid_arg("unrescue", &uuid)?;
            match rescue::unrescue(&node, &uuid, &mut pause_hook)? {
                Outcome::Restored { backup } => {
                    println!(
                        "zone {uuid} restored to brand builder from {}",
                        backup.display()
                    )
                }
                _ => println!("zone {uuid} is a builder zone; nothing to undo"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Check { uuid } => {
            uuid_arg("check", &uuid)?;
            let reqs = check::check(&node, &uuid)?;
            for r in &reqs {
                println!("{r}");
            }
            let failed = reqs.iter().filter(|r| !r.ok).count();
            if failed > 0 {
                println!("zone {uuid} cannot run bhyve builds: {failed} requirement(s) failed");
                Ok(ExitCode::from(1))
            } else {
                println!("zone {uuid} can run bhyve builds");
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// A listing that left zones out: one line per zone on stderr, exit 1.
fn partial(bad: &[vmadm_ext::node::NodeError]) -> ExitCode {
    for e in bad {
        let msg = vmadm_ext::quote::printable(&format!("{e}"), 400);
        eprintln!("vmadm-ext: {msg}");
    }
    if bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    common::cli::quiet_broken_pipe();
    common::cli::completions_if_asked::<Cli>("vmadm-ext");
    // logs (to stderr) only when asked for: VMADM_EXT_LOG=debug, or
    // per target (VMADM_EXT_LOG=warn,host=debug). Targets, not EnvFilter:
    // EnvFilter's field regexes would relocate regex's Unicode tables at
    // every start of the process.
    if let Ok(filter) = std::env::var("VMADM_EXT_LOG") {
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        match filter.parse::<tracing_subscriber::filter::Targets>() {
            Ok(targets) => {
                let _ = tracing_subscriber::registry()
                    .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
                    .with(targets)
                    .try_init();
            }
            Err(e) => eprintln!("vmadm-ext: VMADM_EXT_LOG {filter:?} ignored: {e}"),
        }
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                print!("{e}");
                return ExitCode::SUCCESS;
            }
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                eprint!("{e}");
                return ExitCode::from(2);
            }
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_string();
            eprintln!("vmadm-ext: {first} (see vmadm-ext --help)");
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) if common::cli::is_broken_pipe(e.as_ref()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = if e.downcast_ref::<Usage>().is_some() {
                2
            } else {
                1
            };
            eprintln!("vmadm-ext: {}", common::cli::error_line(e.as_ref()));
            ExitCode::from(code)
        }
    }
}
