//! Brand configuration (`/usr/lib/brand/<brand>/config.xml`, `brand.dtd.1`).

use crate::xml::{Document, Element, Misc, Node, Style, XmlError};

/// The public id of brand.dtd.1 as the illumos brand files write it.
pub const BRAND_PUBLIC_ID: &str = "-//Joyent Inc//DTD Brands//EN";
pub const BRAND_SYSTEM_ID: &str = "file:///usr/share/lib/xml/dtd/brand.dtd.1";

/// The optional hook elements of brand.dtd.1, in the order the DTD requires
/// them (between `user_cmd` and the privileges).
pub const HOOKS: &[&str] = &[
    "install",
    "installopts",
    "boot",
    "sysboot",
    "halt",
    "shutdown",
    "verify_cfg",
    "verify_adm",
    "postattach",
    "postclone",
    "postinstall",
    "predetach",
    "attach",
    "detach",
    "clone",
    "presnap",
    "postsnap",
    "validatesnap",
    "preuninstall",
    "uninstall",
    "prestatechange",
    "poststatechange",
    "query",
];

/// Elements between `initname` and `login_cmd` (illumos 14019).
const RESTART: &[&str] = &["restartinit", "restartinit0", "restartinitreboot"];

/// The three privilege sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PrivSet {
    Default,
    Prohibited,
    Required,
}

impl PrivSet {
    pub fn as_str(self) -> &'static str {
        match self {
            PrivSet::Default => "default",
            PrivSet::Prohibited => "prohibited",
            PrivSet::Required => "required",
        }
    }
    pub fn parse(s: &str) -> Option<PrivSet> {
        match s {
            "default" => Some(PrivSet::Default),
            "prohibited" => Some(PrivSet::Prohibited),
            "required" => Some(PrivSet::Required),
            _ => None,
        }
    }
}

/// One `<privilege>` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privilege {
    pub set: PrivSet,
    pub name: String,
    /// `shared` or `exclusive`; `None` applies to both.
    pub ip_type: Option<String>,
}

impl Privilege {
    pub fn new(set: PrivSet, name: &str, ip_type: Option<&str>) -> Self {
        Privilege {
            set,
            name: name.to_string(),
            ip_type: ip_type.map(str::to_string),
        }
    }
}

/// A brand's `config.xml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrandConfig {
    pub name: String,
    /// `Some("")` is written as an empty `<modname>`; `None` omits it.
    pub modname: Option<String>,
    pub initname: String,
    /// `(element, value)` for restartinit, restartinit0, restartinitreboot.
    pub restart: Vec<(String, String)>,
    pub login_cmd: String,
    pub forcedlogin_cmd: String,
    pub user_cmd: String,
    /// `(hook element, command)` in DTD order; an empty command is written
    /// as an empty element (present but unset).
    pub hooks: Vec<(String, String)>,
    pub privileges: Vec<Privilege>,
    /// The comment block written before the DOCTYPE.
    pub header: Option<String>,
}

fn required_text(root: &Element, name: &str) -> Result<String, XmlError> {
    root.elements_named(name)
        .next()
        .map(|e| e.text())
        .ok_or_else(|| XmlError::Invalid(format!("brand config has no <{name}> element")))
}

impl BrandConfig {
    /// Read a config.xml.
    pub fn parse(text: &str) -> Result<BrandConfig, XmlError> {
        let doc = Document::parse_expecting(text, "brand")?;
        let root = &doc.root;
        let name = root
            .attr("name")
            .ok_or_else(|| XmlError::Invalid("brand element has no name attribute".into()))?
            .to_string();
        let mut privileges = Vec::new();
        for p in root.elements_named("privilege") {
            let set = p.attr("set").and_then(PrivSet::parse).ok_or_else(|| {
                XmlError::Invalid(format!("privilege {:?} has no valid set", p.attr("name")))
            })?;
            let pname = p
                .attr("name")
                .ok_or_else(|| XmlError::Invalid("privilege without a name".into()))?;
            privileges.push(Privilege::new(set, pname, p.attr("ip-type")));
        }
        for e in root.elements() {
            let known = matches!(
                e.name.as_str(),
                "modname" | "initname" | "login_cmd" | "forcedlogin_cmd" | "user_cmd" | "privilege"
            ) || HOOKS.contains(&e.name.as_str())
                || RESTART.contains(&e.name.as_str());
            if !known {
                return Err(XmlError::Invalid(format!(
                    "unknown brand config element <{}>",
                    e.name
                )));
            }
        }
        let header = doc.prolog.iter().find_map(|m| match m {
            Misc::Comment(c) => Some(c.clone()),
            _ => None,
        });
        let restart: Vec<(String, String)> = RESTART
            .iter()
            .filter_map(|r| {
                root.elements_named(r)
                    .next()
                    .map(|e| (r.to_string(), e.text()))
            })
            .collect();
        let hooks: Vec<(String, String)> = HOOKS
            .iter()
            .filter_map(|h| {
                root.elements_named(h)
                    .next()
                    .map(|e| (h.to_string(), e.text()))
            })
            .collect();
        let config = BrandConfig {
            name,
            modname: root.elements_named("modname").next().map(Element::text),
            initname: required_text(root, "initname")?,
            restart,
            login_cmd: required_text(root, "login_cmd")?,
            forcedlogin_cmd: required_text(root, "forcedlogin_cmd")?,
            user_cmd: required_text(root, "user_cmd")?,
            hooks,
            privileges,
            header,
        };
        Ok(config)
    }

    /// A hook's command, if the hook is present and set.
    pub fn hook(&self, name: &str) -> Option<&str> {
        self.hooks
            .iter()
            .find(|(h, _)| h == name)
            .map(|(_, c)| c.as_str())
            .filter(|c| !c.is_empty())
    }

    /// The privileges of one set.
    pub fn privileges_in(&self, set: PrivSet) -> impl Iterator<Item = &Privilege> {
        self.privileges.iter().filter(move |p| p.set == set)
    }

    /// The document, in DTD order, laid out like the illumos brand files.
    pub fn to_document(&self) -> Document {
        let text_el = |n: &str, v: &str| {
            let e = Element::new(n);
            if v.is_empty() {
                e
            } else {
                e.with_text(v)
            }
        };
        let mut root = Element::new("brand").with_attr("name", &self.name);
        let mut push = |n: Node| root.children.push(n);
        if let Some(m) = &self.modname {
            push(Node::Element(text_el("modname", m)));
            push(Node::Blank);
        }
        push(Node::Element(text_el("initname", &self.initname)));
        for (r, v) in &self.restart {
            push(Node::Element(text_el(r, v)));
        }
        push(Node::Element(text_el("login_cmd", &self.login_cmd)));
        push(Node::Element(text_el(
            "forcedlogin_cmd",
            &self.forcedlogin_cmd,
        )));
        push(Node::Element(text_el("user_cmd", &self.user_cmd)));
        push(Node::Blank);
        // Hooks go out in DTD order whatever order they were given in.
        for h in HOOKS {
            if let Some((_, cmd)) = self.hooks.iter().find(|(n, _)| n == h) {
                push(Node::Element(text_el(h, cmd)));
            }
        }
        let mut last: Option<PrivSet> = None;
        for p in &self.privileges {
            if last != Some(p.set) {
                push(Node::Blank);
                last = Some(p.set);
            }
            let mut e = Element::new("privilege")
                .with_attr("set", p.set.as_str())
                .with_attr("name", &p.name);
            if let Some(ip) = &p.ip_type {
                e.set_attr("ip-type", ip);
            }
            push(Node::Element(e));
        }
        Document::brand_file(
            root,
            self.header.as_deref(),
            BRAND_PUBLIC_ID,
            BRAND_SYSTEM_ID,
        )
    }

    pub fn to_xml(&self) -> String {
        self.to_document().write(Style::BRAND)
    }
}
