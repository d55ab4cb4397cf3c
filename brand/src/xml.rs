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

use std::borrow::Cow;
use std::fmt::Write as _;

use quick_xml::events::attributes::{AttrError, Attributes};
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

/// One piece of a document as [`scan`] reads it, borrowed from the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a, 's> {
    /// `<?xml ...?>`: the text between `<?` and `?>`.
    Decl(&'a str),
    /// `<!DOCTYPE ...>`: the text after `<!DOCTYPE`.
    Doctype(&'a str),
    /// `<?target data?>`.
    Pi(&'a str),
    /// `<!-- ... -->`: the comment text as written.
    Comment(&'a str),
    /// Whitespace-only character data (layout), as written.
    Space(&'a str),
    /// Character data inside an element, unescaped.
    Text(Cow<'a, str>),
    /// `<![CDATA[...]]>` inside an element.
    CData(&'a str),
    /// An element starts: its name and attributes (values unescaped) in
    /// file order. `empty` is `<x/>`: no [`Piece::End`] follows.
    Start {
        name: &'a str,
        attrs: &'s [(&'a str, Cow<'a, str>)],
        empty: bool,
    },
    /// The innermost open element ends.
    End,
}

/// The part of `outer` that `part` (a slice of it) is.
fn within<'a>(outer: &'a str, part: &[u8]) -> Option<&'a str> {
    let start = (part.as_ptr() as usize).wrapping_sub(outer.as_ptr() as usize);
    let s = outer.get(start..start.checked_add(part.len())?)?;
    std::ptr::eq(s.as_ptr(), part.as_ptr()).then_some(s)
}

/// The part of `text` that `part` (a slice the reader took from it) is.
fn borrowed<'a>(text: &'a str, pos: u64, part: &[u8]) -> Result<&'a str, XmlError> {
    if let Some(s) = within(text, part) {
        return Ok(s);
    }
    match std::str::from_utf8(part) {
        Err(e) => Err(syntax(pos, text, e)),
        Ok(_) => Err(syntax(pos, text, "markup not read from the document")),
    }
}

/// A start tag's name, with its attributes put in `attrs`: keys and values
/// borrowed from the tag, a value unescaped into its own string only when
/// it has an entity. An attribute given twice is refused with quick-xml's
/// error (its own check, which keeps a list per element, is off).
fn start_tag<'a>(
    text: &'a str,
    pos: u64,
    s: &BytesStart<'_>,
    attrs: &mut Vec<(&'a str, Cow<'a, str>)>,
) -> Result<&'a str, XmlError> {
    let raw = borrowed(text, pos, s)?;
    let name_len = s.name().as_ref().len();
    let name = raw
        .get(..name_len)
        .ok_or_else(|| syntax(pos, text, "bad element name"))?;
    attrs.clear();
    let mut it = Attributes::new(raw, name_len);
    it.with_checks(false);
    let at = |part: &[u8]| (part.as_ptr() as usize).wrapping_sub(raw.as_ptr() as usize);
    for a in it {
        let a = a.map_err(|e| syntax(pos, text, e))?;
        let (Some(k), Some(v)) = (within(raw, a.key.into_inner()), within(raw, &a.value)) else {
            return Err(syntax(pos, text, "attribute not read from the document"));
        };
        if let Some((prev, _)) = attrs.iter().find(|(p, _)| *p == k) {
            let e = AttrError::Duplicated(at(k.as_bytes()), at(prev.as_bytes()));
            return Err(syntax(pos, text, e));
        }
        let v = if v.contains('&') {
            quick_xml::escape::unescape(v).map_err(|e| syntax(pos, text, e))?
        } else {
            Cow::Borrowed(v)
        };
        attrs.push((k, v));
    }
    Ok(name)
}

/// Read a document piece by piece without building it, with the checks of
/// [`Document::parse`] (same errors, same order): garbage, an unclosed or
/// unmatched element, text outside the root, a second root, no root,
/// nesting deeper than [`MAX_DEPTH`]. Names, attributes and text are
/// borrowed from `text` (an attribute value or text with entities is
/// unescaped into its own string). `visit` sees every piece in order; on an
/// error it has seen the pieces before it.
pub fn scan<'a>(text: &'a str, mut visit: impl FnMut(Piece<'a, '_>)) -> Result<(), XmlError> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    reader.config_mut().check_end_names = true;
    let mut open: Vec<&'a str> = Vec::new();
    let mut root_done = false;
    let mut attrs: Vec<(&'a str, Cow<'a, str>)> = Vec::new();
    loop {
        let pos = reader.buffer_position();
        let ev = reader.read_event().map_err(|e| syntax(pos, text, e))?;
        match ev {
            Event::Eof => break,
            Event::Decl(d) => visit(Piece::Decl(borrowed(text, pos, &d)?)),
            Event::DocType(d) => visit(Piece::Doctype(borrowed(text, pos, &d)?)),
            Event::PI(p) => visit(Piece::Pi(borrowed(text, pos, &p)?)),
            Event::Comment(c) => visit(Piece::Comment(borrowed(text, pos, &c)?)),
            Event::Text(t) => {
                let raw = borrowed(text, pos, &t)?;
                if raw.trim().is_empty() {
                    visit(Piece::Space(raw));
                    continue;
                }
                if open.is_empty() {
                    return Err(syntax(pos, text, "text outside the root element"));
                }
                visit(Piece::Text(t.unescape().map_err(|e| syntax(pos, text, e))?));
            }
            Event::CData(c) => {
                if open.is_empty() {
                    return Err(syntax(pos, text, "CDATA outside the root element"));
                }
                visit(Piece::CData(borrowed(text, pos, &c)?));
            }
            Event::Start(s) => {
                if root_done {
                    return Err(syntax(pos, text, "more than one root element"));
                }
                if open.len() >= MAX_DEPTH {
                    return Err(syntax(
                        pos,
                        text,
                        format!("elements nested deeper than {MAX_DEPTH} levels"),
                    ));
                }
                let name = start_tag(text, pos, &s, &mut attrs)?;
                open.push(name);
                visit(Piece::Start {
                    name,
                    attrs: &attrs,
                    empty: false,
                });
            }
            Event::Empty(s) => {
                let name = start_tag(text, pos, &s, &mut attrs)?;
                if open.is_empty() {
                    if root_done {
                        return Err(syntax(pos, text, "more than one root element"));
                    }
                    root_done = true;
                }
                visit(Piece::Start {
                    name,
                    attrs: &attrs,
                    empty: true,
                });
            }
            Event::End(_) => {
                if open.pop().is_none() {
                    return Err(syntax(pos, text, "unmatched end tag"));
                }
                if open.is_empty() {
                    root_done = true;
                }
                visit(Piece::End);
            }
        }
    }
    if let Some(name) = open.last() {
        return Err(XmlError::Syntax(format!(
            "unexpected end of document inside <{name}>"
        )));
    }
    if !root_done {
        return Err(XmlError::Syntax("no root element".into()));
    }
    Ok(())
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
    /// root or a missing root element are errors (see [`scan`]).
    pub fn parse(text: &str) -> Result<Document, XmlError> {
        let mut prolog = Vec::new();
        let mut epilog = Vec::new();
        let mut stack: Vec<Element> = Vec::new();
        let mut root: Option<Element> = None;
        scan(text, |piece| {
            let misc_target = if root.is_some() {
                &mut epilog
            } else {
                &mut prolog
            };
            match piece {
                Piece::Decl(raw) => {
                    let raw = raw.trim().trim_start_matches("xml").trim();
                    misc_target.push(Misc::Decl(raw.to_string()));
                }
                Piece::Doctype(raw) => misc_target.push(Misc::Doctype(raw.trim().to_string())),
                Piece::Pi(raw) => {
                    // processing instructions inside elements are not kept
                    if stack.is_empty() {
                        misc_target.push(Misc::Pi(raw.to_string()));
                    }
                }
                Piece::Comment(raw) => match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Comment(raw.to_string())),
                    None => misc_target.push(Misc::Comment(raw.to_string())),
                },
                Piece::Space(raw) => {
                    if raw.matches('\n').count() >= 2 {
                        match stack.last_mut() {
                            Some(parent) => parent.children.push(Node::Blank),
                            None => misc_target.push(Misc::Blank),
                        }
                    }
                }
                Piece::Text(t) => {
                    if let Some(parent) = stack.last_mut() {
                        parent.children.push(Node::Text(t.into_owned()));
                    }
                }
                Piece::CData(c) => {
                    if let Some(parent) = stack.last_mut() {
                        parent.children.push(Node::CData(c.to_string()));
                    }
                }
                Piece::Start { name, attrs, empty } => {
                    let el = Element {
                        name: name.to_string(),
                        attrs: attrs
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                        children: Vec::new(),
                    };
                    if !empty {
                        stack.push(el);
                    } else {
                        match stack.last_mut() {
                            Some(parent) => parent.children.push(Node::Element(el)),
                            None => root = Some(el),
                        }
                    }
                }
                Piece::End => {
                    if let Some(el) = stack.pop() {
                        match stack.last_mut() {
                            Some(parent) => parent.children.push(Node::Element(el)),
                            None => root = Some(el),
                        }
                    }
                }
            }
        })?;
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

    /// Attribute errors are the ones quick-xml's own checks give.
    #[test]
    fn attribute_errors_are_quick_xmls() {
        let tags = [
            "a x=\"1\" x=\"2\"",
            "a  b=\"1\" c=\"2\" b=\"3\"",
            "a x=\"1\" y=\"&nope;\"",
            "a x=\"&#xZZ;\"",
            "a x=\"a&amp\"",
            "a x=1",
        ];
        for tag in tags {
            let mut expected = None;
            for a in Attributes::new(tag, 1) {
                let e = match a {
                    Err(e) => e.to_string(),
                    Ok(a) => match a.unescape_value() {
                        Err(e) => e.to_string(),
                        Ok(_) => continue,
                    },
                };
                expected = Some(format!("syntax error: line 1: {e}"));
                break;
            }
            let got = scan(&format!("<{tag}/>"), |_| {})
                .err()
                .map(|e| e.to_string());
            assert!(expected.is_some(), "{tag}");
            assert_eq!(got, expected, "{tag}");
        }
        let mut seen = Vec::new();
        scan("<a x=\"&lt;1&gt;\" y='2'/>", |p| {
            if let Piece::Start { attrs, .. } = p {
                seen = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            }
        })
        .unwrap();
        assert_eq!(seen, ["x=<1>", "y=2"]);
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
