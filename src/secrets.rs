//! Redaction: the one place that decides what is a secret and how it is shown (`***`).
//!
//! Every printer (`plan`, `plan --json`, `journal show/export`, status, notes, error
//! messages) goes through these functions:
//! - a settings key is secret when its last segment, ASCII case-insensitive and with `_`, `-`,
//!   `.` and spaces ignored, is `pwd` or ends with `password`, `passwd`, `secret`, `token` or
//!   `apikey` (Password, ClientSecret, ApiKey, Token, AccessToken...), or when it sits directly
//!   under `OpenIdClients` (Usercube's client secrets are keyed by client name);
//! - a connection string keeps everything but its password: it is parsed by the ADO.NET rules
//!   (values quoted with `"` or `'`, a doubled quote inside escapes it, `==` in a key is `=`),
//!   so `Password="a;b"` is redacted whole;
//! - JSON printed for people or machines is walked by key path ([`redact_json`]); file
//!   contents of `write-file` steps are shown as their SHA-256 and length, never inline.

use std::borrow::Cow;
use std::ops::Range;

use base64::Engine;
use sha2::{Digest, Sha256};

/// What a redacted value is shown as.
pub const MASK: &str = "***";

/// Whether the last segment of a key path names a secret (see the module documentation).
pub fn is_secret_key(segment: &str) -> bool {
    let k: String = segment
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    k == "pwd"
        || ["password", "passwd", "secret", "token", "apikey"]
            .iter()
            .any(|s| k.ends_with(s))
}

/// The command line with every secret value replaced by `***`: the value of any `--flag`
/// whose name is a secret key ([`is_secret_key`]: `--file-cert-password`, not
/// `--file-cert-password-file`), as `--flag VALUE` or `--flag=VALUE`, and the password of
/// any connection string in any argument.
pub fn mask_command_line(args: &[String]) -> Vec<String> {
    let secret_flag =
        |flag: &str| flag.starts_with("--") && is_secret_key(flag.trim_start_matches('-'));
    let mut out = Vec::with_capacity(args.len());
    let mut mask_next = false;
    for a in args {
        if mask_next {
            out.push(MASK.to_string());
            mask_next = false;
            continue;
        }
        match a.split_once('=') {
            Some((flag, _)) if secret_flag(flag) => out.push(format!("{flag}={MASK}")),
            _ if secret_flag(a) => {
                out.push(a.clone());
                mask_next = true;
            }
            _ => out.push(crate::db::redact(a)),
        }
    }
    out
}

/// Whether a key path (its segments, outermost first) holds a secret.
pub fn is_secret_path<S: AsRef<str>>(path: &[S]) -> bool {
    match path {
        [] => false,
        [.., parent, last] if parent.as_ref().eq_ignore_ascii_case("OpenIdClients") => {
            !last.as_ref().is_empty()
        }
        [.., last] => is_secret_key(last.as_ref()),
    }
}

/// A value as printed under its dotted key path: `***` for a secret key, a connection string
/// without its password, anything else unchanged.
pub fn redact_value<'a>(key_path: &str, value: &'a str) -> Cow<'a, str> {
    let segments: Vec<&str> = key_path.split('.').collect();
    if is_secret_path(&segments) {
        return Cow::Borrowed(MASK);
    }
    redact_connection_string(value)
}

/// One `key=value` pair of an ADO.NET connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnPair {
    /// The key, trimmed, with `==` unescaped.
    pub key: String,
    /// The value, unquoted and unescaped (trimmed when not quoted).
    pub value: String,
    /// Where the value is in the string, quotes included.
    pub value_span: Range<usize>,
}

/// A connection string that does not follow the ADO.NET rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connection string, character {offset}: {reason}")]
pub struct ConnError {
    pub offset: usize,
    pub reason: &'static str,
}

/// Parses an ADO.NET connection string (`DbConnectionStringBuilder` rules): pairs separated
/// by `;`; a key runs to the first single `=` (`==` is a literal `=`); a value is either
/// quoted with `"` or `'` (the same quote doubled inside stands for itself; only spaces may
/// follow the closing quote) or runs to the next `;`, trimmed.
pub fn parse_connection_string(s: &str) -> Result<Vec<ConnPair>, ConnError> {
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|(_, c)| *c);
    let offset = |i: usize| chars.get(i).map_or(s.len(), |(o, _)| *o);
    let err = |i: usize, reason| ConnError {
        offset: offset(i),
        reason,
    };
    let mut pairs = Vec::new();
    let mut i = 0;
    loop {
        while at(i).is_some_and(|c| c == ';' || c.is_whitespace()) {
            i += 1;
        }
        if i >= chars.len() {
            return Ok(pairs);
        }
        let mut key = String::new();
        loop {
            match at(i) {
                None | Some(';') => return Err(err(i, "a key without '=' and value")),
                Some('=') if at(i + 1) == Some('=') => {
                    key.push('=');
                    i += 2;
                }
                Some('=') => {
                    i += 1;
                    break;
                }
                Some(c) => {
                    key.push(c);
                    i += 1;
                }
            }
        }
        let key = key.trim().to_string();
        if key.is_empty() {
            return Err(err(i, "an empty key"));
        }
        while at(i).is_some_and(|c| c != ';' && c.is_whitespace()) {
            i += 1;
        }
        let start = i;
        let mut value = String::new();
        match at(i) {
            Some(q @ ('"' | '\'')) => {
                i += 1;
                loop {
                    match at(i) {
                        None => return Err(err(start, "a quoted value without its closing quote")),
                        Some(c) if c == q && at(i + 1) == Some(q) => {
                            value.push(q);
                            i += 2;
                        }
                        Some(c) if c == q => {
                            i += 1;
                            break;
                        }
                        Some(c) => {
                            value.push(c);
                            i += 1;
                        }
                    }
                }
                let end = offset(i);
                while at(i).is_some_and(|c| c != ';' && c.is_whitespace()) {
                    i += 1;
                }
                if !matches!(at(i), None | Some(';')) {
                    return Err(err(i, "text after a quoted value"));
                }
                pairs.push(ConnPair {
                    key,
                    value,
                    value_span: offset(start)..end,
                });
            }
            _ => {
                while at(i).is_some_and(|c| c != ';') {
                    i += 1;
                }
                let raw = &s[offset(start)..offset(i)];
                let trimmed = raw.trim_end();
                value.push_str(trimmed);
                pairs.push(ConnPair {
                    key,
                    value,
                    value_span: offset(start)..offset(start) + trimmed.len(),
                });
            }
        }
    }
}

/// The connection string with every secret value (Password, Pwd, ...) replaced by `***`;
/// anything else is returned unchanged. A string that does not parse keeps only what comes
/// before its first secret key.
pub fn redact_connection_string(s: &str) -> Cow<'_, str> {
    if s.starts_with("sqlite:") {
        return Cow::Borrowed(s);
    }
    match parse_connection_string(s) {
        Ok(pairs) => {
            let secret: Vec<&ConnPair> = pairs.iter().filter(|p| is_secret_key(&p.key)).collect();
            if secret.is_empty() {
                return Cow::Borrowed(s);
            }
            let mut out = String::with_capacity(s.len());
            let mut from = 0;
            for p in secret {
                out.push_str(&s[from..p.value_span.start]);
                out.push_str(MASK);
                from = p.value_span.end;
            }
            out.push_str(&s[from..]);
            Cow::Owned(out)
        }
        Err(_) => match first_secret_key_end(s) {
            Some(end) => Cow::Owned(format!("{}{MASK}", &s[..end])),
            None => Cow::Borrowed(s),
        },
    }
}

/// For a string that does not parse: the end of `KEY=` for its first secret key, if any.
fn first_secret_key_end(s: &str) -> Option<usize> {
    let mut key_start = 0;
    for (i, c) in s.char_indices() {
        match c {
            ';' => key_start = i + 1,
            '=' if is_secret_key(s[key_start..i].trim()) => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// Redacts a JSON value in place, by key path: secret keys' scalar values become `***`,
/// connection strings lose their password, and a `write-file` step's `content` (base64)
/// becomes `{"sha256": ..., "bytes": ...}`.
pub fn redact_json(value: &mut serde_json::Value) {
    walk(value, &mut Vec::new());
}

fn walk(value: &mut serde_json::Value, path: &mut Vec<String>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let is_write_file = path.last().is_some_and(|k| k == "write-file");
            for (k, v) in map.iter_mut() {
                path.push(k.clone());
                if is_write_file && k == "content" {
                    if let Value::String(b64) = v {
                        *v = content_digest(b64);
                    }
                } else if is_secret_path(path) && !v.is_null() && !v.is_object() && !v.is_array() {
                    *v = Value::String(MASK.into());
                } else {
                    walk(v, path);
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            for v in items {
                walk(v, path);
            }
        }
        Value::String(s) => {
            if let Cow::Owned(r) = redact_connection_string(s) {
                *s = r;
            }
        }
        _ => {}
    }
}

/// What a printed plan shows of a file's content.
fn content_digest(b64: &str) -> serde_json::Value {
    match base64::engine::general_purpose::STANDARD.decode(b64) {
        Ok(bytes) => serde_json::json!({
            "sha256": hex::encode(Sha256::digest(&bytes)),
            "bytes": bytes.len(),
        }),
        Err(_) => serde_json::Value::String(MASK.into()),
    }
}

/// Serializes for printing: JSON, then [`redact_json`], pretty.
pub fn to_public_json<T: serde::Serialize>(v: &T) -> String {
    let mut value = serde_json::to_value(v).expect("printed values serialize");
    redact_json(&mut value);
    serde_json::to_string_pretty(&value).expect("a JSON value prints")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_matched_on_the_last_segment_case_insensitively() {
        for k in [
            "Password",
            "password",
            "PWD",
            "ClientSecret",
            "client_secret",
            "ApiKey",
            "api-key",
            "Token",
            "AccessToken",
            "AdminPassword",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["File", "PasswordFile2", "Login", "Path", "SecretName", ""] {
            assert!(!is_secret_key(k), "{k}");
        }
        assert!(is_secret_path(&["EncryptionCertificate", "Password"]));
        assert!(is_secret_path(&["OpenId", "OpenIdClients", "Job"]));
        assert!(!is_secret_path(&["Password", "File"]));
        assert!(!is_secret_path::<&str>(&[]));
        assert_eq!(redact_value("A.ClientSecret", "x"), MASK);
        assert_eq!(redact_value("A.Path", "x"), "x");
    }

    #[test]
    fn connection_strings_parse_by_the_ado_net_rules() {
        let p = parse_connection_string(
            r#"Server=h ; Password="a;b""c" ;Pwd='it''s';Key==Name=v;Empty=;"#,
        )
        .unwrap();
        let kv: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            kv,
            [
                ("Server", "h"),
                ("Password", "a;b\"c"),
                ("Pwd", "it's"),
                ("Key=Name", "v"),
                ("Empty", "")
            ]
        );
        assert_eq!(
            parse_connection_string("Password=\"open")
                .unwrap_err()
                .reason,
            "a quoted value without its closing quote"
        );
        assert!(parse_connection_string("Password=\"a\"b").is_err());
        assert!(parse_connection_string("Server").is_err());
        assert!(parse_connection_string("  ;; ").unwrap().is_empty());
    }

    #[test]
    fn connection_string_redaction_hides_whole_quoted_passwords() {
        assert_eq!(
            redact_connection_string(r#"Server=h;User Id=sa;Password="a;b";Encrypt=true"#),
            "Server=h;User Id=sa;Password=***;Encrypt=true"
        );
        assert_eq!(
            redact_connection_string("data source=.;pwd='x''y;z'"),
            "data source=.;pwd=***"
        );
        assert_eq!(
            redact_connection_string("Server=h;Password=s3cret"),
            "Server=h;Password=***"
        );
        // Unparseable: everything after the first secret key goes.
        assert_eq!(
            redact_connection_string("Server=h;Password=\"a;b"),
            "Server=h;Password=***"
        );
        assert_eq!(
            redact_connection_string("sqlite:Database/x.db"),
            "sqlite:Database/x.db"
        );
        assert!(matches!(
            redact_connection_string("Server=h;Database=d"),
            Cow::Borrowed(_)
        ));
        assert_eq!(redact_connection_string("just text"), "just text");
    }

    #[test]
    fn json_is_redacted_by_key_path() {
        let content = base64::engine::general_purpose::STANDARD.encode(b"{\"Password\":\"p\"}");
        let mut v = serde_json::json!({
            "EncryptionCertificate": {"File": "c.pfx", "Password": "hunter2"},
            "OpenIdClients": {"Job": "s"},
            "Token": 42,
            "Servers": [{"ConnectionString": "Server=h;Password=\"a;b\""}],
            "steps": [{"action": {"write-file": {"path": "a.json", "content": content}}}],
            "ApiKey": null,
        });
        redact_json(&mut v);
        assert_eq!(v["EncryptionCertificate"]["Password"], MASK);
        assert_eq!(v["EncryptionCertificate"]["File"], "c.pfx");
        assert_eq!(v["OpenIdClients"]["Job"], MASK);
        assert_eq!(v["Token"], MASK);
        assert_eq!(v["Servers"][0]["ConnectionString"], "Server=h;Password=***");
        assert_eq!(v["ApiKey"], serde_json::Value::Null);
        let w = &v["steps"][0]["action"]["write-file"]["content"];
        assert_eq!(w["bytes"], 16);
        assert_eq!(
            w["sha256"],
            hex::encode(Sha256::digest(b"{\"Password\":\"p\"}"))
        );
    }
}
