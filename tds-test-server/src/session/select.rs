//! SELECT: result typing and row emission.

use super::*;

impl Session {
    pub(super) fn tables_in(&self, s: &[Tok]) -> Vec<TableInfo> {
        let mut out = Vec::new();
        for (j, t) in s.iter().enumerate() {
            if t.is("FROM") || t.is("JOIN") {
                if let Ok((name, _)) = object_name(s, j + 1) {
                    if let Ok(ti) = self.table_info(&name) {
                        out.push(ti);
                    }
                }
            }
        }
        out
    }

    pub(super) fn item_hint(
        &self,
        item: &[Tok],
        tables: &[TableInfo],
        vars: &Vars,
    ) -> Option<ColType> {
        let first = item.first()?;
        if first.is("COUNT_BIG") {
            return Some(ColType::BigInt);
        }
        if first.is("COUNT") {
            return Some(ColType::Int);
        }
        if first.is("SCOPE_IDENTITY") || first.is("@@IDENTITY") {
            return Some(ColType::BigInt);
        }
        if first.is("CAST") && item.get(1).is_some_and(|t| t.is_op("(")) {
            let close = matching_paren(item, 1)?;
            let inner = &item[2..close];
            let as_pos = find_top_level(inner, "AS")?;
            let decl: Vec<String> = inner[as_pos + 1..].iter().map(|t| t.display()).collect();
            return coltype_from_decl(&decl.join(""));
        }
        if let Tok::Var(v) = first {
            if let Some((Some(t), _)) = vars.get(v) {
                return Some(*t);
            }
        }
        if ["MAX", "MIN", "SUM", "ISNULL", "COALESCE"]
            .iter()
            .any(|f| first.is(f))
            && item.get(1).is_some_and(|t| t.is_op("("))
        {
            // column reference: [alias.]col
            let close = matching_paren(item, 1)?;
            let args = split_commas(&item[2..close]);
            let col = args.first()?.last()?.ident()?;
            for t in tables {
                if let Some((_, d)) = t.columns.iter().find(|(n, _)| n.eq_ignore_ascii_case(col)) {
                    return coltype_from_decl(d);
                }
            }
        }
        None
    }

    pub(super) fn select(
        &mut self,
        s: &[Tok],
        vars: &mut Vars,
        resp: &mut Response,
    ) -> SResult<Outcome> {
        let mut i = 1;
        let mut head = vec![Tok::Word("SELECT".into())];
        if s.get(i).is_some_and(|t| t.is("DISTINCT")) {
            head.push(s[i].clone());
            i += 1;
        }
        let mut limit: Option<Vec<Tok>> = None;
        if s.get(i).is_some_and(|t| t.is("TOP")) {
            if s.get(i + 1).is_some_and(|t| t.is_op("(")) {
                let close = matching_paren(s, i + 1).ok_or_else(|| syntax_error("TOP"))?;
                limit = Some(s[i + 2..close].to_vec());
                i = close + 1;
            } else if let Some(t) = s.get(i + 1) {
                limit = Some(vec![t.clone()]);
                i += 2;
            }
            if s.get(i).is_some_and(|t| t.is("PERCENT") || t.is("WITH")) {
                return Err(syntax_error(&s[i].display()).into());
            }
        }
        let rest = &s[i..];
        let from = find_top_level(rest, "FROM").unwrap_or(rest.len());
        let items = split_commas(&rest[..from]);
        if items.iter().any(|it| it.is_empty()) {
            return Err(syntax_error(",").into());
        }
        // `SELECT @v = expr` (variable assignment) is not supported.
        if items.iter().any(|it| {
            matches!(it.first(), Some(Tok::Var(v)) if !v.starts_with("@@"))
                && it.get(1).is_some_and(|t| t.is_op("="))
        }) {
            return Err(SqlError::new(
                50000,
                "tds-test-server: SELECT @variable = ... is not supported",
            )
            .into());
        }
        if rest
            .windows(3)
            .any(|w| w[0].is("sys") && w[1].is_op(".") && w[2].is("columns"))
        {
            self.refresh_sys_columns()?;
        }
        let tables = self.tables_in(rest);
        let hints: Vec<Option<ColType>> = items
            .iter()
            .map(|it| self.item_hint(it, &tables, vars))
            .collect();
        let mut binds = Vec::new();
        let head_sql = self.translate(&head, vars, &mut binds)?;
        // ORDER BY ... OFFSET n ROWS [FETCH NEXT m ROWS ONLY]
        let (rest_main, offset) = match find_top_level(rest, "OFFSET") {
            Some(p) => (&rest[..p], Some(&rest[p + 1..])),
            None => (rest, None),
        };
        let body = self.translate(rest_main, vars, &mut binds)?;
        let mut q = format!("{head_sql} {body}");
        if let Some(l) = limit {
            let l = self.translate(&l, vars, &mut binds)?;
            q.push_str(&format!(" LIMIT ({l})"));
        }
        if let Some(off) = offset {
            if q.contains(" LIMIT ") {
                return Err(SqlError::new(
                    10741,
                    "A TOP can not be used in the same query or sub-query as a OFFSET.",
                )
                .into());
            }
            let rows_kw = off
                .iter()
                .position(|t| t.is("ROWS") || t.is("ROW"))
                .ok_or_else(|| syntax_error("OFFSET"))?;
            let off_sql = self.translate(&off[..rows_kw], vars, &mut binds)?;
            let tail = &off[rows_kw + 1..];
            let fetch_sql = if tail.is_empty() {
                "-1".to_string()
            } else {
                let ok = tail.len() >= 5
                    && tail[0].is("FETCH")
                    && (tail[1].is("NEXT") || tail[1].is("FIRST"))
                    && (tail[tail.len() - 2].is("ROWS") || tail[tail.len() - 2].is("ROW"))
                    && tail[tail.len() - 1].is("ONLY");
                if !ok {
                    return Err(syntax_error(&tail[0].display()).into());
                }
                self.translate(&tail[2..tail.len() - 2], vars, &mut binds)?
            };
            q.push_str(&format!(" LIMIT ({fetch_sql}) OFFSET ({off_sql})"));
        }
        let item_texts: Vec<String> = items
            .iter()
            .map(|it| {
                self.translate(it, vars, &mut Vec::new())
                    .unwrap_or_default()
            })
            .collect();
        let (names, decls, rows) = self.run_query(&q, &binds, "SELECT", None)?;
        let mut cols = Vec::with_capacity(names.len());
        for (k, name) in names.iter().enumerate() {
            let hint = if names.len() == items.len() {
                hints[k]
            } else {
                None
            };
            let ty = hint
                .or_else(|| decls[k].as_deref().and_then(coltype_from_decl))
                .unwrap_or_else(|| infer_type(&rows, k));
            let name = if decls[k].is_none()
                && names.len() == items.len()
                && name.replace(' ', "") == item_texts[k].replace(' ', "")
            {
                String::new()
            } else {
                name.clone()
            };
            cols.push((name, ty));
        }
        let n = self.emit_rows(cols, rows, resp)?;
        Ok(Outcome::count(n))
    }

    /// Converts rows to the column types and writes COLMETADATA + ROWs.
    pub(super) fn emit_rows(
        &self,
        mut cols: Vec<(String, ColType)>,
        rows: Vec<Vec<Value>>,
        resp: &mut Response,
    ) -> SResult<u64> {
        let mut converted = Vec::with_capacity(rows.len());
        for r in rows {
            let mut row = Vec::with_capacity(r.len());
            for (k, v) in r.into_iter().enumerate() {
                row.push(convert_for_column(&cols[k].1, v)?);
            }
            converted.push(row);
        }
        // SQLite does not enforce declared lengths: widen to (max) if needed.
        for (k, (_, ty)) in cols.iter_mut().enumerate() {
            let too_long = |limit: u16| {
                converted.iter().any(|r: &Vec<Value>| match &r[k] {
                    Value::Text(t) => t.encode_utf16().count() > limit as usize,
                    Value::Blob(b) => b.len() > limit as usize,
                    _ => false,
                })
            };
            match *ty {
                ColType::NVarChar(Some(n)) if too_long(n) => *ty = ColType::NVarChar(None),
                ColType::VarBinary(Some(n)) if too_long(n) => *ty = ColType::VarBinary(None),
                _ => {}
            }
        }
        resp.col_metadata(&cols);
        for r in &converted {
            resp.row(&cols, r);
        }
        Ok(converted.len() as u64)
    }
}
