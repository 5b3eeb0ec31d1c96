//! Diagnostics for operator-edited files: `PATH:LINE:COL: error: message`, the offending
//! line with a caret under the span, then `help: …` (GNU style, so editors can jump to
//! them). Every file the operator writes (agent.toml, policy.toml, collector.toml) reports
//! through this one type, and `check`, start-up and reload print the same text.

use std::fmt;
use std::ops::Range;

/// How bad a diagnostic is: errors make a file invalid, warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding in one file, located by a byte span of the file's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Byte range in the source text; `None` for findings about the file as a whole.
    pub span: Option<Range<usize>>,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            span,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            span,
            message: message.into(),
            help: None,
        }
    }

    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A file's name and text, to turn spans into `LINE:COL` and snippets.
#[derive(Clone, Debug)]
pub struct Source {
    pub path: String,
    pub text: String,
}

/// A diagnostic bound to its source, ready to print.
#[derive(Clone, Debug)]
pub struct Located<'a> {
    pub source: &'a Source,
    pub diagnostic: &'a Diagnostic,
}

impl Source {
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        Source {
            path: path.into(),
            text: text.into(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        (line, col)
    }

    /// The whole line holding a byte offset, without its newline, and where it starts.
    fn line_at(&self, offset: usize) -> (&str, usize) {
        let offset = offset.min(self.text.len());
        let start = self
            .text
            .get(..offset)
            .and_then(|s| s.rfind('\n'))
            .map_or(0, |i| i + 1);
        let end = self
            .text
            .get(offset..)
            .and_then(|s| s.find('\n'))
            .map_or(self.text.len(), |i| offset + i);
        (
            self.text
                .get(start..end)
                .unwrap_or("")
                .trim_end_matches('\r'),
            start,
        )
    }

    pub fn locate<'a>(&'a self, diagnostic: &'a Diagnostic) -> Located<'a> {
        Located {
            source: self,
            diagnostic,
        }
    }

    /// Every diagnostic rendered, errors and warnings in file order, one block each.
    pub fn render_all(&self, diagnostics: &[Diagnostic]) -> String {
        let mut sorted: Vec<&Diagnostic> = diagnostics.iter().collect();
        sorted.sort_by_key(|d| (d.span.as_ref().map_or(0, |s| s.start), d.severity));
        let mut out = String::new();
        for d in sorted {
            out.push_str(&self.locate(d).to_string());
        }
        out
    }
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.diagnostic;
        let level = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match &d.span {
            Some(span) => {
                let (line, col) = self.source.line_col(span.start);
                writeln!(
                    f,
                    "{}:{}:{}: {}: {}",
                    self.source.path, line, col, level, d.message
                )?;
                let (text, line_start) = self.source.line_at(span.start);
                let gutter = line.to_string().len();
                writeln!(f, "{:>gutter$} | {}", line, text)?;
                let lead = self
                    .source
                    .text
                    .get(line_start..span.start)
                    .map_or(0, |s| s.chars().count());
                let span_text = self.source.text.get(span.clone()).unwrap_or("");
                let first_line = span_text.split('\n').next().unwrap_or("");
                let width = first_line.chars().count().max(1);
                writeln!(
                    f,
                    "{:>gutter$} | {}{}",
                    "",
                    " ".repeat(lead),
                    "^".repeat(width)
                )?;
            }
            None => writeln!(f, "{}: {}: {}", self.source.path, level, d.message)?,
        }
        if let Some(help) = &d.help {
            writeln!(f, "help: {help}")?;
        }
        Ok(())
    }
}

/// Edit distance (optimal string alignment) between two short names.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    let at = |i: usize, j: usize| i * width + j;
    for i in 0..=a.len() {
        if let Some(x) = d.get_mut(at(i, 0)) {
            *x = i;
        }
    }
    for j in 0..=b.len() {
        if let Some(x) = d.get_mut(at(0, j)) {
            *x = j;
        }
    }
    for (i, ca) in a.iter().enumerate() {
        for (j, cb) in b.iter().enumerate() {
            let (i1, j1) = (i + 1, j + 1);
            let cost = usize::from(ca != cb);
            let get = |d: &Vec<usize>, i: usize, j: usize| d.get(at(i, j)).copied().unwrap_or(0);
            let mut best = (get(&d, i, j1) + 1)
                .min(get(&d, i1, j) + 1)
                .min(get(&d, i, j) + cost);
            if i > 0 && j > 0 && a.get(i) == b.get(j - 1) && a.get(i - 1) == b.get(j) {
                best = best.min(get(&d, i - 1, j - 1) + 1);
            }
            if let Some(x) = d.get_mut(at(i1, j1)) {
                *x = best;
            }
        }
    }
    d.get(at(a.len(), b.len())).copied().unwrap_or(usize::MAX)
}

/// The candidate nearest to `name`, if it is near enough to be a likely typo.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    let lower = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `help:` text for an unknown name: the nearest valid one, else the list of valid ones.
pub fn suggest(name: &str, valid: &[&str]) -> String {
    let list = valid
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match nearest(name, valid.iter().copied()) {
        Some(n) => format!("did you mean `{n}`? valid: {list}"),
        None => format!("valid: {list}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let s = Source::new("a.toml", "[x]\nkey = 1\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(4), (2, 1));
        assert_eq!(s.line_col(10), (2, 7));
    }

    #[test]
    fn renders_gnu_style_with_snippet_and_help() {
        let s = Source::new("agent.toml", "[capture]\nintefaces = [\"eth1\"]\n");
        let d = Diagnostic::error(Some(10..19), "unknown key `intefaces` in [capture]")
            .with_help("did you mean `interfaces`?");
        let text = s.locate(&d).to_string();
        assert_eq!(
            text,
            "agent.toml:2:1: error: unknown key `intefaces` in [capture]\n\
             2 | intefaces = [\"eth1\"]\n  | ^^^^^^^^^\nhelp: did you mean `interfaces`?\n"
        );
    }

    #[test]
    fn nearest_finds_typos_only() {
        let valid = ["interfaces", "pcap", "pace", "at_end", "exclude"];
        assert_eq!(nearest("intefaces", valid), Some("interfaces"));
        assert_eq!(nearest("exlcude", valid), Some("exclude"));
        assert_eq!(nearest("bandwidth", valid), None);
    }
}
