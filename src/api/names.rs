//! Syntax checks for names, paths, URLs, subjects and quantities. Each `check_*`
//! returns the reason in words a user can act on.

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// RFC 1123 label: lowercase letters, digits and `-`, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && is_lower_alnum(b[0])
        && is_lower_alnum(b[b.len() - 1])
        && b.iter().all(|c| is_lower_alnum(*c) || *c == b'-')
}

/// RFC 1123 subdomain (Secret, ConfigMap, StorageClass names), at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A label or annotation key: `[prefix/]name`.
pub fn check_qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && !is_dns1123_subdomain(p)
    {
        return Err("the prefix before '/' must be a DNS subdomain such as example.com".into());
    }
    if !is_name_part(name) {
        return Err("must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, with an optional DNS prefix and '/'".into());
    }
    Ok(())
}

/// A label value: empty, or like the name part of a key.
pub fn check_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() || is_name_part(v) {
        Ok(())
    } else {
        Err("must be empty or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit".into())
    }
}

fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    !b.is_empty()
        && c != "."
        && c != ".."
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'-' | b'_' | b'.'))
}

/// An absolute, normalised path made of safe characters.
pub fn check_absolute_path(p: &str) -> Result<(), String> {
    let Some(rest) = p.strip_prefix('/') else {
        return Err("must be an absolute path starting with /".into());
    };
    if p.len() > 4096 || !rest.split('/').all(is_path_component) {
        return Err("must be a normalised absolute path (no '..', '.', '//' or trailing '/') of letters, digits, '-', '_' and '.'".into());
    }
    Ok(())
}

/// A relative, normalised path that stays below its base directory.
pub fn check_relative_path(p: &str) -> Result<(), String> {
    if p.starts_with('/') || !p.split('/').all(is_path_component) {
        return Err("must be a relative path below /etc/nats-config (no leading '/', no '..') of letters, digits, '-', '_' and '.'".into());
    }
    Ok(())
}

/// A TLS file name: a key of the Secret, or an absolute path.
pub fn check_tls_file(f: &str) -> Result<(), String> {
    if f.starts_with('/') {
        return check_absolute_path(f);
    }
    if is_path_component(f) && f.len() <= 253 {
        Ok(())
    } else {
        Err(
            "must be a key of the Secret (letters, digits, '-', '_' and '.') or an absolute path"
                .into(),
        )
    }
}

/// An image repository without tag or digest, optionally with a registry host.
pub fn is_image_repository(s: &str) -> bool {
    if s.is_empty() || s.len() > 255 {
        return false;
    }
    let parts: Vec<&str> = s.split('/').collect();
    let (host, path) = if parts.len() > 1
        && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost")
    {
        (Some(parts[0]), &parts[1..])
    } else {
        (None, &parts[..])
    };
    if let Some(h) = host {
        let (name, port) = match h.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (h, None),
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
            || port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return false;
        }
    }
    path.iter().all(|c| {
        let b = c.as_bytes();
        !b.is_empty()
            && is_lower_alnum(b[0])
            && is_lower_alnum(b[b.len() - 1])
            && b.iter()
                .all(|x| is_lower_alnum(*x) || matches!(x, b'.' | b'_' | b'-'))
    })
}

/// An image tag.
pub fn is_image_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

/// A URL with one of `schemes`, a host and (if `require_port`) a port.
pub fn check_url(raw: &str, schemes: &[&str], require_port: bool) -> Result<(), String> {
    if raw.chars().any(|c| {
        c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\' | '{' | '}' | '$')
    }) {
        return Err(format!(
            "must be a URL such as {}://host:port, without spaces or quotes",
            schemes[0]
        ));
    }
    let url = url::Url::parse(raw)
        .map_err(|e| format!("is not a URL ({e}); expected {}://host:port", schemes[0]))?;
    if !schemes.contains(&url.scheme()) {
        return Err(format!("scheme must be one of {}", schemes.join(", ")));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "must name a host, as in {}://host:port",
            schemes[0]
        ));
    }
    if require_port && url.port().is_none() {
        return Err(format!(
            "must name a port, as in {}://host:port",
            schemes[0]
        ));
    }
    Ok(())
}

/// A gateway or similar NATS name: letters, digits, `-` and `_`.
pub fn check_nats_name(s: &str) -> Result<(), String> {
    if !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    {
        Ok(())
    } else {
        Err("must be letters, digits, '-' and '_' (no spaces or dots)".into())
    }
}

/// An nkey public key with the given role prefix (`A` accounts, `U` users, `O` operators).
pub fn is_nkey(s: &str, prefix: char) -> bool {
    s.len() == 56
        && s.starts_with(prefix)
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

/// A NATS subject (for permissions): dot-separated tokens, no empty token, `*` a whole
/// token, `>` only as the last token. Subscribe permissions may add ` <queue>`.
pub fn check_subject(s: &str, allow_queue: bool) -> Result<(), String> {
    let (subject, queue) = match s.split_once(' ') {
        Some((sub, q)) if allow_queue => (sub, Some(q)),
        _ => (s, None),
    };
    if subject.is_empty() {
        return Err("must not be empty".into());
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, t) in tokens.iter().enumerate() {
        if t.is_empty() {
            return Err("must not have empty tokens (no leading, trailing or double dots)".into());
        }
        if t.contains('>') && (*t != ">" || i + 1 != tokens.len()) {
            return Err("'>' may only be a whole token at the end".into());
        }
        if t.contains('*') && *t != "*" {
            return Err("'*' must be a whole token".into());
        }
    }
    if let Some(q) = queue
        && (q.is_empty() || q.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err("a queue group after the subject must be one word".into());
    }
    Ok(())
}

/// Parses a Kubernetes quantity (`10Gi`, `500M`, `1.5G`, `1e9`) into a number of units.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let value: f64 = num.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        s if s.starts_with('e') || s.starts_with('E') => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    let v = value * scale;
    (v.is_finite() && v >= 0.0).then_some(v)
}
