//! The libraries Redis 7.0 gives scripts besides Lua's own: `cjson`, `bit`
//! and `cmsgpack`, written in Rust for mlua and checked against
//! redis-server 7.0.15 (which bundles lua-cjson 2.1.0, LuaBitOp 1.0.2 and
//! lua-cmsgpack 0.4.0).
//!
//! - `cjson.encode`, `cjson.decode`, `cjson.null`, with lua-cjson's default
//!   settings: numbers as `%.14g`, excessively sparse arrays an error, at
//!   most 1000 levels of nesting either way, lua-cjson's escapes (`/` as `\/`,
//!   control bytes and DEL as `\u00XX`, bytes >= 0x80 as they are) and its
//!   error messages. Strings are byte strings both ways; numbers are read as
//!   C's `strtod` reads them (`0x10`, `+1`, `NaN` and `Infinity` pass, as in
//!   Redis), and a NUL byte ends the text.
//! - `bit`: all of LuaBitOp (`tobit`, `tohex`, `bnot`, `band`, `bor`, `bxor`,
//!   `lshift`, `rshift`, `arshift`, `rol`, `ror`, `bswap`).
//! - `cmsgpack.pack`, `unpack`, `unpack_one`, `unpack_limit`, binary-safe,
//!   with lua-cmsgpack's encodings, its nesting cut-off (16) when packing and
//!   the Lua stack's limit (8000 slots) when unpacking.
//!
//! Left out: lua-cjson's settings functions (`encode_max_depth`,
//! `decode_max_depth`, `encode_number_precision`, `encode_sparse_array`,
//! `encode_keep_buffer`, `encode_invalid_numbers`, `decode_invalid_numbers`)
//! and `cjson.new` (scripts get the defaults), and Redis's `struct` library.
//!
//! Errors reach scripts as from Redis's C libraries: a string (not mlua's
//! error userdata), after the calling line's position (`user_script:1: `)
//! where `luaL_error` puts it, naming the function in `bad argument #1 to
//! 'tobit' (...)`. For that each function is a C closure ([`trampoline`])
//! around its Rust body, which raises what the body reports.

use mlua::{Function, LightUserData, Lua, MultiValue, Table, Value, ffi};
use evenkeel_types::float::format_g;
use std::os::raw::c_int;

pub(crate) fn install(lua: &Lua) -> mlua::Result<()> {
    let globals = lua.globals();
    globals.set("cjson", cjson(lua)?)?;
    globals.set("bit", bit(lua)?)?;
    globals.set("cmsgpack", cmsgpack(lua)?)?;
    Ok(())
}

// --- Raising errors as the C libraries do -----------------------------------

/// How a library function failed.
enum Fail {
    /// `luaL_error`: the message after the caller's position.
    Error(String),
    /// `luaL_argerror`: `bad argument #n to 'name' (message)`.
    Arg(c_int, String),
    /// An error of Lua itself (`lua_settable`'s "table index is nil"): no position.
    Raw(String),
    /// mlua's own (memory, ...), passed on as it is.
    Lua(mlua::Error),
}

impl From<mlua::Error> for Fail {
    fn from(e: mlua::Error) -> Self {
        Fail::Lua(e)
    }
}

type Res<T> = Result<T, Fail>;

fn error<T>(message: impl Into<String>) -> Res<T> {
    Err(Fail::Error(message.into()))
}

const CODE_ERROR: ffi::lua_Integer = 1;
const CODE_ARG: ffi::lua_Integer = 2;

/// Light userdata no library function returns, first in a body's answer:
/// a failure (then code, message, argument number), or results to spread
/// from a table (then the table and their count). Results given back as
/// mlua values would take a slot of mlua's reference stack each, of which
/// a Lua 5.1 state has fewer than 8000 (`cmsgpack.unpack` may return 7999).
static MARKERS: [u8; 2] = [0, 0];

fn marker(spread: bool) -> *mut std::ffi::c_void {
    &MARKERS[spread as usize] as *const u8 as *mut std::ffi::c_void
}

/// Every library function: calls the Rust body (upvalue 1) with its
/// arguments, and returns its results or raises the failure it reports.
/// Raised from this C function, called by the script, the error reads as a
/// C library's: `luaL_where(L, 1)` is the caller's line (nothing when the
/// caller is `pcall`) and `luaL_argerror` names the function as the caller
/// called it.
unsafe extern "C-unwind" fn trampoline(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls this with a valid state and room for LUA_MINSTACK
    // slots: one is used before the call, more only after lua_checkstack.
    // Nothing here needs dropping when lua_error (or an error out of the
    // body, raised through lua_call) leaves this frame.
    unsafe {
        let nargs = ffi::lua_gettop(state);
        ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
        ffi::lua_insert(state, 1);
        ffi::lua_call(state, nargs, ffi::LUA_MULTRET);
        let results = ffi::lua_gettop(state);
        let first = if results == 0 { std::ptr::null_mut() } else { ffi::lua_touserdata(state, 1) };
        if first == marker(true) {
            // The body counted the slots as lua-cmsgpack does (at most 7999).
            let n = ffi::lua_tointeger(state, 3) as c_int;
            ffi::lua_settop(state, 2);
            ffi::lua_remove(state, 1);
            if ffi::lua_checkstack(state, n) == 0 {
                ffi::lua_pushstring(state, c"stack overflow".as_ptr());
                ffi::lua_error(state);
            }
            for i in 1..=n {
                ffi::lua_rawgeti(state, 1, i as ffi::lua_Integer);
            }
            ffi::lua_remove(state, 1);
            return n;
        }
        if first != marker(false) {
            return results;
        }
        ffi::lua_checkstack(state, 2);
        match ffi::lua_tointeger(state, 2) {
            CODE_ARG => ffi::luaL_argerror(state, ffi::lua_tointeger(state, 4) as c_int, ffi::lua_tostring(state, 3)),
            CODE_ERROR => {
                ffi::luaL_where(state, 1);
                ffi::lua_pushvalue(state, 3);
                ffi::lua_concat(state, 2);
                ffi::lua_error(state)
            }
            _ => {
                ffi::lua_pushvalue(state, 3);
                ffi::lua_error(state)
            }
        }
    }
}

/// A library function: `body` behind the [`trampoline`].
fn lib_fn(lua: &Lua, body: impl Fn(&Lua, MultiValue) -> Res<MultiValue> + Send + 'static) -> mlua::Result<Function> {
    let inner = lua.create_function(move |lua, args: MultiValue| {
        let (code, message, narg) = match body(lua, args) {
            Ok(values) => return Ok(values),
            Err(Fail::Lua(e)) => return Err(e),
            Err(Fail::Error(m)) => (CODE_ERROR, m, 0),
            Err(Fail::Arg(narg, m)) => (CODE_ARG, m, narg),
            Err(Fail::Raw(m)) => (0, m, 0),
        };
        let failed = Value::LightUserData(LightUserData(marker(false)));
        Ok(MultiValue::from(vec![failed, Value::Integer(code as _), Value::String(lua.create_string(message)?), Value::Integer(narg as _)]))
    })?;
    // SAFETY: the closure pops the function exec_raw pushed and pushes one
    // C closure over it.
    unsafe { lua.exec_raw(inner, |state| ffi::lua_pushcclosure(state, trampoline, 1)) }
}

fn one(v: Value) -> MultiValue {
    MultiValue::from(vec![v])
}

/// A number, as lua_tonumber reads a number (mlua gives Lua 5.1's integral
/// numbers as Integer).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        Value::Integer(n) => Some(*n as f64),
        _ => None,
    }
}

/// `luaL_typename`, with "no value" for a missing argument.
fn type_name(v: Option<&Value>) -> &'static str {
    match v.map_or("no value", Value::type_name) {
        "integer" => "number",
        "lightuserdata" | "error" | "other" => "userdata",
        name => name,
    }
}

/// `luaL_checklstring`: a string, or a number as Lua 5.1 prints it.
fn check_bytes(args: &MultiValue, i: usize) -> Res<Vec<u8>> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(Value::Number(n)) => Ok(format_g(*n, 14).into_bytes()),
        Some(Value::Integer(n)) => Ok(format_g(*n as f64, 14).into_bytes()),
        other => Err(Fail::Arg(i as c_int + 1, format!("string expected, got {}", type_name(other)))),
    }
}

/// `luaL_checkinteger`, or `luaL_optinteger` with a default: Lua 5.1's
/// truncating cast to `lua_Integer` (i64::MIN out of range, as on x86).
fn check_integer(lua: &Lua, args: &MultiValue, i: usize, default: Option<i64>) -> Res<i64> {
    let n = match (args.get(i), default) {
        (None | Some(Value::Nil), Some(default)) => return Ok(default),
        (Some(v), _) => lua.coerce_number(v.clone())?,
        (None, None) => None,
    };
    match n {
        Some(n) if (-9223372036854775808.0..9223372036854775808.0).contains(&n) => Ok(n as i64),
        Some(_) => Ok(i64::MIN),
        None => Err(Fail::Arg(i as c_int + 1, format!("number expected, got {}", type_name(args.get(i))))),
    }
}

// --- cjson ------------------------------------------------------------------

/// `cjson.null`, what `null` decodes to: a NULL light userdata.
const NULL: Value = Value::LightUserData(LightUserData(std::ptr::null_mut()));
/// lua-cjson's default `encode_max_depth` and `decode_max_depth`.
const JSON_MAX_DEPTH: usize = 1000;

fn cjson(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("_NAME", "cjson")?;
    t.set("_VERSION", "2.1.0")?;
    t.set("null", NULL)?;
    // Lua's `next` (the base library is always there), to walk objects.
    let next: Function = lua.globals().raw_get("next")?;
    let encode = lib_fn(lua, move |lua, mut args| {
        if args.len() != 1 {
            return Err(Fail::Arg(1, "expected 1 argument".into()));
        }
        let mut out = Vec::new();
        json_encode(&mut out, args.pop_front().unwrap_or(Value::Nil), &next)?;
        Ok(one(Value::String(lua.create_string(out)?)))
    })?;
    let decode = lib_fn(lua, |lua, args| {
        if args.len() != 1 {
            return Err(Fail::Arg(1, "expected 1 argument".into()));
        }
        let text = check_bytes(&args, 0)?;
        // lua-cjson's check for UTF-16/32: a NUL in the first two bytes.
        if text.len() >= 2 && (text[0] == 0 || text[1] == 0) {
            return error("JSON parser does not support UTF-16 or UTF-32");
        }
        let mut parser = JsonParser { s: &text, pos: 0 };
        let token = parser.next_token();
        let value = parser.value(lua, token)?;
        let token = parser.next_token();
        if token.0 != Tok::Sym("T_END") {
            return Err(parser.unexpected("the end", &token));
        }
        Ok(one(value))
    })?;
    t.set("encode", encode)?;
    t.set("decode", decode)?;
    Ok(t)
}

/// A table being written: an array with its next index and its length, or
/// an object with the key written last (nil before the first).
enum Writing {
    Array(Table, i32, i32),
    Object(Table, Value),
}

/// lua-cjson's `json_append_data`, without recursion (tables nest 1000
/// deep, too deep for a 2 MiB stack in a debug build): tables being written
/// are kept in `open`, objects walked with Lua's `next`.
fn json_encode(out: &mut Vec<u8>, mut value: Value, next: &Function) -> Res<()> {
    let mut open: Vec<Writing> = Vec::new();
    loop {
        match value {
            Value::String(s) => json_string(out, &s.as_bytes()),
            Value::Number(_) | Value::Integer(_) => json_number(out, number(&value).unwrap_or_default())?,
            Value::Boolean(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
            Value::Nil => out.extend_from_slice(b"null"),
            Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
            Value::Table(t) => {
                let depth = open.len() + 1;
                if depth > JSON_MAX_DEPTH {
                    return error(format!("Cannot serialise, excessive nesting ({depth})"));
                }
                let len = json_array_length(&t)?;
                out.push(if len > 0 { b'[' } else { b'{' });
                open.push(if len > 0 { Writing::Array(t, 1, len) } else { Writing::Object(t, Value::Nil) });
            }
            other => return error(format!("Cannot serialise {}: type not supported", type_name(Some(&other)))),
        }
        // The next value: the next item of the innermost table still open.
        value = loop {
            match open.last_mut() {
                None => return Ok(()),
                Some(Writing::Array(t, i, len)) if *i <= *len => {
                    if *i > 1 {
                        out.push(b',');
                    }
                    *i += 1;
                    break t.raw_get(*i - 1)?;
                }
                Some(Writing::Object(t, key)) => {
                    let (k, v): (Value, Value) = next.call((t.clone(), key.clone()))?;
                    if k.is_nil() {
                        out.push(b'}');
                        open.pop();
                        continue;
                    }
                    if !key.is_nil() {
                        out.push(b',');
                    }
                    match &k {
                        // A number key is written as the number, in quotes.
                        Value::Number(_) | Value::Integer(_) => {
                            out.push(b'"');
                            json_number(out, number(&k).unwrap_or_default())?;
                            out.extend_from_slice(b"\":");
                        }
                        Value::String(s) => {
                            json_string(out, &s.as_bytes());
                            out.push(b':');
                        }
                        other => return error(format!("Cannot serialise {}: table key must be a number or string", type_name(Some(other)))),
                    }
                    *key = k;
                    break v;
                }
                Some(Writing::Array(..)) => {
                    out.push(b']');
                    open.pop();
                }
            }
        };
    }
}

fn json_number(out: &mut Vec<u8>, n: f64) -> Res<()> {
    if !n.is_finite() {
        return error("Cannot serialise number: must not be NaN or Inf");
    }
    out.extend_from_slice(format_g(n, 14).as_bytes());
    Ok(())
}

/// lua-cjson's escapes: `"`, `\`, `/`, its table for control bytes and DEL;
/// any other byte (UTF-8 or not) goes out as it is.
fn json_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' | b'\\' | b'/' => out.extend_from_slice(&[b'\\', c]),
            8 | 9 | 10 | 12 | 13 => out.extend_from_slice(&[b'\\', b"btn_fr"[(c - 8) as usize]]),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

/// lua-cjson's `lua_array_length`: the length when every key is a positive
/// integer (0 for `{}`, which is written `{}`), else -1 or less: an object.
/// Over 10 slots more than half holes is an error (the default
/// `encode_sparse_array(false, 2, 10)`). The largest key is kept in a C
/// `int`, which a key of 2^31 or more turns into INT_MIN (as on x86), so
/// such tables are objects, as in Redis.
fn json_array_length(t: &Table) -> Res<i32> {
    let (mut max, mut items) = (0i32, 0i32);
    for pair in t.pairs::<Value, Value>() {
        let Some(k) = number(&pair?.0) else { return Ok(-1) };
        if k < 1.0 || k.floor() != k {
            return Ok(-1);
        }
        if k > max as f64 {
            max = if k < 2147483648.0 { k as i32 } else { i32::MIN };
        }
        items += 1;
    }
    if max > items.saturating_mul(2) && max > 10 {
        return error("Cannot serialise table: excessively sparse array");
    }
    Ok(max)
}

/// lua-cjson's tokens: punctuation and the end by the names its errors
/// give them ("T_COLON"), `Error` with what was wrong ("invalid token").
#[derive(PartialEq)]
enum Tok {
    Sym(&'static str),
    Str(Vec<u8>),
    Num(f64),
    Bool(bool),
    Null,
    Error(&'static str),
}

impl Tok {
    fn name(&self) -> &'static str {
        match self {
            Tok::Sym(name) | Tok::Error(name) => name,
            Tok::Str(_) => "T_STRING",
            Tok::Num(_) => "T_NUMBER",
            Tok::Bool(_) => "T_BOOLEAN",
            Tok::Null => "T_NULL",
        }
    }
}

/// lua-cjson's decoder, reading the text as the C string it sees: past the
/// end, or at a NUL byte, a 0 (the end).
struct JsonParser<'a> {
    s: &'a [u8],
    pos: usize,
}

/// A table being read: an array with its next index, or an object with the
/// key of the value being read (bytes until it is stored: a Lua string held
/// by Rust would take one of mlua's fewer than 8000 reference slots).
struct Reading {
    t: Table,
    index: i64,
    key: Option<Vec<u8>>,
}

impl JsonParser<'_> {
    fn at(&self, i: usize) -> u8 {
        self.s.get(i).copied().unwrap_or(0)
    }

    fn starts_with(&self, i: usize, word: &[u8], any_case: bool) -> bool {
        word.iter().enumerate().all(|(k, w)| if any_case { self.at(i + k).eq_ignore_ascii_case(w) } else { self.at(i + k) == *w })
    }

    /// The next token and the 0-based offset an error reports for it.
    fn next_token(&mut self) -> (Tok, usize) {
        while matches!(self.at(self.pos), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let start = self.pos;
        let (token, len) = match self.at(start) {
            b'{' => (Tok::Sym("T_OBJ_BEGIN"), 1),
            b'}' => (Tok::Sym("T_OBJ_END"), 1),
            b'[' => (Tok::Sym("T_ARR_BEGIN"), 1),
            b']' => (Tok::Sym("T_ARR_END"), 1),
            b':' => (Tok::Sym("T_COLON"), 1),
            b',' => (Tok::Sym("T_COMMA"), 1),
            0 => (Tok::Sym("T_END"), 0),
            b'"' => return self.string_token(),
            b't' if self.starts_with(start, b"true", false) => (Tok::Bool(true), 4),
            b'f' if self.starts_with(start, b"false", false) => (Tok::Bool(false), 5),
            b'n' if self.starts_with(start, b"null", false) => (Tok::Null, 4),
            // With decode_invalid_numbers on (the default), strtod reads
            // what JSON does not: `+1`, `inf`, `NaN`.
            b'-' | b'+' | b'0'..=b'9' => return self.number_token(),
            b'i' | b'I' | b'n' | b'N' if self.starts_with(start, b"inf", true) || self.starts_with(start, b"nan", true) => return self.number_token(),
            _ => (Tok::Error("invalid token"), 0),
        };
        self.pos += len;
        (token, start)
    }

    fn number_token(&mut self) -> (Tok, usize) {
        let start = self.pos;
        let Some((n, end)) = self.strtod(start) else { return (Tok::Error("invalid number"), start) };
        self.pos = end;
        (Tok::Num(n), start)
    }

    /// glibc's `strtod` from `i`: the number and where it ends, or None when
    /// none starts there. It reads a sign, then inf/infinity, nan/nan(...),
    /// hex (with a fraction and a binary exponent) or decimal.
    fn strtod(&self, mut i: usize) -> Option<(f64, usize)> {
        let sign = if self.at(i) == b'-' { -1.0 } else { 1.0 };
        i += matches!(self.at(i), b'+' | b'-') as usize;
        // Where a run of digits (or of letters, digits and '_') from `j` ends.
        let run = |j: usize, radix: u32| (j..).find(|&k| !(self.at(k) as char).is_digit(radix) && (radix != 36 || self.at(k) != b'_')).unwrap_or(j);
        if self.starts_with(i, b"inf", true) {
            return Some((sign * f64::INFINITY, i + if self.starts_with(i, b"infinity", true) { 8 } else { 3 }));
        }
        if self.starts_with(i, b"nan", true) {
            let close = run(i + 4, 36);
            return Some((f64::NAN.copysign(sign), if self.at(i + 3) == b'(' && self.at(close) == b')' { close + 1 } else { i + 3 }));
        }
        let hex = self.at(i) == b'0' && (self.at(i + 1) | 0x20) == b'x';
        let (radix, digits) = if hex { (16, i + 2) } else { (10, i) };
        let int_end = run(digits, radix);
        let mut end = if self.at(int_end) == b'.' { run(int_end + 1, radix) } else { int_end };
        if int_end == digits && end <= digits + 1 {
            // No digit: "0x" alone is the number 0 and an 'x' after it.
            return if hex { Some((sign * 0.0, i + 1)) } else { None };
        }
        // An exponent (p: binary, for hex) only where digits follow it.
        let exp_start = end + 1 + matches!(self.at(end + 1), b'+' | b'-') as usize;
        let has_exp = (self.at(end) | 0x20) == if hex { b'p' } else { b'e' } && self.at(exp_start).is_ascii_digit();
        let exp_end = if has_exp { run(exp_start, 10) } else { end };
        if !hex {
            // Digits, '.', 'e' and a sign: Rust's parser rounds correctly, as glibc does.
            let n: f64 = std::str::from_utf8(&self.s[i..exp_end]).ok()?.parse().ok()?;
            return Some((sign * n, exp_end));
        }
        let m = self.s[digits..end].iter().filter_map(|&c| (c as char).to_digit(16)).fold(0f64, |m, d| m * 16.0 + d as f64);
        let mut exp = -4 * end.saturating_sub(int_end + 1) as i32;
        if has_exp {
            let e: i32 = std::str::from_utf8(&self.s[exp_start..exp_end]).ok()?.parse().unwrap_or(i32::MAX);
            exp = exp.saturating_add(if self.at(exp_start - 1) == b'-' { -e } else { e });
            end = exp_end;
        }
        Some((sign * m * 2f64.powi(exp), end))
    }

    fn string_token(&mut self) -> (Tok, usize) {
        let start = self.pos;
        self.pos += 1;
        let mut buf = Vec::new();
        loop {
            let (byte, len) = match self.at(self.pos) {
                b'"' => {
                    self.pos += 1;
                    return (Tok::Str(buf), start);
                }
                0 => return (Tok::Error("unexpected end of string"), self.pos),
                b'\\' => match self.at(self.pos + 1) {
                    b'u' => {
                        let Some((ch, len)) = self.unicode_escape() else { return (Tok::Error("invalid unicode escape code"), self.pos) };
                        buf.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                        self.pos += len;
                        continue;
                    }
                    e @ (b'"' | b'\\' | b'/') => (e, 2),
                    b'b' => (8, 2),
                    b'f' => (12, 2),
                    b'n' => (b'\n', 2),
                    b'r' => (b'\r', 2),
                    b't' => (b'\t', 2),
                    _ => return (Tok::Error("invalid escape code"), self.pos),
                },
                c => (c, 1),
            };
            buf.push(byte);
            self.pos += len;
        }
    }

    /// `\uXXXX`, or a UTF-16 surrogate pair of two, at `pos`: the character
    /// and the escape's length. Lone or reversed surrogates are invalid.
    fn unicode_escape(&self) -> Option<(char, usize)> {
        let hex4 = |i: usize| (0..4).try_fold(0u32, |acc, k| (self.at(i + k) as char).to_digit(16).map(|d| acc * 16 + d));
        let high = hex4(self.pos + 2)?;
        if high & 0xF800 != 0xD800 {
            return Some((char::from_u32(high)?, 6));
        }
        if high & 0x400 != 0 || self.at(self.pos + 6) != b'\\' || self.at(self.pos + 7) != b'u' {
            return None;
        }
        let low = hex4(self.pos + 8)?;
        if low & 0xFC00 != 0xDC00 {
            return None;
        }
        Some((char::from_u32((((high & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000)?, 12))
    }

    fn unexpected(&self, expected: &str, token: &(Tok, usize)) -> Fail {
        Fail::Error(format!("Expected {expected} but found {} at character {}", token.0.name(), token.1 + 1))
    }

    /// The value `token` starts, with all it holds: lua-cjson's
    /// `json_process_value`, without recursion (see [`json_encode`]).
    fn value(&mut self, lua: &Lua, mut token: (Tok, usize)) -> Res<Value> {
        let mut open: Vec<Reading> = Vec::new();
        loop {
            let mut value = match token.0 {
                Tok::Str(s) => Value::String(lua.create_string(s)?),
                Tok::Num(n) => Value::Number(n),
                Tok::Bool(b) => Value::Boolean(b),
                Tok::Null => NULL,
                Tok::Sym(bracket @ ("T_OBJ_BEGIN" | "T_ARR_BEGIN")) => {
                    let object = bracket == "T_OBJ_BEGIN";
                    if open.len() >= JSON_MAX_DEPTH {
                        // (sic: the offset after the bracket, not one more as elsewhere)
                        return error(format!("Found too many nested data structures ({}) at character {}", open.len() + 1, self.pos));
                    }
                    let t = lua.create_table()?;
                    let first = self.next_token();
                    if first.0 == Tok::Sym(if object { "T_OBJ_END" } else { "T_ARR_END" }) {
                        Value::Table(t)
                    } else {
                        let (key, next) = if object { self.key(first).map(|(k, next)| (Some(k), next))? } else { (None, first) };
                        open.push(Reading { t, index: 1, key });
                        token = next;
                        continue;
                    }
                }
                _ => return Err(self.unexpected("value", &token)),
            };
            // Store the value in the innermost table, then read what follows
            // it: a comma and the next item, or the table's end (the table
            // is then the value for the one around it).
            loop {
                let Some(o) = open.last_mut() else { return Ok(value) };
                let object = o.key.is_some();
                match o.key.take() {
                    Some(key) => o.t.raw_set(lua.create_string(key)?, value)?,
                    None => o.t.raw_set(o.index, value)?,
                }
                o.index += 1;
                let next = self.next_token();
                if next.0 == Tok::Sym(if object { "T_OBJ_END" } else { "T_ARR_END" }) {
                    value = Value::Table(o.t.clone());
                    open.pop();
                    continue;
                }
                if next.0 != Tok::Sym("T_COMMA") {
                    return Err(self.unexpected(if object { "comma or object end" } else { "comma or array end" }, &next));
                }
                token = self.next_token();
                if object {
                    let (key, next) = self.key(token)?;
                    (o.key, token) = (Some(key), next);
                }
                break;
            }
        }
    }

    /// An object's key at `token` and its colon: the key and the first token
    /// of its value.
    fn key(&mut self, token: (Tok, usize)) -> Res<(Vec<u8>, (Tok, usize))> {
        let Tok::Str(key) = token.0 else { return Err(self.unexpected("object key string", &token)) };
        let colon = self.next_token();
        if colon.0 != Tok::Sym("T_COLON") {
            return Err(self.unexpected("colon", &colon));
        }
        Ok((key, self.next_token()))
    }
}

// --- bit (LuaBitOp) ---------------------------------------------------------

/// LuaBitOp's `barg`: `lua_tonumber` (numeric strings pass), then the low 32
/// bits of `n + 2^52 + 2^51`, which is the number rounded (half to even)
/// modulo 2^32, and bitop's result for huge or non-finite numbers too. A 0
/// from something that is not a number is the error.
fn barg(lua: &Lua, args: &MultiValue, i: usize) -> Res<u32> {
    let n = match args.get(i) {
        Some(v) => lua.coerce_number(v.clone())?,
        None => None,
    };
    let b = (n.unwrap_or(0.0) + 6755399441055744.0).to_bits() as u32;
    if b == 0 && n.is_none() {
        return Err(Fail::Arg(i as c_int + 1, format!("number expected, got {}", type_name(args.get(i)))));
    }
    Ok(b)
}

/// Results are signed 32-bit numbers.
fn bits(b: u32) -> Res<MultiValue> {
    Ok(one(Value::Number(b as i32 as f64)))
}

fn bit(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    type Unary = fn(u32) -> u32;
    type Binary = fn(u32, u32) -> u32;
    let unary: [(&str, Unary); 3] = [("tobit", |b| b), ("bnot", |b| !b), ("bswap", u32::swap_bytes)];
    for (name, op) in unary {
        t.set(name, lib_fn(lua, move |lua, args| bits(op(barg(lua, &args, 0)?)))?)?;
    }
    let folds: [(&str, Binary); 3] = [("band", |a, b| a & b), ("bor", |a, b| a | b), ("bxor", |a, b| a ^ b)];
    for (name, op) in folds {
        let f = lib_fn(lua, move |lua, args| {
            // bitop reads the first argument, then the others from the last.
            let mut b = barg(lua, &args, 0)?;
            for i in (1..args.len()).rev() {
                b = op(b, barg(lua, &args, i)?);
            }
            bits(b)
        })?;
        t.set(name, f)?;
    }
    let shifts: [(&str, Binary); 5] = [
        ("lshift", |b, n| b << n),
        ("rshift", |b, n| b >> n),
        ("arshift", |b, n| ((b as i32) >> n) as u32),
        ("rol", u32::rotate_left),
        ("ror", u32::rotate_right),
    ];
    for (name, op) in shifts {
        t.set(name, lib_fn(lua, move |lua, args| bits(op(barg(lua, &args, 0)?, barg(lua, &args, 1)? & 31)))?)?;
    }
    let tohex = lib_fn(lua, |lua, args| {
        let b = barg(lua, &args, 0)?;
        // 8 digits unless given (a missing argument, not nil); fewer keep
        // the low ones; negative for upper case.
        let n = if args.len() < 2 { 8 } else { barg(lua, &args, 1)? as i32 };
        let mut hex = format!("{b:08x}").split_off(8 - n.unsigned_abs().min(8) as usize);
        if n < 0 {
            hex.make_ascii_uppercase();
        }
        Ok(one(Value::String(lua.create_string(hex)?)))
    })?;
    t.set("tohex", tohex)?;
    Ok(t)
}

// --- cmsgpack ---------------------------------------------------------------

/// Tables this deep pack as nil (lua-cmsgpack's LUACMSGPACK_MAX_NESTING,
/// which also ends tables that hold themselves).
const MP_MAX_NESTING: usize = 16;
/// Lua 5.1's LUAI_MAXCSTACK: the stack slots lua-cmsgpack's unpacking may
/// fill, which bounds the values it returns and how deep they nest.
const LUA_MAX_C_STACK: usize = 8000;
const TOO_MANY: &str = "too many return values at once; use unpack_one or unpack_limit instead.";

fn cmsgpack(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("_NAME", "cmsgpack")?;
    t.set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    let pack = lib_fn(lua, |lua, args| {
        if args.is_empty() {
            return Err(Fail::Arg(0, "MessagePack pack needs input.".into()));
        }
        let mut out = Vec::new();
        for v in args.iter() {
            mp_encode(&mut out, v, 0)?;
        }
        Ok(one(Value::String(lua.create_string(out)?)))
    })?;
    t.set("pack", pack)?;
    // (the C code reads the numbers before the string)
    t.set("unpack", lib_fn(lua, |lua, args| mp_unpack(lua, &check_bytes(&args, 0)?, 0, 0))?)?;
    let unpack_one = lib_fn(lua, |lua, args| {
        let offset = check_integer(lua, &args, 1, Some(0))?;
        mp_unpack(lua, &check_bytes(&args, 0)?, 1, offset)
    })?;
    t.set("unpack_one", unpack_one)?;
    let unpack_limit = lib_fn(lua, |lua, args| {
        let (limit, offset) = (check_integer(lua, &args, 1, None)?, check_integer(lua, &args, 2, Some(0))?);
        mp_unpack(lua, &check_bytes(&args, 0)?, limit, offset)
    })?;
    t.set("unpack_limit", unpack_limit)?;
    Ok(t)
}

/// A type byte (`code`) and the low `size` bytes of `n`, big-endian.
fn mp_put(out: &mut Vec<u8>, code: u8, n: u64, size: usize) {
    out.push(code);
    out.extend_from_slice(&n.to_be_bytes()[8 - size..]);
}

/// A string's, array's or map's header: its fix form under `fix_max`, else
/// the 8 (strings only), 16 or 32 bit length of `codes`.
fn mp_header(out: &mut Vec<u8>, len: usize, fix: u8, fix_max: usize, codes: [u8; 3]) {
    match len {
        _ if len < fix_max => out.push(fix | len as u8),
        0..=0xff if codes[0] != 0 => mp_put(out, codes[0], len as u64, 1),
        0..=0xffff => mp_put(out, codes[1], len as u64, 2),
        _ => mp_put(out, codes[2], len as u64, 4),
    }
}

fn mp_encode(out: &mut Vec<u8>, v: &Value, level: usize) -> mlua::Result<()> {
    match v {
        Value::String(s) => {
            mp_header(out, s.as_bytes().len(), 0xa0, 32, [0xd9, 0xda, 0xdb]);
            out.extend_from_slice(&s.as_bytes());
        }
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(n) => mp_int(out, *n),
        // Integral numbers in int64's range as the smallest integer; others
        // as a float when that holds them exactly, else a double.
        Value::Number(n) if n.trunc() == *n && (-9223372036854775808.0..9223372036854775808.0).contains(n) => mp_int(out, *n as i64),
        Value::Number(n) if (*n as f32) as f64 == *n => mp_put(out, 0xca, (*n as f32).to_bits() as u64, 4),
        Value::Number(n) => mp_put(out, 0xcb, n.to_bits(), 8),
        Value::Table(t) if level < MP_MAX_NESTING => {
            if mp_is_array(t)? {
                mp_header(out, t.raw_len(), 0x90, 16, [0, 0xdc, 0xdd]);
                for i in 1..=t.raw_len() {
                    mp_encode(out, &t.raw_get(i)?, level + 1)?;
                }
            } else {
                mp_header(out, t.pairs::<Value, Value>().count(), 0x80, 16, [0, 0xde, 0xdf]);
                for pair in t.pairs::<Value, Value>() {
                    let (k, v) = pair?;
                    mp_encode(out, &k, level + 1)?;
                    mp_encode(out, &v, level + 1)?;
                }
            }
        }
        // nil, cjson.null, functions, tables nested too deep...
        _ => out.push(0xc0),
    }
    Ok(())
}

/// lua-cmsgpack's `table_is_an_array`: all keys positive integers (in a C
/// `int`'s range) and the largest is their count; `{}` is an array.
fn mp_is_array(t: &Table) -> mlua::Result<bool> {
    let (mut count, mut max) = (0i64, 0i64);
    for pair in t.pairs::<Value, Value>() {
        match pair?.0 {
            Value::Number(n) if n > 0.0 && n as i32 as f64 == n => max = max.max(n as i64),
            Value::Integer(n) if n > 0 && n <= i32::MAX as i64 => max = max.max(n),
            _ => return Ok(false),
        }
        count += 1;
    }
    Ok(max == count)
}

fn mp_int(out: &mut Vec<u8>, n: i64) {
    let (code, size) = match n {
        -32..=127 => return out.push(n as u8),
        128..=0xff => (0xcc, 1),
        0x100..=0xffff => (0xcd, 2),
        0x1_0000..=0xffff_ffff => (0xce, 4),
        0x1_0000_0000.. => (0xcf, 8),
        -128..=-33 => (0xd0, 1),
        -32768..=-129 => (0xd1, 2),
        -2147483648..=-32769 => (0xd2, 4),
        _ => (0xd3, 8),
    };
    mp_put(out, code, n as u64, size);
}

/// lua-cmsgpack's `mp_unpack_full`: `limit` objects from `offset` and,
/// before them, the offset after them (-1 at the end); both 0: every
/// object, without the offset. Its messages print the numbers with `%d`.
fn mp_unpack(lua: &Lua, s: &[u8], limit: i64, offset: i64) -> Res<MultiValue> {
    let all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        // (sic: lua-cmsgpack prints the input's length as the limit)
        return error(format!("Invalid request to unpack with offset of {} and limit of {}.", offset as i32, s.len() as i32));
    }
    if offset as u64 > s.len() as u64 {
        return error(format!("Start offset {} greater than input length {}.", offset as i32, s.len() as i32));
    }
    let limit = if all { i32::MAX as i64 } else { limit };
    // The C function's stack holds its argument, then what it unpacks.
    let mut cur = MpCursor { s, pos: offset as usize, used: 1 };
    // The results go back in a table for the trampoline to spread (see
    // [`marker`]); the offset, if any, first.
    let results = lua.create_table()?;
    let (first, mut n) = (!all as usize, !all as usize);
    while cur.pos < s.len() && ((n - first) as i64) < limit {
        n += 1;
        results.raw_set(n, cur.value(lua)?)?;
    }
    if !all {
        cur.check_stack("in function mp_unpack_full")?;
        results.raw_set(1, if cur.pos == s.len() { -1.0 } else { cur.pos as f64 })?;
    }
    Ok(MultiValue::from(vec![Value::LightUserData(LightUserData(marker(true))), Value::Table(results), Value::Integer(n as _)]))
}

/// Reads MessagePack without recursion (it may nest thousands deep),
/// counting the Lua stack slots lua-cmsgpack's recursive C code would use,
/// to fail where Redis fails with Redis's "stack overflow" messages.
struct MpCursor<'a> {
    s: &'a [u8],
    pos: usize,
    used: usize,
}

/// A table being filled: its items still to read, the next array index,
/// the map key read before its value.
struct MpOpen {
    t: Table,
    array: bool,
    left: u32,
    index: i64,
    key: Option<MpKey>,
}

/// A string key is kept as bytes until it is stored: thousands of nested
/// maps would otherwise hold more Lua strings than mlua's reference stack takes.
enum MpKey {
    Bytes(Vec<u8>),
    Other(Value),
}

impl MpCursor<'_> {
    fn need(&self, n: usize) -> Res<()> {
        if self.s.len() - self.pos < n { error("Missing bytes in input.") } else { Ok(()) }
    }

    /// `luaL_checkstack(L, 1, what)`.
    fn check_stack(&self, what: &str) -> Res<()> {
        if self.used + 1 > LUA_MAX_C_STACK { error(format!("stack overflow ({what})")) } else { Ok(()) }
    }

    fn value(&mut self, lua: &Lua) -> Res<Value> {
        let mut open: Vec<MpOpen> = Vec::new();
        loop {
            let (mut v, table) = self.item(lua)?;
            if let (Value::Table(t), Some((array, left @ 1..))) = (&v, table) {
                self.used += array as usize; // an array pushes each item's index first
                open.push(MpOpen { t: t.clone(), array, left, index: 1, key: None });
                continue;
            }
            // Store the value in the innermost table; a table now full is
            // the value for the one around it.
            loop {
                let Some(o) = open.last_mut() else { return Ok(v) };
                if o.array {
                    o.t.raw_set(o.index, v)?;
                    o.index += 1;
                } else if let Some(key) = o.key.take() {
                    match key {
                        MpKey::Bytes(b) => o.t.raw_set(lua.create_string(b)?, v)?,
                        MpKey::Other(Value::Nil) => return Err(Fail::Raw("table index is nil".into())),
                        MpKey::Other(Value::Number(n)) if n.is_nan() => return Err(Fail::Raw("table index is NaN".into())),
                        MpKey::Other(key) => o.t.raw_set(key, v)?,
                    }
                } else {
                    o.key = Some(match v {
                        Value::String(s) => MpKey::Bytes(s.as_bytes().to_vec()),
                        v => MpKey::Other(v),
                    });
                    break;
                }
                self.used -= 2; // lua_settable pops the key and the value
                o.left -= 1;
                if o.left > 0 {
                    self.used += o.array as usize;
                    break;
                }
                v = Value::Table(o.t.clone());
                open.pop();
            }
        }
    }

    /// One item: a value, or a new table and (is it an array, its length).
    fn item(&mut self, lua: &Lua) -> Res<(Value, Option<(bool, u32)>)> {
        self.need(1)?;
        self.check_stack(TOO_MANY)?;
        self.used += 1;
        let c = self.s[self.pos];
        // The size of what follows the type byte: a number (for 0xca..=0xd3
        // in its low two bits) or the length of a string, array or map.
        let size = match c {
            0xca..=0xd3 => 1 << (c & 3),
            0xd9 => 1,
            0xda | 0xdc | 0xde => 2,
            0xdb | 0xdd | 0xdf => 4,
            _ => 0,
        };
        self.need(1 + size)?;
        let n = self.s[self.pos + 1..self.pos + 1 + size].iter().fold(0u64, |acc, &b| acc << 8 | b as u64);
        self.pos += 1 + size;
        let len = match c {
            0xa0..=0xbf => (c & 0x1f) as usize,
            0x80..=0x9f => (c & 0xf) as usize,
            _ => n as usize,
        };
        let v = match c {
            0x00..=0x7f => Value::Number(c as f64),
            0xe0..=0xff => Value::Number(c as i8 as f64),
            0xc0 => Value::Nil,
            0xc2 | 0xc3 => Value::Boolean(c == 0xc3),
            0xca => Value::Number(f32::from_bits(n as u32) as f64),
            0xcb => Value::Number(f64::from_bits(n)),
            0xcc..=0xce => Value::Number(n as f64),
            0xcf | 0xd3 => Value::Number(n as i64 as f64), // uint 64 too: pushed as a signed lua_Integer
            0xd0 => Value::Number(n as u8 as i8 as f64),
            0xd1 => Value::Number(n as u16 as i16 as f64),
            0xd2 => Value::Number(n as u32 as i32 as f64),
            0xa0..=0xbf | 0xd9..=0xdb => {
                self.need(len)?;
                let s = lua.create_string(&self.s[self.pos..self.pos + len])?;
                self.pos += len;
                Value::String(s)
            }
            0x80..=0x9f | 0xdc..=0xdf => {
                let array = matches!(c, 0x90..=0x9f | 0xdc | 0xdd);
                if array {
                    self.check_stack("in function mp_decode_to_lua_array")?;
                }
                return Ok((Value::Table(lua.create_table()?), Some((array, len as u32))));
            }
            _ => return error("Bad data format in input."),
        };
        Ok((v, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Helpers for the cases, on the chunk's first line so that errors read
    /// `user_script:1:` as in Redis: `hex(s)`; `err(f, ...)`, pcall's error
    /// as "type: message"; `all(...)`, the values joined by spaces (cjson.null
    /// as "null"); `dump(t)`, a table with its keys sorted.
    const PRELUDE: &str = r#"local function hex(s) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end)) end local function err(f, ...) local ok, e = pcall(f, ...) return ok and 'no error' or type(e) .. ': ' .. e end local function all(...) local t = {n = select('#', ...), ...} for i = 1, t.n do t[i] = t[i] == cjson.null and 'null' or tostring(t[i]) end return table.concat(t, ' ', 1, t.n) end local function dump(v) if type(v) ~= 'table' then return all(v) end local keys = {} for k in pairs(v) do keys[#keys + 1] = k end table.sort(keys, function(a, b) return tostring(a) < tostring(b) end) for i, k in ipairs(keys) do keys[i] = tostring(k) .. '=' .. dump(v[k]) end return '{' .. table.concat(keys, ',') .. '}' end"#;

    /// Runs each case (Lua returning one string) as Redis runs a script (a
    /// chunk named `@user_script`) and compares its answer with what
    /// redis-server 7.0.15 answered to the same Lua (`EVAL "<PRELUDE> <case>" 0`).
    fn check(cases: &[(&str, &str)]) {
        let lua = Lua::new();
        install(&lua).expect("install");
        for (code, expected) in cases {
            let got: mlua::LuaString = lua.load(format!("{PRELUDE} {code}")).set_name("@user_script").eval().unwrap_or_else(|e| panic!("{code}: {e}"));
            assert_eq!(got.to_string_lossy(), *expected, "{code}");
        }
    }

    /// cjson.encode: arrays, objects, numbers as %.14g, lua-cjson's escapes.
    #[test]
    fn cjson_encode() {
        check(&[
            (r#"return cjson.encode({a={1,2,3},b='x/y'})"#, r#"{"a":[1,2,3],"b":"x\/y"}"#),
            (
                r#"return cjson.encode({1, -1, 0.1, 1/3, 1e14, 1e15, 123456789012345, 2^53, -0.0, 1e-7, 1e300, 12345678901234})"#,
                r#"[1,-1,0.1,0.33333333333333,1e+14,1e+15,1.2345678901234e+14,9.007199254741e+15,-0,1e-07,1e+300,12345678901234]"#,
            ),
            (
                r#"return cjson.encode({1e-5, 0.0001, 5e-324, 2^-20, 99999999999999.5, 0.1 + 0.2})"#,
                r#"[1e-05,0.0001,4.9406564584125e-324,9.5367431640625e-07,1e+14,0.3]"#,
            ),
            (
                r#"return cjson.encode({}) .. ' ' .. cjson.encode({{}, {{}}}) .. ' ' .. cjson.encode({true, false, cjson.null})"#,
                r#"{} [{},[{}]] [true,false,null]"#,
            ),
            (r#"return cjson.encode(nil) .. ' ' .. cjson.encode(cjson.null) .. ' ' .. cjson.encode('') .. ' ' .. cjson.encode(12)"#, r#"null null "" 12"#),
            (
                r#"return cjson.encode({1, 2, nil, 4}) .. ' ' .. cjson.encode({[2] = 'b'}) .. ' ' .. cjson.encode({[10] = 1})"#,
                r#"[1,2,null,4] [null,"b"] [null,null,null,null,null,null,null,null,null,1]"#,
            ),
            (r#"return cjson.encode({[1]=1, [2]=2, [3]=3, [4]=4, [5]=5, [6]=6, [12]=3})"#, r#"[1,2,3,4,5,6,null,null,null,null,null,3]"#),
            (
                r#"return cjson.encode({[1.5] = 1}) .. cjson.encode({[-1] = 1}) .. cjson.encode({[0] = 1}) .. cjson.encode({[1e20] = 1}) .. cjson.encode({[2^31] = 1})"#,
                r#"{"1.5":1}{"-1":1}{"0":1}{"1e+20":1}{"2147483648":1}"#,
            ),
            (r#"return dump(cjson.decode(cjson.encode({1, 2, x = 3})))"#, r#"{1=1,2=2,x=3}"#),
            (r#"return cjson.encode({k = {x = cjson.null}})"#, r#"{"k":{"x":null}}"#),
            (
                r#"local s = '' for i = 0, 255 do s = s .. string.char(i) end return hex(cjson.encode(s))"#,
                r#"225c75303030305c75303030315c75303030325c75303030335c75303030345c75303030355c75303030365c75303030375c625c745c6e5c75303030625c665c725c75303030655c75303030665c75303031305c75303031315c75303031325c75303031335c75303031345c75303031355c75303031365c75303031375c75303031385c75303031395c75303031615c75303031625c75303031635c75303031645c75303031655c753030316620215c22232425262728292a2b2c2d2e5c2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e5c7530303766808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff22"#,
            ),
            (r#"return hex(cjson.encode({'\226\130\172', '\128\255'}))"#, r#"5b22e282ac222c2280ff225d"#),
            (r#"local t = {} local c = t for i = 1, 999 do c[1] = {} c = c[1] end return #cjson.encode(t)"#, r#"2000"#),
        ]);
    }

    /// cjson.decode: tables, cjson.null, strtod's numbers, escapes.
    #[test]
    fn cjson_decode() {
        check(&[
            (r#"return dump(cjson.decode('{"a":{"b":[1,null,3]},"c":"d"}'))"#, r#"{a={b={1=1,2=null,3=3}},c=d}"#),
            (r#"local t = cjson.decode('[1,null,3]') return all(#t, t[2] == cjson.null, type(cjson.null), cjson.null == nil)"#, r#"3 true userdata false"#),
            (
                r#"return all(cjson.decode('  [ 1 , 2 ] ')[2], cjson.decode('true'), cjson.decode('false'), cjson.decode('null'), cjson.decode('""'))"#,
                r#"2 true false null "#,
            ),
            (r#"return all(cjson.decode('1.5e3'), cjson.decode('-0'), cjson.decode('1e400'), cjson.decode('1.'), cjson.decode('01'))"#, r#"1500 -0 inf 1 1"#),
            (
                r#"return all(cjson.decode('+1'), cjson.decode('0x10'), cjson.decode('0x1.8p1'), cjson.decode('-.5'), cjson.decode('NaN'), cjson.decode('-Infinity'))"#,
                r#"1 16 3 -0.5 nan -inf"#,
            ),
            (r#"return hex(cjson.decode('"\\u0000\\u00e9\\ud83d\\ude00\\/\\b\\f\\n\\r\\t\\"\\\\"'))"#, r#"00c3a9f09f98802f080c0a0d09225c"#),
            (r#"return hex(cjson.decode('"\1\128\255"'))"#, r#"0180ff"#),
            (r#"return all(cjson.decode('{"a":1,"a":2}').a, cjson.decode(123), cjson.decode('12\0x'))"#, r#"2 123 12"#),
            (r#"return #cjson.encode(cjson.decode(string.rep('[', 1000) .. string.rep(']', 1000)))"#, r#"2000"#),
        ]);
    }

    /// cjson's error messages, positions and the caller's line.
    #[test]
    fn cjson_errors() {
        check(&[
            (r#"return err(cjson.encode, function() end)"#, r#"string: Cannot serialise function: type not supported"#),
            (r#"return err(cjson.encode, coroutine.create(function() end))"#, r#"string: Cannot serialise thread: type not supported"#),
            (r#"return err(cjson.encode, {[true] = 1})"#, r#"string: Cannot serialise boolean: table key must be a number or string"#),
            (
                r#"return err(cjson.encode, 0/0) .. ' / ' .. err(cjson.encode, {[1/0] = 1})"#,
                r#"string: Cannot serialise number: must not be NaN or Inf / string: Cannot serialise number: must not be NaN or Inf"#,
            ),
            (r#"return err(cjson.encode, {[1] = 1, [2] = 2, [11] = 3})"#, r#"string: Cannot serialise table: excessively sparse array"#),
            (r#"local t = {} t[1] = t return err(cjson.encode, t)"#, r#"string: Cannot serialise, excessive nesting (1001)"#),
            (
                r#"return err(cjson.encode) .. ' / ' .. err(cjson.encode, 1, 2)"#,
                r#"string: bad argument #1 to '?' (expected 1 argument) / string: bad argument #1 to '?' (expected 1 argument)"#,
            ),
            (r#"return err(function() return cjson.encode(type) end)"#, r#"string: user_script:1: Cannot serialise function: type not supported"#),
            (
                r#"return err(cjson.decode, '') .. ' / ' .. err(cjson.decode, 'x') .. ' / ' .. err(cjson.decode, '[1,]')"#,
                r#"string: Expected value but found T_END at character 1 / string: Expected value but found invalid token at character 1 / string: Expected value but found T_ARR_END at character 4"#,
            ),
            (
                r#"return err(cjson.decode, '{"a":1,}') .. ' / ' .. err(cjson.decode, '{1:2}') .. ' / ' .. err(cjson.decode, '{"a" 1}')"#,
                r#"string: Expected object key string but found T_OBJ_END at character 8 / string: Expected object key string but found T_NUMBER at character 2 / string: Expected colon but found T_NUMBER at character 6"#,
            ),
            (
                r#"return err(cjson.decode, '[1 2]') .. ' / ' .. err(cjson.decode, '[1]x') .. ' / ' .. err(cjson.decode, '1e')"#,
                r#"string: Expected comma or array end but found T_NUMBER at character 4 / string: Expected the end but found invalid token at character 4 / string: Expected the end but found invalid token at character 2"#,
            ),
            (
                r#"return err(cjson.decode, '"abc') .. ' / ' .. err(cjson.decode, '"a\\qb"') .. ' / ' .. err(cjson.decode, '"\\ud800"')"#,
                r#"string: Expected value but found unexpected end of string at character 5 / string: Expected value but found invalid escape code at character 3 / string: Expected value but found invalid unicode escape code at character 2"#,
            ),
            (
                r#"return err(cjson.decode, '-') .. ' / ' .. err(cjson.decode, 'nul') .. ' / ' .. err(cjson.decode, '.5')"#,
                r#"string: Expected value but found invalid number at character 1 / string: Expected value but found invalid token at character 1 / string: Expected value but found invalid token at character 1"#,
            ),
            (
                r#"return err(cjson.decode, 'x\0y') .. ' / ' .. err(cjson.decode, {}) .. ' / ' .. err(cjson.decode)"#,
                r#"string: JSON parser does not support UTF-16 or UTF-32 / string: bad argument #1 to '?' (string expected, got table) / string: bad argument #1 to '?' (expected 1 argument)"#,
            ),
            (
                r#"return err(cjson.decode, string.rep('[', 1001) .. string.rep(']', 1001))"#,
                r#"string: Found too many nested data structures (1001) at character 1001"#,
            ),
            (r#"return err(cjson.decode, '  ' .. string.rep('{"a":', 1001))"#, r#"string: Found too many nested data structures (1001) at character 5003"#),
            (r#"return err(function() return cjson.decode('[') end)"#, r#"string: user_script:1: Expected value but found T_END at character 2"#),
        ]);
    }

    /// LuaBitOp: 32-bit wrapping and rounding, signed results, tohex.
    #[test]
    fn bit_ops() {
        check(&[
            (
                r#"return all(bit.tobit(0xffffffff), bit.tobit(2^32 + 5), bit.tobit(1.5), bit.tobit(2.5), bit.tobit(-1.5), bit.tobit(2^53 + 2), bit.tobit(1e100), bit.tobit(1/0), bit.tobit('0x10'))"#,
                r#"-1 5 2 2 -2 1 630506365 0 16"#,
            ),
            (
                r#"return all(bit.bnot(0), bit.band(0xff, 0x0f, 0x3), bit.bor(1, 2, 4, 8), bit.bxor(0xff, 0x0f), bit.band(5), bit.bswap(0x12345678))"#,
                r#"-1 3 15 240 5 2018915346"#,
            ),
            (
                r#"return all(bit.lshift(1, 31), bit.lshift(1, 32), bit.lshift(1, -1), bit.rshift(-1, 28), bit.arshift(-256, 4), bit.arshift(-1, 31))"#,
                r#"-2147483648 1 -2147483648 15 -16 -1"#,
            ),
            (r#"return all(bit.rol(0x12345678, 12), bit.ror(0x12345678, 12), bit.rol(1, 0), bit.ror(1, -1))"#, r#"1164411171 1736516421 1 2"#),
            (
                r#"return all(bit.tohex(1), bit.tohex(-1), bit.tohex(0xdeadbeef, -8), bit.tohex(255, 2), bit.tohex(255, -4), bit.tohex(255, 0), bit.tohex(0x12345678, 20), bit.tohex(255, 3.7))"#,
                r#"00000001 ffffffff DEADBEEF ff 00FF  12345678 00ff"#,
            ),
        ]);
    }

    /// LuaBitOp's argument errors (arguments read first, then last to second).
    #[test]
    fn bit_errors() {
        check(&[
            (
                r#"return err(bit.tobit, 'x') .. ' / ' .. err(bit.tobit) .. ' / ' .. err(bit.tobit, nil) .. ' / ' .. err(bit.tobit, {})"#,
                r#"string: bad argument #1 to '?' (number expected, got string) / string: bad argument #1 to '?' (number expected, got no value) / string: bad argument #1 to '?' (number expected, got nil) / string: bad argument #1 to '?' (number expected, got table)"#,
            ),
            (
                r#"return err(bit.band, 1, 'x', 'y') .. ' / ' .. err(bit.bor) .. ' / ' .. err(bit.rshift, 5)"#,
                r#"string: bad argument #3 to '?' (number expected, got string) / string: bad argument #1 to '?' (number expected, got no value) / string: bad argument #2 to '?' (number expected, got no value)"#,
            ),
            (r#"return err(function() return bit.tohex(255, nil) end)"#, r#"string: user_script:1: bad argument #2 to 'tohex' (number expected, got nil)"#),
            (r#"return err(function() return bit.band('x', 1) end)"#, r#"string: user_script:1: bad argument #1 to 'band' (number expected, got string)"#),
        ]);
    }

    /// cmsgpack.pack: smallest ints, float when exact else double, str8/16/32, arrays, maps, nesting cut-off.
    #[test]
    fn cmsgpack_pack() {
        check(&[
            (r#"return hex(cmsgpack.pack(1, 2.5, 'ab', {1, 2}, {a = 1}))"#, r#"01ca40200000a2616292010281a16101"#),
            (
                r#"return hex(cmsgpack.pack(0, 127, 128, 255, 256, 65535, 65536, 2^32 - 1, 2^32, 2^53, 2^63, -2^63))"#,
                r#"007fcc80ccffcd0100cdffffce00010000ceffffffffcf0000000100000000cf0020000000000000ca5f000000d38000000000000000"#,
            ),
            (
                r#"return hex(cmsgpack.pack(-1, -32, -33, -128, -129, -32768, -32769, -2^31, -2^31 - 1))"#,
                r#"ffe0d0dfd080d1ff7fd18000d2ffff7fffd280000000d3ffffffff7fffffff"#,
            ),
            (
                r#"return hex(cmsgpack.pack(0.1, 1.5, -0.0, 1e300, 3.4028234663852886e38, math.huge, -math.huge))"#,
                r#"cb3fb999999999999aca3fc0000000cb7e37e43c8800759cca7f7fffffca7f800000caff800000"#,
            ),
            (r#"return hex(cmsgpack.pack(nil, true, false, cjson.null, type, {}, {1, nil, 3}, {[1.5] = 1}))"#, r#"c0c3c2c0c090820101030381ca3fc0000001"#),
            (
                r#"return hex(cmsgpack.pack(string.rep('a', 31))):sub(1, 4) .. ' ' .. hex(cmsgpack.pack(string.rep('b', 32))):sub(1, 6) .. ' ' .. hex(cmsgpack.pack(string.rep('x', 300))):sub(1, 8) .. ' ' .. hex(cmsgpack.pack(string.rep('x', 70000))):sub(1, 12)"#,
                r#"bf61 d92062 da012c78 db0001117078"#,
            ),
            (
                r#"local t = {} for i = 1, 16 do t[i] = i end local m = {} for i = 1, 16 do m['k' .. i] = 1 end return hex(cmsgpack.pack(t)) .. ' ' .. hex(cmsgpack.pack(m)):sub(1, 6)"#,
                r#"dc00100102030405060708090a0b0c0d0e0f10 de0010"#,
            ),
            (r#"local t = 1 for i = 1, 17 do t = {t} end return hex(cmsgpack.pack(t))"#, r#"91919191919191919191919191919191c0"#),
            (
                r#"local t = {} t.a = t return hex(cmsgpack.pack(t))"#,
                r#"81a16181a16181a16181a16181a16181a16181a16181a16181a16181a16181a16181a16181a16181a16181a16181a161c0"#,
            ),
            (r#"return hex(cmsgpack.pack('a\0b\255\128'))"#, r#"a5610062ff80"#),
        ]);
    }

    /// cmsgpack.unpack and friends: every format lua-cmsgpack reads, offsets.
    #[test]
    fn cmsgpack_unpack() {
        check(&[
            (r#"return all(cmsgpack.unpack(''))"#, r#""#),
            (r#"return all(cmsgpack.unpack('\1\2\192\195\194\255\224'))"#, r#"1 2 nil true false -1 -32"#),
            (
                r#"return all(cmsgpack.unpack('\204\255\205\255\255\206\255\255\255\255\207\255\255\255\255\255\255\255\255\208\128\209\255\1\210\255\255\255\255'))"#,
                r#"255 65535 4294967295 -1 -128 -255 -1"#,
            ),
            (r#"return all(cmsgpack.unpack('\202\63\192\0\0\203\63\185\153\153\153\153\153\154'))"#, r#"1.5 0.1"#),
            (r#"return all(cmsgpack.unpack('\163abc\217\3abc\218\0\3abc\219\0\0\0\3abc\160'))"#, r#"abc abc abc abc "#),
            (
                r#"return dump({cmsgpack.unpack('\146\1\192\130\1\2\161a\145\3\220\0\1\195\222\0\1\1\194')})"#,
                r#"{1={1=1},2={1=2,a={1=3}},3={1=true},4={1=false}}"#,
            ),
            (
                r#"return dump({cmsgpack.unpack(cmsgpack.pack({a = {b = {c = 'd'}}, [5] = 1, [1.5] = 2}, {1, 2, {}}))})"#,
                r#"{1={1.5=2,5=1,a={b={c=d}}},2={1=1,2=2,3={}}}"#,
            ),
            (
                r#"local s = '' for i = 0, 255 do s = s .. string.char(i) end return tostring(cmsgpack.unpack(cmsgpack.pack(s)) == s) .. ' ' .. all(cmsgpack.unpack(5))"#,
                r#"true 53"#,
            ),
            (
                r#"local s = cmsgpack.pack(1, 2, 3) return all(cmsgpack.unpack_one(s)) .. ' / ' .. all(cmsgpack.unpack_one(s, 2)) .. ' / ' .. all(cmsgpack.unpack_one(s, 3))"#,
                r#"1 1 / -1 3 / -1"#,
            ),
            (
                r#"local s = cmsgpack.pack(1, 2, 3) return all(cmsgpack.unpack_limit(s, 2)) .. ' / ' .. all(cmsgpack.unpack_limit(s, 0)) .. ' / ' .. all(cmsgpack.unpack_limit(s, 5, 1)) .. ' / ' .. all(cmsgpack.unpack_limit(s, 2^32 + 1))"#,
                r#"2 1 2 / 1 2 3 / -1 2 3 / -1 1 2 3"#,
            ),
            (
                r#"return select('#', cmsgpack.unpack(string.rep('\1', 7999))) .. ' ' .. select('#', cmsgpack.unpack(string.rep('\161a', 7999)))"#,
                r#"7999 7999"#,
            ),
            (r#"return type(cmsgpack.unpack(string.rep('\145', 3999) .. '\1'))"#, r#"table"#),
            (
                r#"return type(cmsgpack.unpack(string.rep('\129\161a', 3999) .. '\1')) .. ' ' .. #cjson.encode(cjson.decode(string.rep('{"a":', 1000) .. '1' .. string.rep('}', 1000)))"#,
                r#"table 6001"#,
            ),
        ]);
    }

    /// lua-cmsgpack's errors, including the Lua stack's limits on unpacking.
    #[test]
    fn cmsgpack_errors() {
        check(&[
            (
                r#"return err(cmsgpack.pack) .. ' / ' .. err(function() return cmsgpack.pack() end)"#,
                r#"string: bad argument #0 to '?' (MessagePack pack needs input.) / string: user_script:1: bad argument #0 to 'pack' (MessagePack pack needs input.)"#,
            ),
            (
                r#"return err(cmsgpack.unpack, '\204') .. ' / ' .. err(cmsgpack.unpack, '\165abc') .. ' / ' .. err(cmsgpack.unpack, '\147\1')"#,
                r#"string: Missing bytes in input. / string: Missing bytes in input. / string: Missing bytes in input."#,
            ),
            (
                r#"return err(cmsgpack.unpack, '\193') .. ' / ' .. err(cmsgpack.unpack, '\196\2ab') .. ' / ' .. err(cmsgpack.unpack, '\1\212\1')"#,
                r#"string: Bad data format in input. / string: Bad data format in input. / string: Bad data format in input."#,
            ),
            (
                r#"return err(cmsgpack.unpack, '\129\192\1') .. ' / ' .. err(cmsgpack.unpack, '\129\203\127\248\0\0\0\0\0\0\1')"#,
                r#"string: table index is nil / string: table index is NaN"#,
            ),
            (
                r#"return err(cmsgpack.unpack) .. ' / ' .. err(cmsgpack.unpack, {}) .. ' / ' .. err(cmsgpack.unpack_limit, 'x')"#,
                r#"string: bad argument #1 to '?' (string expected, got no value) / string: bad argument #1 to '?' (string expected, got table) / string: bad argument #2 to '?' (number expected, got no value)"#,
            ),
            (
                r#"local s = cmsgpack.pack(1, 2, 3) return err(cmsgpack.unpack_one, s, 9) .. ' / ' .. err(cmsgpack.unpack_one, s, -1) .. ' / ' .. err(cmsgpack.unpack_limit, s, 1e300)"#,
                r#"string: Start offset 9 greater than input length 3. / string: Invalid request to unpack with offset of -1 and limit of 3. / string: Invalid request to unpack with offset of 0 and limit of 3."#,
            ),
            (
                r#"return err(function() return cmsgpack.unpack(string.rep('\145', 4000) .. '\1') end)"#,
                r#"string: user_script:1: stack overflow (in function mp_decode_to_lua_array)"#,
            ),
            (
                r#"return err(cmsgpack.unpack, string.rep('\129\1', 4000) .. '\1')"#,
                r#"string: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"#,
            ),
            (
                r#"return err(cmsgpack.unpack, string.rep('\1', 8000))"#,
                r#"string: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"#,
            ),
            (r#"return err(cmsgpack.unpack_limit, string.rep('\1', 9000), 7999)"#, r#"string: stack overflow (in function mp_unpack_full)"#),
        ]);
    }
}
