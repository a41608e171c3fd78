//! Values between the wire types and SQLite: declared types, conversions, literals.

use super::*;

/// Maps a declared SQLite/T-SQL column type to the SQL Server wire type.
pub fn coltype_from_decl(decl: &str) -> Option<ColType> {
    let d = decl.to_ascii_uppercase();
    let len = || -> Option<u16> {
        let start = d.find('(')?;
        let end = d[start..].find(')')? + start;
        d[start + 1..end].trim().parse::<u16>().ok()
    };
    Some(if super::is_rowversion(decl) {
        ColType::VarBinary(Some(8))
    } else if d.contains("BIGINT") {
        ColType::BigInt
    } else if d.contains("TINYINT") {
        ColType::TinyInt
    } else if d.contains("SMALLINT") {
        ColType::SmallInt
    } else if d.contains("INT") {
        ColType::Int
    } else if d.starts_with("BIT") || d.starts_with("BOOL") {
        ColType::Bit
    } else if d.contains("FLOAT")
        || d.contains("REAL")
        || d.contains("DOUBLE")
        || d.contains("DECIMAL")
        || d.contains("NUMERIC")
    {
        ColType::Float
    } else if d.contains("BINARY") || d.contains("BLOB") {
        ColType::VarBinary(len().filter(|n| *n <= 8000))
    } else if d.starts_with("DATETIME2") {
        ColType::DateTime2
    } else if d.starts_with("DATETIMEOFFSET") {
        ColType::NVarChar(None)
    } else if d.starts_with("DATETIME") || d.starts_with("SMALLDATETIME") {
        ColType::DateTime
    } else if d == "DATE" || d.starts_with("DATE ") {
        ColType::Date
    } else if d.contains("CHAR")
        || d.contains("TEXT")
        || d.contains("CLOB")
        || d.contains("TIME")
        || d.contains("UNIQUEIDENTIFIER")
    {
        ColType::NVarChar(len().filter(|n| *n <= 4000))
    } else {
        return None;
    })
}

pub(super) fn infer_type(rows: &[Vec<Value>], k: usize) -> ColType {
    let mut ty: Option<ColType> = None;
    for r in rows {
        let t = match &r[k] {
            Value::Null => continue,
            Value::Text(_) => return ColType::NVarChar(None),
            Value::Blob(_) => return ColType::VarBinary(None),
            Value::Float(_) => ColType::Float,
            Value::Int(i) if i32::try_from(*i).is_ok() => ColType::Int,
            Value::Int(_) => ColType::BigInt,
        };
        ty = Some(match (ty, t) {
            (Some(ColType::Float), _) | (_, ColType::Float) => ColType::Float,
            (Some(ColType::BigInt), _) | (_, ColType::BigInt) => ColType::BigInt,
            _ => ColType::Int,
        });
    }
    ty.unwrap_or(ColType::Int)
}

pub(super) fn value_from_ref(v: ValueRef) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

pub(super) fn to_sql_value(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        Value::Null => V::Null,
        Value::Int(i) => V::Integer(*i),
        Value::Float(f) => V::Real(*f),
        Value::Text(s) => V::Text(s.clone()),
        Value::Blob(b) => V::Blob(b.clone()),
    }
}

pub(super) fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::Text(s) => quote_str(s),
        Value::Blob(b) => format!(
            "X'{}'",
            b.iter().map(|x| format!("{x:02X}")).collect::<String>()
        ),
    }
}
