//! A small, lossless XML document model.
//!
//! Zone configuration files are rewritten by several tools (zonecfg, vmadm,
//! this project's rescue). Whatever we do not understand must survive a read
//! and a write untouched, so the model is a plain tree: elements keep their
//! attributes in file order and every child (elements, comments, text) in
//! order. Typed views ([`crate::zone::ZoneConfig`], ...) sit on top of it.
//!
//! The writer produces the layout libxml2's `xmlSaveFormatFile` uses for
//! `/etc/zones/<zone>.xml` (two-space indent, `<empty/>`), so a file written
//! by zonecfg reads and writes back byte for byte.

use std::fmt::Write as _;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Why a document could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    /// The text is not well-formed XML (the message says where).
    #[error("syntax error: {0}")]
    Syntax(String),
    /// Well-formed, but the root element is not the one expected.
    #[error("unexpected root element <{found}>, expected <{expected}>")]
    WrongRoot { expected: String, found: String },
    /// A required attribute or element is missing or has a bad value.
    #[error("{0}")]
    Invalid(String),
}

/// The deepest element nesting [`Document::parse`] accepts. Zone files and
/// brand files are at most four levels deep; a limit keeps hostile files
/// (100,000 nested elements) from exhausting the stack of anything that
/// walks or drops the tree.
pub const MAX_DEPTH: usize = 64;

/// Something that may stand before or after the root element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misc {
    /// `<?xml ...?>`: the text between `<?xml` and `?>`, trimmed.
    Decl(String),
    /// `<!DOCTYPE ...>`: the text between `<!DOCTYPE` and `>`, trimmed.
    Doctype(String),
    /// `<!-- ... -->`: the comment text as written.
    Comment(String),
    /// `<?target data?>`.
    Pi(String),
    /// An empty line (kept so hand-formatted files stay readable).
    Blank,
}

/// A child of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    /// Character data (unescaped). Whitespace-only runs are not kept.
    Text(String),
    Comment(String),
    CData(String),
    /// An empty line between children (layout only).
    Blank,
}

/// An element: name, attributes in file order, children in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
}

/// A whole document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub prolog: Vec<Misc>,
    pub root: Element,
    pub epilog: Vec<Misc>,
}

/// How [`Document::write`] lays the text out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// One level of indentation.
    pub indent: &'static str,
    /// Text written between an empty element's attributes and `/>`.
    pub empty_close: &'static str,
}

impl Style {
    /// libxml2's formatted output, as zonecfg writes `/etc/zones/*.xml`.
    pub const ZONECFG: Style = Style {
        indent: "  ",
        empty_close: "",
    };
    /// The hand-written style of the illumos brand files.
    pub const BRAND: Style = Style {
        indent: "\t",
        empty_close: " ",
    };
}

impl Element {
    pub fn new(name: impl Into<String>) -> Self {
        Element {
            name: name.into(),
            ..Default::default()
        }
    }

    /// Builder: add an attribute.
    pub fn with_attr(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.attrs.push((k.into(), v.into()));
        self
    }

    /// Builder: add a child element.
    pub fn with_child(mut self, c: Element) -> Self {
        self.children.push(Node::Element(c));
        self
    }

    /// Builder: set the text content.
    pub fn with_text(mut self, t: impl Into<String>) -> Self {
        self.children.push(Node::Text(t.into()));
        self
    }

    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    /// Set an attribute, keeping its position when it already exists and
    /// appending it otherwise.
    pub fn set_attr(&mut self, k: &str, v: impl Into<String>) {
        let v = v.into();
        match self.attrs.iter_mut().find(|(n, _)| n == k) {
            Some(slot) => slot.1 = v,
            None => self.attrs.push((k.to_string(), v)),
        }
    }

    pub fn remove_attr(&mut self, k: &str) -> Option<String> {
        let i = self.attrs.iter().position(|(n, _)| n == k)?;
        Some(self.attrs.remove(i).1)
    }

    /// Child elements, in order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// Child elements with the given name, in order.
    pub fn elements_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.elements().filter(move |e| e.name == name)
    }

    /// Concatenated text content of this element's direct text children.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) | Node::CData(t) = n {
                s.push_str(t);
            }
        }
        s
    }

    /// The element with comments, blank lines and whitespace-only text
    /// removed, recursively: what two documents must share to mean the same.
    pub fn semantic(&self) -> Element {
        Element {
            name: self.name.clone(),
            attrs: self.attrs.clone(),
            children: self
                .children
                .iter()
                .filter_map(|n| match n {
                    Node::Element(e) => Some(Node::Element(e.semantic())),
                    Node::Text(t) | Node::CData(t) if !t.trim().is_empty() => {
                        Some(Node::Text(t.trim().to_string()))
                    }
                    _ => None,
                })
                .collect(),
        }
    }
}

fn syntax<E: std::fmt::Display>(reader_pos: u64, text: &str, e: E) -> XmlError {
    let upto = (reader_pos as usize).min(text.len());
    let line = text.as_bytes()[..upto]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1;
    XmlError::Syntax(format!("line {line}: {e}"))
}

fn start_element(text: &str, pos: u64, s: &BytesStart<'_>) -> Result<Element, XmlError> {
    let name = std::str::from_utf8(s.name().as_ref())
        .map_err(|e| syntax(pos, text, e))?
        .to_string();
    let mut el = Element::new(name);
    for a in s.attributes() {
        let a = a.map_err(|e| syntax(pos, text, e))?;
        let k = std::str::from_utf8(a.key.as_ref()).map_err(|e| syntax(pos, text, e))?;
        let v = a.unescape_value().map_err(|e| syntax(pos, text, e))?;
        if el.attr(k).is_some() {
            return Err(syntax(pos, text, format!("attribute {k} given twice")));
        }
        el.attrs.push((k.to_string(), v.into_owned()));
    }
    Ok(el)
}

impl Document {
    /// A document laid out like the illumos brand files: XML declaration,
    /// the header comment, then `<!DOCTYPE root PUBLIC "public" "system">`
    /// with the system id on its own line, blank lines between.
    pub fn brand_file(
        root: Element,
        header: Option<&str>,
        public_id: &str,
        system_id: &str,
    ) -> Document {
        let mut prolog = vec![Misc::Decl("version=\"1.0\"".into()), Misc::Blank];
        if let Some(h) = header {
            prolog.push(Misc::Comment(h.to_string()));
            prolog.push(Misc::Blank);
        }
        prolog.push(Misc::Doctype(format!(
            "{} PUBLIC \"{public_id}\"\n    \"{system_id}\"",
            root.name
        )));
        prolog.push(Misc::Blank);
        Document {
            prolog,
            root,
            epilog: vec![],
        }
    }

    /// Parse a document. Garbage, an unclosed element, text outside the
    /// root or a missing root element are errors.
    pub fn parse(text: &str) -> Result<Document, XmlError> {
        let mut reader = Reader::from_str(text);
        reader.config_mut().trim_text(false);
        reader.config_mut().check_end_names = true;
        let mut prolog = Vec::new();
        let mut epilog = Vec::new();
        let mut stack: Vec<Element> = Vec::new();
        let mut root: Option<Element> = None;
        loop {
            let pos = reader.buffer_position();
            let ev = reader.read_event().map_err(|e| syntax(pos, text, e))?;
            let misc_target = if root.is_some() {
                &mut epilog
            } else {
                &mut prolog
            };
            match ev {
                Event::Eof => break,
                Event::Decl(d) => {
                    let raw = std::str::from_utf8(&d).map_err(|e| syntax(pos, text, e))?;
                    let raw = raw.trim().trim_start_matches("xml").trim();
                    misc_target.push(Misc::Decl(raw.to_string()));
                }
                Event::DocType(d) => {
                    let raw = std::str::from_utf8(&d).map_err(|e| syntax(pos, text, e))?;
                    misc_target.push(Misc::Doctype(raw.trim().to_string()));
                }
                Event::PI(p) => {
                    let raw = std::str::from_utf8(&p).map_err(|e| syntax(pos, text, e))?;
                    match stack.last_mut() {
                        Some(_) => {} // processing instructions inside elements are not kept
                        None => misc_target.push(Misc::Pi(raw.to_string())),
                    }
                }
                Event::Comment(c) => {
                    let raw = std::str::from_utf8(&c).map_err(|e| syntax(pos, text, e))?;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(Node::Comment(raw.to_string())),
                        None => misc_target.push(Misc::Comment(raw.to_string())),
                    }
                }
                Event::Text(t) => {
                    let raw = std::str::from_utf8(&t).map_err(|e| syntax(pos, text, e))?;
                    if raw.trim().is_empty() {
                        let blank = raw.matches('\n').count() >= 2;
                        if blank {
                            match stack.last_mut() {
                                Some(parent) => parent.children.push(Node::Blank),
                                None => misc_target.push(Misc::Blank),
                            }
                        }
                        continue;
                    }
                    let Some(parent) = stack.last_mut() else {
                        return Err(syntax(pos, text, "text outside the root element"));
                    };
                    let s = t.unescape().map_err(|e| syntax(pos, text, e))?;
                    parent.children.push(Node::Text(s.into_owned()));
                }
                Event::CData(c) => {
                    let Some(parent) = stack.last_mut() else {
                        return Err(syntax(pos, text, "CDATA outside the root element"));
                    };
                    let raw = std::str::from_utf8(&c).map_err(|e| syntax(pos, text, e))?;
                    parent.children.push(Node::CData(raw.to_string()));
                }
                Event::Start(s) => {
                    if root.is_some() {
                        return Err(syntax(pos, text, "more than one root element"));
                    }
                    if stack.len() >= MAX_DEPTH {
                        return Err(syntax(
                            pos,
                            text,
                            format!("elements nested deeper than {MAX_DEPTH} levels"),
                        ));
                    }
                    stack.push(start_element(text, pos, &s)?);
                }
                Event::Empty(s) => {
                    let el = start_element(text, pos, &s)?;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(Node::Element(el)),
                        None if root.is_none() => root = Some(el),
                        None => return Err(syntax(pos, text, "more than one root element")),
                    }
                }
                Event::End(_) => {
                    let el = stack
                        .pop()
                        .ok_or_else(|| syntax(pos, text, "unmatched end tag"))?;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(Node::Element(el)),
                        None => root = Some(el),
                    }
                }
            }
        }
        if let Some(open) = stack.last() {
            return Err(XmlError::Syntax(format!(
                "unexpected end of document inside <{}>",
                open.name
            )));
        }
        let root = root.ok_or_else(|| XmlError::Syntax("no root element".into()))?;
        // Blank lines right before the root or at the end carry no meaning.
        while prolog.last() == Some(&Misc::Blank) {
            prolog.pop();
        }
        while epilog.last() == Some(&Misc::Blank) {
            epilog.pop();
        }
        Ok(Document {
            prolog,
            root,
            epilog,
        })
    }

    /// Parse and insist on the root element's name.
    pub fn parse_expecting(text: &str, root: &str) -> Result<Document, XmlError> {
        let doc = Document::parse(text)?;
        if doc.root.name != root {
            return Err(XmlError::WrongRoot {
                expected: root.into(),
                found: doc.root.name,
            });
        }
        Ok(doc)
    }

    /// Write the document in the given style.
    pub fn write(&self, style: Style) -> String {
        let mut out = String::new();
        for m in &self.prolog {
            write_misc(&mut out, m);
        }
        write_element(&mut out, &self.root, 0, style);
        for m in &self.epilog {
            write_misc(&mut out, m);
        }
        out
    }
}

fn write_misc(out: &mut String, m: &Misc) {
    match m {
        Misc::Decl(d) => {
            let _ = writeln!(out, "<?xml {d}?>");
        }
        Misc::Doctype(d) => {
            let _ = writeln!(out, "<!DOCTYPE {d}>");
        }
        Misc::Comment(c) => {
            let _ = writeln!(out, "<!--{c}-->");
        }
        Misc::Pi(p) => {
            let _ = writeln!(out, "<?{p}?>");
        }
        Misc::Blank => out.push('\n'),
    }
}

/// Escape an attribute value the way libxml2 does.
pub fn escape_attr(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\n' => s.push_str("&#10;"),
            '\r' => s.push_str("&#13;"),
            '\t' => s.push_str("&#9;"),
            c => s.push(c),
        }
    }
    s
}

/// Escape character data.
pub fn escape_text(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '\r' => s.push_str("&#13;"),
            c => s.push(c),
        }
    }
    s
}

fn write_element(out: &mut String, el: &Element, depth: usize, style: Style) {
    let pad = style.indent.repeat(depth);
    out.push_str(&pad);
    out.push('<');
    out.push_str(&el.name);
    for (k, v) in &el.attrs {
        let _ = write!(out, " {k}=\"{}\"", escape_attr(v));
    }
    let has_markup = el
        .children
        .iter()
        .any(|n| matches!(n, Node::Element(_) | Node::Comment(_) | Node::Blank));
    if el.children.is_empty() {
        out.push_str(style.empty_close);
        out.push_str("/>\n");
        return;
    }
    out.push('>');
    if !has_markup {
        for n in &el.children {
            match n {
                Node::Text(t) => out.push_str(&escape_text(t)),
                Node::CData(t) => {
                    let _ = write!(out, "<![CDATA[{t}]]>");
                }
                _ => {}
            }
        }
        let _ = writeln!(out, "</{}>", el.name);
        return;
    }
    out.push('\n');
    let inner = style.indent.repeat(depth + 1);
    for n in &el.children {
        match n {
            Node::Element(c) => write_element(out, c, depth + 1, style),
            Node::Text(t) => {
                let _ = writeln!(out, "{inner}{}", escape_text(t));
            }
            Node::CData(t) => {
                let _ = writeln!(out, "{inner}<![CDATA[{t}]]>");
            }
            Node::Comment(c) => {
                let _ = writeln!(out, "{inner}<!--{c}-->");
            }
            Node::Blank => out.push('\n'),
        }
    }
    let _ = writeln!(out, "{pad}</{}>", el.name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_a_syntax_error() {
        assert!(matches!(
            Document::parse("GARBAGE\n"),
            Err(XmlError::Syntax(_))
        ));
        assert!(matches!(
            Document::parse("<zone>"),
            Err(XmlError::Syntax(_))
        ));
        assert!(matches!(
            Document::parse("<a></b>"),
            Err(XmlError::Syntax(_))
        ));
        assert!(matches!(
            Document::parse("<a/><b/>"),
            Err(XmlError::Syntax(_))
        ));
        assert!(matches!(Document::parse(""), Err(XmlError::Syntax(_))));
        assert!(matches!(
            Document::parse("<a x=\"1\" x=\"2\"/>"),
            Err(XmlError::Syntax(_))
        ));
    }

    #[test]
    fn deep_nesting_is_refused_with_a_clear_error() {
        let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
        match Document::parse(&deep) {
            Err(XmlError::Syntax(m)) => {
                assert!(m.contains("nested deeper than 64 levels"), "{m}")
            }
            other => panic!("deep XML accepted: {:?}", other.map(|_| ())),
        }
        let ok = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(Document::parse(&ok).is_ok());
        let over = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert!(Document::parse(&over).is_err());
    }

    #[test]
    fn attributes_keep_order_and_escapes() {
        let src = "<a z=\"1\" b=\"&quot;x&amp;y&lt;\" a=\"3\"/>\n";
        let doc = Document::parse(src).unwrap();
        let names: Vec<_> = doc.root.attrs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["z", "b", "a"]);
        assert_eq!(doc.root.attr("b"), Some("\"x&y<"));
        assert_eq!(doc.write(Style::ZONECFG), src);
    }

    #[test]
    fn unknown_children_survive_edits() {
        let src = "<zone name=\"z\">\n  <future-thing k=\"v\">\n    <deep/>\n  </future-thing>\n</zone>\n";
        let mut doc = Document::parse(src).unwrap();
        doc.root.set_attr("brand", "joyent");
        let out = doc.write(Style::ZONECFG);
        assert!(out.contains("<future-thing k=\"v\">\n    <deep/>\n  </future-thing>"));
        assert!(out.starts_with("<zone name=\"z\" brand=\"joyent\">"));
    }

    #[test]
    fn semantic_ignores_comments_and_layout() {
        let a = Document::parse("<a>\n<!-- c -->\n\n<b x=\"1\" />\n</a>").unwrap();
        let b = Document::parse("<a><b x=\"1\"></b></a>").unwrap();
        assert_eq!(a.root.semantic(), b.root.semantic());
        let c = Document::parse("<a><b x=\"2\"/></a>").unwrap();
        assert_ne!(a.root.semantic(), c.root.semantic());
    }
}
