//! The NATS configuration syntax: a small value tree and an injection-proof writer.
//!
//! What the nats-server config lexer (`conf/lex.go`) does, and what the writer does about
//! it (checked against every release in `e2e/nats/versions` in `tests/nats_server_conf.rs`):
//!
//! - Double-quoted *values* understand exactly six escapes: `\"`, `\\`, `\n`, `\r`, `\t`
//!   and `\xHH` (one byte). `\uXXXX` is a parse error. Every string value is written
//!   double-quoted with `"` and `\` escaped, `\n`/`\r`/`\t` as such, every other control
//!   character as `\xHH`, and everything else (UTF-8 included) as is.
//! - `$NAME` is a variable reference only in an *unquoted* value; inside double quotes
//!   `$` is literal. Only [`Conf::Var`] writes an unquoted `$NAME`, and only the renderer
//!   creates it (`$SERVER_NAME`, `$POD_NAME`).
//! - `include` is a keyword only as an *unquoted* key. User keys are always written
//!   double-quoted, so a user key `include` is an ordinary (unknown, hence rejected by the
//!   server) key, never a directive. Only [`Conf::Include`] writes the keyword.
//! - Double-quoted *keys* and include paths have no escapes at all: they end at the next
//!   `"`. Keys and include paths with `"` or control characters are therefore refused
//!   ([`ConfError`]) instead of being written.
//! - Numbers: the lexer has no exponent syntax, so floats are written in plain decimal
//!   with a `.`; integers are written as such.

use std::fmt::Write as _;

/// A key or include path that cannot be written safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfError {
    /// A map key with `"`, a control character, or empty.
    #[error(
        "key {0:?} at {1} cannot be written into nats.conf: keys may not be empty or contain '\"' or control characters"
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

/// Escapes `s` as the inside of a double-quoted nats.conf string value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// `s` as a double-quoted nats.conf string value.
pub fn quote(s: &str) -> String {
    format!("\"{}\"", escape(s))
}

fn unsafe_verbatim(s: &str) -> bool {
    s.is_empty() || s.chars().any(|c| c == '"' || c.is_control())
}

/// Keys the writer leaves unquoted: the renderer's own, lower-case option names.
fn is_bare_key(k: &str) -> bool {
    let b = k.as_bytes();
    !b.is_empty()
        && k != "include"
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
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

fn write_value(out: &mut String, v: &Conf, level: usize, path: &str) -> Result<(), ConfError> {
    match v {
        Conf::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Conf::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Conf::Float(f) => write_float(out, *f),
        Conf::Str(s) => out.push_str(&quote(s)),
        Conf::Var(name) => {
            if !is_var_name(name) {
                // Never reached with the renderer's own names; written as a string
                // rather than as an unquoted token.
                out.push_str(&quote(&format!("${name}")));
            } else {
                out.push('$');
                out.push_str(name);
            }
        }
        Conf::List(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                indent(out, level + 1);
                write_value(out, item, level + 1, &format!("{path}[{i}]"))?;
                out.push('\n');
            }
            indent(out, level);
            out.push(']');
        }
        Conf::Map(m) => {
            if m.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push_str("{\n");
            write_entries(out, m, level + 1, path)?;
            indent(out, level);
            out.push('}');
        }
        Conf::Include(p) => {
            // An include outside a map: written as a plain string value.
            out.push_str(&quote(p));
        }
    }
    Ok(())
}

fn write_entries(out: &mut String, m: &ConfMap, level: usize, path: &str) -> Result<(), ConfError> {
    for (k, v) in m.entries() {
        indent(out, level);
        if let Conf::Include(p) = v {
            if unsafe_verbatim(p) {
                return Err(ConfError::UnsafeInclude(p.clone()));
            }
            let _ = writeln!(out, "include \"{p}\"");
            continue;
        }
        let sub = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        if is_bare_key(k) {
            out.push_str(k);
        } else if unsafe_verbatim(k) {
            return Err(ConfError::UnsafeKey(k.clone(), sub));
        } else {
            out.push('"');
            out.push_str(k);
            out.push('"');
        }
        out.push_str(": ");
        write_value(out, v, level, &sub)?;
        out.push('\n');
    }
    Ok(())
}

/// Writes a top-level map as a nats.conf document.
pub fn write_document(top: &ConfMap, header: &str) -> Result<String, ConfError> {
    let mut out = String::new();
    for line in header.lines() {
        out.push_str("# ");
        out.push_str(&line.replace(|c: char| c.is_control(), " "));
        out.push('\n');
    }
    write_entries(&mut out, top, 0, "")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_what_the_lexer_interprets() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("l1\nl2\r\t"), r#""l1\nl2\r\t""#);
        assert_eq!(quote("\u{1}\u{7f}"), r#""\x01\x7f""#);
        assert_eq!(quote("$HOME é {}"), "\"$HOME é {}\"");
    }

    #[test]
    fn writes_blocks_lists_and_keywords() {
        let mut top = ConfMap::new();
        top.set("port", 4222);
        top.set("server_name", Conf::Var("SERVER_NAME".into()));
        let mut c = ConfMap::new();
        c.set("routes", Conf::List(vec!["nats://a:6222".into()]));
        c.set("empty", Conf::List(vec![]));
        top.set("cluster", c);
        top.include("advertise/client_advertise.conf");
        top.set("timeout", Conf::Float(2.0));
        top.set("Weird Key", "v");
        let text = write_document(&top, "header").unwrap_or_default();
        assert_eq!(
            text,
            "# header\nport: 4222\nserver_name: $SERVER_NAME\ncluster: {\n  routes: [\n    \"nats://a:6222\"\n  ]\n  empty: []\n}\ninclude \"advertise/client_advertise.conf\"\ntimeout: 2.0\n\"Weird Key\": \"v\"\n"
        );
    }

    #[test]
    fn refuses_keys_and_includes_it_cannot_quote() {
        let mut top = ConfMap::new();
        top.set("a\"b", 1);
        assert!(matches!(
            write_document(&top, ""),
            Err(ConfError::UnsafeKey(..))
        ));
        let mut top = ConfMap::new();
        top.include("x\"y");
        assert!(matches!(
            write_document(&top, ""),
            Err(ConfError::UnsafeInclude(_))
        ));
        let mut top = ConfMap::new();
        top.set("include", "x");
        assert_eq!(
            write_document(&top, "").unwrap_or_default(),
            "\"include\": \"x\"\n"
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
        let text = write_document(&top, "").unwrap_or_default();
        assert_eq!(
            text,
            "cluster: {\n  port: 6222\n  pool_size: 3\n}\nmax_payload: 1.5\n"
        );
    }
}
