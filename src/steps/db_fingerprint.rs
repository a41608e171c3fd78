//! The fingerprint of a database as a run's database step left it, so that a rollback can
//! tell whether something changed the database since, and say what, before it restores a
//! backup or re-inserts rows over that change.
//!
//! Parts: the version the database records, then per table its row count and a digest of
//! its rows: SQLite, every table (a change anywhere is seen); SQL Server, the tables the
//! upgrade touches (the guide's `UJ_` tables and the step's own table) that exist. A table's
//! digest is the sum modulo 2^256 of the SHA-256 of each row (serialized as the journal keeps
//! rows): it does not depend on the order the rows come in, nor on how the file lays them
//! out, so a database restored from a backup, or whose deleted rows were re-inserted, has the
//! digest it had (a file's bytes change with every restore). Tables whose names are not
//! plain identifiers are left out, as the delete step refuses them.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::db_delete::refused;
use super::{Fingerprint, Result};
use crate::db;

/// The tables the 5.1.7 -> 5.2.3 upgrade empties (the guide's `DELETE FROM`s): in every SQL
/// Server fingerprint, so that a server's fingerprint sees its agent's deletes too.
pub const UPGRADE_TABLES: [&str; 3] = ["UJ_TaskEntityTypes", "UJ_TaskResourceTypes", "UJ_JobSteps"];

/// The part naming the recorded version (table and column read).
pub const VERSION_PART: &str = "UM_DatabaseVersion.Version";

/// Takes the fingerprint of the database of `connection` (through the run's session).
pub fn take(connection: &str, root: &Path, own_table: Option<&str>) -> Result<Fingerprint> {
    let t = db::target(connection, root).map_err(refused)?;
    let parts = db::with_session(&t, |d| {
        let mut parts = vec![(
            VERSION_PART.to_string(),
            d.version()?.unwrap_or_else(|| "not recorded".into()),
        )];
        let tables: Vec<String> = match d.all_tables()? {
            Some(all) => all
                .into_iter()
                .filter(|t| db::check_table_name(t).is_ok())
                .collect(),
            None => {
                let mut named: Vec<String> = UPGRADE_TABLES.map(String::from).to_vec();
                if let Some(own) = own_table.filter(|o| !UPGRADE_TABLES.contains(o)) {
                    named.push(own.to_string());
                }
                let mut existing = Vec::new();
                for table in named {
                    if d.has_table(&table)? {
                        existing.push(table);
                    }
                }
                existing
            }
        };
        for table in tables {
            let info = d.table_info(&table)?;
            let mut sum = [0u8; 32];
            let mut rows = 0u64;
            d.scan(&table, &info, &mut |row| {
                add_256(&mut sum, &super::db_delete::chunk_hash(&[row]));
                rows += 1;
                Ok(())
            })?;
            parts.push((
                format!("table {table}"),
                format!("{rows} rows, digest {}", hex::encode(Sha256::digest(sum))),
            ));
        }
        Ok(parts)
    })
    .map_err(refused)?;
    Ok(Fingerprint {
        of: db::redact(connection),
        parts,
    })
}

/// `sum += x` modulo 2^256, both big-endian.
fn add_256(sum: &mut [u8; 32], x: &[u8; 32]) {
    let mut carry = 0u16;
    for i in (0..32).rev() {
        let v = u16::from(sum[i]) + u16::from(x[i]) + carry;
        sum[i] = v as u8;
        carry = v >> 8;
    }
}

/// What differs between the fingerprint a run recorded and the database now, one line per
/// part; empty when the database is as the run left it.
pub fn differences(recorded: &Fingerprint, now: &Fingerprint) -> Vec<String> {
    let mut out = Vec::new();
    for (name, then) in &recorded.parts {
        match now.parts.iter().find(|(n, _)| n == name) {
            Some((_, v)) if v == then => {}
            Some((_, v)) => out.push(format!("{name}: {then} when the run left it, {v} now")),
            None => out.push(format!("{name}: {then} when the run left it, absent now")),
        }
    }
    for (name, v) in &now.parts {
        if !recorded.parts.iter().any(|(n, _)| n == name) {
            out.push(format!("{name}: absent when the run left it, {v} now"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(parts: &[(&str, &str)]) -> Fingerprint {
        Fingerprint {
            of: "sqlite:x".into(),
            parts: parts
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    #[test]
    fn differences_name_each_changed_part() {
        let a = fp(&[("version", "5.2.3"), ("table T", "10 rows, sha256 aa")]);
        assert!(differences(&a, &a).is_empty());
        let b = fp(&[("version", "5.2.3"), ("table T", "0 rows, sha256 bb")]);
        assert_eq!(
            differences(&a, &b),
            vec!["table T: 10 rows, sha256 aa when the run left it, 0 rows, sha256 bb now"]
        );
        let c = fp(&[("version", "5.2.3")]);
        assert_eq!(differences(&a, &c).len(), 1);
        assert_eq!(differences(&c, &a).len(), 1);
    }

    #[test]
    fn a_sqlite_fingerprint_sees_rows_and_version_not_row_order() {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("u.sqlite")).unwrap();
        conn.execute_batch(
            "CREATE TABLE UM_DatabaseVersion (Id INTEGER PRIMARY KEY, Version TEXT);
             INSERT INTO UM_DatabaseVersion VALUES (1, '5.2.3.1');
             CREATE TABLE UJ_JobSteps (Id INTEGER PRIMARY KEY, Name TEXT);
             INSERT INTO UJ_JobSteps VALUES (1, 'a'), (2, 'b');
             CREATE TABLE Other (Name TEXT);",
        )
        .unwrap();
        let cs = "sqlite:u.sqlite";
        let take = || take(cs, dir.path(), None).unwrap();
        let before = take();
        assert!(differences(&before, &take()).is_empty());
        assert!(before
            .parts
            .iter()
            .any(|(n, v)| n == "table UJ_JobSteps" && v.starts_with("2 rows")));
        conn.execute("DELETE FROM UJ_JobSteps WHERE Id = 2", [])
            .unwrap();
        let d = differences(&before, &take());
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].starts_with("table UJ_JobSteps: 2 rows"), "{d:?}");
        // Put back (as a re-insert does): the same rows give the same digest.
        conn.execute("INSERT INTO UJ_JobSteps VALUES (2, 'b')", [])
            .unwrap();
        assert!(differences(&before, &take()).is_empty());
        // Any table of a SQLite database counts, and row order does not.
        conn.execute_batch("INSERT INTO Other VALUES ('x'); INSERT INTO Other VALUES ('y');")
            .unwrap();
        let two = take();
        let d = differences(&before, &two);
        assert!(
            d.len() == 1 && d[0].starts_with("table Other: 0 rows"),
            "{d:?}"
        );
        conn.execute_batch(
            "DELETE FROM Other; INSERT INTO Other VALUES ('y'); INSERT INTO Other VALUES ('x');",
        )
        .unwrap();
        assert!(differences(&two, &take()).is_empty());
        conn.execute("UPDATE UM_DatabaseVersion SET Version = '5.1.7.1'", [])
            .unwrap();
        let d = differences(&two, &take());
        assert!(
            d[0].starts_with(&format!(
                "{VERSION_PART}: 5.2.3.1 when the run left it, 5.1.7.1 now"
            )),
            "{d:?}"
        );
    }

    #[test]
    fn sum_modulo_2_256_carries() {
        let mut s = [0xffu8; 32];
        let mut one = [0u8; 32];
        one[31] = 1;
        add_256(&mut s, &one);
        assert_eq!(s, [0u8; 32]);
    }
}
