//! T-SQL to SQLite translation and expression evaluation.

use super::*;

pub(super) const SQLITE_ONLY_WORDS: &[&str] = &[
    "LIMIT",
    "PRAGMA",
    "GLOB",
    "REGEXP",
    "AUTOINCREMENT",
    "RETURNING",
    "VACUUM",
    "ATTACH",
    "DETACH",
    "REINDEX",
    "ANALYZE",
];

pub(super) const NOT_FUNCTIONS: &[&str] = &[
    "IN",
    "VALUES",
    "EXISTS",
    "AND",
    "OR",
    "NOT",
    "ON",
    "OVER",
    "AS",
    "WHERE",
    "SELECT",
    "FROM",
    "JOIN",
    "IS",
    "THEN",
    "ELSE",
    "WHEN",
    "BY",
    "SET",
    "TOP",
    "ALL",
    "ANY",
    "SOME",
    "DISTINCT",
    "INTO",
    "CASE",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "LIKE",
    "BETWEEN",
    "HAVING",
    "END",
];

pub(super) const SAME_FUNCTIONS: &[&str] = &[
    "COUNT", "MAX", "MIN", "SUM", "AVG", "COALESCE", "NULLIF", "UPPER", "LOWER", "ABS", "ROUND",
    "CAST", "LTRIM", "RTRIM", "TRIM", "REPLACE", "IIF",
];

pub(super) const TABLE_HINTS: &[&str] = &[
    "NOLOCK",
    "UPDLOCK",
    "ROWLOCK",
    "HOLDLOCK",
    "READPAST",
    "TABLOCK",
    "TABLOCKX",
    "XLOCK",
    "PAGLOCK",
    "READCOMMITTED",
    "READUNCOMMITTED",
    "REPEATABLEREAD",
    "SERIALIZABLE",
];

pub(super) fn matching_paren(toks: &[Tok], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (j, t) in toks.iter().enumerate().skip(open) {
        if t.is_op("(") {
            depth += 1;
        } else if t.is_op(")") {
            depth -= 1;
            if depth == 0 {
                return Some(j);
            }
        }
    }
    None
}

/// Splits `toks` at top-level commas.
pub(super) fn split_commas(toks: &[Tok]) -> Vec<&[Tok]> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (j, t) in toks.iter().enumerate() {
        if t.is_op("(") {
            depth += 1;
        } else if t.is_op(")") {
            depth -= 1;
        } else if t.is_op(",") && depth == 0 {
            out.push(&toks[start..j]);
            start = j + 1;
        }
    }
    out.push(&toks[start..]);
    out
}

pub(super) fn find_top_level(toks: &[Tok], kw: &str) -> Option<usize> {
    let mut depth = 0;
    for (j, t) in toks.iter().enumerate() {
        if t.is_op("(") {
            depth += 1;
        } else if t.is_op(")") {
            depth -= 1;
        } else if depth == 0 && t.is(kw) {
            return Some(j);
        }
    }
    None
}

impl Session {
    /// Translates T-SQL tokens to SQLite SQL. Variables become `?N` binds.
    pub(super) fn translate(
        &self,
        toks: &[Tok],
        vars: &Vars,
        binds: &mut Vec<Value>,
    ) -> SResult<String> {
        let mut out: Vec<String> = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            let t = &toks[i];
            let next = toks.get(i + 1);
            // sys.columns: the temporary table `refresh_sys_columns` fills.
            if t.is("sys")
                && next.is_some_and(|n| n.is_op("."))
                && toks.get(i + 2).is_some_and(|x| x.is("columns"))
            {
                out.push("temp.sys_columns".into());
                i += 3;
                continue;
            }
            // schema stripping: dbo.X / db.dbo.X
            if t.ident().is_some() && next.is_some_and(|n| n.is_op(".")) {
                if t.ident().unwrap().eq_ignore_ascii_case("dbo") {
                    i += 2;
                    continue;
                }
                if toks
                    .get(i + 2)
                    .and_then(|x| x.ident())
                    .is_some_and(|x| x.eq_ignore_ascii_case("dbo"))
                    && toks.get(i + 3).is_some_and(|x| x.is_op("."))
                {
                    i += 4;
                    continue;
                }
            }
            match t {
                Tok::Word(w) => {
                    let up = w.to_ascii_uppercase();
                    if SQLITE_ONLY_WORDS.contains(&up.as_str()) {
                        return Err(syntax_error(w).into());
                    }
                    // table hints: WITH (NOLOCK, ...)
                    if up == "WITH" && next.is_some_and(|n| n.is_op("(")) {
                        if let Some(close) = matching_paren(toks, i + 1) {
                            let inner = &toks[i + 2..close];
                            if !inner.is_empty()
                                && inner
                                    .iter()
                                    .all(|x| x.is_op(",") || TABLE_HINTS.iter().any(|h| x.is(h)))
                            {
                                i = close + 1;
                                continue;
                            }
                        }
                    }
                    let prev_is_table_ctx = i > 0
                        && ["INTO", "UPDATE", "FROM", "JOIN", "TABLE", "REFERENCES"]
                            .iter()
                            .any(|k| toks[i - 1].is(k));
                    if next.is_some_and(|n| n.is_op("("))
                        && !prev_is_table_ctx
                        && !NOT_FUNCTIONS.contains(&up.as_str())
                    {
                        let close = matching_paren(toks, i + 1).ok_or_else(|| syntax_error(w))?;
                        let args = &toks[i + 2..close];
                        match up.as_str() {
                            "COUNT_BIG" => out.push("COUNT".into()),
                            "LEN" => out.push("LENGTH".into()),
                            "ISNULL" => out.push("IFNULL".into()),
                            "SUBSTRING" => out.push("SUBSTR".into()),
                            "GETDATE" | "GETUTCDATE" | "SYSDATETIME" | "SYSUTCDATETIME"
                                if args.is_empty() =>
                            {
                                out.push("CURRENT_TIMESTAMP".into());
                                i = close + 1;
                                continue;
                            }
                            "SCOPE_IDENTITY" if args.is_empty() => {
                                out.push(literal(
                                    &self.last_identity.map(Value::Int).unwrap_or(Value::Null),
                                ));
                                i = close + 1;
                                continue;
                            }
                            "DB_NAME" if args.is_empty() => {
                                out.push(quote_str(self.db()));
                                i = close + 1;
                                continue;
                            }
                            "APPLOCK_MODE" | "APPLOCK_TEST" => {
                                let parts = split_commas(args);
                                let mut texts = Vec::new();
                                for part in &parts {
                                    let v = match part {
                                        [Tok::Str(x)] => x.clone(),
                                        [Tok::Var(v)] => match vars.get(v) {
                                            Some((_, Value::Text(x))) => x.clone(),
                                            _ => return Err(syntax_error(v).into()),
                                        },
                                        _ => return Err(syntax_error(&up).into()),
                                    };
                                    texts.push(v);
                                }
                                let v = self.applock_fn(&up, &texts)?;
                                out.push(literal(&v));
                                i = close + 1;
                                continue;
                            }
                            "OBJECT_ID" => {
                                let v = match args.first() {
                                    Some(Tok::Str(s)) => {
                                        self.object_id(s).map(Value::Int).unwrap_or(Value::Null)
                                    }
                                    _ => return Err(syntax_error("OBJECT_ID").into()),
                                };
                                out.push(literal(&v));
                                i = close + 1;
                                continue;
                            }
                            "OBJECTPROPERTY" => {
                                let parts = split_commas(args);
                                if parts.len() != 2 {
                                    return Err(syntax_error("OBJECTPROPERTY").into());
                                }
                                let id_sql = self.translate(parts[0], vars, binds)?;
                                let prop = match parts[1] {
                                    [Tok::Str(p)] => p.clone(),
                                    _ => return Err(syntax_error("OBJECTPROPERTY").into()),
                                };
                                let v = match id_sql.trim().parse::<i64>() {
                                    Ok(id) => self.object_property(id, &prop)?,
                                    Err(_) => Value::Null,
                                };
                                out.push(literal(&v));
                                i = close + 1;
                                continue;
                            }
                            f if SAME_FUNCTIONS.contains(&f) => out.push(up.clone()),
                            _ => {
                                return Err(SqlError::new(
                                    195,
                                    format!("'{w}' is not a recognized built-in function name."),
                                )
                                .into())
                            }
                        }
                        i += 1;
                        continue;
                    }
                    out.push(w.clone());
                }
                Tok::QIdent(q) => out.push(quote_ident(q)),
                Tok::Str(s) => out.push(quote_str(s)),
                Tok::Num(n) => {
                    if let Some(hex) = n.strip_prefix("0x").or_else(|| n.strip_prefix("0X")) {
                        out.push(format!("X'{hex}'"));
                    } else {
                        out.push(n.clone());
                    }
                }
                Tok::Var(v) => {
                    let up = v.to_ascii_uppercase();
                    let lit = match up.as_str() {
                        "@@VERSION" => Some(Value::Text(VERSION_STRING.into())),
                        "@@TRANCOUNT" => Some(Value::Int(self.trancount as i64)),
                        "@@SPID" => Some(Value::Int(self.spid as i64)),
                        "@@ROWCOUNT" => Some(Value::Int(self.last_rowcount as i64)),
                        "@@IDENTITY" => {
                            Some(self.last_identity.map(Value::Int).unwrap_or(Value::Null))
                        }
                        "@@SERVERNAME" => Some(Value::Text(crate::protocol::SERVER_NAME.into())),
                        _ if up.starts_with("@@") => return Err(syntax_error(v).into()),
                        _ => None,
                    };
                    if let Some(l) = lit {
                        out.push(literal(&l));
                    } else {
                        match vars.get(v) {
                            Some((_, val)) => {
                                binds.push(val.clone());
                                out.push(format!("?{}", binds.len()));
                            }
                            None => {
                                return Err(SqlError::new(
                                    137,
                                    format!("Must declare the scalar variable \"{v}\"."),
                                )
                                .into())
                            }
                        }
                    }
                }
                Tok::Op(o) => {
                    if ["||", "==", "?", "$", "`"].contains(&o.as_str()) {
                        return Err(syntax_error(o).into());
                    }
                    out.push(o.clone());
                }
            }
            i += 1;
        }
        Ok(out.join(" "))
    }

    pub(super) fn run_query(
        &self,
        sql_text: &str,
        binds: &[Value],
        op: &str,
        table: Option<&str>,
    ) -> SResult<QueryResult> {
        let db = self.db().to_string();
        let map = |e| StmtError::from(sqlite_err(e, op, table, &db));
        let mut stmt = self.conn.prepare(sql_text).map_err(map)?;
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let decls: Vec<Option<String>> = stmt
            .columns()
            .iter()
            .map(|c| c.decl_type().map(|s| s.to_string()))
            .collect();
        let params: Vec<rusqlite::types::Value> = binds.iter().map(to_sql_value).collect();
        let n = names.len();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(map)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(map)? {
            let mut row = Vec::with_capacity(n);
            for k in 0..n {
                row.push(value_from_ref(r.get_ref(k).map_err(map)?));
            }
            out.push(row);
        }
        Ok((names, decls, out))
    }

    pub(super) fn execute_dml(
        &self,
        sql_text: &str,
        binds: &[Value],
        op: &str,
        table: &str,
    ) -> SResult<u64> {
        let params: Vec<rusqlite::types::Value> = binds.iter().map(to_sql_value).collect();
        let n = self
            .conn
            .execute(sql_text, rusqlite::params_from_iter(params.iter()))
            .map_err(|e| sqlite_err(e, op, Some(table), self.db()))?;
        Ok(n as u64)
    }

    /// INSERT/UPDATE with SQL Server's truncation check (2628) for columns
    /// declared `NVARCHAR(n)`/`VARCHAR(n)`/`VARBINARY(n)`.
    pub(super) fn execute_dml_checked(
        &self,
        q: &str,
        binds: &[Value],
        op: &str,
        ti: &TableInfo,
    ) -> SResult<u64> {
        let limited: Vec<(String, ColType)> = ti
            .columns
            .iter()
            .filter_map(|(c, d)| match coltype_from_decl(d) {
                Some(t @ (ColType::NVarChar(Some(_)) | ColType::VarBinary(Some(_)))) => {
                    Some((c.clone(), t))
                }
                _ => None,
            })
            .collect();
        if limited.is_empty() {
            return self.execute_dml(q, binds, op, &ti.name);
        }
        let db = self.db().to_string();
        let sp = |sql: &str| {
            self.conn
                .execute_batch(sql)
                .map_err(|e| StmtError::from(sqlite_err(e, op, Some(&ti.name), &db)))
        };
        sp("SAVEPOINT tds_stmt")?;
        let returning: Vec<String> = limited.iter().map(|(c, _)| quote_ident(c)).collect();
        let result = self.run_query(
            &format!("{q} RETURNING {}", returning.join(", ")),
            binds,
            op,
            Some(&ti.name),
        );
        let rows = match result {
            Ok((_, _, rows)) => rows,
            Err(e) => {
                let _ = sp("ROLLBACK TO tds_stmt; RELEASE tds_stmt");
                return Err(e);
            }
        };
        for r in &rows {
            for (k, (c, t)) in limited.iter().enumerate() {
                let (len, limit, shown) = match (&r[k], t) {
                    (Value::Text(x), ColType::NVarChar(Some(n))) => (
                        x.encode_utf16().count(),
                        *n as usize,
                        x.chars().take(*n as usize).collect::<String>(),
                    ),
                    (Value::Blob(b), ColType::VarBinary(Some(n))) => {
                        (b.len(), *n as usize, String::new())
                    }
                    (Value::Blob(b), ColType::NVarChar(Some(n))) => {
                        (b.len(), *n as usize, String::new())
                    }
                    (Value::Text(x), ColType::VarBinary(Some(n))) => {
                        (x.len(), *n as usize, String::new())
                    }
                    _ => continue,
                };
                if len > limit {
                    let _ = sp("ROLLBACK TO tds_stmt; RELEASE tds_stmt");
                    return Err(SqlError::new(
                        2628,
                        format!(
                            "String or binary data would be truncated in table '{}.dbo.{}', column '{}'. Truncated value: '{}'.",
                            self.db(),
                            ti.name,
                            c,
                            shown
                        ),
                    )
                    .into());
                }
            }
        }
        sp("RELEASE tds_stmt")?;
        Ok(rows.len() as u64)
    }

    /// Evaluates a scalar expression.
    pub(super) fn eval(&self, expr: &[Tok], vars: &Vars) -> SResult<Value> {
        let mut binds = Vec::new();
        let e = self.translate(expr, vars, &mut binds)?;
        let (_, _, rows) = self.run_query(&format!("SELECT {e}"), &binds, "SELECT", None)?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .unwrap_or(Value::Null))
    }
}
