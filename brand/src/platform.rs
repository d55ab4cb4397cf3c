//! Brand platform definition (`/usr/lib/brand/<brand>/platform.xml`,
//! `zone_platform.dtd.1`): mounts, devices and /dev symlinks a zone gets.

use crate::xml::{Document, Element, Misc, Node, Style, XmlError};

pub const PLATFORM_PUBLIC_ID: &str = "-//Joyent Inc//Zones Platform//EN";
pub const PLATFORM_SYSTEM_ID: &str = "file:///usr/share/lib/xml/dtd/zone_platform.dtd.1";

/// A `global_mount` or `mount` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub special: String,
    pub directory: String,
    pub fstype: String,
    /// Mount options; `None` when the attribute is absent (DTD default "").
    pub opt: Option<String>,
}

/// A `device` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Pattern under /dev (gmatch syntax; tokens such as `%z` substituted).
    pub matches: String,
    /// When set, the device is presented in the zone under this name.
    pub name: Option<String>,
    /// `sparc` or `i386`; `None` means all architectures.
    pub arch: Option<String>,
    /// `shared` or `exclusive`; `None` means both.
    pub ip_type: Option<String>,
}

impl Device {
    pub fn new(matches: &str) -> Self {
        Device {
            matches: matches.into(),
            name: None,
            arch: None,
            ip_type: None,
        }
    }
    pub fn exclusive(matches: &str) -> Self {
        Device {
            ip_type: Some("exclusive".into()),
            ..Device::new(matches)
        }
    }
    pub fn renamed(matches: &str, name: &str) -> Self {
        Device {
            name: Some(name.into()),
            ..Device::new(matches)
        }
    }
    pub fn arch(matches: &str, arch: &str) -> Self {
        Device {
            arch: Some(arch.into()),
            ..Device::new(matches)
        }
    }
}

/// One child of `<platform>`, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    GlobalMount(Mount),
    Mount(Mount),
    Device(Device),
    Symlink {
        source: String,
        target: String,
    },
    /// A comment kept for readers of the file (layout only).
    Comment(String),
    /// An empty line (layout only).
    Blank,
}

/// A brand's `platform.xml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub name: String,
    pub allow_exclusive_ip: bool,
    pub entries: Vec<Entry>,
    /// The comment block written before the DOCTYPE.
    pub header: Option<String>,
}

fn req<'a>(e: &'a Element, k: &str) -> Result<&'a str, XmlError> {
    e.attr(k)
        .ok_or_else(|| XmlError::Invalid(format!("<{}> has no {k} attribute", e.name)))
}

fn mount(e: &Element) -> Result<Mount, XmlError> {
    Ok(Mount {
        special: req(e, "special")?.into(),
        directory: req(e, "directory")?.into(),
        fstype: req(e, "type")?.into(),
        opt: e.attr("opt").map(str::to_string),
    })
}

fn mount_el(name: &str, m: &Mount) -> Element {
    let mut e = Element::new(name)
        .with_attr("special", &m.special)
        .with_attr("directory", &m.directory)
        .with_attr("type", &m.fstype);
    if let Some(o) = &m.opt {
        e.set_attr("opt", o);
    }
    e
}

impl Platform {
    pub fn parse(text: &str) -> Result<Platform, XmlError> {
        let doc = Document::parse_expecting(text, "platform")?;
        let root = &doc.root;
        let name = req(root, "name")?.to_string();
        let allow_exclusive_ip = match req(root, "allow-exclusive-ip")? {
            "true" => true,
            "false" => false,
            other => {
                return Err(XmlError::Invalid(format!(
                    "allow-exclusive-ip must be true or false, not {other:?}"
                )))
            }
        };
        let mut entries = Vec::new();
        for n in &root.children {
            let entry = match n {
                Node::Element(e) => match e.name.as_str() {
                    "global_mount" => Entry::GlobalMount(mount(e)?),
                    "mount" => Entry::Mount(mount(e)?),
                    "device" => Entry::Device(Device {
                        matches: req(e, "match")?.into(),
                        name: e.attr("name").filter(|s| !s.is_empty()).map(str::to_string),
                        arch: e.attr("arch").map(str::to_string),
                        ip_type: e.attr("ip-type").map(str::to_string),
                    }),
                    "symlink" => Entry::Symlink {
                        source: req(e, "source")?.into(),
                        target: req(e, "target")?.into(),
                    },
                    other => {
                        return Err(XmlError::Invalid(format!(
                            "unknown platform element <{other}>"
                        )))
                    }
                },
                Node::Comment(c) => Entry::Comment(c.clone()),
                Node::Blank => Entry::Blank,
                Node::Text(_) | Node::CData(_) => {
                    return Err(XmlError::Invalid("text inside <platform>".into()))
                }
            };
            entries.push(entry);
        }
        // Blank lines at the edges are layout that to_document adds back.
        while entries.first() == Some(&Entry::Blank) {
            entries.remove(0);
        }
        while entries.last() == Some(&Entry::Blank) {
            entries.pop();
        }
        let header = doc.prolog.iter().find_map(|m| match m {
            Misc::Comment(c) => Some(c.clone()),
            _ => None,
        });
        Ok(Platform {
            name,
            allow_exclusive_ip,
            entries,
            header,
        })
    }

    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Device(d) => Some(d),
            _ => None,
        })
    }

    pub fn symlinks(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Symlink { source, target } => Some((source.as_str(), target.as_str())),
            _ => None,
        })
    }

    pub fn global_mounts(&self) -> impl Iterator<Item = &Mount> {
        self.entries.iter().filter_map(|e| match e {
            Entry::GlobalMount(m) => Some(m),
            _ => None,
        })
    }

    /// Insert entries right after the last entry for which `after` holds
    /// (at the end when none does).
    pub fn insert_after(&mut self, after: impl Fn(&Entry) -> bool, new: Vec<Entry>) {
        let at = self
            .entries
            .iter()
            .rposition(after)
            .map_or(self.entries.len(), |i| i + 1);
        self.entries.splice(at..at, new);
    }

    pub fn to_document(&self) -> Document {
        let mut root = Element::new("platform")
            .with_attr("name", &self.name)
            .with_attr(
                "allow-exclusive-ip",
                if self.allow_exclusive_ip {
                    "true"
                } else {
                    "false"
                },
            );
        root.children.push(Node::Blank);
        for e in &self.entries {
            root.children.push(match e {
                Entry::GlobalMount(m) => Node::Element(mount_el("global_mount", m)),
                Entry::Mount(m) => Node::Element(mount_el("mount", m)),
                Entry::Device(d) => {
                    let mut el = Element::new("device").with_attr("match", &d.matches);
                    if let Some(n) = &d.name {
                        el.set_attr("name", n);
                    }
                    if let Some(a) = &d.arch {
                        el.set_attr("arch", a);
                    }
                    if let Some(i) = &d.ip_type {
                        el.set_attr("ip-type", i);
                    }
                    Node::Element(el)
                }
                Entry::Symlink { source, target } => Node::Element(
                    Element::new("symlink")
                        .with_attr("source", source)
                        .with_attr("target", target),
                ),
                Entry::Comment(c) => Node::Comment(c.clone()),
                Entry::Blank => Node::Blank,
            });
        }
        root.children.push(Node::Blank);
        Document::brand_file(
            root,
            self.header.as_deref(),
            PLATFORM_PUBLIC_ID,
            PLATFORM_SYSTEM_ID,
        )
    }

    pub fn to_xml(&self) -> String {
        self.to_document().write(Style::BRAND)
    }
}
