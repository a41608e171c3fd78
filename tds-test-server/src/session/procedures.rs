//! EXEC of the system procedures the engine uses (applocks).

use super::*;

impl Session {
    pub(super) fn exec_proc(
        &mut self,
        s: &[Tok],
        vars: &mut Vars,
        resp: &mut Response,
    ) -> SResult<Outcome> {
        let mut i = 1;
        let mut target = None;
        if let (Some(Tok::Var(v)), Some(eq)) = (s.get(1), s.get(2)) {
            if eq.is_op("=") {
                if vars.get(v).is_none() {
                    return Err(SqlError::new(
                        137,
                        format!("Must declare the scalar variable \"{v}\"."),
                    )
                    .into());
                }
                target = Some(v.clone());
                i = 3;
            }
        }
        // proc name, possibly sys./dbo. qualified
        let mut parts = Vec::new();
        let mut j = i;
        while let Some(p) = s.get(j).and_then(|t| t.ident()) {
            parts.push(p.to_string());
            j += 1;
            if s.get(j).is_some_and(|t| t.is_op(".")) {
                j += 1;
            } else {
                break;
            }
        }
        let proc = parts
            .last()
            .cloned()
            .unwrap_or_default()
            .to_ascii_lowercase();
        // arguments
        let mut named: HashMap<String, Value> = HashMap::new();
        let mut positional: Vec<Value> = Vec::new();
        if j < s.len() {
            for a in split_commas(&s[j..]) {
                if let (Some(Tok::Var(n)), Some(eq)) = (a.first(), a.get(1)) {
                    if eq.is_op("=") {
                        named.insert(
                            n.trim_start_matches('@').to_ascii_lowercase(),
                            self.eval(&a[2..], vars)?,
                        );
                        continue;
                    }
                }
                positional.push(self.eval(a, vars)?);
            }
        }
        let order: &[&str] = match proc.as_str() {
            "sp_getapplock" => &[
                "resource",
                "lockmode",
                "lockowner",
                "locktimeout",
                "dbprincipal",
            ],
            "sp_releaseapplock" => &["resource", "lockowner", "dbprincipal"],
            _ => {
                return Err(SqlError::new(
                    2812,
                    format!("Could not find stored procedure '{}'.", parts.join(".")),
                )
                .into());
            }
        };
        for (k, v) in positional.into_iter().enumerate() {
            if let Some(n) = order.get(k) {
                named.insert(n.to_string(), v);
            }
        }
        let text = |k: &str| match named.get(k) {
            Some(Value::Text(t)) => Some(t.clone()),
            Some(Value::Int(i)) => Some(i.to_string()),
            _ => None,
        };
        let Some(resource) = text("resource") else {
            return Err(SqlError::new(201, format!("Procedure or function '{proc}' expects parameter '@Resource', which was not supplied.")).into());
        };
        let owner = match text("lockowner").map(|o| o.to_ascii_lowercase()).as_deref() {
            None | Some("transaction") => LockOwner::Transaction,
            Some("session") => LockOwner::Session,
            Some(o) => {
                return Err(SqlError::new(
                    1221,
                    format!("tds-test-server: invalid @LockOwner '{o}'"),
                )
                .into())
            }
        };
        if owner == LockOwner::Transaction && self.trancount == 0 {
            return Err(SqlError::new(1223, format!("Cannot {} the application lock (Database Principal: 'public', Resource: '{resource}') because there is not a current transaction.", if proc == "sp_getapplock" { "obtain" } else { "release" })).into());
        }
        let rc = if proc == "sp_getapplock" {
            let Some(mode) = text("lockmode") else {
                return Err(SqlError::new(201, "Procedure or function 'sp_getapplock' expects parameter '@LockMode', which was not supplied.").into());
            };
            let exclusive = match mode.to_ascii_lowercase().as_str() {
                "shared" | "intentshared" => false,
                "update" | "intentexclusive" | "exclusive" => true,
                _ => {
                    return Err(SqlError::new(
                        1221,
                        format!("tds-test-server: invalid @LockMode '{mode}'"),
                    )
                    .into())
                }
            };
            let timeout = match named.get("locktimeout") {
                Some(Value::Int(t)) => *t,
                None | Some(Value::Null) => -1,
                _ => return Err(syntax_error("@LockTimeout").into()),
            };
            self.get_applock(&resource, &mode, exclusive, owner, timeout)
        } else {
            let mut locks = self.shared.locks.lock().unwrap();
            let holds = locks.entry(resource.clone()).or_default();
            match holds
                .iter()
                .position(|h| h.spid == self.spid && h.owner == owner)
            {
                Some(p) => {
                    holds[p].count -= 1;
                    if holds[p].count == 0 {
                        holds.remove(p);
                    }
                    if holds.is_empty() {
                        locks.remove(&resource);
                    }
                    0
                }
                None => {
                    return Err(SqlError::new(1223, format!("Cannot release the application lock (Database Principal: 'public', Resource: '{resource}') because it is not currently held.")).into());
                }
            }
        };
        resp.return_status(rc);
        if let Some(t) = target {
            let ty = vars.get(&t).and_then(|(ty, _)| *ty);
            vars.set(&t, ty, Value::Int(rc as i64));
        }
        Ok(Outcome::none())
    }

    pub(super) fn get_applock(
        &self,
        resource: &str,
        mode: &str,
        exclusive: bool,
        owner: LockOwner,
        timeout_ms: i64,
    ) -> i32 {
        let start = Instant::now();
        let mut waited = false;
        loop {
            {
                let mut locks = self.shared.locks.lock().unwrap();
                let holds = locks.entry(resource.to_string()).or_default();
                let conflict = holds
                    .iter()
                    .any(|h| h.spid != self.spid && (h.exclusive || exclusive));
                if !conflict {
                    if let Some(h) = holds
                        .iter_mut()
                        .find(|h| h.spid == self.spid && h.owner == owner)
                    {
                        h.count += 1;
                        if exclusive && !h.exclusive {
                            h.mode = mode.to_string();
                        }
                        h.exclusive |= exclusive;
                    } else {
                        holds.push(LockHold {
                            spid: self.spid,
                            exclusive,
                            mode: mode.to_string(),
                            owner,
                            count: 1,
                        });
                    }
                    return if waited { 1 } else { 0 };
                }
                if holds.is_empty() {
                    locks.remove(resource);
                }
            }
            if self.shared.stopping.load(Ordering::SeqCst)
                || (timeout_ms >= 0 && start.elapsed() >= Duration::from_millis(timeout_ms as u64))
            {
                return -1;
            }
            waited = true;
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `APPLOCK_MODE(principal, resource, owner)` /
    /// `APPLOCK_TEST(principal, resource, mode, owner)`.
    pub(super) fn applock_fn(&self, f: &str, a: &[String]) -> SResult<Value> {
        let owner_of = |o: &str| {
            if o.eq_ignore_ascii_case("session") {
                LockOwner::Session
            } else {
                LockOwner::Transaction
            }
        };
        let locks = self.shared.locks.lock().unwrap();
        let empty = Vec::new();
        if f == "APPLOCK_MODE" && a.len() == 3 {
            let holds = locks.get(&a[1]).unwrap_or(&empty);
            let owner = owner_of(&a[2]);
            let mode = holds
                .iter()
                .find(|h| h.spid == self.spid && h.owner == owner)
                .map(|h| h.mode.clone())
                .unwrap_or_else(|| "NoLock".into());
            return Ok(Value::Text(mode));
        }
        if f == "APPLOCK_TEST" && a.len() == 4 {
            let holds = locks.get(&a[1]).unwrap_or(&empty);
            let exclusive = !matches!(
                a[2].to_ascii_lowercase().as_str(),
                "shared" | "intentshared"
            );
            let conflict = holds
                .iter()
                .any(|h| h.spid != self.spid && (h.exclusive || exclusive));
            return Ok(Value::Int(!conflict as i64));
        }
        Err(syntax_error(f).into())
    }

    /// Releases this session's applocks (all, or only those of `owner`).
    pub(super) fn release_locks(&self, owner: Option<LockOwner>) {
        let mut locks = self.shared.locks.lock().unwrap();
        for holds in locks.values_mut() {
            holds.retain(|h| !(h.spid == self.spid && owner.is_none_or(|o| o == h.owner)));
        }
        locks.retain(|_, h| !h.is_empty());
    }
}
