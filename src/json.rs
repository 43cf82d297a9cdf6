//! A small JSON value type that preserves everything it reads, so that a read-modify-write of a
//! file shared with the gateway keeps every foreign key untouched: numbers keep their source text
//! (big integers, `1e400`, `-0.0` round-trip exactly), objects keep their key order.
//!
//! Why not nanoserde's tokenizer (`DeJsonState::next_tok`): it converts every number to
//! u64/i64/f64 and fails on integers wider than 64 bits, treats a NUL character as end of input
//! (so `{}\0junk` parses), and accepts comments, `+1`, `\0` and unknown escapes. Preserving
//! foreign data is the point of this module, so this is a small strict RFC 8259 recursive-descent
//! parser instead.
//!
//! Duplicate keys are all kept (the document round-trips); [`Value::get`] returns the **last**
//! one, as Python's `json.loads` (the gateway's reader) does.
//! Strings hold Rust `String`s. A string *value* that a Rust `String` cannot hold (a lone
//! surrogate escape, `"\ud800"`, which Python writes) is kept as [`Value::RawStr`], its source
//! text, and written back byte for byte; Python's `NaN`/`Infinity`/`-Infinity` are kept as
//! numbers the same way. A key with a lone surrogate is still rejected.

/// Deeper nesting is rejected, so hostile input cannot exhaust the stack.
/// Python's `json.loads` (the gateway's reader) stops at its recursion limit,
/// 1000: a document this parser refuses, the gateway could not read either.
pub const MAX_DEPTH: usize = 1000;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The number's source text, valid JSON number syntax.
    Number(String),
    Str(String),
    /// A string value kept as its source text between the quotes (escapes
    /// intact), because it holds a lone surrogate: written back verbatim.
    RawStr(String),
    Array(Vec<Value>),
    /// Key order as read / inserted; duplicates possible (see module doc).
    Object(Vec<(String, Value)>),
}

/// Parse one JSON document; anything but whitespace after it is an error.
/// Errors read `line L, column C: what`.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        src: text,
        s: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.pos != p.s.len() {
        return Err(p.err("unexpected data after the JSON value"));
    }
    Ok(v)
}

impl Value {
    pub fn from_i64(n: i64) -> Value {
        Value::Number(n.to_string())
    }

    pub fn from_u64(n: u64) -> Value {
        Value::Number(n.to_string())
    }

    pub fn string(s: &str) -> Value {
        Value::Str(s.to_string())
    }

    /// Member `key` of an object (the last one if duplicated); None for non-objects.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(m) => m.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Integers written without fraction or exponent that fit an i64.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// Integers written without fraction or exponent that fit a u64.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// Any number, as f64 (may be infinite for huge exponents).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => n.parse().ok(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// Append compact JSON (no spaces; non-ASCII kept as UTF-8).
    pub fn write(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(true) => out.push_str("true"),
            Value::Bool(false) => out.push_str("false"),
            Value::Number(n) => out.push_str(n),
            Value::Str(s) => write_str(s, out),
            Value::RawStr(raw) => {
                out.push('"');
                out.push_str(raw);
                out.push('"');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Value::Object(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }

    /// Compact JSON text.
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }
}

/// Append `s` as a JSON string literal: `"` `\` and control characters escaped, the rest verbatim.
pub fn write_str(s: &str, out: &mut String) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\u{8}' => "\\b",
            '\u{c}' => "\\f",
            c if (c as u32) < 0x20 => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[(c as usize) >> 4] as char);
            out.push(HEX[(c as usize) & 15] as char);
        } else {
            out.push_str(esc);
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

struct Parser<'a> {
    src: &'a str,
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        let before = self.s.get(..self.pos).unwrap_or(self.s);
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        // count characters, not bytes: skip UTF-8 continuation bytes
        let col = 1 + before[line_start..]
            .iter()
            .filter(|&&b| b & 0xc0 != 0x80)
            .count();
        format!("line {}, column {}: {}", line, col, what)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => {
                let start = self.pos;
                match self.string() {
                    Ok(s) => Ok(Value::Str(s)),
                    Err(e) if e.ends_with("lone surrogate in \\u escape") => {
                        self.pos = start;
                        self.raw_string()
                    }
                    Err(e) => Err(e),
                }
            }
            // Python's json module writes these by default (allow_nan).
            Some(b'N') => self.literal("NaN", Value::Number("NaN".into())),
            Some(b'I') => self.literal("Infinity", Value::Number("Infinity".into())),
            Some(b'-') if self.s[self.pos..].starts_with(b"-I") => {
                self.literal("-Infinity", Value::Number("-Infinity".into()))
            }
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("unexpected character")),
            None => Err(self.err("unexpected end of input")),
        }
    }

    fn literal(&mut self, word: &str, v: Value) -> Result<Value, String> {
        if self.s[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        self.pos += 1; // the opening bracket
        self.ws();
        Ok(())
    }

    fn array(&mut self) -> Result<Value, String> {
        self.enter()?;
        let mut items = Vec::new();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.ws();
                }
                Some(b']') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    fn object(&mut self) -> Result<Value, String> {
        self.enter()?;
        let mut members = Vec::new();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Object(members));
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a string key"));
            }
            let key = self.string()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected ':'"));
            }
            self.pos += 1;
            self.ws();
            let v = self.value()?;
            members.push((key, v));
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        match self.src.get(start..self.pos) {
            Some(t) => Ok(Value::Number(t.to_string())),
            None => Err(self.err("invalid number")),
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut n = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(b @ b'0'..=b'9') => b - b'0',
                Some(b @ b'a'..=b'f') => b - b'a' + 10,
                Some(b @ b'A'..=b'F') => b - b'A' + 10,
                _ => return Err(self.err("invalid \\u escape")),
            };
            n = n << 4 | u32::from(d);
            self.pos += 1;
        }
        Ok(n)
    }

    /// At the opening quote; returns the decoded string.
    fn string(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // both ends sit on ASCII bytes, hence on char boundaries
            match self.src.get(start..self.pos) {
                Some(run) => out.push_str(run),
                None => return Err(self.err("invalid string")),
            }
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            out.push(self.unicode_escape()?);
                            continue;
                        }
                        _ => return Err(self.err("invalid escape")),
                    };
                    self.pos += 1;
                    out.push(c);
                }
                Some(_) => return Err(self.err("control character in string")),
                None => return Err(self.err("unterminated string")),
            }
        }
    }

    /// At the opening quote of a string that holds a lone surrogate: check
    /// its escapes and keep its source text.
    fn raw_string(&mut self) -> Result<Value, String> {
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                Some(b'"') => break,
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1
                        }
                        Some(b'u') => {
                            self.pos += 1;
                            self.hex4()?;
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                Some(b) if b < 0x20 => return Err(self.err("control character in string")),
                Some(_) => self.pos += 1,
                None => return Err(self.err("unterminated string")),
            }
        }
        let raw = self
            .src
            .get(start..self.pos)
            .ok_or_else(|| self.err("invalid string"))?
            .to_string();
        self.pos += 1;
        Ok(Value::RawStr(raw))
    }

    /// After `\u`: one code point, combining a surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, String> {
        let hi = self.hex4()?;
        let cp = match hi {
            0xd800..=0xdbff => {
                if !self.s[self.pos..].starts_with(b"\\u") {
                    return Err(self.err("lone surrogate in \\u escape"));
                }
                self.pos += 2;
                let lo = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&lo) {
                    return Err(self.err("lone surrogate in \\u escape"));
                }
                0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
            }
            0xdc00..=0xdfff => return Err(self.err("lone surrogate in \\u escape")),
            _ => hi,
        };
        char::from_u32(cp).ok_or_else(|| self.err("invalid \\u escape"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(s: &str) -> String {
        parse(s).unwrap().to_json()
    }

    #[test]
    fn nested_objects_and_arrays_round_trip() {
        let s = r#"{"a":{"b":{"c":[1,[2,[]],{}]}},"d":[true,false,null],"e":""}"#;
        assert_eq!(rt(s), s);
        let v = parse(s).unwrap();
        let c = v.get("a").and_then(|a| a.get("b")).and_then(|b| b.get("c"));
        assert_eq!(c.and_then(|c| c.as_array()).map(|a| a.len()), Some(3));
    }

    #[test]
    fn big_integers_keep_their_text() {
        let s = r#"{"n":123456789012345678901234567890,"m":-98765432109876543210}"#;
        assert_eq!(rt(s), s);
        let v = parse(s).unwrap();
        assert_eq!(
            v.get("n"),
            Some(&Value::Number("123456789012345678901234567890".into()))
        );
        assert_eq!(v.get("n").unwrap().as_i64(), None);
    }

    #[test]
    fn floats_keep_their_text() {
        let s = "[1.0,-0.0,1e400,2.5E-3,0,-0,1E+2,3.14159265358979323846264338327950288]";
        assert_eq!(rt(s), s);
        let v = parse("[1.5]").unwrap();
        assert_eq!(v.as_array().unwrap()[0].as_f64(), Some(1.5));
        assert_eq!(v.as_array().unwrap()[0].as_i64(), None);
    }

    #[test]
    fn integer_accessors() {
        let v = parse(r#"{"a":412,"b":-3,"c":18446744073709551615}"#).unwrap();
        assert_eq!(v.get("a").unwrap().as_i64(), Some(412));
        assert_eq!(v.get("a").unwrap().as_u64(), Some(412));
        assert_eq!(v.get("b").unwrap().as_i64(), Some(-3));
        assert_eq!(v.get("b").unwrap().as_u64(), None);
        assert_eq!(v.get("c").unwrap().as_u64(), Some(u64::MAX));
        assert_eq!(v.get("c").unwrap().as_i64(), None);
        assert_eq!(v.get("zz"), None);
    }

    #[test]
    fn unicode_is_kept_as_utf8() {
        let s = r#"{"名前":"héllo 🦀 ✓"}"#;
        assert_eq!(rt(s), s);
        assert_eq!(
            parse(s).unwrap().get("名前").unwrap().as_str(),
            Some("héllo 🦀 ✓")
        );
    }

    #[test]
    fn escapes_are_decoded_and_reencoded() {
        let v = parse(r#""\u00e9 \ud83e\udd80 \n \" \\ \/ \t \b \f \r \u0001""#).unwrap();
        assert_eq!(v.as_str(), Some("é 🦀 \n \" \\ / \t \u{8} \u{c} \r \u{1}"));
        assert_eq!(
            v.to_json(),
            "\"é 🦀 \\n \\\" \\\\ / \\t \\b \\f \\r \\u0001\""
        );
        // canonical escapes round-trip byte for byte
        let s = r#"["a\"b\\c\nd\u001f"]"#;
        assert_eq!(rt(s), s);
    }

    #[test]
    fn lone_surrogates_in_values_round_trip_byte_for_byte() {
        for s in [r#""\ud800""#, r#""\udc00""#, r#""a\ud800\u0041\n""#] {
            let v = parse(s).unwrap();
            assert!(matches!(v, Value::RawStr(_)), "{}", s);
            assert_eq!(v.to_json(), s);
        }
        let doc = r#"{"s":"\ud800","desired_state":"running"}"#;
        assert_eq!(rt(doc), doc);
    }

    #[test]
    fn lone_surrogates_in_keys_and_broken_escapes_are_rejected() {
        assert!(parse(r#"{"\ud800":1}"#).is_err());
        assert!(parse(r#""\ud800\x""#).is_err());
        assert!(parse(r#""\ud800"#).is_err());
    }

    #[test]
    fn python_nan_and_infinity_round_trip() {
        let doc = r#"{"a":NaN,"b":Infinity,"c":-Infinity,"d":-1}"#;
        assert_eq!(rt(doc), doc);
        assert!(parse("Nan").is_err());
        assert!(parse("-Inf").is_err());
    }

    #[test]
    fn whitespace_is_allowed_between_tokens() {
        let v = parse(" \r\n\t{ \"a\" : [ 1 , 2 ] , \"b\" : null } \n").unwrap();
        assert_eq!(v.to_json(), r#"{"a":[1,2],"b":null}"#);
    }

    #[test]
    fn duplicate_keys_are_kept_and_last_wins() {
        let s = r#"{"k":1,"k":2}"#;
        let v = parse(s).unwrap();
        assert_eq!(v.get("k").unwrap().as_i64(), Some(2));
        assert_eq!(v.to_json(), s);
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in [
            "",
            " ",
            "{",
            "}",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{a:1}",
            "{} x",
            "{}\0",
            "[1][2]",
            "01",
            "1.",
            ".5",
            "+1",
            "-",
            "1e",
            "tru",
            "nul",
            "True",
            "\"abc",
            "\"a\nb\"",
            "\"\\x\"",
            "\"\\u12\"",
            "// c\n{}",
            "\u{feff}{}",
            // (NaN / Infinity are accepted: see python_nan_and_infinity_round_trip)
            "nan",
            "infinity",
        ] {
            assert!(parse(bad).is_err(), "accepted {:?}", bad);
        }
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse("{\n  \"a\": 1,\n  é}").unwrap_err();
        assert!(e.starts_with("line 3, column 3:"), "{}", e);
    }

    #[test]
    fn deep_nesting_is_rejected_without_overflow() {
        // as deep as Python's own reader goes (its recursion limit, 1000):
        // parsed, written back and dropped on a quarter of a thread's default
        // stack (unoptimised frames are several times larger: 4 MiB there)
        let ok = "[{\"k\":".repeat(MAX_DEPTH / 2) + "0" + &"}]".repeat(MAX_DEPTH / 2);
        let stack = if cfg!(debug_assertions) {
            4 << 20
        } else {
            512 << 10
        };
        let back = std::thread::Builder::new()
            .stack_size(stack)
            .spawn(move || {
                let mut out = String::new();
                parse(&ok).unwrap().write(&mut out);
                out == ok
            })
            .unwrap();
        assert!(back.join().unwrap());
        let bad = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(parse(&bad).is_err());
        let hostile = "{\"a\":".repeat(100_000);
        assert!(parse(&hostile).is_err());
        let hostile = "[".repeat(1_000_000);
        assert!(parse(&hostile).is_err());
    }

    #[test]
    fn truncated_inputs_never_panic() {
        let s = r#"{"a":[1,-2.5e+3,"\u00e9\ud83e\udd80",{"b":null,"c":true}],"d":false}"#;
        for i in 0..s.len() {
            if let Some(prefix) = s.get(..i) {
                let _ = parse(prefix);
            }
        }
    }

    #[test]
    fn writer_escapes_control_characters() {
        let v = Value::Object(vec![("k\u{0}".to_string(), Value::string("\u{7f}\u{1b}"))]);
        let s = v.to_json();
        assert_eq!(s, "{\"k\\u0000\":\"\u{7f}\\u001b\"}");
        assert_eq!(parse(&s).unwrap(), v);
    }
}
