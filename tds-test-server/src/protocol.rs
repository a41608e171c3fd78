//! TDS wire format: packets, PRELOGIN, LOGIN7, RPC parsing and token writers.
//!
//! Byte layouts follow MS-TDS and what the `tiberius` client (0.12) sends and
//! expects (see its `src/tds/codec/*`).

use std::io::{self, Read, Write};

pub const PKT_SQL_BATCH: u8 = 1;
pub const PKT_RPC: u8 = 3;
pub const PKT_REPLY: u8 = 4;
pub const PKT_ATTENTION: u8 = 6;
pub const PKT_LOGIN7: u8 = 16;
pub const PKT_PRELOGIN: u8 = 18;

pub const DONE_MORE: u16 = 0x1;
pub const DONE_ERROR: u16 = 0x2;
pub const DONE_COUNT: u16 = 0x10;
pub const DONE_ATTN: u16 = 0x20;

const TOKEN_RETURNSTATUS: u8 = 0x79;
const TOKEN_COLMETADATA: u8 = 0x81;
const TOKEN_ERROR: u8 = 0xAA;
const TOKEN_INFO: u8 = 0xAB;
const TOKEN_LOGINACK: u8 = 0xAD;
const TOKEN_ROW: u8 = 0xD1;
const TOKEN_ENVCHANGE: u8 = 0xE3;
const TOKEN_DONE: u8 = 0xFD;
const TOKEN_DONEPROC: u8 = 0xFE;
const TOKEN_DONEINPROC: u8 = 0xFF;

/// SQL_Latin1_General_CP1_CI_AS (LCID 0x0409, flags 0xD0, sort id 52).
const COLLATION: [u8; 5] = [0x09, 0x04, 0xD0, 0x00, 0x34];

pub const SERVER_NAME: &str = "tds-test-server";

/// A value travelling between the client, the SQL engine and SQLite.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// SQL Server column types the server can describe in COLMETADATA.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ColType {
    TinyInt,
    SmallInt,
    Int,
    BigInt,
    Bit,
    Float,
    /// `None` = nvarchar(max)
    NVarChar(Option<u16>),
    /// `None` = varbinary(max)
    VarBinary(Option<u16>),
    /// datetime2(7)
    DateTime2,
    /// datetime
    DateTime,
    /// date
    Date,
}

/// A SQL Server error to be sent as an ERROR token.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlError {
    pub number: u32,
    pub state: u8,
    pub class: u8,
    pub message: String,
}

impl SqlError {
    pub fn new(number: u32, message: impl Into<String>) -> Self {
        SqlError {
            number,
            state: 1,
            class: 16,
            message: message.into(),
        }
    }
}

/// Reads one complete TDS message (all packets up to END OF MESSAGE).
/// Returns `None` on a clean EOF before any byte of a new message.
pub fn read_message(stream: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut payload = Vec::new();
    let mut ty;
    let mut first = true;
    loop {
        let mut header = [0u8; 8];
        if first {
            let mut got = 0;
            while got < 8 {
                let n = stream.read(&mut header[got..])?;
                if n == 0 {
                    if got == 0 {
                        return Ok(None);
                    }
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                got += n;
            }
        } else {
            stream.read_exact(&mut header)?;
        }
        first = false;
        ty = header[0];
        let status = header[1];
        let len = u16::from_be_bytes([header[2], header[3]]) as usize;
        if len < 8 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad packet length",
            ));
        }
        let start = payload.len();
        payload.resize(start + len - 8, 0);
        stream.read_exact(&mut payload[start..])?;
        if status & 0x01 != 0 {
            break;
        }
    }
    Ok(Some((ty, payload)))
}

/// Writes `data` as a TDS message of type `ty`, split into packets.
pub fn write_message(
    stream: &mut impl Write,
    ty: u8,
    data: &[u8],
    packet_size: usize,
) -> io::Result<()> {
    let max = packet_size.clamp(512, 32767) - 8;
    let mut chunks: Vec<&[u8]> = data.chunks(max).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let n = chunks.len();
    let mut out = Vec::with_capacity(data.len() + 8 * n);
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == n;
        out.push(ty);
        out.push(if last { 1 } else { 0 });
        out.extend_from_slice(&((chunk.len() + 8) as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.push(((i + 1) % 256) as u8);
        out.push(0);
        out.extend_from_slice(chunk);
    }
    stream.write_all(&out)?;
    stream.flush()
}

/// PRELOGIN response: version, ENCRYPT_NOT_SUP, empty instance, THREADID of
/// length 0, MARS off.
pub fn prelogin_response() -> Vec<u8> {
    // (token, data)
    let fields: [(u8, Vec<u8>); 5] = [
        (0x00, vec![16, 0, 0x07, 0xD0, 0, 0]), // 16.0.2000
        (0x01, vec![0x02]),                    // ENCRYPT_NOT_SUP
        (0x02, vec![0x00]),                    // instance: ""
        (0x03, vec![]),                        // THREADID, length 0
        (0x04, vec![0x00]),                    // MARS off
    ];
    let mut out = Vec::new();
    let mut offset = (fields.len() * 5 + 1) as u16;
    for (tok, data) in &fields {
        out.push(*tok);
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        offset += data.len() as u16;
    }
    out.push(0xFF);
    for (_, data) in &fields {
        out.extend_from_slice(data);
    }
    out
}

#[derive(Debug, Default)]
pub struct Login {
    pub packet_size: u32,
    pub user: String,
    pub password: String,
    pub database: String,
}

fn utf16_at(buf: &[u8], offset: usize, chars: usize) -> Option<Vec<u8>> {
    buf.get(offset..offset + chars * 2).map(|s| s.to_vec())
}

fn decode_utf16(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

pub fn parse_login7(buf: &[u8]) -> Option<Login> {
    if buf.len() < 94 {
        return None;
    }
    let u16_at = |p: usize| u16::from_le_bytes([buf[p], buf[p + 1]]) as usize;
    let field = |p: usize| utf16_at(buf, u16_at(p), u16_at(p + 2));
    let packet_size = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
    let user = decode_utf16(&field(40)?);
    let mut pw = field(44)?;
    for b in pw.iter_mut() {
        let x = *b ^ 0xA5;
        *b = x.rotate_left(4);
    }
    let password = decode_utf16(&pw);
    let database = decode_utf16(&field(68)?);
    Some(Login {
        packet_size,
        user,
        password,
        database,
    })
}

/// Skips the ALL_HEADERS block at the start of SQLBatch / RPC payloads.
fn skip_all_headers(buf: &[u8]) -> usize {
    if buf.len() >= 4 {
        let total = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        // ALL_HEADERS is present when its total length is plausible (>= 4).
        if total >= 4 && total <= buf.len() && total <= 1024 {
            return total;
        }
    }
    0
}

pub fn parse_sql_batch(buf: &[u8]) -> String {
    let start = skip_all_headers(buf);
    decode_utf16(&buf[start..])
}

/// An RPC request: procedure (by id or name) and its parameters.
#[derive(Debug)]
pub struct RpcRequest {
    pub proc_id: Option<u16>,
    pub proc_name: Option<String>,
    pub params: Vec<(String, Value)>,
}

struct Cur<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let s = self
            .b
            .get(self.p..self.p + n)
            .ok_or_else(|| "truncated RPC request".to_string())?;
        self.p += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    fn plp(&mut self) -> Result<Option<Vec<u8>>, String> {
        let total = self.u64()?;
        if total == u64::MAX {
            return Ok(None);
        }
        let mut data = Vec::new();
        loop {
            let n = self.u32()? as usize;
            if n == 0 {
                break;
            }
            data.extend_from_slice(self.take(n)?);
        }
        Ok(Some(data))
    }
}

fn int_from_le(bytes: &[u8]) -> i64 {
    match bytes.len() {
        1 => bytes[0] as i64, // tinyint is unsigned
        2 => i16::from_le_bytes([bytes[0], bytes[1]]) as i64,
        4 => i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as i64,
        _ => {
            let mut a = [0u8; 8];
            a.copy_from_slice(&bytes[..8]);
            i64::from_le_bytes(a)
        }
    }
}

fn float_from_le(bytes: &[u8]) -> f64 {
    if bytes.len() == 4 {
        f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as f64
    } else {
        let mut a = [0u8; 8];
        a.copy_from_slice(&bytes[..8]);
        f64::from_le_bytes(a)
    }
}

/// Reads TYPE_INFO + value of one RPC parameter.
fn read_typed_value(c: &mut Cur) -> Result<Value, String> {
    let ty = c.u8()?;
    match ty {
        0x1F => Ok(Value::Null),
        0x30 => Ok(Value::Int(c.u8()? as i64)),
        0x32 => Ok(Value::Int((c.u8()? != 0) as i64)),
        0x34 => Ok(Value::Int(int_from_le(c.take(2)?))),
        0x38 => Ok(Value::Int(int_from_le(c.take(4)?))),
        0x7F => Ok(Value::Int(int_from_le(c.take(8)?))),
        0x3B => Ok(Value::Float(float_from_le(c.take(4)?))),
        0x3E => Ok(Value::Float(float_from_le(c.take(8)?))),
        // INTN, BITN, FLTN
        0x26 | 0x68 | 0x6D => {
            let _max = c.u8()?;
            let len = c.u8()? as usize;
            if len == 0 {
                return Ok(Value::Null);
            }
            let data = c.take(len)?;
            Ok(match ty {
                0x26 => Value::Int(int_from_le(data)),
                0x68 => Value::Int((data[0] != 0) as i64),
                _ => Value::Float(float_from_le(data)),
            })
        }
        // NVARCHAR, NCHAR, BIGVARCHAR, BIGCHAR
        0xE7 | 0xEF | 0xA7 | 0xAF => {
            let max = c.u16()?;
            c.take(5)?; // collation
            let data = if max == 0xFFFF {
                c.plp()?
            } else {
                let len = c.u16()?;
                if len == 0xFFFF {
                    None
                } else {
                    Some(c.take(len as usize)?.to_vec())
                }
            };
            Ok(match data {
                None => Value::Null,
                Some(d) if ty == 0xE7 || ty == 0xEF => Value::Text(decode_utf16(&d)),
                Some(d) => Value::Text(String::from_utf8_lossy(&d).into_owned()),
            })
        }
        // BIGVARBINARY, BIGBINARY
        0xA5 | 0xAD => {
            let max = c.u16()?;
            let data = if max == 0xFFFF {
                c.plp()?
            } else {
                let len = c.u16()?;
                if len == 0xFFFF {
                    None
                } else {
                    Some(c.take(len as usize)?.to_vec())
                }
            };
            Ok(data.map(Value::Blob).unwrap_or(Value::Null))
        }
        // DATEN
        0x28 => {
            let len = c.u8()? as usize;
            if len == 0 {
                return Ok(Value::Null);
            }
            let d = c.take(len)?;
            let days = u32::from_le_bytes([d[0], d[1], d[2], 0]) as i64;
            Ok(Value::Text(format_date(days + DAYS_0001_TO_1970)))
        }
        // TIMEN, DATETIME2N
        0x29 | 0x2A => {
            let scale = c.u8()? as u32;
            let len = c.u8()? as usize;
            if len == 0 {
                return Ok(Value::Null);
            }
            let d = c.take(len)?;
            if len > 8 || (ty == 0x2A && len < 3) {
                return Err("tds-test-server: bad time parameter".into());
            }
            let tlen = if ty == 0x29 { len } else { len - 3 };
            let mut t = [0u8; 8];
            t[..tlen].copy_from_slice(&d[..tlen]);
            let ticks = u64::from_le_bytes(t) * 10u64.pow(7 - scale.min(7));
            if ty == 0x29 {
                return Ok(Value::Text(format_time(ticks)));
            }
            let dd = &d[tlen..];
            let days = u32::from_le_bytes([dd[0], dd[1], dd[2], 0]) as i64;
            Ok(Value::Text(format_datetime(
                days + DAYS_0001_TO_1970,
                ticks,
            )))
        }
        // DATETIMEN
        0x6F => {
            let _max = c.u8()?;
            let len = c.u8()? as usize;
            match len {
                0 => Ok(Value::Null),
                8 => {
                    let d = c.take(8)?;
                    let days = i32::from_le_bytes([d[0], d[1], d[2], d[3]]) as i64;
                    let frac = u32::from_le_bytes([d[4], d[5], d[6], d[7]]) as u64;
                    let ticks = (frac * 10_000_000 + 150) / 300;
                    Ok(Value::Text(format_datetime(
                        days + DAYS_1900_TO_1970,
                        ticks,
                    )))
                }
                4 => {
                    let d = c.take(4)?;
                    let days = u16::from_le_bytes([d[0], d[1]]) as i64;
                    let mins = u16::from_le_bytes([d[2], d[3]]) as u64;
                    Ok(Value::Text(format_datetime(
                        days + DAYS_1900_TO_1970,
                        mins * 60 * 10_000_000,
                    )))
                }
                _ => Err("tds-test-server: bad datetime parameter".into()),
            }
        }
        other => Err(format!(
            "tds-test-server: unsupported RPC parameter type 0x{other:02X}"
        )),
    }
}

pub fn parse_rpc(buf: &[u8]) -> Result<RpcRequest, String> {
    let mut c = Cur {
        b: buf,
        p: skip_all_headers(buf),
    };
    let name_len = c.u16()?;
    let (proc_id, proc_name) = if name_len == 0xFFFF {
        (Some(c.u16()?), None)
    } else {
        let n = c.take(name_len as usize * 2)?;
        (None, Some(decode_utf16(n)))
    };
    let _flags = c.u16()?;
    let mut params = Vec::new();
    while c.p < buf.len() {
        let nlen = c.u8()? as usize;
        let name = decode_utf16(c.take(nlen * 2)?);
        let _status = c.u8()?;
        let value = read_typed_value(&mut c)?;
        params.push((name, value));
    }
    Ok(RpcRequest {
        proc_id,
        proc_name,
        params,
    })
}

fn put_b_varchar(out: &mut Vec<u8>, s: &str) {
    let units: Vec<u16> = s.encode_utf16().take(255).collect();
    out.push(units.len() as u8);
    for u in units {
        out.extend_from_slice(&u.to_le_bytes());
    }
}

fn put_us_varchar(out: &mut Vec<u8>, s: &str) {
    let units: Vec<u16> = s.encode_utf16().take(65535).collect();
    out.extend_from_slice(&(units.len() as u16).to_le_bytes());
    for u in units {
        out.extend_from_slice(&u.to_le_bytes());
    }
}

fn utf16_bytes(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// Accumulates response tokens.
#[derive(Default)]
pub struct Response {
    pub buf: Vec<u8>,
}

impl Response {
    pub fn login_ack(&mut self) {
        let mut body = vec![0x01]; // interface: SQL_TSQL
        body.extend_from_slice(&0x7400_0004u32.to_be_bytes());
        put_b_varchar(&mut body, "Microsoft SQL Server");
        body.extend_from_slice(&[16, 0, 0x07, 0xD0]);
        self.buf.push(TOKEN_LOGINACK);
        self.buf
            .extend_from_slice(&(body.len() as u16).to_le_bytes());
        self.buf.extend_from_slice(&body);
    }

    fn env_change(&mut self, body: &[u8]) {
        self.buf.push(TOKEN_ENVCHANGE);
        self.buf
            .extend_from_slice(&(body.len() as u16).to_le_bytes());
        self.buf.extend_from_slice(body);
    }

    pub fn env_string(&mut self, ty: u8, new: &str, old: &str) {
        let mut body = vec![ty];
        put_b_varchar(&mut body, new);
        put_b_varchar(&mut body, old);
        self.env_change(&body);
    }

    pub fn env_begin_tran(&mut self, desc: u64) {
        let mut body = vec![8, 8];
        body.extend_from_slice(&desc.to_le_bytes());
        body.push(0);
        self.env_change(&body);
    }

    /// ty: 9 = commit, 10 = rollback.
    pub fn env_end_tran(&mut self, ty: u8, desc: u64) {
        let mut body = vec![ty, 0, 8];
        body.extend_from_slice(&desc.to_le_bytes());
        self.env_change(&body);
    }

    fn message(&mut self, token: u8, e: &SqlError, class: u8) {
        let mut body = Vec::new();
        body.extend_from_slice(&e.number.to_le_bytes());
        body.push(e.state);
        body.push(class);
        put_us_varchar(&mut body, &e.message);
        put_b_varchar(&mut body, SERVER_NAME);
        put_b_varchar(&mut body, "");
        body.extend_from_slice(&1u32.to_le_bytes());
        self.buf.push(token);
        self.buf
            .extend_from_slice(&(body.len() as u16).to_le_bytes());
        self.buf.extend_from_slice(&body);
    }

    pub fn error(&mut self, e: &SqlError) {
        self.message(TOKEN_ERROR, e, e.class)
    }

    pub fn info(&mut self, number: u32, msg: &str) {
        self.message(TOKEN_INFO, &SqlError::new(number, msg), 0)
    }

    fn done_generic(&mut self, token: u8, status: u16, rows: u64) {
        self.buf.push(token);
        self.buf.extend_from_slice(&status.to_le_bytes());
        self.buf.extend_from_slice(&0u16.to_le_bytes()); // cur_cmd
        self.buf.extend_from_slice(&rows.to_le_bytes());
    }

    pub fn done(&mut self, status: u16, rows: u64) {
        self.done_generic(TOKEN_DONE, status, rows)
    }

    pub fn done_in_proc(&mut self, status: u16, rows: u64) {
        self.done_generic(TOKEN_DONEINPROC, status, rows)
    }

    pub fn done_proc(&mut self, status: u16, rows: u64) {
        self.done_generic(TOKEN_DONEPROC, status, rows)
    }

    pub fn return_status(&mut self, v: i32) {
        self.buf.push(TOKEN_RETURNSTATUS);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn col_metadata(&mut self, cols: &[(String, ColType)]) {
        self.buf.push(TOKEN_COLMETADATA);
        self.buf
            .extend_from_slice(&(cols.len() as u16).to_le_bytes());
        for (name, ty) in cols {
            self.buf.extend_from_slice(&0u32.to_le_bytes()); // user type
            self.buf.extend_from_slice(&0x0001u16.to_le_bytes()); // nullable
            match ty {
                ColType::TinyInt => self.buf.extend_from_slice(&[0x26, 1]),
                ColType::SmallInt => self.buf.extend_from_slice(&[0x26, 2]),
                ColType::Int => self.buf.extend_from_slice(&[0x26, 4]),
                ColType::BigInt => self.buf.extend_from_slice(&[0x26, 8]),
                ColType::Bit => self.buf.extend_from_slice(&[0x68, 1]),
                ColType::Float => self.buf.extend_from_slice(&[0x6D, 8]),
                ColType::NVarChar(n) => {
                    self.buf.push(0xE7);
                    let len = n.map(|n| n.saturating_mul(2)).unwrap_or(0xFFFF);
                    self.buf.extend_from_slice(&len.to_le_bytes());
                    self.buf.extend_from_slice(&COLLATION);
                }
                ColType::VarBinary(n) => {
                    self.buf.push(0xA5);
                    self.buf
                        .extend_from_slice(&n.unwrap_or(0xFFFF).to_le_bytes());
                }
                ColType::DateTime2 => self.buf.extend_from_slice(&[0x2A, 7]),
                ColType::DateTime => self.buf.extend_from_slice(&[0x6F, 8]),
                ColType::Date => self.buf.push(0x28),
            }
            put_b_varchar(&mut self.buf, name);
        }
    }

    fn plp(&mut self, data: Option<&[u8]>) {
        match data {
            None => self.buf.extend_from_slice(&u64::MAX.to_le_bytes()),
            Some(d) => {
                self.buf.extend_from_slice(&(d.len() as u64).to_le_bytes());
                if !d.is_empty() {
                    self.buf.extend_from_slice(&(d.len() as u32).to_le_bytes());
                    self.buf.extend_from_slice(d);
                }
                self.buf.extend_from_slice(&0u32.to_le_bytes());
            }
        }
    }

    fn short_len(&mut self, data: Option<&[u8]>) {
        match data {
            None => self.buf.extend_from_slice(&0xFFFFu16.to_le_bytes()),
            Some(d) => {
                self.buf.extend_from_slice(&(d.len() as u16).to_le_bytes());
                self.buf.extend_from_slice(d);
            }
        }
    }

    /// Writes a ROW token. Values must already be converted with
    /// [`convert_for_column`].
    pub fn row(&mut self, cols: &[(String, ColType)], values: &[Value]) {
        self.buf.push(TOKEN_ROW);
        for ((_, ty), v) in cols.iter().zip(values) {
            match (ty, v) {
                (ColType::NVarChar(n), v) => {
                    let data = match v {
                        Value::Text(s) => Some(utf16_bytes(s)),
                        _ => None,
                    };
                    if n.is_some() {
                        self.short_len(data.as_deref());
                    } else {
                        self.plp(data.as_deref());
                    }
                }
                (ColType::VarBinary(n), v) => {
                    let data = match v {
                        Value::Blob(b) => Some(b.as_slice()),
                        _ => None,
                    };
                    if n.is_some() {
                        self.short_len(data);
                    } else {
                        self.plp(data);
                    }
                }
                (_, Value::Null) => self.buf.push(0),
                (ColType::TinyInt, Value::Int(i)) => {
                    self.buf.push(1);
                    self.buf.push(*i as u8);
                }
                (ColType::SmallInt, Value::Int(i)) => {
                    self.buf.push(2);
                    self.buf.extend_from_slice(&(*i as i16).to_le_bytes());
                }
                (ColType::Int, Value::Int(i)) => {
                    self.buf.push(4);
                    self.buf.extend_from_slice(&(*i as i32).to_le_bytes());
                }
                (ColType::BigInt, Value::Int(i)) => {
                    self.buf.push(8);
                    self.buf.extend_from_slice(&i.to_le_bytes());
                }
                (ColType::Bit, Value::Int(i)) => {
                    self.buf.push(1);
                    self.buf.push((*i != 0) as u8);
                }
                (ColType::DateTime2 | ColType::DateTime | ColType::Date, Value::Text(t)) => {
                    let (days, ticks) = parse_datetime(t).unwrap_or((0, 0));
                    match ty {
                        ColType::DateTime2 => {
                            self.buf.push(8);
                            self.buf.extend_from_slice(&ticks.to_le_bytes()[..5]);
                            let d = (days - DAYS_0001_TO_1970) as u32;
                            self.buf.extend_from_slice(&d.to_le_bytes()[..3]);
                        }
                        ColType::Date => {
                            self.buf.push(3);
                            let d = (days - DAYS_0001_TO_1970) as u32;
                            self.buf.extend_from_slice(&d.to_le_bytes()[..3]);
                        }
                        _ => {
                            self.buf.push(8);
                            let d = (days - DAYS_1900_TO_1970) as i32;
                            self.buf.extend_from_slice(&d.to_le_bytes());
                            let frac = ((ticks as u128 * 300 + 5_000_000) / 10_000_000) as u32;
                            self.buf.extend_from_slice(&frac.to_le_bytes());
                        }
                    }
                }
                (ColType::Float, Value::Float(f)) => {
                    self.buf.push(8);
                    self.buf.extend_from_slice(&f.to_le_bytes());
                }
                _ => self.buf.push(0),
            }
        }
    }
}

fn type_name(t: &ColType) -> &'static str {
    match t {
        ColType::TinyInt => "tinyint",
        ColType::SmallInt => "smallint",
        ColType::Int => "int",
        ColType::BigInt => "bigint",
        ColType::Bit => "bit",
        ColType::Float => "float",
        ColType::NVarChar(_) => "nvarchar",
        ColType::VarBinary(_) => "varbinary",
        ColType::DateTime2 => "datetime2",
        ColType::DateTime => "datetime",
        ColType::Date => "date",
    }
}

/// Converts a SQLite value to what a column of type `ty` can carry, with SQL
/// Server's conversion errors (245, 8115) where it cannot.
pub fn convert_for_column(ty: &ColType, v: Value) -> Result<Value, SqlError> {
    let overflow = || {
        SqlError::new(
            8115,
            format!(
                "Arithmetic overflow error converting expression to data type {}.",
                type_name(ty)
            ),
        )
    };
    let conv_fail = |s: &str| {
        SqlError::new(
            245,
            format!(
                "Conversion failed when converting the nvarchar value '{s}' to data type {}.",
                type_name(ty)
            ),
        )
    };
    Ok(match (ty, v) {
        (_, Value::Null) => Value::Null,
        (ColType::NVarChar(_), Value::Text(s)) => Value::Text(s),
        (ColType::NVarChar(_), Value::Int(i)) => Value::Text(i.to_string()),
        (ColType::NVarChar(_), Value::Float(f)) => Value::Text(f.to_string()),
        (ColType::NVarChar(_), Value::Blob(b)) => {
            Value::Text(String::from_utf8_lossy(&b).into_owned())
        }
        (ColType::VarBinary(_), Value::Blob(b)) => Value::Blob(b),
        (ColType::VarBinary(_), Value::Text(s)) => Value::Blob(s.into_bytes()),
        (ColType::VarBinary(_), Value::Int(i)) => Value::Blob(i.to_be_bytes().to_vec()),
        (ColType::VarBinary(_), Value::Float(f)) => Value::Blob(f.to_be_bytes().to_vec()),
        (ColType::Float, Value::Int(i)) => Value::Float(i as f64),
        (ColType::Float, Value::Float(f)) => Value::Float(f),
        (ColType::Float, Value::Text(s)) => {
            Value::Float(s.trim().parse().map_err(|_| conv_fail(&s))?)
        }
        (ColType::Float, Value::Blob(_)) => return Err(conv_fail("<binary>")),
        (ColType::DateTime2 | ColType::DateTime | ColType::Date, v) => {
            let text = match v {
                Value::Text(t) => t,
                Value::Int(i) => i.to_string(),
                Value::Float(f) => f.to_string(),
                Value::Blob(_) => String::from("<binary>"),
                Value::Null => unreachable!(),
            };
            match parse_datetime(&text) {
                Some((days, ticks))
                    if (DAYS_0001_TO_1970..=DAYS_0001_TO_1970 + 3_652_058).contains(&days)
                        && (*ty != ColType::DateTime || days >= DAYS_1753_TO_1970) =>
                {
                    Value::Text(format_datetime(days, ticks))
                }
                _ => {
                    return Err(SqlError::new(
                        241,
                        "Conversion failed when converting date and/or time from character string.",
                    ))
                }
            }
        }
        (t, v) => {
            let i = match v {
                Value::Int(i) => i,
                Value::Float(f) => f.trunc() as i64,
                Value::Text(s) => s.trim().parse().map_err(|_| conv_fail(&s))?,
                _ => return Err(conv_fail("<binary>")),
            };
            let ok = match t {
                ColType::TinyInt => (0..=255).contains(&i),
                ColType::SmallInt => i16::try_from(i).is_ok(),
                ColType::Int => i32::try_from(i).is_ok(),
                _ => true,
            };
            if !ok {
                return Err(overflow());
            }
            if *t == ColType::Bit {
                Value::Int((i != 0) as i64)
            } else {
                Value::Int(i)
            }
        }
    })
}

/// Days from 1970-01-01 back to 0001-01-01 (negative).
pub const DAYS_0001_TO_1970: i64 = -719_162;
/// Days from 1970-01-01 back to 1900-01-01 (negative).
pub const DAYS_1900_TO_1970: i64 = -25_567;
const DAYS_1753_TO_1970: i64 = -79_257;

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn format_time(ticks: u64) -> String {
    let secs = ticks / 10_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:07}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ticks % 10_000_000
    )
}

/// `YYYY-MM-DD HH:MM:SS.fffffff` (the form stored in SQLite).
pub fn format_datetime(days: i64, ticks: u64) -> String {
    format!("{} {}", format_date(days), format_time(ticks))
}

/// Parses `YYYY-MM-DD[( |T)HH:MM[:SS[.f...]]][Z]` into (days since
/// 1970-01-01, 100 ns ticks since midnight).
pub fn parse_datetime(s: &str) -> Option<(i64, u64)> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = match s.find([' ', 'T']) {
        Some(p) => (&s[..p], s[p + 1..].trim()),
        None => (s, ""),
    };
    let mut dp = date.split('-');
    let y: i64 = dp.next()?.parse().ok()?;
    let m: u32 = dp.next()?.parse().ok()?;
    let d: u32 = dp.next()?.parse().ok()?;
    if dp.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    if civil_from_days(days) != (y, m, d) {
        return None;
    }
    if time.is_empty() {
        return Some((days, 0));
    }
    let (hms, frac) = match time.find('.') {
        Some(p) => (&time[..p], &time[p + 1..]),
        None => (time, ""),
    };
    let mut tp = hms.split(':');
    let h: u64 = tp.next()?.parse().ok()?;
    let mi: u64 = tp.next()?.parse().ok()?;
    let sec: u64 = match tp.next() {
        Some(x) => x.parse().ok()?,
        None => 0,
    };
    if tp.next().is_some() || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let mut f = 0u64;
    for (k, ch) in frac.chars().enumerate() {
        let dgt = ch.to_digit(10)? as u64;
        if k < 7 {
            f += dgt * 10u64.pow(6 - k as u32);
        }
    }
    Some((days, (h * 3600 + mi * 60 + sec) * 10_000_000 + f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1, 1, 1), DAYS_0001_TO_1970);
        assert_eq!(days_from_civil(1900, 1, 1), DAYS_1900_TO_1970);
        assert_eq!(days_from_civil(1753, 1, 1), DAYS_1753_TO_1970);
        let (d, t) = parse_datetime("2024-02-29T13:45:10.1234567").unwrap();
        assert_eq!(format_datetime(d, t), "2024-02-29 13:45:10.1234567");
        assert_eq!(
            parse_datetime("2024-03-01").map(|(d, t)| format_datetime(d, t)),
            Some("2024-03-01 00:00:00.0000000".to_string())
        );
        assert_eq!(parse_datetime("2023-02-29"), None);
        assert_eq!(parse_datetime("nope"), None);
    }

    #[test]
    fn prelogin_has_threadid_of_length_zero_and_no_encryption() {
        let p = prelogin_response();
        // option 3 (THREADID): offset then length 0
        let opt = p.chunks(5).find(|c| c[0] == 3).unwrap();
        assert_eq!(&opt[3..5], &[0, 0]);
        let enc = p.chunks(5).find(|c| c[0] == 1).unwrap();
        let off = u16::from_be_bytes([enc[1], enc[2]]) as usize;
        assert_eq!(p[off], 2);
    }
}
