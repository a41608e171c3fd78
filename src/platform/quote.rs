//! Quoting an argument for the administrator's shell (a command line we print for them to
//! paste), as pure functions: `unix.rs` uses [`posix`], `windows.rs` [`windows`], and the
//! tests check both on any OS. The splitters read a line back as the shell (POSIX) or the
//! program (Windows) would; only tests use them.

use std::borrow::Cow;

/// For a POSIX shell (sh, bash, zsh): the argument as it is when every character is one no
/// shell treats specially, else in single quotes, inside which nothing is special; a `'`
/// closes them, is escaped and reopens them (`'\''`). Empty: `''`.
#[cfg(any(unix, test))]
pub(super) fn posix(arg: &str) -> Cow<'_, str> {
    // Python's shlex.quote set, less `=` (zsh expands a word starting with it).
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-+.,/:@%".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        return Cow::Borrowed(arg);
    }
    let mut q = String::with_capacity(arg.len() + 2);
    q.push('\'');
    for c in arg.chars() {
        match c {
            '\'' => q.push_str("'\\''"),
            c => q.push(c),
        }
    }
    q.push('\'');
    Cow::Owned(q)
}

/// For a line pasted into cmd.exe or PowerShell: the argument as it is unless it is empty or
/// holds whitespace or a character either shell treats specially, else in double quotes,
/// the one quoting both shells and the program's own splitting (the C runtime's rules, which
/// Rust's `std::env::args` follows) agree on. Inside them, backslashes are literal except
/// before a `"`: those before the closing quote are doubled (`"C:\a b\\"` reads back as
/// `C:\a b\`; PowerShell passes them on as they are, a doubled separator Windows ignores).
/// A `"`, which no Windows path holds, is written `""` (its backslashes doubled).
///
/// No one quoting is literal in both shells for every character: inside double quotes
/// cmd.exe still expands `%NAME%` and PowerShell `$name` and `` ` ``, so a path holding
/// those is printed quoted but may be changed by the shell it is pasted into.
#[cfg(any(windows, test))]
pub(super) fn windows(arg: &str) -> Cow<'_, str> {
    let special =
        |c: char| c.is_whitespace() || c.is_control() || "\"'`$&|<>^(){};,=%!@#".contains(c);
    if !arg.is_empty() && !arg.chars().any(special) {
        return Cow::Borrowed(arg);
    }
    let mut q = String::with_capacity(arg.len() + 2);
    q.push('"');
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                q.extend(std::iter::repeat_n('\\', backslashes));
                q.push('"');
                backslashes = 0;
            }
            _ => backslashes = 0,
        }
        q.push(c);
    }
    q.extend(std::iter::repeat_n('\\', backslashes));
    q.push('"');
    Cow::Owned(q)
}

/// A line split into words as a POSIX shell would, without any expansion: whitespace
/// separates; `'...'` is literal; `"..."` is literal but for `\` before `"`, `\`, `$`,
/// `` ` ``; `\` outside quotes takes the next character as it is.
#[cfg(any(test, all(unix, feature = "testing")))]
pub(super) fn split_posix(line: &str) -> Result<Vec<String>, String> {
    let unterminated = |what: &str| format!("unterminated {what} in {line:?}");
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => words.extend(cur.take()),
            '\'' => {
                let w = cur.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(unterminated("'")),
                    }
                }
            }
            '"' => {
                let w = cur.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') if matches!(chars.peek(), Some('"' | '\\' | '$' | '`')) => {
                            w.extend(chars.next())
                        }
                        Some(c) => w.push(c),
                        None => return Err(unterminated("\"")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => cur.get_or_insert_with(String::new).push(c),
                None => return Err(unterminated("\\")),
            },
            c => cur.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(cur);
    Ok(words)
}

/// A command line split into arguments as a Windows program's C runtime (and Rust's
/// `std::env::args`) does: spaces and tabs separate outside double quotes; `2n` backslashes
/// before a `"` are `n` and the quote toggles quoting, `2n + 1` are `n` and a literal `"`;
/// `""` inside quotes is a literal `"`; other backslashes are literal.
#[cfg(any(test, all(windows, feature = "testing")))]
pub(super) fn split_windows(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' if !quoted => words.extend(cur.take()),
            '\\' => {
                let mut n = 1;
                while chars.next_if_eq(&'\\').is_some() {
                    n += 1;
                }
                let w = cur.get_or_insert_with(String::new);
                if chars.peek() == Some(&'"') {
                    w.extend(std::iter::repeat_n('\\', n / 2));
                    if n % 2 == 1 {
                        w.push('"');
                        chars.next();
                    }
                } else {
                    w.extend(std::iter::repeat_n('\\', n));
                }
            }
            '"' => {
                let w = cur.get_or_insert_with(String::new);
                if quoted && chars.next_if_eq(&'"').is_some() {
                    w.push('"');
                } else {
                    quoted = !quoted;
                }
            }
            c => cur.get_or_insert_with(String::new).push(c),
        }
    }
    if quoted {
        return Err(format!("unterminated \" in {line:?}"));
    }
    words.extend(cur);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arguments a printed command may hold: plain, empty, paths with spaces, quotes,
    /// shell metacharacters, trailing backslashes, non-ASCII.
    const ARGS: &[&str] = &[
        "usercube-upgrade",
        "--root",
        "/tmp/usercube-demo-Ab12",
        "",
        " ",
        "/home/John Smith/demo",
        "C:\\Users\\John Smith\\AppData\\Local\\Temp\\usercube-demo-Ab12",
        "\\\\?\\C:\\Users\\John Smith\\demo",
        "C:\\a b\\",
        "C:\\a b\\\\",
        "C:\\",
        "it's",
        "'",
        "a\"b",
        "a\\\"b",
        "tab\there",
        "semi;colon & amp | pipe > out < in $HOME `x` (y) {z} ^ ! # % * ? ~",
        "Zürich 東京",
        "=x",
    ];

    #[test]
    fn posix_quotes_only_when_needed() {
        assert_eq!(posix("/tmp/usercube-demo-Ab12"), "/tmp/usercube-demo-Ab12");
        assert_eq!(posix("--file-cert-password"), "--file-cert-password");
        assert!(matches!(posix("plain"), Cow::Borrowed(_)));
        assert_eq!(posix(""), "''");
        assert_eq!(posix("/home/John Smith/demo"), "'/home/John Smith/demo'");
        assert_eq!(posix("it's"), "'it'\\''s'");
        assert_eq!(posix("$HOME"), "'$HOME'");
        assert_eq!(posix("=x"), "'=x'");
    }

    #[test]
    fn posix_quoting_reads_back_as_given() {
        for a in ARGS {
            assert_eq!(
                split_posix(&posix(a)).unwrap(),
                vec![a.to_string()],
                "{a:?}"
            );
        }
        let line: Vec<String> = ARGS.iter().map(|a| posix(a).into_owned()).collect();
        assert_eq!(split_posix(&line.join(" ")).unwrap(), ARGS);
    }

    #[test]
    fn windows_quotes_only_when_needed() {
        assert_eq!(
            windows("C:\\Temp\\usercube-demo-Ab12"),
            "C:\\Temp\\usercube-demo-Ab12"
        );
        assert!(matches!(windows("\\\\?\\C:\\x"), Cow::Borrowed(_)));
        assert_eq!(windows(""), "\"\"");
        assert_eq!(
            windows("C:\\Users\\John Smith\\AppData\\Local\\Temp\\d"),
            "\"C:\\Users\\John Smith\\AppData\\Local\\Temp\\d\""
        );
        // Backslashes before the closing quote are doubled, others left alone.
        assert_eq!(windows("C:\\a b\\"), "\"C:\\a b\\\\\"");
        assert_eq!(windows("a&b"), "\"a&b\"");
        assert_eq!(windows("a\"b"), "\"a\"\"b\"");
        assert_eq!(windows("a\\\"b"), "\"a\\\\\"\"b\"");
    }

    #[test]
    fn windows_quoting_reads_back_as_given() {
        for a in ARGS {
            assert_eq!(
                split_windows(&windows(a)).unwrap(),
                vec![a.to_string()],
                "{a:?}"
            );
        }
        let line: Vec<String> = ARGS.iter().map(|a| windows(a).into_owned()).collect();
        assert_eq!(split_windows(&line.join(" ")).unwrap(), ARGS);
    }

    #[test]
    fn splitters_follow_their_rules() {
        assert_eq!(
            split_posix(r#"  a 'b c'"d\"e" f\ g '' "#).unwrap(),
            ["a", "b cd\"e", "f g", ""]
        );
        assert!(split_posix("a 'b").is_err());
        assert_eq!(
            split_windows(r#"  C:\a "C:\b c\\" a\\\"b "" "x""y" "#).unwrap(),
            ["C:\\a", "C:\\b c\\", "a\\\"b", "", "x\"y"]
        );
        assert!(split_windows("a \"b").is_err());
    }
}
