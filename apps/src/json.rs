//! A small JSON writer for one-line machine-readable console output (no serde: `no_std`).
//!
//! The writer keeps track of commas itself; the caller opens and closes objects and arrays
//! in order. Nesting deeper than 64 levels is refused with `fmt::Error`.
//!
//! ```
//! # use bulkhead_apps::json::JsonWriter;
//! let mut out = String::new();
//! let mut j = JsonWriter::new(&mut out);
//! j.begin_object()?;
//! j.field_str("name", "nic0")?;
//! j.field_u64("mtu", 1500)?;
//! j.end_object()?;
//! assert_eq!(out, r#"{"name":"nic0","mtu":1500}"#);
//! # Ok::<(), core::fmt::Error>(())
//! ```

use core::fmt::{self, Write};

/// Writes compact JSON into any `fmt::Write`.
pub struct JsonWriter<'w, W: Write + ?Sized> {
    out: &'w mut W,
    /// Bit `n` set: the container at depth `n` already holds an element.
    has_element: u64,
    depth: u32,
    /// A key was just written; the next value belongs to it and needs no comma.
    after_key: bool,
}

impl<'w, W: Write + ?Sized> JsonWriter<'w, W> {
    pub fn new(out: &'w mut W) -> Self {
        JsonWriter { out, has_element: 0, depth: 0, after_key: false }
    }

    pub fn begin_object(&mut self) -> fmt::Result {
        self.open('{')
    }

    pub fn end_object(&mut self) -> fmt::Result {
        self.close('}')
    }

    pub fn begin_array(&mut self) -> fmt::Result {
        self.open('[')
    }

    pub fn end_array(&mut self) -> fmt::Result {
        self.close(']')
    }

    /// Writes an object key; the next call writes its value.
    pub fn key(&mut self, key: &str) -> fmt::Result {
        self.separate()?;
        write_escaped(self.out, key)?;
        self.out.write_char(':')?;
        self.after_key = true;
        Ok(())
    }

    pub fn str(&mut self, value: &str) -> fmt::Result {
        self.separate()?;
        write_escaped(self.out, value)
    }

    /// Writes a string value produced by `Display` (escaped like any string).
    pub fn display(&mut self, value: impl fmt::Display) -> fmt::Result {
        self.separate()?;
        self.out.write_char('"')?;
        write!(Escaper { out: self.out }, "{value}")?;
        self.out.write_char('"')
    }

    pub fn u64(&mut self, value: u64) -> fmt::Result {
        self.separate()?;
        write!(self.out, "{value}")
    }

    pub fn bool(&mut self, value: bool) -> fmt::Result {
        self.separate()?;
        self.out.write_str(if value { "true" } else { "false" })
    }

    pub fn null(&mut self) -> fmt::Result {
        self.separate()?;
        self.out.write_str("null")
    }

    pub fn field_str(&mut self, key: &str, value: &str) -> fmt::Result {
        self.key(key)?;
        self.str(value)
    }

    pub fn field_u64(&mut self, key: &str, value: u64) -> fmt::Result {
        self.key(key)?;
        self.u64(value)
    }

    pub fn field_bool(&mut self, key: &str, value: bool) -> fmt::Result {
        self.key(key)?;
        self.bool(value)
    }

    pub fn field_display(&mut self, key: &str, value: impl fmt::Display) -> fmt::Result {
        self.key(key)?;
        self.display(value)
    }

    fn open(&mut self, bracket: char) -> fmt::Result {
        if self.depth >= 63 {
            return Err(fmt::Error);
        }
        self.separate()?;
        self.out.write_char(bracket)?;
        self.depth += 1;
        self.has_element &= !(1u64 << self.depth);
        Ok(())
    }

    fn close(&mut self, bracket: char) -> fmt::Result {
        if self.depth == 0 || self.after_key {
            return Err(fmt::Error);
        }
        self.depth -= 1;
        self.out.write_char(bracket)
    }

    /// Writes the comma before an element unless it is the first, or the value of a key.
    fn separate(&mut self) -> fmt::Result {
        if self.after_key {
            self.after_key = false;
            return Ok(());
        }
        let bit = 1u64 << self.depth;
        if self.has_element & bit != 0 {
            self.out.write_char(',')?;
        }
        self.has_element |= bit;
        Ok(())
    }
}

/// Writes `text` as a JSON string literal, quotes included.
pub fn write_escaped<W: Write + ?Sized>(out: &mut W, text: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaper { out }.write_str(text)?;
    out.write_char('"')
}

/// Escapes everything written through it for the inside of a JSON string.
struct Escaper<'a, W: Write + ?Sized> {
    out: &'a mut W,
}

impl<W: Write + ?Sized> Write for Escaper<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for c in text.chars() {
            match c {
                '"' => self.out.write_str("\\\"")?,
                '\\' => self.out.write_str("\\\\")?,
                '\n' => self.out.write_str("\\n")?,
                '\r' => self.out.write_str("\\r")?,
                '\t' => self.out.write_str("\\t")?,
                c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => {
                    write!(self.out, "\\u{:04x}", c as u32)?
                }
                c => self.out.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// A strict JSON syntax checker for tests: true when `text` is exactly one JSON value.
#[cfg(test)]
pub(crate) fn is_valid_json(text: &str) -> bool {
    struct P<'a> {
        b: &'a [u8],
        i: usize,
    }
    impl P<'_> {
        fn peek(&self) -> Option<u8> {
            self.b.get(self.i).copied()
        }
        fn ws(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
                self.i += 1;
            }
        }
        fn eat(&mut self, c: u8) -> bool {
            if self.peek() == Some(c) {
                self.i += 1;
                true
            } else {
                false
            }
        }
        fn lit(&mut self, s: &str) -> bool {
            if self.b.get(self.i..self.i + s.len()) == Some(s.as_bytes()) {
                self.i += s.len();
                true
            } else {
                false
            }
        }
        fn value(&mut self, depth: u32) -> bool {
            if depth > 100 {
                return false;
            }
            self.ws();
            let ok = match self.peek() {
                Some(b'{') => {
                    self.i += 1;
                    self.ws();
                    if self.eat(b'}') {
                        true
                    } else {
                        loop {
                            self.ws();
                            if !self.string() {
                                break false;
                            }
                            self.ws();
                            if !self.eat(b':') || !self.value(depth + 1) {
                                break false;
                            }
                            self.ws();
                            if self.eat(b'}') {
                                break true;
                            }
                            if !self.eat(b',') {
                                break false;
                            }
                        }
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    self.ws();
                    if self.eat(b']') {
                        true
                    } else {
                        loop {
                            if !self.value(depth + 1) {
                                break false;
                            }
                            self.ws();
                            if self.eat(b']') {
                                break true;
                            }
                            if !self.eat(b',') {
                                break false;
                            }
                        }
                    }
                }
                Some(b'"') => self.string(),
                Some(b't') => self.lit("true"),
                Some(b'f') => self.lit("false"),
                Some(b'n') => self.lit("null"),
                Some(b'-' | b'0'..=b'9') => self.number(),
                _ => false,
            };
            self.ws();
            ok
        }
        fn string(&mut self) -> bool {
            if !self.eat(b'"') {
                return false;
            }
            loop {
                match self.peek() {
                    None => return false,
                    Some(b'"') => {
                        self.i += 1;
                        return true;
                    }
                    Some(b'\\') => {
                        self.i += 1;
                        match self.peek() {
                            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                            Some(b'u') => {
                                self.i += 1;
                                for _ in 0..4 {
                                    if !matches!(self.peek(), Some(c) if c.is_ascii_hexdigit()) {
                                        return false;
                                    }
                                    self.i += 1;
                                }
                            }
                            _ => return false,
                        }
                    }
                    Some(c) if c < 0x20 => return false,
                    Some(_) => self.i += 1,
                }
            }
        }
        fn number(&mut self) -> bool {
            self.eat(b'-');
            let start = self.i;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            let int = self.b.get(start..self.i).unwrap_or(&[]);
            if int.is_empty() || (int.len() > 1 && int.first() == Some(&b'0')) {
                return false;
            }
            if self.eat(b'.') {
                let s = self.i;
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
                if s == self.i {
                    return false;
                }
            }
            true
        }
    }
    let mut p = P { b: text.as_bytes(), i: 0 };
    p.value(0) && p.i == text.len()
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;

    #[test]
    fn writes_nested_values_with_commas() {
        let mut s = String::new();
        let mut j = JsonWriter::new(&mut s);
        j.begin_object().unwrap();
        j.field_str("name", "nic0").unwrap();
        j.key("list").unwrap();
        j.begin_array().unwrap();
        j.u64(1).unwrap();
        j.begin_object().unwrap();
        j.end_object().unwrap();
        j.null().unwrap();
        j.end_array().unwrap();
        j.field_bool("up", true).unwrap();
        j.field_display("addr", "a\"b").unwrap();
        j.end_object().unwrap();
        assert_eq!(s, r#"{"name":"nic0","list":[1,{},null],"up":true,"addr":"a\"b"}"#);
        assert!(is_valid_json(&s));
    }

    #[test]
    fn escapes_every_control_character() {
        let mut raw = String::new();
        for c in 0u8..0x80 {
            raw.push(c as char);
        }
        raw.push_str("é\u{2028}😀");
        let mut s = String::new();
        write_escaped(&mut s, &raw).unwrap();
        assert!(is_valid_json(&s), "{s}");
        assert!(s.contains("\\u0000") && s.contains("\\n") && s.contains("\\\\") && s.contains("\\u2028"));
    }

    #[test]
    fn refuses_misuse() {
        let mut s = String::new();
        let mut j = JsonWriter::new(&mut s);
        assert!(j.end_object().is_err());
        j.begin_object().unwrap();
        j.key("k").unwrap();
        assert!(j.end_object().is_err());
        let mut deep = String::new();
        let mut j = JsonWriter::new(&mut deep);
        let opened = (0..100).take_while(|_| j.begin_array().is_ok()).count();
        assert_eq!(opened, 63);
    }

    #[test]
    fn checker_rejects_bad_json() {
        for bad in ["", "{", "{\"a\"}", "[1,]", "{\"a\":1,}", "\"\u{1}\"", "01", "tru", "{} {}", "\"\\x\""] {
            assert!(!is_valid_json(bad), "{bad:?}");
        }
        for good in ["{}", "[]", "0", "-1.5", "{\"a\":[true,false,null,\"\\u00e9\"]}"] {
            assert!(is_valid_json(good), "{good:?}");
        }
    }
}
