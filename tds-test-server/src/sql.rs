//! A small T-SQL lexer and statement splitter.

use crate::protocol::SqlError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// Bare identifier or keyword.
    Word(String),
    /// `[name]` or `"name"`.
    QIdent(String),
    /// `'text'` or `N'text'`.
    Str(String),
    Num(String),
    /// `@name` or `@@name` (including the `@`s).
    Var(String),
    /// Punctuation / operator.
    Op(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    /// A newline precedes this token (used to split batches).
    pub nl_before: bool,
}

impl Tok {
    /// True when this is the (case-insensitive) keyword `kw`.
    pub fn is(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
    pub fn is_op(&self, op: &str) -> bool {
        matches!(self, Tok::Op(o) if o == op)
    }
    /// Identifier text of a Word or QIdent.
    pub fn ident(&self) -> Option<&str> {
        match self {
            Tok::Word(w) | Tok::QIdent(w) => Some(w),
            _ => None,
        }
    }
    /// Text as SQL Server would echo it in "Incorrect syntax near".
    pub fn display(&self) -> String {
        match self {
            Tok::Word(w) | Tok::Num(w) | Tok::Var(w) | Tok::Op(w) => w.clone(),
            Tok::QIdent(w) => w.clone(),
            Tok::Str(s) => s.clone(),
        }
    }
}

pub fn syntax_error(near: &str) -> SqlError {
    SqlError::new(102, format!("Incorrect syntax near '{near}'."))
}

pub fn lex(sql: &str) -> Result<Vec<Token>, SqlError> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut nl = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            nl = true;
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                if chars[i] == '\n' {
                    nl = true;
                }
                i += 1;
            }
            i += 2;
            continue;
        }
        let tok = if c == '\'' || ((c == 'N' || c == 'n') && chars.get(i + 1) == Some(&'\'')) {
            if c != '\'' {
                i += 1;
            }
            i += 1;
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => {
                        return Err(SqlError::new(
                            105,
                            format!("Unclosed quotation mark after the character string '{s}'."),
                        ))
                    }
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            Tok::Str(s)
        } else if c == '[' || c == '"' {
            let close = if c == '[' { ']' } else { '"' };
            i += 1;
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => {
                        return Err(SqlError::new(
                            105,
                            format!("Unclosed quotation mark after the character string '{s}'."),
                        ))
                    }
                    Some(ch) if *ch == close && chars.get(i + 1) == Some(&close) => {
                        s.push(close);
                        i += 2;
                    }
                    Some(ch) if *ch == close => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            Tok::QIdent(s)
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            Tok::Num(chars[start..i].iter().collect())
        } else if c == '@' {
            let start = i;
            i += 1;
            if chars.get(i) == Some(&'@') {
                i += 1;
            }
            while i < chars.len()
                && (chars[i].is_alphanumeric()
                    || chars[i] == '_'
                    || chars[i] == '$'
                    || chars[i] == '#')
            {
                i += 1;
            }
            Tok::Var(chars[start..i].iter().collect())
        } else if c.is_alphabetic() || c == '_' || c == '#' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric()
                    || chars[i] == '_'
                    || chars[i] == '$'
                    || chars[i] == '#')
            {
                i += 1;
            }
            Tok::Word(chars[start..i].iter().collect())
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["<=", ">=", "<>", "!=", "||", "==", "!<", "!>"].contains(&two.as_str()) {
                i += 2;
                Tok::Op(two)
            } else {
                i += 1;
                Tok::Op(c.to_string())
            }
        };
        out.push(Token { tok, nl_before: nl });
        nl = false;
    }
    Ok(out)
}

const ALWAYS_SPLIT: &[&str] = &[
    "BEGIN", "COMMIT", "ROLLBACK", "INSERT", "DELETE", "UPDATE", "EXEC", "EXECUTE", "BACKUP",
    "RESTORE", "DECLARE", "PRINT", "USE",
];

/// Splits a batch into statements at `;` and at newlines that start a new
/// statement keyword.
pub fn split(tokens: Vec<Token>) -> Vec<Vec<Tok>> {
    let mut stmts: Vec<Vec<Tok>> = Vec::new();
    let mut cur: Vec<Tok> = Vec::new();
    let mut depth = 0i32;
    for t in tokens {
        if t.tok.is_op(";") && depth == 0 {
            if !cur.is_empty() {
                stmts.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if t.nl_before && depth == 0 && !cur.is_empty() {
            let first = &cur[0];
            let prev = cur.last().unwrap();
            let k = &t.tok;
            let split = if ALWAYS_SPLIT.iter().any(|w| k.is(w)) {
                // `EXEC @r = ...` after DECLARE is fine; `BEGIN TRAN` etc.
                // `INSERT` after `BULK`? not supported anyway.
                !(k.is("UPDATE") || k.is("DELETE") || k.is("INSERT"))
                    || !(prev.is("ON") || prev.is("FOR") || prev.is("AFTER") || prev.is_op(","))
            } else if k.is("SET") {
                !first.is("UPDATE")
            } else if k.is("SELECT") {
                !(first.is("INSERT")
                    || prev.is("UNION")
                    || prev.is("ALL")
                    || prev.is("EXCEPT")
                    || prev.is("INTERSECT"))
            } else {
                false
            };
            if split {
                stmts.push(std::mem::take(&mut cur));
            }
        }
        if t.tok.is_op("(") {
            depth += 1;
        } else if t.tok.is_op(")") {
            depth -= 1;
        }
        cur.push(t.tok);
    }
    if !cur.is_empty() {
        stmts.push(cur);
    }
    stmts
}

/// Parses a possibly qualified object name starting at `i`:
/// `[db].[schema].[name]`, `schema.name`, `name`. Returns (name, next index).
/// The schema, when given, must be `dbo`.
pub fn object_name(toks: &[Tok], i: usize) -> Result<(String, usize), SqlError> {
    let mut parts = Vec::new();
    let mut j = i;
    loop {
        match toks.get(j).and_then(|t| t.ident()) {
            Some(p) => parts.push(p.to_string()),
            None => {
                let near = toks.get(j).map(|t| t.display()).unwrap_or_default();
                return Err(syntax_error(&near));
            }
        }
        j += 1;
        if toks.get(j).is_some_and(|t| t.is_op(".")) {
            j += 1;
            continue;
        }
        break;
    }
    let full = parts.join(".");
    if parts.len() > 3 {
        return Err(syntax_error(&full));
    }
    if parts.len() >= 2 && !parts[parts.len() - 2].eq_ignore_ascii_case("dbo") {
        return Err(SqlError::new(208, format!("Invalid object name '{full}'.")));
    }
    Ok((parts.pop().unwrap(), j))
}

/// Parses a string that names an object (as in `OBJECT_ID('dbo.T')`).
pub fn object_name_from_str(s: &str) -> Option<String> {
    let toks: Vec<Tok> = lex(s).ok()?.into_iter().map(|t| t.tok).collect();
    match object_name(&toks, 0) {
        Ok((n, j)) if j == toks.len() => Some(n),
        _ => None,
    }
}

pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub fn quote_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmts(s: &str) -> Vec<String> {
        split(lex(s).unwrap())
            .into_iter()
            .map(|st| st.iter().map(|t| t.display()).collect::<Vec<_>>().join(" "))
            .collect()
    }

    #[test]
    fn lexes_tsql_tokens() {
        let t: Vec<Tok> = lex("SELECT [a b], N'x''y', @P1, @@VERSION -- c\n/* d */ 0x0A")
            .unwrap()
            .into_iter()
            .map(|t| t.tok)
            .collect();
        assert_eq!(
            t,
            vec![
                Tok::Word("SELECT".into()),
                Tok::QIdent("a b".into()),
                Tok::Op(",".into()),
                Tok::Str("x'y".into()),
                Tok::Op(",".into()),
                Tok::Var("@P1".into()),
                Tok::Op(",".into()),
                Tok::Var("@@VERSION".into()),
                Tok::Num("0x0A".into()),
            ]
        );
        assert_eq!(lex("SELECT 'open").unwrap_err().number, 105);
    }

    #[test]
    fn splits_on_semicolons_and_statement_starting_newlines() {
        assert_eq!(
            stmts("BEGIN TRAN; DELETE FROM t\nWHERE a = 1\nCOMMIT"),
            vec!["BEGIN TRAN", "DELETE FROM t WHERE a = 1", "COMMIT"]
        );
        assert_eq!(
            stmts("UPDATE t\nSET a = 1\nSELECT 1\nUNION ALL\nSELECT 2"),
            vec!["UPDATE t SET a = 1", "SELECT 1 UNION ALL SELECT 2"]
        );
        assert_eq!(stmts("SELECT ';'"), vec!["SELECT ;"]);
    }

    #[test]
    fn object_names_strip_dbo_only() {
        let toks = |s: &str| -> Vec<Tok> { lex(s).unwrap().into_iter().map(|t| t.tok).collect() };
        assert_eq!(object_name(&toks("[dbo].[T]"), 0).unwrap(), ("T".into(), 3));
        assert_eq!(
            object_name(&toks("db.dbo.T x"), 0).unwrap(),
            ("T".into(), 5)
        );
        assert_eq!(object_name(&toks("sales.T"), 0).unwrap_err().number, 208);
        assert_eq!(
            object_name_from_str("dbo.Parent").as_deref(),
            Some("Parent")
        );
    }
}
