//! The NATS configuration: a small value tree and an injection-proof writer of it as
//! indented JSON, the form the Go operator wrote and tools read.
//!
//! What the nats-server config lexer (`conf/lex.go`) does, and what the writer does about
//! it (checked against every release in `e2e/nats/versions` in `tests/nats_server_conf.rs`):
//!
//! - Double-quoted *values* understand exactly six escapes: `\"`, `\\`, `\n`, `\r`, `\t`
//!   and `\xHH` (one byte); JSON's `\uXXXX` is a parse error. Every string value is
//!   written double-quoted with `"` and `\` escaped and `\n`/`\r`/`\t` as such (all of it
//!   JSON too); another control character, which has no escape both read, as `\xHH`.
//! - `$NAME` is a variable reference only in an *unquoted* value; inside double quotes
//!   `$` is literal. Only [`Conf::Var`] writes an unquoted `$NAME`, and only the renderer
//!   creates it (`$SERVER_NAME`, `$POD_NAME`, for releases without `--name`).
//! - `include` is a keyword only as an *unquoted* key. Every key is written double-quoted,
//!   so a user key `include` is an ordinary (unknown, hence rejected by the server) key,
//!   never a directive. Only [`Conf::Include`] writes the keyword.
//! - Double-quoted *keys* and include paths have no escapes at all: they end at the next
//!   `"`. Keys with `"`, `\` or control characters, and such include paths, are therefore
//!   refused ([`ConfError`]) instead of being written.
//! - Numbers: the lexer has no exponent syntax, so floats are written in plain decimal
//!   with a `.`; integers are written as such.

use std::fmt::Write as _;

/// A key or include path that cannot be written safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfError {
    /// A map key with `"`, a control character, or empty.
    #[error(
        "key {0:?} at {1} cannot be written into nats.conf: keys may not be empty or contain '\"', '\\' or control characters"
    )]
    UnsafeKey(String, String),
    /// An include path with `"`, a control character, or empty.
    #[error(
        "include path {0:?} cannot be written into nats.conf: it may not be empty or contain '\"' or control characters"
    )]
    UnsafeInclude(String),
}

/// A value of the NATS configuration language.
#[derive(Debug, Clone, PartialEq)]
pub enum Conf {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float, always written with a decimal point.
    Float(f64),
    /// A string, always written double-quoted and escaped.
    Str(String),
    /// An environment/variable reference `$NAME`, written unquoted. `NAME` must be
    /// `[A-Z_][A-Z0-9_]*`; the writer refuses anything else.
    Var(String),
    /// A list.
    List(Vec<Conf>),
    /// A map (a block).
    Map(ConfMap),
    /// An `include "<path>"` directive; only valid as a value in a [`ConfMap`] (its key
    /// is ignored).
    Include(String),
}

impl From<&str> for Conf {
    fn from(s: &str) -> Self {
        Conf::Str(s.to_string())
    }
}
impl From<String> for Conf {
    fn from(s: String) -> Self {
        Conf::Str(s)
    }
}
impl From<bool> for Conf {
    fn from(b: bool) -> Self {
        Conf::Bool(b)
    }
}
impl From<i64> for Conf {
    fn from(i: i64) -> Self {
        Conf::Int(i)
    }
}
impl From<i32> for Conf {
    fn from(i: i32) -> Self {
        Conf::Int(i64::from(i))
    }
}
impl From<ConfMap> for Conf {
    fn from(m: ConfMap) -> Self {
        Conf::Map(m)
    }
}

/// An ordered map: keys keep their insertion order, so the output is deterministic.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfMap {
    entries: Vec<(String, Conf)>,
}

impl ConfMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` (in place when present, at the end otherwise).
    pub fn set(&mut self, key: &str, value: impl Into<Conf>) -> &mut Self {
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
        self
    }

    /// Adds an `include "<path>"` directive at the end.
    pub fn include(&mut self, path: &str) -> &mut Self {
        self.entries
            .push(("include".to_string(), Conf::Include(path.to_string())));
        self
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Conf> {
        self.entries
            .iter()
            .find(|(k, v)| k == key && !matches!(v, Conf::Include(_)))
            .map(|(_, v)| v)
    }

    /// The value of `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Conf> {
        self.entries
            .iter_mut()
            .find(|(k, v)| k == key && !matches!(v, Conf::Include(_)))
            .map(|(_, v)| v)
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) -> Option<Conf> {
        let i = self
            .entries
            .iter()
            .position(|(k, v)| k == key && !matches!(v, Conf::Include(_)))?;
        Some(self.entries.remove(i).1)
    }

    /// True when the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in order.
    pub fn entries(&self) -> &[(String, Conf)] {
        &self.entries
    }
}

/// Converts JSON (from a Secret or `config.merge`) into config values. `null`s are
/// dropped; object keys are sorted (canonical output, whatever order the JSON had);
/// keys are checked by the writer.
pub fn from_json(value: &serde_json::Value) -> Option<Conf> {
    use serde_json::Value;
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => Conf::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Conf::Int(i),
            None => Conf::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Conf::Str(s.clone()),
        Value::Array(items) => Conf::List(items.iter().filter_map(from_json).collect()),
        Value::Object(map) => {
            let mut m = ConfMap::new();
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for (k, v) in keys.into_iter().filter_map(|k| map.get_key_value(k)) {
                if let Some(c) = from_json(v) {
                    m.set(k, c);
                }
            }
            Conf::Map(m)
        }
    })
}

/// Deep-merges JSON into `target`, as JSON merge patch (RFC 7386) does: objects merge key
/// by key, `null` removes a key, any other value replaces. New keys are added in sorted
/// order.
pub fn merge_json(target: &mut ConfMap, patch: &serde_json::Map<String, serde_json::Value>) {
    let mut keys: Vec<&String> = patch.keys().collect();
    keys.sort();
    for (k, v) in keys.into_iter().filter_map(|k| patch.get_key_value(k)) {
        match v {
            serde_json::Value::Null => {
                target.remove(k);
            }
            serde_json::Value::Object(obj) => match target.get_mut(k) {
                Some(Conf::Map(inner)) => merge_json(inner, obj),
                _ => {
                    let mut inner = ConfMap::new();
                    merge_json(&mut inner, obj);
                    target.set(k, Conf::Map(inner));
                }
            },
            other => {
                if let Some(c) = from_json(other) {
                    target.set(k, c);
                }
            }
        }
    }
}

fn unsafe_verbatim(s: &str) -> bool {
    s.is_empty() || s.chars().any(|c| c == '"' || c.is_control())
}

fn is_var_name(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_uppercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
}

fn write_float(out: &mut String, f: f64) {
    let f = if f.is_finite() { f } else { 0.0 };
    let mut s = format!("{f}");
    if !s.contains('.') {
        s.push_str(".0");
    }
    out.push_str(&s);
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

/// A string as a JSON string that nats-server reads as the same string: `"` and `\\`
/// escaped, `\n`/`\r`/`\t` as such. Other control characters have no escape both read
/// (JSON's `\u00XX` is a parse error for the server, a raw one is one for JSON): they are
/// written with the server's `\xHH`, so such a rare string keeps its meaning for the
/// server and only a JSON parser balks.
pub fn json_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn write_json_value(out: &mut String, v: &Conf, level: usize, path: &str) -> Result<(), ConfError> {
    match v {
        Conf::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Conf::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Conf::Float(f) => write_float(out, *f),
        Conf::Str(s) => out.push_str(&json_quote(s)),
        Conf::Var(name) if is_var_name(name) => {
            out.push('$');
            out.push_str(name);
        }
        Conf::Var(name) => out.push_str(&json_quote(&format!("${name}"))),
        Conf::Include(p) => out.push_str(&json_quote(p)),
        Conf::List(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                indent(out, level + 1);
                write_json_value(out, item, level + 1, &format!("{path}[{i}]"))?;
                if i + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(out, level);
            out.push(']');
        }
        Conf::Map(m) => write_json_map(out, m, level, path)?,
    }
    Ok(())
}

fn write_json_map(
    out: &mut String,
    m: &ConfMap,
    level: usize,
    path: &str,
) -> Result<(), ConfError> {
    if m.is_empty() {
        out.push_str("{}");
        return Ok(());
    }
    out.push_str("{\n");
    let n = m.entries().len();
    for (i, (k, v)) in m.entries().iter().enumerate() {
        indent(out, level + 1);
        if let Conf::Include(p) = v {
            if unsafe_verbatim(p) {
                return Err(ConfError::UnsafeInclude(p.clone()));
            }
            let _ = write!(out, "include \"{p}\"");
        } else {
            let sub = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            // The server reads a quoted key up to the next `"`, without escapes: a key
            // JSON would have to escape cannot be written at all.
            if unsafe_verbatim(k) || k.contains('\\') {
                return Err(ConfError::UnsafeKey(k.clone(), sub));
            }
            out.push('"');
            out.push_str(k);
            out.push_str("\": ");
            write_json_value(out, v, level + 1, &sub)?;
        }
        if i + 1 < n {
            out.push(',');
        }
        out.push('\n');
    }
    indent(out, level);
    out.push('}');
    Ok(())
}

/// Writes a top-level map as `nats.conf` in indented JSON, as the Go operator wrote it:
/// tools that read the config Secret with a JSON parser keep working, and the server
/// reads it as the same configuration. Only what JSON cannot say is written in the
/// server's own syntax, as the Go operator did: an `include "<path>"` line (external
/// advertise files, an authorization include), a `$NAME` variable reference (the server
/// name on releases older than the `--name` flag), and the rare control character
/// ([`json_quote`]). A file without those is strict JSON.
pub fn write_json_document(top: &ConfMap) -> Result<String, ConfError> {
    let mut out = String::new();
    write_json_map(&mut out, top, 0, "")?;
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_what_the_lexer_interprets() {
        assert_eq!(json_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(json_quote("l1\nl2\r\t"), r#""l1\nl2\r\t""#);
        assert_eq!(json_quote("\u{1}\u{7f}"), "\"\\x01\u{7f}\"");
        assert_eq!(json_quote("$HOME é {}"), "\"$HOME é {}\"");
    }

    #[test]
    fn writes_json_that_json_parsers_and_the_server_read_alike() {
        let mut top = ConfMap::new();
        top.set("port", 4222);
        let mut c = ConfMap::new();
        c.set(
            "routes",
            Conf::List(vec!["nats://a:6222".into(), "nats://b:6222".into()]),
        );
        c.set("empty", Conf::List(vec![]));
        c.set("m", ConfMap::new());
        top.set("cluster", c);
        top.set("timeout", Conf::Float(2.0));
        top.set("Weird Key", "q\"b\\s\n/é");
        let text = write_json_document(&top).unwrap_or_default();
        assert_eq!(
            text,
            "{\n  \"port\": 4222,\n  \"cluster\": {\n    \"routes\": [\n      \"nats://a:6222\",\n      \"nats://b:6222\"\n    ],\n    \"empty\": [],\n    \"m\": {}\n  },\n  \"timeout\": 2.0,\n  \"Weird Key\": \"q\\\"b\\\\s\\n/é\"\n}\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(parsed["Weird Key"], "q\"b\\s\n/é");
        assert_eq!(parsed["cluster"]["routes"][1], "nats://b:6222");
        // What JSON cannot say, the server's syntax says (as the Go operator wrote it).
        let mut top = ConfMap::new();
        top.set("server_name", Conf::Var("SERVER_NAME".into()));
        top.include("advertise/client_advertise.conf");
        top.set("p", "\u{1}");
        assert_eq!(
            write_json_document(&top).unwrap_or_default(),
            "{\n  \"server_name\": $SERVER_NAME,\n  include \"advertise/client_advertise.conf\",\n  \"p\": \"\\x01\"\n}\n"
        );
        let mut top = ConfMap::new();
        top.set("a\\b", 1);
        assert!(matches!(
            write_json_document(&top),
            Err(ConfError::UnsafeKey(..))
        ));
    }

    #[test]
    fn refuses_keys_and_includes_it_cannot_quote() {
        let mut top = ConfMap::new();
        top.set("a\"b", 1);
        assert!(matches!(
            write_json_document(&top),
            Err(ConfError::UnsafeKey(..))
        ));
        let mut top = ConfMap::new();
        top.include("x\"y");
        assert!(matches!(
            write_json_document(&top),
            Err(ConfError::UnsafeInclude(_))
        ));
        let mut top = ConfMap::new();
        top.set("include", "x");
        assert_eq!(
            write_json_document(&top).unwrap_or_default(),
            "{\n  \"include\": \"x\"\n}\n"
        );
    }

    #[test]
    fn merges_like_json_merge_patch() {
        let mut top = ConfMap::new();
        let mut c = ConfMap::new();
        c.set("port", 6222);
        c.set("name", "x");
        top.set("cluster", c);
        top.set("debug", true);
        let patch =
            json!({"cluster": {"name": null, "pool_size": 3}, "debug": null, "max_payload": 1.5});
        merge_json(
            &mut top,
            patch.as_object().unwrap_or(&serde_json::Map::new()),
        );
        let text = write_json_document(&top).unwrap_or_default();
        assert_eq!(
            text,
            "{\n  \"cluster\": {\n    \"port\": 6222,\n    \"pool_size\": 3\n  },\n  \"max_payload\": 1.5\n}\n"
        );
    }
}
