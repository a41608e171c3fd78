//! SET and DECLARE: session options and variables.

use super::*;

impl Session {
    pub(super) fn set(&mut self, s: &[Tok], vars: &mut Vars) -> SResult<Outcome> {
        let Some(what) = s.get(1) else {
            return Err(syntax_error("SET").into());
        };
        if let Tok::Var(v) = what {
            if !s.get(2).is_some_and(|t| t.is_op("=")) {
                return Err(syntax_error(v).into());
            }
            let Some((ty, _)) = vars.get(v).cloned() else {
                return Err(SqlError::new(
                    137,
                    format!("Must declare the scalar variable \"{v}\"."),
                )
                .into());
            };
            let val = self.eval(&s[3..], vars)?;
            vars.set(v, ty, val);
            return Ok(Outcome::none());
        }
        if what.is("IDENTITY_INSERT") {
            let (name, j) = object_name(s, 2)?;
            let on = match s.get(j) {
                Some(t) if t.is("ON") => true,
                Some(t) if t.is("OFF") => false,
                other => {
                    return Err(
                        syntax_error(&other.map(|t| t.display()).unwrap_or_default()).into(),
                    )
                }
            };
            if s.len() != j + 1 {
                return Err(syntax_error(&s[j + 1].display()).into());
            }
            let ti = match self.table_info(&name) {
                Ok(ti) => ti,
                Err(_) => {
                    return Err(SqlError::new(1088, format!("Cannot find the object \"{name}\" because it does not exist or you do not have permissions.")).into())
                }
            };
            if ti.identity.is_none() {
                return Err(SqlError::new(8106, format!("Table '{}' does not have the identity property. Cannot perform SET operation.", ti.name)).into());
            }
            if on {
                if let Some(other) = &self.identity_insert {
                    if !other.eq_ignore_ascii_case(&ti.name) {
                        return Err(SqlError::new(8107, format!("IDENTITY_INSERT is already ON for table '{}.dbo.{}'. Cannot perform SET operation for table '{}'.", self.db(), other, ti.name)).into());
                    }
                }
                self.identity_insert = Some(ti.name);
            } else if self
                .identity_insert
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(&ti.name))
            {
                self.identity_insert = None;
            }
            return Ok(Outcome::none());
        }
        let on_off = s.len() == 3 && (s[2].is("ON") || s[2].is("OFF"));
        if on_off && what.is("XACT_ABORT") {
            self.xact_abort = s[2].is("ON");
            return Ok(Outcome::none());
        }
        // Accepted without effect.
        if on_off
            && [
                "NOCOUNT",
                "ANSI_NULLS",
                "QUOTED_IDENTIFIER",
                "ANSI_WARNINGS",
                "ARITHABORT",
                "CONCAT_NULL_YIELDS_NULL",
                "ANSI_PADDING",
            ]
            .iter()
            .any(|o| what.is(o))
        {
            return Ok(Outcome::none());
        }
        if what.is("TRANSACTION") && s.len() >= 5 && s[2].is("ISOLATION") && s[3].is("LEVEL") {
            return Ok(Outcome::none());
        }
        Err(SqlError::new(
            102,
            format!(
                "Incorrect syntax near '{}'. (tds-test-server: this SET option is not supported)",
                what.display()
            ),
        )
        .into())
    }

    pub(super) fn declare(&mut self, s: &[Tok], vars: &mut Vars) -> SResult<Outcome> {
        for part in split_commas(&s[1..]) {
            let Some(Tok::Var(name)) = part.first() else {
                return Err(syntax_error("DECLARE").into());
            };
            let eq = part.iter().position(|t| t.is_op("="));
            let type_toks = &part[1..eq.unwrap_or(part.len())];
            let type_toks = if type_toks.first().is_some_and(|t| t.is("AS")) {
                &type_toks[1..]
            } else {
                type_toks
            };
            let decl: String = type_toks
                .iter()
                .map(|t| t.display())
                .collect::<Vec<_>>()
                .join("");
            let ty = coltype_from_decl(&decl).ok_or_else(|| {
                SqlError::new(
                    2715,
                    format!("Column, parameter, or variable #1: Cannot find data type {decl}."),
                )
            })?;
            let v = match eq {
                Some(e) => convert_for_column(&ty, self.eval(&part[e + 1..], vars)?)?,
                None => Value::Null,
            };
            vars.set(name, Some(ty), v);
        }
        Ok(Outcome::none())
    }
}
