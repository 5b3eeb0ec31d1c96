//! Strict loading of a TOML document into typed sections, collecting **every** error.
//!
//! serde stops at the first error of a value, so a file is taken apart first: syntax
//! errors come from the recovering parser; each table's keys are checked against the
//! field names of its target struct (found by asking the struct's own `Deserialize`
//! impl, so the list cannot drift from the code), unknown keys are reported with the
//! nearest valid name and dropped; then each section (and each element of an array of
//! tables) is deserialized on its own, so a type error in one does not hide the others.
//! Spans stay absolute, so every diagnostic points into the original file.

use crate::diag::{Diagnostic, suggest};
use serde::de::{self, DeserializeOwned, Visitor};
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// A parsed document: the spanned tree plus the diagnostics found so far.
pub struct Doc<'i> {
    pub root: Spanned<DeTable<'i>>,
    pub diagnostics: Vec<Diagnostic>,
}

/// A step of a path into a document, for span lookups.
#[derive(Clone, Copy, Debug)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

impl<'i> Doc<'i> {
    /// Parses with error recovery: every syntax error is reported, not just the first.
    pub fn parse(text: &'i str) -> Doc<'i> {
        let (root, errors) = DeTable::parse_recoverable(text);
        let diagnostics = errors
            .into_iter()
            .map(|e| Diagnostic::error(e.span(), clean_message(e.message())))
            .collect();
        Doc { root, diagnostics }
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn error(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::error(span, message));
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    /// The top-level value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Spanned<DeValue<'i>>> {
        self.root.get_ref().get(key)
    }

    /// Reports top-level keys that are not among `valid` (the known sections).
    pub fn check_top_level(&mut self, valid: &[&str]) {
        let unknown: Vec<(String, Range<usize>)> = self
            .root
            .get_ref()
            .iter()
            .filter(|(k, _)| !valid.contains(&k.get_ref().as_ref()))
            .map(|(k, _)| (k.get_ref().to_string(), k.span()))
            .collect();
        for (name, span) in unknown {
            self.diagnostics.push(
                Diagnostic::error(Some(span), format!("unknown section `[{name}]`"))
                    .with_help(suggest(&name, valid)),
            );
        }
    }

    /// Span of the value at `path` (keys and array indices from the root).
    pub fn span_of(&self, path: &[Seg<'_>]) -> Option<Range<usize>> {
        let mut cur: Option<&Spanned<DeValue<'i>>> = None;
        for seg in path {
            let next = match (seg, cur) {
                (Seg::Key(k), None) => self.root.get_ref().get(*k),
                (Seg::Key(k), Some(v)) => v.get_ref().as_table().and_then(|t| t.get(*k)),
                (Seg::Index(i), Some(v)) => v.get_ref().as_array().and_then(|a| a.get(*i)),
                (Seg::Index(_), None) => None,
            };
            cur = Some(next?);
        }
        cur.map(Spanned::span)
    }

    /// Deserializes the section `name` into `T`, reporting unknown keys (all of them)
    /// and type errors. A missing section yields `T::default()`.
    pub fn section<T: DeserializeOwned + Default>(&mut self, name: &str) -> Option<T> {
        match self.root.get_ref().get(name).cloned() {
            None => Some(T::default()),
            Some(v) => self.value::<T>(&v, &format!("[{name}]")),
        }
    }

    /// Deserializes one value (a table, or anything else) into `T`, checking the keys
    /// of a table against `T`'s fields first. `context` names the place for messages,
    /// e.g. `[capture]` or `[[allow]] #3`.
    pub fn value<T: DeserializeOwned>(
        &mut self,
        v: &Spanned<DeValue<'i>>,
        context: &str,
    ) -> Option<T> {
        let mut v = v.clone();
        let fields = struct_fields::<T>();
        if let (Some(fields), DeValue::Table(table)) = (fields, v.get_mut()) {
            let unknown: Vec<(String, Range<usize>)> = table
                .iter()
                .filter(|(k, _)| !fields.contains(&k.get_ref().as_ref()))
                .map(|(k, _)| (k.get_ref().to_string(), k.span()))
                .collect();
            for (key, span) in &unknown {
                self.diagnostics.push(
                    Diagnostic::error(
                        Some(span.clone()),
                        format!("unknown key `{key}` in {context}"),
                    )
                    .with_help(suggest(key, fields)),
                );
                table.remove(key.as_str());
            }
        }
        let span = v.span();
        match T::deserialize(ValueDeserializer::from(v)) {
            Ok(t) => Some(t),
            Err(e) => {
                let msg = clean_message(e.message());
                self.diagnostics.push(Diagnostic::error(
                    e.span().or(Some(span)),
                    format!("{context}: {msg}"),
                ));
                None
            }
        }
    }
}

/// serde's messages, made a little friendlier for operators.
fn clean_message(m: &str) -> String {
    let m = m.trim().trim_end_matches('.');
    m.replace("unknown variant", "unknown value")
        .replace("invalid type: ", "wrong type: ")
}

/// The field names of a struct, asked of its `Deserialize` impl; `None` for anything
/// that is not a plain struct (maps, enums, newtypes), whose keys are then not checked
/// here.
pub fn struct_fields<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    struct Probe<'a>(&'a mut Option<&'static [&'static str]>);

    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("introspection")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }

    impl<'de> de::Deserializer<'de> for Probe<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            *self.0 = Some(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let mut out = None;
    let _ = T::deserialize(Probe(&mut out));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Default, Debug)]
    #[serde(deny_unknown_fields, default)]
    struct Sect {
        name: String,
        count: u32,
    }

    #[test]
    fn introspects_struct_fields() {
        assert_eq!(struct_fields::<Sect>(), Some(&["name", "count"][..]));
        assert_eq!(
            struct_fields::<std::collections::BTreeMap<String, u32>>(),
            None
        );
    }

    #[test]
    fn reports_all_errors_at_once() {
        let text = "[a]\nnmae = \"x\"\ncount = \"three\"\nother = 1\n[b]\ncount = -1\n";
        let mut doc = Doc::parse(text);
        let a: Option<Sect> = doc.section("a");
        let b: Option<Sect> = doc.section("b");
        assert!(a.is_none() && b.is_none());
        let msgs: Vec<&str> = doc.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        assert!(msgs.iter().any(|m| m.contains("unknown key `nmae`")));
        assert!(msgs.iter().any(|m| m.contains("unknown key `other`")));
        assert!(msgs.iter().any(|m| m.starts_with("[a]: wrong type")));
        assert!(msgs.iter().any(|m| m.starts_with("[b]:")));
        let nmae = doc.diagnostics.iter().find(|d| d.message.contains("nmae"));
        assert_eq!(nmae.and_then(|d| d.span.clone()), Some(4..8));
        assert!(
            nmae.and_then(|d| d.help.clone())
                .is_some_and(|h| h.contains("did you mean `name`"))
        );
    }

    #[test]
    fn syntax_errors_are_all_reported() {
        let doc = Doc::parse("a = \nb = 1\nc = [1,\n");
        assert!(doc.diagnostics.len() >= 2, "{:?}", doc.diagnostics);
        assert!(doc.diagnostics.iter().all(|d| d.span.is_some()));
    }

    #[test]
    fn span_lookup_by_path() {
        let text = "[capture]\nexclude = [\"port 1\", \"host x\"]\n";
        let doc = Doc::parse(text);
        let span = doc.span_of(&[Seg::Key("capture"), Seg::Key("exclude"), Seg::Index(1)]);
        assert_eq!(span.and_then(|s| text.get(s)), Some("\"host x\""));
    }
}
