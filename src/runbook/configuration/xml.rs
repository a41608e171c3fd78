//! Low-level walk over an XML document that reports every tag with the byte offsets of its
//! name and attributes, so that callers can splice the original bytes.
//!
//! quick-xml (slice reader) finds the markup; attributes are scanned here because
//! quick-xml does not expose their positions. Checks done here: encoding (UTF-8 only),
//! characters XML allows (no control characters but tab, LF and CR; no U+FFFE, U+FFFF), one
//! root element with nothing but whitespace, comments, processing instructions and a bare
//! DOCTYPE around it (the XML declaration only at the very start), element and attribute
//! names that are XML names, end-tag names matching start tags, unclosed elements at end of
//! file, attribute syntax (`name = "value"`, quoting, separation, duplicates, `<` in values)
//! and entities in attribute values. The rewrite splices names and attributes, so an input
//! these checks let through would let it write a file that no longer parses (the
//! `xml_config` fuzz target found two: FUZZING.md).

use super::error::{XmlError, XmlErrorKind};
use quick_xml::events::Event;
use quick_xml::Reader;
use std::borrow::Cow;
use std::path::Path;

const UTF8_BOM: &[u8] = &[0xEF, 0xBB, 0xBF];

/// One attribute of a tag, with absolute byte offsets into the file.
#[derive(Debug, Clone)]
pub(crate) struct Attr<'a> {
    /// Start of the whitespace that precedes the attribute.
    pub ws_start: usize,
    /// Start of the attribute name.
    pub name_start: usize,
    /// Qualified name as written (`prefix:local` or `local`).
    pub name: &'a str,
    /// First byte of the value (after the opening quote).
    pub value_start: usize,
    /// One past the last byte of the value (the closing quote's offset).
    pub value_end: usize,
    /// `b'"'` or `b'\''`.
    pub quote: u8,
    /// Unescaped value.
    pub value: Cow<'a, str>,
}

impl Attr<'_> {
    /// Name without namespace prefix.
    pub fn local_name(&self) -> &str {
        local_name(self.name)
    }
}

/// A start tag (`<a ...>`) or an empty-element tag (`<a .../>`).
#[derive(Debug, Clone)]
pub(crate) struct Tag<'a> {
    /// Offset of the element name (just after `<`).
    pub name_start: usize,
    /// Qualified element name as written.
    pub name: &'a str,
    /// Attributes in document order.
    pub attrs: Vec<Attr<'a>>,
}

impl Tag<'_> {
    /// Name without namespace prefix.
    pub fn local_name(&self) -> &str {
        local_name(self.name)
    }
}

/// What the walk reports.
#[derive(Debug, Clone)]
pub(crate) enum Node<'a> {
    /// A start tag or an empty-element tag.
    Tag(Tag<'a>),
    /// An end tag: offset of the name (just after `</`) and the qualified name.
    End { name_start: usize, name: &'a str },
}

/// Strips a namespace prefix.
pub(crate) fn local_name(qname: &str) -> &str {
    qname.rsplit(':').next().unwrap_or(qname)
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Walks `bytes` (a whole file), calling `visit` for every tag in document order.
pub(crate) fn walk<'a>(
    file: &Path,
    bytes: &'a [u8],
    mut visit: impl FnMut(Node<'a>) -> Result<(), XmlError>,
) -> Result<(), XmlError> {
    let err = |offset: usize, kind: XmlErrorKind, msg: String| {
        XmlError::at(file, bytes, offset, kind, msg)
    };
    check_encoding(file, bytes)?;
    let body_start = if bytes.starts_with(UTF8_BOM) { 3 } else { 0 };
    let body = &bytes[body_start..];
    let base = bytes.as_ptr() as usize;
    let mut reader = Reader::from_reader(body);
    {
        let config = reader.config_mut();
        // End tags are checked below, with our own positions and messages.
        config.check_end_names = false;
        config.allow_unmatched_ends = true;
        config.expand_empty_elements = false;
        config.trim_text(false);
    }
    // Re-borrows a slice returned by the parser as a `&'a str` of the input.
    let reborrow = |s: &str| -> Result<(usize, &'a str), XmlError> {
        let p = s.as_ptr() as usize;
        if p >= base && p + s.len() <= base + bytes.len() {
            let off = p - base;
            let text = std::str::from_utf8(&bytes[off..off + s.len()])
                .map_err(|e| err(off, XmlErrorKind::UnsupportedEncoding, e.to_string()))?;
            Ok((off, text))
        } else {
            Err(err(
                0,
                XmlErrorKind::Malformed,
                "internal error: parser returned data outside the input".into(),
            ))
        }
    };
    // Open elements: (qualified name, offset of its name).
    let mut open: Vec<(&'a str, usize)> = Vec::new();
    let mut root_seen = false;
    let outside = |offset: usize| {
        err(
            offset,
            XmlErrorKind::Malformed,
            "text outside the root element".into(),
        )
    };
    loop {
        let event_start = body_start + reader.buffer_position() as usize;
        let event = match reader.read_event() {
            Ok(ev) => ev,
            Err(e) => {
                let pos = body_start + reader.error_position() as usize;
                return Err(err(pos, XmlErrorKind::Malformed, e.to_string()));
            }
        };
        let (start, is_start) = match event {
            // Configuration files have no DTD; one could declare entities (external ones, or
            // ones that expand without bound). A DTD (internal subset, or SYSTEM / PUBLIC) is
            // refused, never read; a bare `<!DOCTYPE Name>` declares nothing and passes.
            Event::DocType(doctype) => {
                let (_, decl) = reborrow(&doctype)?;
                let external = decl
                    .split_ascii_whitespace()
                    .any(|w| w == "SYSTEM" || w == "PUBLIC");
                if root_seen {
                    return Err(err(
                        event_start,
                        XmlErrorKind::Malformed,
                        "a DOCTYPE is allowed only before the root element".into(),
                    ));
                }
                if decl.contains('[') || external {
                    return Err(err(
                        event_start,
                        XmlErrorKind::Malformed,
                        "a DTD (<!DOCTYPE ... [...]> or SYSTEM/PUBLIC) is refused: Usercube configuration files have none, and a DTD can declare entities"
                            .into(),
                    ));
                }
                continue;
            }
            Event::Decl(_) if event_start != body_start => {
                return Err(err(
                    event_start,
                    XmlErrorKind::Malformed,
                    "an XML declaration is allowed only at the very start of the file".into(),
                ));
            }
            // Character data outside the root element: whitespace only.
            Event::Text(text) if open.is_empty() => {
                if let Some(i) = text.bytes().position(|b| !is_ws(b)) {
                    return Err(outside(event_start + i));
                }
                continue;
            }
            Event::CData(_) | Event::GeneralRef(_) if open.is_empty() => {
                return Err(outside(event_start));
            }
            Event::Start(start) => (start, true),
            Event::Empty(start) => (start, false),
            Event::End(end) => {
                let (name_start, name) = reborrow(&end)?;
                match open.pop() {
                    Some((expected, _)) if expected == name => {}
                    Some((expected, _)) => {
                        return Err(err(
                            name_start - 2,
                            XmlErrorKind::Malformed,
                            format!("end tag </{name}> does not match start tag <{expected}>"),
                        ))
                    }
                    None => {
                        return Err(err(
                            name_start - 2,
                            XmlErrorKind::Malformed,
                            format!("end tag </{name}> without a start tag"),
                        ))
                    }
                }
                visit(Node::End { name_start, name })?;
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let (name_start, content) = reborrow(&start)?;
        let tag = scan_tag(file, bytes, content, name_start)?;
        if open.is_empty() {
            if root_seen {
                return Err(err(
                    name_start - 1,
                    XmlErrorKind::Malformed,
                    format!("a second root element <{}>", tag.name),
                ));
            }
            root_seen = true;
        }
        if is_start {
            open.push((tag.name, name_start));
        }
        visit(Node::Tag(tag))?;
    }
    if let Some((name, name_start)) = open.pop() {
        return Err(err(
            name_start - 1,
            XmlErrorKind::Malformed,
            format!("element <{name}> is not closed"),
        ));
    }
    if !root_seen {
        return Err(err(
            bytes.len(),
            XmlErrorKind::Malformed,
            "no root element".into(),
        ));
    }
    Ok(())
}

/// Whether `c` may start an XML name (XML 1.0 fifth edition, production 4).
fn is_name_start_char(c: char) -> bool {
    matches!(c,
        ':' | 'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

/// Whether `s` is an XML name (production 5): element and attribute names. Quotes, `=`, `<`,
/// `>`, `/` and the like are not name characters, so a name never hides markup.
fn is_xml_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(is_name_start_char)
        && chars.all(|c| {
            is_name_start_char(c)
                || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
        })
}

/// The first character XML does not allow (production 2: no control character but tab, LF
/// and CR, no U+FFFE or U+FFFF; UTF-8 cannot hold surrogates) and its offset.
fn first_forbidden_char(text: &str) -> Option<(usize, char)> {
    text.char_indices().find(|&(_, c)| {
        matches!(c, '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')
    })
}

/// Rejects anything that is not UTF-8: UTF-16/UTF-32 byte-order marks or zero bytes typical
/// of UTF-16 without BOM, invalid UTF-8 sequences, and an `encoding=` declaration other
/// than utf-8 / us-ascii.
fn check_encoding(file: &Path, bytes: &[u8]) -> Result<(), XmlError> {
    let unsupported = |offset: usize, msg: String| {
        XmlError::at(file, bytes, offset, XmlErrorKind::UnsupportedEncoding, msg)
    };
    let boms: [(&[u8], &str); 4] = [
        (&[0x00, 0x00, 0xFE, 0xFF], "UTF-32 (big-endian)"),
        (&[0xFF, 0xFE, 0x00, 0x00], "UTF-32 (little-endian)"),
        (&[0xFE, 0xFF], "UTF-16 (big-endian)"),
        (&[0xFF, 0xFE], "UTF-16 (little-endian)"),
    ];
    for (bom, name) in boms {
        if bytes.starts_with(bom) {
            return Err(unsupported(
                0,
                format!("unsupported encoding {name} (byte-order mark); only UTF-8 is supported"),
            ));
        }
    }
    if bytes.starts_with(&[0x00, b'<']) || bytes.starts_with(&[b'<', 0x00]) {
        return Err(unsupported(
            0,
            "unsupported encoding UTF-16 (no byte-order mark); only UTF-8 is supported".into(),
        ));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let at = e.valid_up_to();
            return Err(unsupported(
                at,
                format!(
                    "invalid UTF-8 byte 0x{:02X}; only UTF-8 is supported",
                    bytes[at]
                ),
            ));
        }
    };
    if let Some((at, c)) = first_forbidden_char(text) {
        return Err(XmlError::at(
            file,
            bytes,
            at,
            XmlErrorKind::Malformed,
            format!("character U+{:04X} is not allowed in XML", u32::from(c)),
        ));
    }
    // XML declaration: `<?xml ... encoding="..." ...?>` at the very start (after the BOM).
    let body_start = if bytes.starts_with(UTF8_BOM) { 3 } else { 0 };
    let body = &bytes[body_start..];
    if body.starts_with(b"<?xml") && body.get(5).is_some_and(|&b| is_ws(b)) {
        if let Some(end) = body.windows(2).position(|w| w == b"?>") {
            let content = std::str::from_utf8(&body[2..end]).unwrap_or("");
            let tag = scan_tag(file, bytes, content, body_start + 2)?;
            if let Some(enc) = tag.attrs.iter().find(|a| a.name == "encoding") {
                let name = enc.value.trim().to_ascii_lowercase();
                if !matches!(name.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") {
                    return Err(unsupported(
                        enc.value_start,
                        format!(
                            "unsupported encoding \"{}\"; only UTF-8 (or US-ASCII) is supported",
                            enc.value
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Scans the content of a tag (`name attr="v" ...`, between `<` and `>` / `/>`), which
/// starts at absolute offset `start` in `bytes`.
fn scan_tag<'a>(
    file: &Path,
    bytes: &[u8],
    content: &'a str,
    start: usize,
) -> Result<Tag<'a>, XmlError> {
    let err = |rel: usize, msg: String| {
        XmlError::at(file, bytes, start + rel, XmlErrorKind::Malformed, msg)
    };
    let c = content.as_bytes();
    let mut i = c.iter().position(|&b| is_ws(b)).unwrap_or(c.len());
    let name = &content[..i];
    // `< a="1"/>` has no element name: removing the attribute would leave `</>` (found by
    // the xml_config fuzz target).
    if name.is_empty() {
        return Err(err(0, "element name missing after '<'".into()));
    }
    // `<Dt=" a:FilesAreNotEncrypted=""/>`: removing the attribute left `<Dt="/>` (the
    // xml_config fuzz target).
    if !is_xml_name(name) {
        return Err(err(0, format!("element name {name} is not an XML name")));
    }
    let mut attrs: Vec<Attr<'a>> = Vec::new();
    loop {
        let ws_start = i;
        while i < c.len() && is_ws(c[i]) {
            i += 1;
        }
        if i == c.len() {
            break;
        }
        if i == ws_start {
            return Err(err(i, "expected whitespace between attributes".into()));
        }
        let name_start = i;
        while i < c.len() && !is_ws(c[i]) && c[i] != b'=' {
            i += 1;
        }
        let attr_name = &content[name_start..i];
        if attr_name.is_empty() || attr_name.starts_with(['"', '\'']) {
            return Err(err(name_start, "expected an attribute name".into()));
        }
        if !is_xml_name(attr_name) {
            return Err(err(
                name_start,
                format!("attribute name {attr_name} is not an XML name"),
            ));
        }
        while i < c.len() && is_ws(c[i]) {
            i += 1;
        }
        if c.get(i) != Some(&b'=') {
            return Err(err(
                name_start,
                format!("attribute {attr_name} has no value (expected '=')"),
            ));
        }
        i += 1;
        while i < c.len() && is_ws(c[i]) {
            i += 1;
        }
        let quote = match c.get(i) {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => {
                return Err(err(
                    i,
                    format!("value of attribute {attr_name} must be quoted"),
                ))
            }
        };
        let value_start = i + 1;
        let Some(len) = c[value_start..].iter().position(|&b| b == quote) else {
            return Err(err(
                i,
                format!("value of attribute {attr_name} is not terminated"),
            ));
        };
        let value_end = value_start + len;
        let raw = &content[value_start..value_end];
        if let Some(lt) = raw.find('<') {
            return Err(err(
                value_start + lt,
                format!("'<' is not allowed in the value of attribute {attr_name}"),
            ));
        }
        let value = quick_xml::escape::unescape(raw).map_err(|e| {
            err(
                value_start,
                format!("bad entity in the value of attribute {attr_name}: {e}"),
            )
        })?;
        if attrs.iter().any(|a| a.name == attr_name) {
            return Err(err(name_start, format!("duplicate attribute {attr_name}")));
        }
        attrs.push(Attr {
            ws_start: start + ws_start,
            name_start: start + name_start,
            name: attr_name,
            value_start: start + value_start,
            value_end: start + value_end,
            quote,
            value,
        });
        i = value_end + 1;
    }
    Ok(Tag {
        name_start: start,
        name,
        attrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(xml: &str) -> Vec<(String, Vec<(String, String)>)> {
        let mut out = Vec::new();
        walk(Path::new("t.xml"), xml.as_bytes(), |n| {
            match n {
                Node::Tag(t) => out.push((
                    t.name.to_string(),
                    t.attrs
                        .iter()
                        .map(|a| (a.name.to_string(), a.value.to_string()))
                        .collect(),
                )),
                Node::End { name, .. } => out.push((format!("/{name}"), vec![])),
            }
            Ok(())
        })
        .unwrap();
        out
    }

    fn error(xml: &[u8]) -> (usize, usize, XmlErrorKind, String) {
        let e = walk(Path::new("t.xml"), xml, |_| Ok(())).unwrap_err();
        (e.line, e.column, e.kind, e.message)
    }

    #[test]
    fn reports_tags_and_unescaped_attributes() {
        let got = tags("<a x = 'p&amp;q' y=\"1\"><b/><c z='&lt;'></c></a>");
        let s = |v: &str| v.to_string();
        assert_eq!(
            got,
            vec![
                (s("a"), vec![(s("x"), s("p&q")), (s("y"), s("1"))]),
                (s("b"), vec![]),
                (s("c"), vec![(s("z"), s("<"))]),
                (s("/c"), vec![]),
                (s("/a"), vec![]),
            ]
        );
    }

    #[test]
    fn attribute_offsets_point_into_the_file() {
        let xml = "\u{feff}<a  k=\"v\"/>";
        let mut seen = Vec::new();
        walk(Path::new("t.xml"), xml.as_bytes(), |n| {
            if let Node::Tag(t) = n {
                let a = &t.attrs[0];
                seen.push((
                    t.name_start,
                    a.ws_start,
                    a.name_start,
                    a.value_start,
                    a.value_end,
                ));
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(4, 5, 7, 10, 11)]);
    }

    #[test]
    fn attribute_syntax_errors() {
        assert_eq!(
            error(b"<a>\n  <b x=1/></a>"),
            (
                2,
                8,
                XmlErrorKind::Malformed,
                "value of attribute x must be quoted".into()
            )
        );
        assert_eq!(
            error(b"<a x='1'y='2'/>"),
            (
                1,
                9,
                XmlErrorKind::Malformed,
                "expected whitespace between attributes".into()
            )
        );
        assert_eq!(
            error(b"<a x='1' x='2'/>"),
            (
                1,
                10,
                XmlErrorKind::Malformed,
                "duplicate attribute x".into()
            )
        );
        assert_eq!(
            error(b"<a x/>"),
            (
                1,
                4,
                XmlErrorKind::Malformed,
                "attribute x has no value (expected '=')".into()
            )
        );
        assert_eq!(error(b"<a x='&bogus;'/>").0, 1);
        assert_eq!(error(b"<a x='&bogus;'/>").1, 7);
    }

    #[test]
    fn unclosed_and_unmatched_elements() {
        assert_eq!(
            error(b"<a>\n<b>\n</a>"),
            (
                3,
                1,
                XmlErrorKind::Malformed,
                "end tag </a> does not match start tag <b>".into()
            )
        );
        assert_eq!(
            error(b"<a>\n <b>"),
            (
                2,
                2,
                XmlErrorKind::Malformed,
                "element <b> is not closed".into()
            )
        );
        assert_eq!(
            error(b"<a/></b>"),
            (
                1,
                5,
                XmlErrorKind::Malformed,
                "end tag </b> without a start tag".into()
            )
        );
    }

    #[test]
    fn encodings() {
        assert_eq!(
            error(&[0xFF, 0xFE, b'<', 0]).2,
            XmlErrorKind::UnsupportedEncoding
        );
        assert_eq!(
            error(&[0xFE, 0xFF, 0, b'<']).2,
            XmlErrorKind::UnsupportedEncoding
        );
        assert_eq!(
            error(b"<a>\xE9</a>"),
            (
                1,
                4,
                XmlErrorKind::UnsupportedEncoding,
                "invalid UTF-8 byte 0xE9; only UTF-8 is supported".into()
            )
        );
        assert_eq!(
            error(b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<a/>"),
            (
                1,
                31,
                XmlErrorKind::UnsupportedEncoding,
                "unsupported encoding \"ISO-8859-1\"; only UTF-8 (or US-ASCII) is supported".into()
            )
        );
        assert_eq!(
            tags("<?xml version='1.0' encoding='US-ASCII'?><a/>"),
            vec![("a".to_string(), vec![])]
        );
    }
}
