//! BACKUP DATABASE and RESTORE DATABASE to and from disk files.

use super::*;

impl Session {
    pub(super) fn disk_path(s: &[Tok], from: usize) -> SResult<(PathBuf, usize)> {
        // TO|FROM DISK = 'path'
        match (
            s.get(from),
            s.get(from + 1),
            s.get(from + 2),
            s.get(from + 3),
        ) {
            (Some(kw), Some(d), Some(eq), Some(Tok::Str(p)))
                if (kw.is("TO") || kw.is("FROM")) && d.is("DISK") && eq.is_op("=") =>
            {
                Ok((PathBuf::from(p), from + 4))
            }
            _ => Err(syntax_error(&s.get(from).map(|t| t.display()).unwrap_or_default()).into()),
        }
    }

    pub(super) fn with_options(s: &[Tok], i: usize, allowed: &[&str]) -> SResult<Vec<String>> {
        if i >= s.len() {
            return Ok(vec![]);
        }
        if !s[i].is("WITH") {
            return Err(syntax_error(&s[i].display()).into());
        }
        let mut out = Vec::new();
        for opt in split_commas(&s[i + 1..]) {
            let name = opt
                .first()
                .and_then(|t| t.ident())
                .map(|t| t.to_ascii_uppercase())
                .unwrap_or_default();
            if !allowed.contains(&name.as_str()) {
                return Err(
                    syntax_error(&opt.first().map(|t| t.display()).unwrap_or_default()).into(),
                );
            }
            out.push(name);
        }
        Ok(out)
    }

    pub(super) fn check_db_name(&self, name: &str, what: &str) -> SResult<()> {
        if !name.eq_ignore_ascii_case(self.db()) {
            return Err(StmtError(vec![
                SqlError::new(911, format!("Database '{name}' does not exist. Make sure that the name is entered correctly.")),
                SqlError::new(3013, format!("{what} is terminating abnormally.")),
            ]));
        }
        Ok(())
    }

    pub(super) fn open_backup(path: &Path, what: &str) -> SResult<Connection> {
        let terminating = SqlError::new(3013, format!("{what} is terminating abnormally."));
        if !path.is_file() {
            return Err(StmtError(vec![
                SqlError::new(3201, format!("Cannot open backup device '{}'. Operating system error 2(The system cannot find the file specified.).", path.display())),
                terminating,
            ]));
        }
        let bad = || {
            StmtError(vec![
                SqlError::new(3241, format!("The media family on device '{}' is incorrectly formed. SQL Server cannot process this media family.", path.display())),
                SqlError::new(3013, format!("{what} is terminating abnormally.")),
            ])
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|_| bad())?;
        let check: Result<String, _> = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0));
        match check {
            Ok(ok) if ok == "ok" => Ok(conn),
            _ => Err(bad()),
        }
    }

    pub(super) fn page_count(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap_or(0)
    }

    pub(super) fn backup(&mut self, s: &[Tok], resp: &mut Response) -> SResult<Outcome> {
        let what = "BACKUP DATABASE";
        if !s.get(1).is_some_and(|t| t.is("DATABASE")) {
            return Err(syntax_error(&s.get(1).map(|t| t.display()).unwrap_or_default()).into());
        }
        let name = s
            .get(2)
            .and_then(|t| t.ident())
            .ok_or_else(|| syntax_error("DATABASE"))?
            .to_string();
        let (path, i) = Self::disk_path(s, 3)?;
        Self::with_options(
            s,
            i,
            &[
                "COPY_ONLY",
                "CHECKSUM",
                "INIT",
                "FORMAT",
                "COMPRESSION",
                "NO_COMPRESSION",
                "STATS",
                "NAME",
                "DESCRIPTION",
                "SKIP",
                "NOSKIP",
                "NOREWIND",
                "NOUNLOAD",
            ],
        )?;
        self.check_db_name(&name, what)?;
        if self.trancount > 0 {
            return Err(StmtError(vec![
                SqlError::new(
                    3021,
                    "Cannot perform a backup or restore operation within a transaction.",
                ),
                SqlError::new(3013, format!("{what} is terminating abnormally.")),
            ]));
        }
        let _ = std::fs::remove_file(&path);
        for ext in ["-wal", "-shm"] {
            let mut p = path.clone().into_os_string();
            p.push(ext);
            let _ = std::fs::remove_file(p);
        }
        if let Err(e) = self.conn.backup(DatabaseName::Main, &path, None) {
            return Err(StmtError(vec![
                SqlError::new(3201, format!("Cannot open backup device '{}'. Operating system error 3(The system cannot find the path specified.). ({e})", path.display())),
                SqlError::new(3013, format!("{what} is terminating abnormally.")),
            ]));
        }
        let pages = Self::page_count(&self.conn);
        resp.info(
            4035,
            &format!("Processed {pages} pages for database '{name}', file '{name}' on file 1."),
        );
        resp.info(3014, &format!("BACKUP DATABASE successfully processed {pages} pages in 0.001 seconds (1.000 MB/sec)."));
        Ok(Outcome::none())
    }

    /// `USE [db]` or `USE master`: where the session is, as RESTORE sees it (statements
    /// still act on the one database).
    pub(super) fn use_database(&mut self, s: &[Tok], resp: &mut Response) -> SResult<Outcome> {
        let name = match s {
            [_, t] => t
                .ident()
                .ok_or_else(|| syntax_error(&t.display()))?
                .to_string(),
            _ => return Err(syntax_error("USE").into()),
        };
        let mut in_db = self.shared.in_db.lock().unwrap();
        if name.eq_ignore_ascii_case(self.db()) {
            in_db.insert(self.spid);
        } else if name.eq_ignore_ascii_case("master") {
            in_db.remove(&self.spid);
        } else {
            return Err(SqlError::new(
                911,
                format!("Database '{name}' does not exist. Make sure that the name is entered correctly."),
            )
            .into());
        }
        drop(in_db);
        resp.info(5701, &format!("Changed database context to '{name}'."));
        Ok(Outcome::none())
    }

    pub(super) fn restore(&mut self, s: &[Tok], resp: &mut Response) -> SResult<Outcome> {
        if s.get(1).is_some_and(|t| t.is("VERIFYONLY")) {
            let what = "VERIFY DATABASE";
            let (path, i) = Self::disk_path(s, 2)?;
            Self::with_options(s, i, &["CHECKSUM", "NOREWIND", "NOUNLOAD", "STATS", "FILE"])?;
            let conn = Self::open_backup(&path, what)?;
            drop(conn);
            resp.info(3262, "The backup set on file 1 is valid.");
            return Ok(Outcome::none());
        }
        if !s.get(1).is_some_and(|t| t.is("DATABASE")) {
            return Err(syntax_error(&s.get(1).map(|t| t.display()).unwrap_or_default()).into());
        }
        let what = "RESTORE DATABASE";
        let name = s
            .get(2)
            .and_then(|t| t.ident())
            .ok_or_else(|| syntax_error("DATABASE"))?
            .to_string();
        let (path, i) = Self::disk_path(s, 3)?;
        Self::with_options(
            s,
            i,
            &[
                "REPLACE", "RECOVERY", "CHECKSUM", "STATS", "FILE", "NOREWIND", "NOUNLOAD",
            ],
        )?;
        self.check_db_name(&name, what)?;
        if self.trancount > 0 {
            return Err(StmtError(vec![
                SqlError::new(
                    3021,
                    "Cannot perform a backup or restore operation within a transaction.",
                ),
                SqlError::new(3013, format!("{what} is terminating abnormally.")),
            ]));
        }
        let src = Self::open_backup(&path, what)?;
        drop(src);
        // SQL Server restores a database nobody uses: not this session (3102: it must
        // move to master first), no other session in it, no session holding an applock
        // in it (a session-owned applock keeps the database in use), no open transaction.
        if self.shared.in_db.lock().unwrap().contains(&self.spid) {
            return Err(StmtError(vec![
                SqlError::new(
                    3102,
                    format!("RESTORE cannot process database '{name}' because it is in use by this session. It is recommended that the master database be used when performing this operation."),
                ),
                SqlError::new(3013, format!("{what} is terminating abnormally.")),
            ]));
        }
        let busy = self
            .shared
            .in_txn
            .lock()
            .unwrap()
            .iter()
            .any(|s| *s != self.spid)
            || !self.shared.in_db.lock().unwrap().is_empty()
            || self
                .shared
                .locks
                .lock()
                .unwrap()
                .values()
                .flatten()
                .any(|h| h.owner == LockOwner::Session);
        if busy {
            return Err(StmtError(vec![
                SqlError::new(
                    3101,
                    "Exclusive access could not be obtained because the database is in use.",
                ),
                SqlError::new(3013, format!("{what} is terminating abnormally.")),
            ]));
        }
        if let Err(e) = self.conn.restore(
            DatabaseName::Main,
            &path,
            None::<fn(rusqlite::backup::Progress)>,
        ) {
            return Err(StmtError(vec![
                SqlError::new(3101, format!("Exclusive access could not be obtained because the database is in use. ({e})")),
                SqlError::new(3013, format!("{what} is terminating abnormally.")),
            ]));
        }
        self.shared.identity_last.lock().unwrap().clear();
        let pages = Self::page_count(&self.conn);
        resp.info(3014, &format!("RESTORE DATABASE successfully processed {pages} pages in 0.001 seconds (1.000 MB/sec)."));
        Ok(Outcome::none())
    }
}
