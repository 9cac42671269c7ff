//! A compose file as a positioned YAML tree, and YAML output.
//!
//! The tree is built from saphyr-parser's events (YAML 1.2, each event with its line and
//! column) rather than through serde, for three reasons: every node keeps where it was written,
//! so a bad port or an unknown key is reported at its line; scalars keep the text as written
//! (`22:22` stays "22:22", `0755` stays "0755", which YAML 1.1 loaders and untyped values
//! turn into numbers); and anchors, aliases and `<<` merge keys are resolved here, where an
//! alias bomb can be bounded.

use std::collections::HashMap;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use super::error::{ComposeError, Location};

/// The most nodes one file may expand to through aliases (a "billion laughs" file would
/// otherwise exhaust memory).
const MAX_NODES: usize = 1_000_000;
/// The deepest nesting accepted (the tree is walked recursively).
const MAX_DEPTH: usize = 200;

/// The longest key written as `key:` (YAML allows 1024 characters for an implicit key).
const MAX_SIMPLE_KEY: usize = 1000;

/// How a scalar was written: only a plain one can be `null`, a number or a boolean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// Unquoted.
    Plain,
    /// Quoted or a block scalar, or the result of interpolation: always a string.
    Quoted,
}

/// A compose-go tag on a value in an override file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    /// `!reset`: the merged result drops the key.
    Reset,
    /// `!override`: the value replaces the base's instead of merging with it.
    Override,
}

/// A YAML value.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// A scalar's text.
    Scalar(String, Style),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order, keys unique.
    Map(Vec<(Key, Node)>),
}

/// A mapping key and where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    /// The key's text.
    pub name: String,
    /// Where it is.
    pub location: Location,
}

/// A value and where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// The value.
    pub value: Value,
    /// Where it is.
    pub location: Location,
    /// A `!reset` / `!override` tag.
    pub tag: Option<Tag>,
}

impl Node {
    /// A node made by the loader (a merge rule's conversion) at `location`.
    pub(crate) fn new(value: Value, location: Location) -> Node {
        Node {
            value,
            location,
            tag: None,
        }
    }

    /// A string scalar made by the loader.
    pub(crate) fn string(text: impl Into<String>, location: Location) -> Node {
        Node::new(Value::Scalar(text.into(), Style::Quoted), location)
    }

    /// The scalar's text, if the node is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(text, _) => Some(text),
            _ => None,
        }
    }

    /// The value of `key`, if the node is a mapping that has it.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value as JSON, scalars typed as YAML 1.2's core schema reads them (for keys kiln
    /// keeps without modelling, and extensions).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Scalar(text, Style::Quoted) => serde_json::Value::String(text.clone()),
            Value::Scalar(text, Style::Plain) => plain_to_json(text),
            Value::Seq(items) => items.iter().map(Node::to_json).collect(),
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A plain scalar as YAML 1.2's core schema types it.
fn plain_to_json(text: &str) -> serde_json::Value {
    match text {
        "true" | "True" | "TRUE" => return serde_json::Value::Bool(true),
        "false" | "False" | "FALSE" => return serde_json::Value::Bool(false),
        _ => {}
    }
    if let Ok(n) = text.parse::<i64>() {
        return n.into();
    }
    if text.contains(['.', 'e', 'E']) && !text.starts_with('.') {
        if let Some(n) = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            return serde_json::Value::Number(n);
        }
    }
    serde_json::Value::String(text.to_string())
}

/// Whether a plain scalar's text means null.
fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// Parses every document of `source` (named `file` in locations). An empty file is one null
/// document.
pub(crate) fn parse(file: &Arc<str>, source: &str) -> Result<Vec<Node>, ComposeError> {
    let mut builder = Builder {
        file: file.clone(),
        anchors: HashMap::new(),
        stack: Vec::new(),
        documents: Vec::new(),
        document_start: 0,
        nodes: 0,
    };
    for event in Parser::new_from_str(source) {
        let (event, span) = event.map_err(|e| ComposeError::Yaml {
            location: Location {
                file: file.clone(),
                line: e.marker().line(),
                column: e.marker().col() + 1,
            },
            message: e.info().to_string(),
        })?;
        builder.event(event, span)?;
    }
    Ok(builder.documents)
}

/// A collection being built.
enum Open {
    Seq(Node, usize),
    /// The mapping, its anchor, the key waiting for its value, and the `<<` merges seen.
    Map(Node, usize, Option<Key>, Vec<Node>),
}

struct Builder {
    file: Arc<str>,
    anchors: HashMap<usize, Node>,
    stack: Vec<Open>,
    documents: Vec<Node>,
    /// How many documents there were when the current one started.
    document_start: usize,
    nodes: usize,
}

impl Builder {
    fn location(&self, span: Span) -> Location {
        Location {
            file: self.file.clone(),
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }

    fn error(&self, location: Location, message: impl Into<String>) -> ComposeError {
        ComposeError::Yaml {
            location,
            message: message.into(),
        }
    }

    fn count(&mut self, n: usize, location: &Location) -> Result<(), ComposeError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(self.error(
                location.clone(),
                format!("document expands to more than {MAX_NODES} nodes (aliases)"),
            ));
        }
        Ok(())
    }

    fn tag(tag: Option<&saphyr_parser::Tag>) -> Option<Tag> {
        let tag = tag?;
        match (tag.handle.as_str(), tag.suffix.as_str()) {
            ("!", "reset") => Some(Tag::Reset),
            ("!", "override") => Some(Tag::Override),
            _ => None,
        }
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), ComposeError> {
        let location = self.location(span);
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let tag_kind = Self::tag(tag.as_deref());
                // `!!str 123` is a string: treat any explicit tag other than ours as quoting,
                // except null's.
                let tagged_str = tag.as_deref().is_some_and(|t| t.suffix == "str");
                let value = match style {
                    ScalarStyle::Plain if is_null(&text) && !tagged_str => Value::Null,
                    ScalarStyle::Plain if !tagged_str => {
                        Value::Scalar(text.into_owned(), Style::Plain)
                    }
                    _ => Value::Scalar(text.into_owned(), Style::Quoted),
                };
                let node = Node {
                    value,
                    location,
                    tag: tag_kind,
                };
                self.count(1, &node.location)?;
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push(node)
            }
            Event::Alias(anchor) => {
                let Some(node) = self.anchors.get(&anchor).cloned() else {
                    return Err(self.error(location, "unknown anchor"));
                };
                self.count(size(&node), &location)?;
                // an alias of a deep node placed deep must not nest past the bound either
                // (the tree is walked, and dropped, recursively)
                if self.stack.len() + depth(&node) > MAX_DEPTH {
                    return Err(self.error(
                        location,
                        format!("nesting deeper than {MAX_DEPTH} levels (through aliases)"),
                    ));
                }
                self.push(node)
            }
            Event::SequenceStart(anchor, tag) => {
                self.open_check(&location)?;
                let node = Node {
                    value: Value::Seq(Vec::new()),
                    location,
                    tag: Self::tag(tag.as_deref()),
                };
                self.stack.push(Open::Seq(node, anchor));
                Ok(())
            }
            Event::MappingStart(anchor, tag) => {
                self.open_check(&location)?;
                let node = Node {
                    value: Value::Map(Vec::new()),
                    location,
                    tag: Self::tag(tag.as_deref()),
                };
                self.stack.push(Open::Map(node, anchor, None, Vec::new()));
                Ok(())
            }
            Event::SequenceEnd => match self.stack.pop() {
                Some(Open::Seq(node, anchor)) => self.close(node, anchor),
                _ => Err(self.error(location, "unbalanced sequence end")),
            },
            Event::MappingEnd => match self.stack.pop() {
                Some(Open::Map(mut node, anchor, _, merges)) => {
                    apply_merges(&mut node, merges)?;
                    self.close(node, anchor)
                }
                _ => Err(self.error(location, "unbalanced mapping end")),
            },
            Event::DocumentEnd => {
                // An empty document (no node at all) is null.
                if self.documents.len() == self.document_start {
                    self.documents.push(Node::new(Value::Null, location));
                }
                Ok(())
            }
            Event::DocumentStart(_) => {
                self.document_start = self.documents.len();
                Ok(())
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => Ok(()),
        }
    }

    fn open_check(&self, location: &Location) -> Result<(), ComposeError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.error(
                location.clone(),
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn close(&mut self, node: Node, anchor: usize) -> Result<(), ComposeError> {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        self.push(node)
    }

    /// Adds a finished node to its parent, or makes it a document.
    fn push(&mut self, node: Node) -> Result<(), ComposeError> {
        match self.stack.last_mut() {
            None => {
                self.documents.push(node);
                Ok(())
            }
            Some(Open::Seq(parent, _)) => {
                if let Value::Seq(items) = &mut parent.value {
                    items.push(node);
                }
                Ok(())
            }
            Some(Open::Map(parent, _, pending, merges)) => match pending.take() {
                None => {
                    let name = match &node.value {
                        Value::Scalar(text, _) => text.clone(),
                        Value::Null => String::new(),
                        _ => {
                            let location = node.location.clone();
                            return Err(self.error(location, "mapping keys must be strings"));
                        }
                    };
                    *pending = Some(Key {
                        name,
                        location: node.location,
                    });
                    Ok(())
                }
                Some(key) => {
                    if key.name == "<<" {
                        merges.push(node);
                        return Ok(());
                    }
                    let Value::Map(entries) = &mut parent.value else {
                        return Ok(());
                    };
                    if entries.iter().any(|(k, _)| k.name == key.name) {
                        let location = key.location.clone();
                        return Err(self.error(
                            location,
                            format!("mapping key {:?} already defined", key.name),
                        ));
                    }
                    entries.push((key, node));
                    Ok(())
                }
            },
        }
    }
}

/// `<<: *base` / `<<: [*a, *b]`: keys of the merged mappings that the mapping does not set
/// itself (the first merged mapping wins among them).
fn apply_merges(node: &mut Node, merges: Vec<Node>) -> Result<(), ComposeError> {
    let Value::Map(entries) = &mut node.value else {
        return Ok(());
    };
    let mut sources = Vec::new();
    for merge in merges {
        match merge.value {
            Value::Map(_) => sources.push(merge),
            Value::Seq(items) => {
                for item in items {
                    if !matches!(item.value, Value::Map(_)) {
                        return Err(ComposeError::Yaml {
                            location: item.location,
                            message: "map merge requires a mapping or a list of mappings".into(),
                        });
                    }
                    sources.push(item);
                }
            }
            _ => {
                return Err(ComposeError::Yaml {
                    location: merge.location,
                    message: "map merge requires a mapping or a list of mappings".into(),
                })
            }
        }
    }
    for source in sources {
        if let Value::Map(merged) = source.value {
            for (key, value) in merged {
                if !entries.iter().any(|(k, _)| k.name == key.name) {
                    entries.push((key, value));
                }
            }
        }
    }
    Ok(())
}

/// How deeply a value nests (a scalar is 1).
fn depth(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Map(entries) => 1 + entries.iter().map(|(_, v)| depth(v)).max().unwrap_or(0),
        _ => 1,
    }
}

/// How many nodes a value holds.
fn size(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => 1 + items.iter().map(size).sum::<usize>(),
        Value::Map(entries) => 1 + entries.iter().map(|(_, v)| 1 + size(v)).sum::<usize>(),
        _ => 1,
    }
}

/// Writes a JSON value as block-style YAML (the shape `docker compose config` prints): maps
/// and sequences in block style, empty ones in flow style, strings quoted whenever a YAML 1.1
/// or 1.2 reader could take them for something else.
pub fn to_yaml(value: &serde_json::Value) -> String {
    let mut out = String::new();
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        serde_json::Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_map(out: &mut String, map: &serde_json::Map<String, serde_json::Value>, level: usize) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            indent(out, level);
        }
        let key = quote(key);
        if key.chars().count() > MAX_SIMPLE_KEY {
            // an implicit key is at most 1024 characters: write a long one explicitly
            out.push_str("? ");
            out.push_str(&key);
            out.push('\n');
            indent(out, level);
        } else {
            out.push_str(&key);
        }
        out.push(':');
        write_value(out, value, level);
    }
}

fn write_seq(out: &mut String, items: &[serde_json::Value], level: usize) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            indent(out, level);
        }
        out.push('-');
        match item {
            serde_json::Value::Object(map) if !map.is_empty() => {
                out.push(' ');
                write_map(out, map, level + 2);
            }
            serde_json::Value::Array(inner) if !inner.is_empty() => {
                out.push(' ');
                write_seq(out, inner, level + 2);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

/// The value after `key:` (the line's rest, then nested lines).
fn write_value(out: &mut String, value: &serde_json::Value, level: usize) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            indent(out, level + 2);
            write_map(out, map, level + 2);
        }
        serde_json::Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            indent(out, level + 2);
            write_seq(out, items, level + 2);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn scalar(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "null".into(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => quote(s),
        serde_json::Value::Object(_) => "{}".into(),
        serde_json::Value::Array(_) => "[]".into(),
    }
}

/// `text` plain when no YAML reader could read it as anything but this string, else
/// double-quoted (a JSON string is a valid YAML double-quoted scalar).
fn quote(text: &str) -> String {
    if needs_quotes(text) {
        serde_json::Value::String(text.to_string()).to_string()
    } else {
        text.to_string()
    }
}

fn needs_quotes(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return true;
    };
    let lower = text.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "~"
    ) {
        return true;
    }
    // numbers in any base, YAML 1.1 sexagesimals (`22:22`), dates, `.inf`
    if (first.is_ascii_digit() || matches!(first, '-' | '+' | '.'))
        && text
            .chars()
            .all(|c| c.is_ascii_hexdigit() || "+-.:_xXoO".contains(c))
    {
        return true;
    }
    if matches!(lower.as_str(), ".inf" | "-.inf" | "+.inf" | ".nan") {
        return true;
    }
    if text == "-" || text.starts_with("- ") || text.starts_with("? ") {
        return true;
    }
    if "?:,[]{}#&*!|>'\"%@`".contains(first) {
        return true;
    }
    if text.starts_with(' ')
        || text.ends_with(' ')
        || text.ends_with(':')
        || text.contains(": ")
        || text.contains(" #")
        || text == "<<"
    {
        return true;
    }
    text.chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(source: &str) -> Node {
        let file: Arc<str> = Arc::from("t.yaml");
        parse(&file, source)
            .expect("parses")
            .into_iter()
            .next()
            .expect("a document")
    }

    #[test]
    fn scalars_keep_their_text() {
        let node = doc("ports: [22:22, 8080:80]\nenv: {FLAG: yes, OCTAL: 0755}\nq: '1'\nn: ~\n");
        let ports = node.get("ports").expect("ports");
        let Value::Seq(items) = &ports.value else {
            panic!("not a seq")
        };
        assert_eq!(items[0].as_str(), Some("22:22"));
        let env = node.get("env").expect("env");
        assert_eq!(env.get("FLAG").and_then(Node::as_str), Some("yes"));
        assert_eq!(env.get("OCTAL").and_then(Node::as_str), Some("0755"));
        assert!(matches!(
            node.get("q").map(|n| &n.value),
            Some(Value::Scalar(_, Style::Quoted))
        ));
        assert!(matches!(node.get("n").map(|n| &n.value), Some(Value::Null)));
    }

    #[test]
    fn anchors_and_merge_keys() {
        let node = doc(
            "x-base: &base\n  image: busybox\n  tty: true\nweb:\n  <<: *base\n  tty: false\nlist: &l [a, b]\nagain: *l\n",
        );
        let web = node.get("web").expect("web");
        assert_eq!(web.get("image").and_then(Node::as_str), Some("busybox"));
        assert_eq!(web.get("tty").and_then(Node::as_str), Some("false"));
        assert_eq!(web.get("image").map(|n| n.location.line), Some(2));
        let Some(Value::Seq(items)) = node.get("again").map(|n| &n.value) else {
            panic!("alias")
        };
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn syntax_error_has_its_line() {
        let file: Arc<str> = Arc::from("bad.yaml");
        let err = parse(&file, "services:\n  web:\n    image: a: b\n").expect_err("bad");
        let ComposeError::Yaml { location, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(location.line, 3);
        assert!(err.to_string().contains("bad.yaml:3"), "{err}");
    }

    #[test]
    fn duplicate_keys_are_an_error() {
        let file: Arc<str> = Arc::from("d.yaml");
        let err = parse(&file, "a: 1\nb: 2\na: 3\n").expect_err("dup");
        assert!(err.to_string().contains("d.yaml:3:1"), "{err}");
    }

    #[test]
    fn alias_bombs_are_bounded() {
        let mut source = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            source.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let file: Arc<str> = Arc::from("bomb.yaml");
        assert!(parse(&file, &source).is_err());
    }

    #[test]
    fn deep_alias_chains_are_bounded() {
        let mut source = String::new();
        let open = "[".repeat(150);
        let close = "]".repeat(150);
        source.push_str(&format!("a0: &a0 {open}x{close}\n"));
        for i in 1..5 {
            source.push_str(&format!("a{i}: &a{i} {open}*a{}{close}\n", i - 1));
        }
        let file: Arc<str> = Arc::from("deep.yaml");
        let err = parse(&file, &source).expect_err("too deep");
        assert!(err.to_string().contains("deeper"), "{err}");
    }

    #[test]
    fn output_quotes_what_could_be_misread() {
        for text in [
            " lead",
            "trail ",
            "<<",
            "a: b",
            "x #c",
            "tab\there",
            "-",
            "- x",
        ] {
            assert!(needs_quotes(text), "{text:?}");
        }
        let value = serde_json::json!({"a": "22:22", "b": "yes", "c": "plain text", "d": [], "e": {"f": ["x", {"g": 1, "h": null}]}, "i": ""});
        let text = to_yaml(&value);
        assert_eq!(
            text,
            "a: \"22:22\"\nb: \"yes\"\nc: plain text\nd: []\ne:\n  f:\n    - x\n    - g: 1\n      h: null\ni: \"\"\n"
        );
        // a key too long for `key:` is written `? key` and still reads back
        let long = "k".repeat(2000);
        let long_text = to_yaml(&serde_json::json!({"labels": {long.clone(): "v"}}));
        let long_back = doc(&long_text);
        assert_eq!(
            long_back
                .get("labels")
                .and_then(|l| l.get(&long))
                .and_then(Node::as_str),
            Some("v")
        );
        // and it reads back as the same strings
        let back = doc(&text);
        assert_eq!(back.get("a").and_then(Node::as_str), Some("22:22"));
        assert_eq!(back.get("b").and_then(Node::as_str), Some("yes"));
    }
}
