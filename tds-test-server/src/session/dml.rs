//! INSERT, DELETE, UPDATE and their OUTPUT clauses.

use super::*;

impl Session {
    pub(super) fn insert(
        &mut self,
        s: &[Tok],
        vars: &mut Vars,
        resp: &mut Response,
    ) -> SResult<Outcome> {
        let mut i = 1;
        if s.get(i).is_some_and(|t| t.is("INTO")) {
            i += 1;
        }
        let (name, j) = object_name(s, i)?;
        let ti = self.table_info(&name)?;
        i = j;
        let mut cols: Option<Vec<String>> = None;
        if s.get(i).is_some_and(|t| t.is_op("(")) {
            let close = matching_paren(s, i).ok_or_else(|| syntax_error("("))?;
            let mut list = Vec::new();
            for part in split_commas(&s[i + 1..close]) {
                match part {
                    [t] if t.ident().is_some() => list.push(t.ident().unwrap().to_string()),
                    _ => {
                        return Err(syntax_error(
                            &part.first().map(|t| t.display()).unwrap_or_default(),
                        )
                        .into())
                    }
                }
            }
            cols = Some(list);
            i = close + 1;
        }
        let mut output = None;
        if s.get(i).is_some_and(|t| t.is("OUTPUT")) {
            let end = (i + 1..s.len())
                .find(|&k| s[k].is("VALUES") || s[k].is("SELECT") || s[k].is("DEFAULT"))
                .unwrap_or(s.len());
            output = Some(self.parse_output(&s[i + 1..end], "INSERTED", &ti)?);
            i = end;
        }
        // Columns the server writes: computed ones (271) and the rowversion (273).
        if let Some(list) = &cols {
            for c in list {
                if ti.computed.iter().any(|x| x.eq_ignore_ascii_case(c)) {
                    return Err(SqlError::new(271, format!("The column \"{c}\" cannot be modified because it is either a computed column or is the result of a UNION operator.")).into());
                }
                if ti
                    .rowversion
                    .as_ref()
                    .is_some_and(|x| x.eq_ignore_ascii_case(c))
                {
                    return Err(SqlError::new(273, "Cannot insert an explicit value into a timestamp column. Use INSERT with a column list to exclude the timestamp column, or insert a DEFAULT into the timestamp column.").into());
                }
            }
        }
        let ii_on = self
            .identity_insert
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(&ti.name));
        let mut gen_identity = false;
        if let Some(id_col) = &ti.identity {
            match &cols {
                Some(list) => {
                    let has = list.iter().any(|c| c.eq_ignore_ascii_case(id_col));
                    if has && !ii_on {
                        return Err(SqlError::new(544, format!("Cannot insert explicit value for identity column in table '{}' when IDENTITY_INSERT is set to OFF.", ti.name)).into());
                    }
                    if !has && ii_on {
                        return Err(SqlError::new(545, format!("Explicit value must be specified for identity column in table '{}' either when IDENTITY_INSERT is set to ON or when a replication user is inserting into a NOT FOR REPLICATION identity column.", ti.name)).into());
                    }
                    gen_identity = !has;
                }
                None => {
                    if ii_on {
                        return Err(SqlError::new(8101, format!("An explicit value for the identity column in table '{}' can only be specified when a column list is used and IDENTITY_INSERT is ON.", ti.name)).into());
                    }
                    cols = Some(
                        ti.columns
                            .iter()
                            .filter(|(n, _)| n != id_col && Some(n) != ti.rowversion.as_ref())
                            .map(|(n, _)| n.clone())
                            .collect(),
                    );
                    gen_identity = true;
                }
            }
        }
        if cols.is_none() && ti.rowversion.is_some() {
            cols = Some(
                ti.columns
                    .iter()
                    .filter(|(n, _)| Some(n) != ti.rowversion.as_ref())
                    .map(|(n, _)| n.clone())
                    .collect(),
            );
        }
        let mut binds = Vec::new();
        let mut col_list: Vec<String> = cols
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|c| quote_ident(c))
            .collect();
        let body;
        let mut generated_last = None;
        if s.get(i).is_some_and(|t| t.is("VALUES")) {
            // row groups
            let mut groups = Vec::new();
            let mut j = i + 1;
            loop {
                if !s.get(j).is_some_and(|t| t.is_op("(")) {
                    return Err(
                        syntax_error(&s.get(j).map(|t| t.display()).unwrap_or_default()).into(),
                    );
                }
                let close = matching_paren(s, j).ok_or_else(|| syntax_error("("))?;
                groups.push(&s[j + 1..close]);
                j = close + 1;
                if s.get(j).is_some_and(|t| t.is_op(",")) {
                    j += 1;
                    continue;
                }
                if j != s.len() {
                    return Err(syntax_error(&s[j].display()).into());
                }
                break;
            }
            let mut base = 0;
            if gen_identity {
                let id_col = ti.identity.as_ref().unwrap();
                col_list.push(quote_ident(id_col));
                base = self
                    .conn
                    .query_row(
                        &format!(
                            "SELECT COALESCE(MAX({}), 0) FROM {}",
                            quote_ident(id_col),
                            quote_ident(&ti.name)
                        ),
                        [],
                        |r| r.get::<_, i64>(0),
                    )
                    .map_err(|e| sqlite_err(e, "INSERT", Some(&ti.name), self.db()))?;
                let last = self
                    .shared
                    .identity_last
                    .lock()
                    .unwrap()
                    .get(&ti.name.to_ascii_lowercase())
                    .copied();
                base = base.max(last.unwrap_or(0));
            }
            if let Some(rv) = &ti.rowversion {
                col_list.push(quote_ident(rv));
            }
            let mut rendered = Vec::new();
            for (k, g) in groups.iter().enumerate() {
                let mut inner = self.translate(g, vars, &mut binds)?;
                if ti.rowversion.is_some() {
                    // The database's next rowversion value, 8 bytes big-endian.
                    let mut dbts = self.shared.dbts.lock().unwrap();
                    *dbts += 1;
                    let v = literal(&Value::Blob(dbts.to_be_bytes().to_vec()));
                    inner = if inner.trim().is_empty() {
                        v
                    } else {
                        format!("{inner}, {v}")
                    };
                }
                if gen_identity {
                    let id = base + 1 + k as i64;
                    inner = if inner.trim().is_empty() {
                        id.to_string()
                    } else {
                        format!("{inner}, {id}")
                    };
                    generated_last = Some(id);
                }
                rendered.push(format!("({inner})"));
            }
            body = format!("VALUES {}", rendered.join(", "));
        } else if s.get(i).is_some_and(|t| t.is("SELECT")) {
            if ti.rowversion.is_some() {
                return Err(SqlError::new(50000, "tds-test-server: INSERT ... SELECT into a table with a rowversion column is not supported").into());
            }
            if gen_identity {
                return Err(SqlError::new(50000, "tds-test-server: INSERT ... SELECT into a table with an identity column (without IDENTITY_INSERT) is not supported").into());
            }
            body = self.translate(&s[i..], vars, &mut binds)?;
        } else if s.get(i).is_some_and(|t| t.is("DEFAULT"))
            && s.get(i + 1).is_some_and(|t| t.is("VALUES"))
            && !gen_identity
            && ti.rowversion.is_none()
        {
            body = "DEFAULT VALUES".into();
        } else {
            return Err(syntax_error(&s.get(i).map(|t| t.display()).unwrap_or_default()).into());
        }
        let cols_sql = if cols.is_some() {
            format!("({})", col_list.join(", "))
        } else {
            String::new()
        };
        let q = format!(
            "INSERT INTO {} {} {}",
            quote_ident(&ti.name),
            cols_sql,
            body
        );
        let n = match output {
            Some(out) => self.run_returning(&q, &binds, &ti, &out, "INSERT", resp)?,
            None => self.execute_dml_checked(&q, &binds, "INSERT", &ti)?,
        };
        if let Some(last) = generated_last {
            let mut map = self.shared.identity_last.lock().unwrap();
            let e = map.entry(ti.name.to_ascii_lowercase()).or_insert(last);
            *e = (*e).max(last);
            drop(map);
            self.last_identity = generated_last;
        }
        Ok(Outcome::count(n))
    }

    pub(super) fn delete(
        &mut self,
        s: &[Tok],
        vars: &mut Vars,
        resp: &mut Response,
    ) -> SResult<Outcome> {
        let mut i = 1;
        let mut top = None;
        if s.get(i).is_some_and(|t| t.is("TOP")) {
            if !s.get(i + 1).is_some_and(|t| t.is_op("(")) {
                return Err(syntax_error("TOP").into());
            }
            let close = matching_paren(s, i + 1).ok_or_else(|| syntax_error("TOP"))?;
            top = Some(&s[i + 2..close]);
            i = close + 1;
        }
        if s.get(i).is_some_and(|t| t.is("FROM")) {
            i += 1;
        }
        let (name, mut j) = object_name(s, i)?;
        let ti = self.table_info(&name)?;
        let mut output = None;
        if s.get(j).is_some_and(|t| t.is("OUTPUT")) {
            let end = find_top_level(&s[j..], "WHERE")
                .map(|w| w + j)
                .unwrap_or(s.len());
            output = Some(self.parse_output(&s[j + 1..end], "DELETED", &ti)?);
            j = end;
        }
        if let Some(t) = s.get(j) {
            if !t.is("WHERE") {
                return Err(syntax_error(&t.display()).into());
            }
        }
        let mut binds = Vec::new();
        let where_sql = self.translate(&s[j..], vars, &mut binds)?;
        let table = quote_ident(&ti.name);
        let q = match top {
            None => format!("DELETE FROM {table} {where_sql}"),
            Some(n) => {
                let n = self.translate(n, vars, &mut binds)?;
                format!(
                    "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} {where_sql} LIMIT ({n}))"
                )
            }
        };
        let n = match output {
            Some(out) => self.run_returning(&q, &binds, &ti, &out, "DELETE", resp)?,
            None => self.execute_dml(&q, &binds, "DELETE", &ti.name)?,
        };
        Ok(Outcome::count(n))
    }

    /// Parses `OUTPUT DELETED.col [AS name], DELETED.*` items.
    pub(super) fn parse_output(
        &self,
        items: &[Tok],
        pseudo: &str,
        ti: &TableInfo,
    ) -> SResult<Vec<(String, String)>> {
        let mut out = Vec::new();
        for item in split_commas(items) {
            let unsupported = || {
                StmtError::from(SqlError::new(
                    50000,
                    format!("tds-test-server: only OUTPUT {pseudo}.column [AS alias] / {pseudo}.* is supported"),
                ))
            };
            if item.len() < 3 || !item[0].is(pseudo) || !item[1].is_op(".") {
                return Err(unsupported());
            }
            if item[2].is_op("*") && item.len() == 3 {
                for (c, _) in &ti.columns {
                    out.push((c.clone(), c.clone()));
                }
                continue;
            }
            let col = item[2].ident().ok_or_else(unsupported)?;
            let Some((col, _)) = ti.columns.iter().find(|(c, _)| c.eq_ignore_ascii_case(col))
            else {
                return Err(SqlError::new(207, format!("Invalid column name '{col}'.")).into());
            };
            let alias = match &item[3..] {
                [] => col.clone(),
                [a] | [_, a] if a.ident().is_some() && (item.len() == 4 || item[3].is("AS")) => {
                    a.ident().unwrap().to_string()
                }
                _ => return Err(unsupported()),
            };
            out.push((col.clone(), alias));
        }
        Ok(out)
    }

    /// Runs a DML statement with `RETURNING` and sends the rows as a result set.
    pub(super) fn run_returning(
        &self,
        q: &str,
        binds: &[Value],
        ti: &TableInfo,
        out: &[(String, String)],
        op: &str,
        resp: &mut Response,
    ) -> SResult<u64> {
        let returning: Vec<String> = out.iter().map(|(c, _)| quote_ident(c)).collect();
        let q = format!("{q} RETURNING {}", returning.join(", "));
        let (_, _, rows) = self.run_query(&q, binds, op, Some(&ti.name))?;
        let cols = out
            .iter()
            .enumerate()
            .map(|(k, (c, alias))| {
                let decl = ti
                    .columns
                    .iter()
                    .find(|(n, _)| n == c)
                    .map(|(_, d)| d.as_str());
                let ty = decl
                    .and_then(coltype_from_decl)
                    .unwrap_or_else(|| infer_type(&rows, k));
                (alias.clone(), ty)
            })
            .collect();
        self.emit_rows(cols, rows, resp)
    }

    pub(super) fn update(&mut self, s: &[Tok], vars: &mut Vars) -> SResult<Outcome> {
        let (name, j) = object_name(s, 1)?;
        let ti = self.table_info(&name)?;
        if !s.get(j).is_some_and(|t| t.is("SET")) {
            return Err(syntax_error(&s.get(j).map(|t| t.display()).unwrap_or_default()).into());
        }
        if let Some(id_col) = &ti.identity {
            let end = find_top_level(&s[j..], "WHERE")
                .map(|w| w + j)
                .unwrap_or(s.len());
            for a in split_commas(&s[j + 1..end]) {
                if let Some(c) = a.first().and_then(|t| t.ident()) {
                    if c.eq_ignore_ascii_case(id_col) {
                        return Err(SqlError::new(
                            8102,
                            format!("Cannot update identity column '{id_col}'."),
                        )
                        .into());
                    }
                }
            }
        }
        let mut binds = Vec::new();
        let rest = self.translate(&s[j..], vars, &mut binds)?;
        let q = format!("UPDATE {} {}", quote_ident(&ti.name), rest);
        let n = self.execute_dml_checked(&q, &binds, "UPDATE", &ti)?;
        Ok(Outcome::count(n))
    }
}
