//! XML both ways: answers written by `Doc` (elements and escaped text, in
//! S3's namespace), request documents read by `parse` into the flat events
//! the handlers walk (each element's text by its path, and each element's
//! end), bounded by the body cap the caller read them under.

use quick_xml::events::Event;

use crate::s3::encoding::xml_escape;
use crate::s3::error::{Code, S3Error};

const NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// An XML answer being written.
pub struct Doc {
    out: String,
}

impl Doc {
    /// A document whose root element is `root`, in S3's namespace.
    pub fn new(root: &str) -> Doc {
        Doc {
            out: format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root} xmlns=\"{NAMESPACE}\">"
            ),
        }
    }

    pub fn open(&mut self, tag: &str) -> &mut Doc {
        self.out.push_str(&format!("<{tag}>"));
        self
    }

    pub fn close(&mut self, tag: &str) -> &mut Doc {
        self.out.push_str(&format!("</{tag}>"));
        self
    }

    /// `<tag>text</tag>`, the text escaped.
    pub fn element(&mut self, tag: &str, text: &str) -> &mut Doc {
        self.out
            .push_str(&format!("<{tag}>{}</{tag}>", xml_escape(text)));
        self
    }

    /// The document's bytes, `root` closed.
    pub fn finish(mut self, root: &str) -> Vec<u8> {
        self.close(root);
        self.out.into_bytes()
    }
}

/// What a request document holds, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// The text of the element at `path` (local names joined by `/`, from
    /// the root: `Delete/Object/Key`).
    Text { path: String, text: String },
    /// The element at `path` ends.
    End { path: String },
}

/// The items of the document `bytes`; `MalformedXML` for anything that is
/// not well-formed XML.
pub fn parse(bytes: &[u8]) -> Result<Vec<Item>, S3Error> {
    let malformed = |detail: String| {
        S3Error::new(
            Code::MalformedXML,
            format!("the XML you provided was not well-formed: {detail}"),
        )
    };
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut items = Vec::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|err| malformed(err.to_string()))?;
        match event {
            Event::Start(start) => {
                text.clear();
                path.push(String::from_utf8_lossy(start.local_name().as_ref()).into_owned());
            }
            Event::Empty(empty) => {
                let name = String::from_utf8_lossy(empty.local_name().as_ref()).into_owned();
                let at = joined(&path, Some(&name));
                items.push(Item::Text {
                    path: at.clone(),
                    text: String::new(),
                });
                items.push(Item::End { path: at });
            }
            Event::Text(raw) => {
                let decoded = raw.decode().map_err(|err| malformed(err.to_string()))?;
                let unescaped = quick_xml::escape::unescape(&decoded)
                    .map_err(|err| malformed(err.to_string()))?;
                text.push_str(&unescaped);
            }
            Event::CData(data) => text.push_str(&String::from_utf8_lossy(&data)),
            Event::GeneralRef(reference) => {
                let name = reference
                    .decode()
                    .map_err(|err| malformed(err.to_string()))?;
                let entity = format!("&{name};");
                let resolved = quick_xml::escape::unescape(&entity)
                    .map_err(|err| malformed(err.to_string()))?;
                text.push_str(&resolved);
            }
            Event::End(_) => {
                let at = joined(&path, None);
                if !text.is_empty() {
                    items.push(Item::Text {
                        path: at.clone(),
                        text: std::mem::take(&mut text),
                    });
                }
                items.push(Item::End { path: at });
                path.pop();
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    if !path.is_empty() || items.is_empty() {
        return Err(malformed("the document is empty or unclosed".to_owned()));
    }
    Ok(items)
}

fn joined(path: &[String], last: Option<&str>) -> String {
    let mut parts: Vec<&str> = path.iter().map(String::as_str).collect();
    parts.extend(last);
    parts.join("/")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{Doc, Item, parse};

    #[test]
    fn a_delete_document_reads_as_items() {
        let items = parse(
            br#"<?xml version="1.0"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet><Object><Key>a &amp; b</Key></Object><Object><Key><![CDATA[<c>]]></Key></Object><Empty/></Delete>"#,
        )
        .unwrap();
        let texts: Vec<(&str, &str)> = items
            .iter()
            .filter_map(|item| match item {
                Item::Text { path, text } => Some((path.as_str(), text.as_str())),
                Item::End { .. } => None,
            })
            .collect();
        assert_eq!(
            texts,
            vec![
                ("Delete/Quiet", "true"),
                ("Delete/Object/Key", "a & b"),
                ("Delete/Object/Key", "<c>"),
                ("Delete/Empty", ""),
            ]
        );
        assert!(items.contains(&Item::End {
            path: "Delete/Object".to_owned()
        }));
    }

    #[test]
    fn broken_documents_are_malformed() {
        for bad in [
            &b"<Delete><Object></Delete>"[..],
            b"",
            b"<a>&bogus;</a>",
            b"<a>",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn answers_are_escaped() {
        let mut doc = Doc::new("R");
        doc.open("A").element("K", "x<y").close("A");
        let text = String::from_utf8(doc.finish("R")).unwrap();
        assert!(text.ends_with("<A><K>x&lt;y</K></A></R>"), "{text}");
    }
}
