//! Tidy checks, in the style of rust-analyzer's: `cargo test --workspace`
//! fails when the repository's text drifts from what belongs in it.
//!
//! - Citations: a Markdown file named in capitals (such as `MODELS.md`)
//!   anywhere in a `.rs` or `.md` file must be a file of the repository,
//!   and a backticked relative path in a `.md` file or a Rust comment (one
//!   that starts with a top-level directory, such as
//!   `crates/models/src/zoo.rs`) must exist.
//! - Issue numbers: Rust comments do not refer to issue or pull-request
//!   numbers; what the reader needs belongs in the comment itself.
//! - Measurement history: Rust comments do not carry before/after figures
//!   (a time, size or rate going from one number to another); those belong
//!   in the bench report and in commit messages.
//! - Tests: every `.rs` file under a package's `tests/` is compiled, as a
//!   test target or a module of one. A package with `autotests = false`
//!   (which gathers its tests into few binaries) builds only the targets
//!   its manifest lists, so a file it forgets would otherwise never run.
//!
//! Each check lists every offender as `path:line: what`, so that they can
//! all be fixed in one pass. Standard library only; the whole walk takes a
//! few milliseconds.

use std::collections::BTreeSet;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------
// The files

/// A file the checks read, with its path relative to the repository root
/// (always with `/` separators).
struct SourceFile {
    rel: String,
    text: String,
}

impl SourceFile {
    fn is_rust(&self) -> bool {
        self.rel.ends_with(".rs")
    }

    fn is_markdown(&self) -> bool {
        self.rel.ends_with(".md")
    }
}

/// The files the checks see and the names of every file in the repository.
struct Repo {
    root: PathBuf,
    files: Vec<SourceFile>,
    /// File names (not paths) of all files, checked or not.
    names: BTreeSet<String>,
    /// Top-level directories that a cited path may start with.
    top_dirs: BTreeSet<String>,
}

/// The workspace root: the parent of this crate's directory.
fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// Directories that hold no tracked files: build outputs (`target`, and
/// `target-*` and the like that other tools create), git's own, and the
/// training runs `.gitignore` lists at the root.
fn skip_dir(name: &str, top_level: bool) -> bool {
    name == ".git" || name.starts_with("target") || (top_level && name == "runs")
}

/// The text files tidy reads: sources, docs, manifests and scripts.
fn is_checked_file(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    [".rs", ".md", ".toml", ".py", ".sh"]
        .iter()
        .any(|ext| name.ends_with(ext))
        || rel == ".ci/run"
}

fn walk(root: &Path) -> Repo {
    let mut repo = Repo {
        root: root.to_path_buf(),
        files: Vec::new(),
        names: BTreeSet::new(),
        top_dirs: BTreeSet::new(),
    };
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel_dir)) = stack.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if rel_dir.is_empty() {
                name.clone()
            } else {
                format!("{rel_dir}/{name}")
            };
            // `file_type` does not follow symbolic links, so a link to a
            // directory is not walked into.
            let kind = entry.file_type().unwrap_or_else(|e| panic!("reading {rel}: {e}"));
            if kind.is_dir() {
                if !skip_dir(&name, rel_dir.is_empty()) {
                    if rel_dir.is_empty() {
                        repo.top_dirs.insert(name.clone());
                    }
                    stack.push((entry.path(), rel));
                }
            } else {
                repo.names.insert(name);
                if kind.is_file() && is_checked_file(&rel) {
                    let bytes = match fs::read(entry.path()) {
                        Ok(bytes) => bytes,
                        // Removed since the directory was listed.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => panic!("reading {rel}: {e}"),
                    };
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    repo.files.push(SourceFile { rel, text });
                }
            }
        }
    }
    repo.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    repo
}

/// Fails a check: every offender on a line of its own, then what to do.
fn report(check: &str, offenders: &[String], advice: &str) {
    if !offenders.is_empty() {
        panic!(
            "\ntidy: {check}: {} offender(s)\n\n{}\n\n{advice}\n",
            offenders.len(),
            offenders.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------
// Rust comments

/// The text of a comment on one line, without `//`, `///`, `//!`, `/*` or
/// `/**` and trimmed.
#[derive(Debug, PartialEq)]
struct CommentLine {
    line: usize,
    text: String,
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The comments of Rust source `src`, line by line, in order. A small lexer:
/// it knows string literals (`"..."`, `b"..."`, raw `r#"..."#`), character
/// literals and lifetimes, so that `//` inside a string is not a comment.
fn comments(src: &str) -> Vec<CommentLine> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    // A line comment's marker is right after `//`; a block comment's
    // continuation lines may start with ` * `.
    let mut push = |line: usize, raw: &[char], block: bool| {
        let text: String = raw.iter().collect();
        let text = if block { text.trim_start() } else { text.as_str() };
        let text = text.strip_prefix(['/', '!', '*']).unwrap_or(text);
        out.push(CommentLine {
            line,
            text: text.trim().to_string(),
        });
    };
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        match c[i] {
            '\n' => {
                line += 1;
                i += 1;
            }
            '/' if at(i + 1) == '/' => {
                let start = i + 2;
                let mut j = start;
                while j < c.len() && c[j] != '\n' {
                    j += 1;
                }
                push(line, &c[start..j], false);
                i = j;
            }
            '/' if at(i + 1) == '*' => {
                let mut depth = 1;
                i += 2;
                let mut start = i;
                while i < c.len() && depth > 0 {
                    if c[i] == '/' && at(i + 1) == '*' {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && at(i + 1) == '/' {
                        depth -= 1;
                        if depth == 0 {
                            push(line, &c[start..i], true);
                        }
                        i += 2;
                    } else if c[i] == '\n' {
                        push(line, &c[start..i], true);
                        line += 1;
                        i += 1;
                        start = i;
                    } else {
                        i += 1;
                    }
                }
                if depth > 0 {
                    push(line, &c[start..], true);
                }
            }
            '"' => {
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' {
                        i += 1;
                    }
                    if at(i) == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            '\'' => {
                if at(i + 1) == '\\' {
                    // An escaped character literal: '\n', '\'', '\u{..}'.
                    let mut j = i + 3;
                    while j < c.len() && c[j] != '\'' && c[j] != '\n' {
                        j += 1;
                    }
                    i = j + 1;
                } else if at(i + 2) == '\'' && at(i + 1) != '\n' {
                    i += 3;
                } else {
                    // A lifetime or a label.
                    i += 1;
                }
            }
            ch if is_ident(ch) => {
                let start = i;
                while i < c.len() && is_ident(c[i]) {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                if matches!(word.as_str(), "r" | "br" | "cr") {
                    let mut hashes = 0;
                    while at(i + hashes) == '#' {
                        hashes += 1;
                    }
                    if at(i + hashes) == '"' {
                        // A raw string: ends at `"` and as many `#`.
                        i += hashes + 1;
                        loop {
                            if i >= c.len() {
                                break;
                            }
                            if c[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                                i += hashes + 1;
                                break;
                            }
                            if c[i] == '\n' {
                                line += 1;
                            }
                            i += 1;
                        }
                    }
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// Consecutive comment lines joined into one text (a comment wraps its
/// sentences over lines), remembering where each line starts.
struct CommentBlock {
    text: String,
    /// Byte offset in `text` where each line starts, and the line number.
    starts: Vec<(usize, usize)>,
}

impl CommentBlock {
    fn line_of(&self, offset: usize) -> usize {
        let k = self.starts.partition_point(|&(start, _)| start <= offset);
        self.starts[k.saturating_sub(1)].1
    }
}

fn comment_blocks(lines: &[CommentLine]) -> Vec<CommentBlock> {
    let mut blocks: Vec<CommentBlock> = Vec::new();
    let mut last_line = 0;
    for l in lines {
        match blocks.last_mut() {
            Some(b) if l.line <= last_line + 1 => {
                b.text.push(' ');
                b.starts.push((b.text.len(), l.line));
                b.text.push_str(&l.text);
            }
            _ => blocks.push(CommentBlock {
                text: l.text.clone(),
                starts: vec![(0, l.line)],
            }),
        }
        last_line = l.line;
    }
    blocks
}

/// Runs `detect` over every Rust file's comments and formats its findings
/// as `path:line: what: `found`: the comment line`.
fn comment_offenders(repo: &Repo, what: &str, detect: fn(&str) -> Vec<Range<usize>>) -> (usize, Vec<String>) {
    let mut scanned = 0;
    let mut offenders = Vec::new();
    for file in repo.files.iter().filter(|f| f.is_rust()) {
        let lines = comments(&file.text);
        scanned += lines.len();
        for block in comment_blocks(&lines) {
            for hit in detect(&block.text) {
                let line = block.line_of(hit.start);
                let context = lines
                    .iter()
                    .find(|l| l.line == line)
                    .map_or("", |l| l.text.as_str());
                offenders.push(format!(
                    "{}:{line}: {what}: `{}`: {context}",
                    file.rel, &block.text[hit]
                ));
            }
        }
    }
    (scanned, offenders)
}

fn rust_file_count(repo: &Repo) -> usize {
    repo.files.iter().filter(|f| f.is_rust()).count()
}

// ---------------------------------------------------------------------------
// (a) Citations of files

/// Tokens like `MODELS.md` or `README.md`: a capital, capitals and
/// underscores, `.md`, standing alone as a word.
fn md_citations(text: &str) -> Vec<(usize, String)> {
    let c: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut k = 0;
    while k < c.len() {
        let starts_word = k == 0 || !is_ident(c[k - 1].1);
        if !(starts_word && c[k].1.is_ascii_uppercase()) {
            k += 1;
            continue;
        }
        let mut j = k;
        while j < c.len() && (c[j].1.is_ascii_uppercase() || c[j].1 == '_') {
            j += 1;
        }
        let ext: String = c[j..(j + 3).min(c.len())].iter().map(|&(_, ch)| ch).collect();
        let ends_word = c.get(j + 3).is_none_or(|&(_, ch)| !is_ident(ch));
        if ext == ".md" && ends_word {
            let end = c.get(j + 3).map_or(text.len(), |&(b, _)| b);
            out.push((c[k].0, text[c[k].0..end].to_string()));
            k = j + 3;
        } else {
            k = j.max(k + 1);
        }
    }
    out
}

/// The contents of backtick spans on a line that hold no space.
fn backticked(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(open) = rest.find('`') {
        let after = &rest[open + 1..];
        let len = after
            .find(|ch: char| ch == '`' || ch.is_whitespace())
            .unwrap_or(after.len());
        if after[len..].starts_with('`') && len > 0 {
            out.push(&after[..len]);
            rest = &after[len + 1..];
        } else {
            // Where the span failed (a space, or a backtick that may open
            // the next span) is where the search goes on.
            rest = &after[len..];
        }
    }
    out
}

/// If `span` (a backticked text) cites a file of the repository, the path
/// it cites: relative, starting with one of `top_dirs`, with a file
/// extension, any `:line` or `#anchor` suffix removed. Outputs (`target/`,
/// `runs/`), home and absolute paths are not citations.
fn cited_path<'a>(span: &'a str, top_dirs: &BTreeSet<String>) -> Option<&'a str> {
    let path = span.split([':', '#']).next()?;
    let path = path.strip_prefix("./").unwrap_or(path);
    let path_chars = |ch: char| ch.is_ascii_alphanumeric() || "_-./".contains(ch);
    if path.is_empty() || !path.chars().all(path_chars) || !path.contains('/') {
        return None;
    }
    let first = path.split('/').next()?;
    if skip_dir(first, true) || !top_dirs.contains(first) {
        return None;
    }
    let name = path.rsplit('/').next()?;
    let ext = name
        .rfind('.')
        .filter(|&dot| dot > 0)
        .map(|dot| &name[dot + 1..])?;
    (!ext.is_empty() && ext.chars().all(|ch| ch.is_ascii_alphanumeric())).then_some(path)
}

/// Every citation of a file that does not exist, and how many citations
/// were checked.
fn citation_offenders(repo: &Repo) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut offenders = Vec::new();
    for file in repo.files.iter().filter(|f| f.is_rust() || f.is_markdown()) {
        for (k, line) in file.text.lines().enumerate() {
            for (_, name) in md_citations(line) {
                checked += 1;
                if !repo.names.contains(&name) {
                    offenders.push(format!(
                        "{}:{}: cites {name}, but no file of that name is in the repository",
                        file.rel,
                        k + 1
                    ));
                }
            }
        }
        // Backticked paths: anywhere in Markdown, in comments in Rust.
        let lines: Vec<(usize, String)> = if file.is_markdown() {
            file.text
                .lines()
                .enumerate()
                .map(|(k, l)| (k + 1, l.to_string()))
                .collect()
        } else {
            comments(&file.text)
                .into_iter()
                .map(|l| (l.line, l.text))
                .collect()
        };
        for (line, text) in &lines {
            for span in backticked(text) {
                if let Some(path) = cited_path(span, &repo.top_dirs) {
                    checked += 1;
                    if !repo.root.join(path).is_file() {
                        offenders.push(format!(
                            "{}:{line}: cites `{path}`, which does not exist",
                            file.rel
                        ));
                    }
                }
            }
        }
    }
    (checked, offenders)
}

// ---------------------------------------------------------------------------
// (b) Issue numbers

/// Whether `word` (lowercase ASCII when `ignore_case`) stands at `k` in
/// `c` as a whole word: the index after it.
fn word_at(c: &[(usize, char)], k: usize, word: &str, ignore_case: bool) -> Option<usize> {
    if k > 0 && is_ident(c[k - 1].1) {
        return None;
    }
    let mut j = k;
    for w in word.chars() {
        let ch = c.get(j)?.1;
        let same = if ignore_case {
            ch.to_ascii_lowercase() == w
        } else {
            ch == w
        };
        if !same {
            return None;
        }
        j += 1;
    }
    c.get(j).is_none_or(|&(_, ch)| !is_ident(ch)).then_some(j)
}

fn skip_spaces(c: &[(usize, char)], mut j: usize) -> usize {
    while c.get(j).is_some_and(|&(_, ch)| ch == ' ' || ch == '\t') {
        j += 1;
    }
    j
}

/// The end of a run of digits at `j` that stands alone (no letter, digit,
/// `_` or `-` right after it), if there is one.
fn number_end(c: &[(usize, char)], j: usize) -> Option<usize> {
    let mut e = j;
    while c.get(e).is_some_and(|&(_, ch)| ch.is_ascii_digit()) {
        e += 1;
    }
    let alone = c.get(e).is_none_or(|&(_, ch)| !(is_ident(ch) || ch == '-'));
    (e > j && alone).then_some(e)
}

fn byte_range(text: &str, c: &[(usize, char)], from: usize, to: usize) -> Range<usize> {
    c[from].0..c.get(to).map_or(text.len(), |&(b, _)| b)
}

/// Mentions of issue or pull-request numbers: the words issue(s), PR(s) or
/// pull request(s) before a number (a hash sign between them or not), or a
/// hash sign right before a number that stands alone. Not attributes, raw
/// strings, HTML character references, Markdown headers (`# Safety`), link
/// anchors or format specs. (This comment gives no literal example, or tidy
/// would flag it: the tests below hold them.)
fn issue_refs(text: &str) -> Vec<Range<usize>> {
    let c: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut k = 0;
    while k < c.len() {
        let ch = c[k].1;
        if ch == '#' {
            let prev = if k > 0 { c[k - 1].1 } else { ' ' };
            let anchor = prev == '(' && k > 1 && c[k - 2].1 == ']';
            let attached = is_ident(prev) || matches!(prev, '&' | ':' | '/' | '#');
            if !anchor
                && !attached
                && let Some(e) = number_end(&c, k + 1)
            {
                out.push(byte_range(text, &c, k, e));
                k = e;
                continue;
            }
        }
        let word = [("issues", true), ("issue", true), ("prs", false), ("pr", false)]
            .iter()
            .find_map(|&(w, ignore_case)| {
                let upper = w.to_ascii_uppercase();
                let w = if ignore_case { w } else { &upper };
                word_at(&c, k, w, ignore_case)
            })
            .or_else(|| {
                word_at(&c, k, "pull", true)
                    .map(|j| skip_spaces(&c, j))
                    .and_then(|j| {
                        word_at(&c, j, "requests", true).or_else(|| word_at(&c, j, "request", true))
                    })
            });
        if let Some(j) = word {
            let mut j = skip_spaces(&c, j);
            for filler in ["number", "no."] {
                if let Some(after) = word_at(&c, j, filler.trim_end_matches('.'), true) {
                    let after = if filler.ends_with('.') && c.get(after).is_some_and(|&(_, ch)| ch == '.') {
                        after + 1
                    } else {
                        after
                    };
                    j = skip_spaces(&c, after);
                }
            }
            if c.get(j).is_some_and(|&(_, ch)| ch == '#') {
                j += 1;
            }
            if c.get(j - 1)
                .is_some_and(|&(_, ch)| ch == ' ' || ch == '\t' || ch == '#')
                && let Some(e) = number_end(&c, j)
            {
                out.push(byte_range(text, &c, k, e));
                k = e;
                continue;
            }
        }
        k += 1;
    }
    out
}

// ---------------------------------------------------------------------------
// (c) Measurement history

/// Units of time, size, share and rate whose figures are measurements.
const UNITS: &[&str] = &[
    "images/s", "imgs/s", "img/s", "GFLOP/s", "TFLOP/s", "GFLOPS", "GFLOPs", "GB/s", "MB/s", "KB/s", "GiB/s",
    "MiB/s", "it/s", "ops/s", "seconds", "secs", "sec", "min", "ns", "µs", "μs", "us", "ms", "s", "%", "GiB",
    "MiB", "KiB", "GB", "MB", "KB", "G", "M", "K",
];

/// A number at `j` (`12`, `1.28`, `1,024`) not glued to a word before it:
/// the index after it.
fn figure_end(c: &[(usize, char)], j: usize) -> Option<usize> {
    let digit = |i: usize| c.get(i).is_some_and(|&(_, ch)| ch.is_ascii_digit());
    if !digit(j) || (j > 0 && (is_ident(c[j - 1].1) || c[j - 1].1 == '.')) {
        return None;
    }
    let mut e = j;
    while digit(e) {
        e += 1;
    }
    while c.get(e).is_some_and(|&(_, ch)| ch == ',' || ch == '.') && digit(e + 1) {
        e += 1;
        while digit(e) {
            e += 1;
        }
    }
    Some(e)
}

/// A unit at `j`, after optional spaces, ending a word: the index after it.
fn unit_end(c: &[(usize, char)], j: usize) -> Option<usize> {
    let j = skip_spaces(c, j);
    UNITS.iter().find_map(|unit| {
        let mut e = j;
        for u in unit.chars() {
            if c.get(e)?.1 != u {
                return None;
            }
            e += 1;
        }
        let ends = c.get(e).is_none_or(|&(_, ch)| !is_ident(ch) && ch != '-');
        ends.then_some(e)
    })
}

/// Before/after figures: two numbers joined by `to`, `->` or an arrow, the
/// second (and maybe the first) followed by one of the [`UNITS`] of time,
/// size, share or rate; two such figures, both with units, compared by
/// `vs` or `against`; or `was` or `were` before such a figure. A range
/// without a unit (`0 to 255`, `rows 1 to 6`) is not a measurement. (The
/// tests below hold the examples this comment cannot.)
fn measurement_history(text: &str) -> Vec<Range<usize>> {
    let c: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut k = 0;
    while k < c.len() {
        let was = ["was", "were"].iter().find_map(|w| word_at(&c, k, w, true));
        if let Some(j) = was
            && let Some(e) = figure_end(&c, skip_spaces(&c, j)).and_then(|e| unit_end(&c, e))
        {
            out.push(byte_range(text, &c, k, e));
            k = e;
            continue;
        }
        if let Some(mut j) = figure_end(&c, k) {
            let first_unit = unit_end(&c, j);
            j = skip_spaces(&c, first_unit.unwrap_or(j));
            let joined = word_at(&c, j, "to", false)
                .or_else(|| (c.get(j).map(|p| p.1) == Some('→')).then_some(j + 1))
                .or_else(|| {
                    (c.get(j).map(|p| p.1) == Some('-') && c.get(j + 1).map(|p| p.1) == Some('>'))
                        .then_some(j + 2)
                })
                .or_else(|| {
                    // A comparison by `vs` or `against` counts only with units on both sides.
                    let vs = ["vs", "versus", "against"]
                        .iter()
                        .find_map(|w| word_at(&c, j, w, false));
                    let vs = vs.map(|e| e + usize::from(c.get(e).is_some_and(|p| p.1 == '.')));
                    vs.filter(|_| first_unit.is_some())
                });
            if let Some(j) = joined
                && let Some(e) = figure_end(&c, skip_spaces(&c, j)).and_then(|e| unit_end(&c, e))
            {
                out.push(byte_range(text, &c, k, e));
                k = e;
                continue;
            }
        }
        k += 1;
    }
    out
}

// ---------------------------------------------------------------------------
// Test files

/// The module a line such as `mod common;` or `pub mod run;` declares from
/// a file of its own.
fn declared_module(line: &str) -> Option<&str> {
    let line = line.trim();
    let rest = line.strip_prefix("pub ").unwrap_or(line);
    let name = rest.strip_prefix("mod ")?.strip_suffix(';')?.trim();
    name.chars().all(is_ident).then_some(name)
}

/// The `.rs` files under `<package>/tests/` that no test target compiles.
/// With `autotests = false` the roots are the manifest's `path =
/// "tests/..."` entries, otherwise every `tests/*.rs` and `tests/*/main.rs`
/// (what Cargo finds); each `mod x;` of a compiled file adds `x`.
fn uncompiled_tests(repo: &Repo, package: &str) -> Vec<String> {
    let under = format!("{package}/tests/");
    let text = |rel: &str| repo.files.iter().find(|f| f.rel == rel).map(|f| f.text.as_str());
    let Some(manifest) = text(&format!("{package}/Cargo.toml")) else {
        return Vec::new();
    };
    let files: BTreeSet<&str> = repo
        .files
        .iter()
        .map(|f| f.rel.as_str())
        .filter(|rel| rel.starts_with(&under) && rel.ends_with(".rs"))
        .collect();
    let listed = manifest.lines().any(|l| l.replace(' ', "") == "autotests=false");
    let roots: Vec<String> = if listed {
        manifest
            .lines()
            .filter_map(|l| l.trim().strip_prefix("path = \"tests/")?.strip_suffix('"'))
            .map(|p| format!("{under}{p}"))
            .collect()
    } else {
        files
            .iter()
            .filter(|rel| {
                let rest = &rel[under.len()..];
                !rest.contains('/') || (rest.ends_with("/main.rs") && rest.matches('/').count() == 1)
            })
            .map(|rel| rel.to_string())
            .collect()
    };
    // A root and a `mod.rs` declare modules beside them; `x.rs` in `x/`.
    let mut stack: Vec<(String, bool)> = roots.into_iter().map(|r| (r, true)).collect();
    let mut compiled = BTreeSet::new();
    while let Some((rel, root)) = stack.pop() {
        let Some(src) = text(&rel) else { continue };
        let dir = match rel.strip_suffix(".rs") {
            Some(stem) if !root && !rel.ends_with("/mod.rs") => stem.to_string(),
            _ => rel[..rel.rfind('/').unwrap_or(0)].to_string(),
        };
        for name in src.lines().filter_map(declared_module) {
            for child in [format!("{dir}/{name}.rs"), format!("{dir}/{name}/mod.rs")] {
                if files.contains(child.as_str()) && !compiled.contains(&child) {
                    stack.push((child, false));
                }
            }
        }
        compiled.insert(rel);
    }
    files
        .into_iter()
        .filter(|rel| !compiled.contains(*rel))
        .map(|rel| format!("{rel}: no test target compiles it"))
        .collect()
}

// ---------------------------------------------------------------------------
// The checks

#[test]
fn cited_files_exist() {
    let repo = walk(&root());
    let sources = repo
        .files
        .iter()
        .filter(|f| f.is_rust() || f.is_markdown())
        .count();
    assert!(
        sources > 0,
        "tidy found no .rs or .md files under {}",
        repo.root.display()
    );
    let (checked, offenders) = citation_offenders(&repo);
    assert!(
        checked > 0,
        "tidy found no citation to check in {sources} files: the detector is broken"
    );
    report(
        "citations of files that do not exist",
        &offenders,
        "Cite files of this repository by their path from the root (or, for a Markdown file named \
         in capitals, by a name that exists), or add the file, or drop the citation.",
    );
}

#[test]
fn comments_name_no_issue_numbers() {
    let repo = walk(&root());
    let (scanned, offenders) = comment_offenders(&repo, "issue number in a comment", issue_refs);
    assert!(
        rust_file_count(&repo) > 0 && scanned > 0,
        "tidy found no Rust comments under {}: nothing was checked",
        repo.root.display()
    );
    report(
        "comments that refer to issue or pull-request numbers",
        &offenders,
        "Say what the reader needs to know in the comment itself; the issue's number belongs in \
         the commit message.",
    );
}

#[test]
fn comments_carry_no_measurement_history() {
    let repo = walk(&root());
    let (scanned, offenders) =
        comment_offenders(&repo, "measurement history in a comment", measurement_history);
    assert!(
        rust_file_count(&repo) > 0 && scanned > 0,
        "tidy found no Rust comments under {}: nothing was checked",
        repo.root.display()
    );
    report(
        "comments that carry before/after measurements",
        &offenders,
        "Say why the code is as it is, not how fast it used to be: before/after figures belong \
         in the bench report and the commit message.",
    );
}

#[test]
fn every_test_file_is_compiled() {
    let repo = walk(&root());
    let packages: Vec<&str> = repo
        .files
        .iter()
        .filter_map(|f| f.rel.strip_suffix("/Cargo.toml"))
        .filter(|p| {
            repo.files
                .iter()
                .any(|f| f.rel.starts_with(&format!("{p}/tests/")))
        })
        .collect();
    assert!(
        packages.contains(&"crates/models") && packages.contains(&"xtask"),
        "tidy found no package with tests: {packages:?}"
    );
    let offenders: Vec<String> = packages.iter().flat_map(|p| uncompiled_tests(&repo, p)).collect();
    report(
        "test files that no test target compiles",
        &offenders,
        "Declare the file as a module of the package's `tests/suite.rs` (or of another test \
         target), or list it as a `[[test]]` of its manifest.",
    );
}

// ---------------------------------------------------------------------------
// The detectors themselves

fn found(detect: fn(&str) -> Vec<Range<usize>>, text: &str) -> Vec<String> {
    detect(text).into_iter().map(|r| text[r].to_string()).collect()
}

#[test]
fn the_walk_sees_sources_docs_and_scripts_but_no_outputs() {
    let repo = walk(&root());
    let has = |rel: &str| repo.files.iter().any(|f| f.rel == rel);
    assert!(has("Cargo.toml") && has("README.md") && has("xtask/tests/tidy.rs"));
    assert!(has(".ci/run"));
    assert!(
        repo.files
            .iter()
            .all(|f| !f.rel.starts_with("target") && !f.rel.starts_with(".git/"))
    );
    assert!(repo.top_dirs.contains("crates") && repo.top_dirs.contains("xtask"));
    assert!(
        !repo
            .top_dirs
            .iter()
            .any(|d| d.starts_with("target") || d == ".git")
    );
    assert!(is_checked_file("a/b.py") && is_checked_file("a/b.sh") && !is_checked_file("Cargo.lock"));
}

#[test]
fn the_lexer_finds_comments_and_only_comments() {
    let src = concat!(
        "//! crate doc\n",
        "/// item doc\n",
        "let url = \"https://example.com\"; // trailing\n",
        "let raw = r#\"a \"quoted\" // not a comment\"#;\n",
        "let q = '\"'; let s = \"\\\" // still a string\"; fn f<'a>(x: &'a str) {} // after\n",
        "/* block\n",
        "   * second */ let b = b\"//\"; let e = '\\''; // end\n",
        "let m = \"multi\n// line string\n\";\n",
    );
    let lines = comments(src);
    let got: Vec<(usize, &str)> = lines.iter().map(|l| (l.line, l.text.as_str())).collect();
    assert_eq!(
        got,
        [
            (1, "crate doc"),
            (2, "item doc"),
            (3, "trailing"),
            (5, "after"),
            (6, "block"),
            (7, "second"),
            (7, "end"),
        ]
    );
    let blocks = comment_blocks(&comments("// one\n// two\n\n// three\n"));
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].text, "one two");
    assert_eq!((blocks[0].line_of(0), blocks[0].line_of(4)), (1, 2));
}

#[test]
fn md_citations_are_capitalised_markdown_names() {
    let names = |t: &str| md_citations(t).into_iter().map(|(_, n)| n).collect::<Vec<_>>();
    assert_eq!(
        names("see `MODELS.md` and ARCHITECTURE.md."),
        ["MODELS.md", "ARCHITECTURE.md"]
    );
    assert_eq!(names("in crates/datasets/README.md:"), ["README.md"]);
    let missing = format!("the {}.md of {}_NOTES.md", "CHANGELOG", "DESIGN");
    assert_eq!(
        names(&missing),
        [format!("{}.md", "CHANGELOG"), format!("{}_NOTES.md", "DESIGN")]
    );
    assert!(names("readme.md Models.md xMODELS.md MODELS.mdx MODELS.rs").is_empty());
}

#[test]
fn backticked_paths_are_citations_only_inside_the_repository() {
    let top: BTreeSet<String> = ["crates", "xtask", "benches", ".ci", ".cargo"]
        .map(String::from)
        .into();
    let cite = |line: &str| {
        backticked(line)
            .into_iter()
            .filter_map(|s| cited_path(s, &top).map(str::to_string))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        cite("see `crates/layers/src/conv.rs` and `xtask/interop/check_safetensors.py`"),
        ["crates/layers/src/conv.rs", "xtask/interop/check_safetensors.py"]
    );
    assert_eq!(
        cite("`crates/models/tests/allocation.rs:42`, `benches/src/lib.rs#L3`"),
        ["crates/models/tests/allocation.rs", "benches/src/lib.rs"]
    );
    assert_eq!(cite("`.cargo/config.toml`"), [".cargo/config.toml"]);
    let outputs = "`runs/latest/metrics.csv` `target/bench-report.md` `~/.cache/x/y.json` `/etc/x/y.conf`";
    assert!(cite(outputs).is_empty());
    let not_files = "`crates/layers` `src/lib.rs` `cargo test` `a/b` `crates/x/<d>.json` `1/len` ```sh";
    assert!(cite(not_files).is_empty());
    assert_eq!(backticked("`a`,`b c` `d`"), ["a", "d"]);
}

#[test]
fn issue_refs_are_found() {
    for (text, want) in [
        ("the convolutions of issue #4 (3x3 p1 s1)", "issue #4"),
        ("The shapes issue 5 names.", "issue 5"),
        ("as issues 4 and 5 ask", "issues 4"),
        ("Issue 12: slow", "Issue 12"),
        ("fixed in #12.", "#12"),
        ("(#7)", "#7"),
        ("see [#8](https://example.com)", "#8"),
        ("after PR #3 landed", "PR #3"),
        ("pull request 9", "pull request 9"),
        ("issue number 6", "issue number 6"),
    ] {
        assert_eq!(found(issue_refs, text), [want], "{text}");
    }
}

#[test]
fn issue_refs_ignore_attributes_anchors_and_headers() {
    for text in [
        "#[derive(Clone, Debug)]",
        "#![forbid(unsafe_code)]",
        "let raw = r#\"x\"#;",
        "mask 0x1f and 0xff",
        "# Safety",
        "# Examples",
        "# Ok::<(), models::Error>(())",
        "see [the part](#part-2) and [x](#3)",
        "&#39; is a quote",
        "format!(\"{:#010x}\")",
        "a tissue 5 cm wide; no issues here; issue-5-ish",
        "#3x3 filters",
        "the PRNG 5 draws",
        "the pr 5 (lowercase is not a pull request)",
    ] {
        assert!(
            found(issue_refs, text).is_empty(),
            "{text}: {:?}",
            found(issue_refs, text)
        );
    }
}

#[test]
fn measurement_history_is_found() {
    for (text, want) in [
        ("forward 1.28 to 1.11 ms on 2 threads", "1.28 to 1.11 ms"),
        ("thread: forward 0.97 to 0.59 ms)", "0.97 to 0.59 ms"),
        ("allocations 991M to 865M", "991M to 865M"),
        ("7.3 -> 1.6 ms", "7.3 -> 1.6 ms"),
        ("7.3→1.6ms", "7.3→1.6ms"),
        ("it was 12 ms", "was 12 ms"),
        ("from 5 ms to 3 ms", "5 ms to 3 ms"),
        ("went from 6.5 to 4.3 ms grouped by 10", "6.5 to 4.3 ms"),
        ("speed 1,200 to 1,900 images/s", "1,200 to 1,900 images/s"),
        ("12 to 18 GFLOP/s", "12 to 18 GFLOP/s"),
        ("load 40% to 60%", "40% to 60%"),
        ("3.1 to 5.2 GB/s", "3.1 to 5.2 GB/s"),
        ("88 ms vs. 76 ms", "88 ms vs. 76 ms"),
        ("4.1 µs against 3.9 µs", "4.1 µs against 3.9 µs"),
    ] {
        assert_eq!(found(measurement_history, text), [want], "{text}");
    }
    // Across the lines of one comment.
    let block = &comment_blocks(&comments("/// forward 1.28 to 1.11\n/// ms on 2 threads\n"))[0];
    let hits = measurement_history(&block.text);
    assert_eq!(hits.len(), 1);
    assert_eq!(block.line_of(hits[0].start), 1);
}

#[test]
fn measurement_history_ignores_plain_ranges() {
    for text in [
        "pixels 0 to 255",
        "rows 1 to 6 of the table",
        "m to 300",
        "from 1 to 5 steps",
        "3x3 to 5x5 filters",
        "conv1 to conv5 ms",
        "1 to 3 K-tiles",
        "epochs 1 to 20 stay the same",
        "the batch was 100 images",
        "2 to 4 threads",
        "the v1.2 to 1.3 upgrade",
        "batch 100 vs 200 ms",
        "3 against 4 threads",
    ] {
        assert!(
            found(measurement_history, text).is_empty(),
            "{text}: {:?}",
            found(measurement_history, text)
        );
    }
}

#[test]
fn uncompiled_tests_follows_manifests_and_modules() {
    let file = |rel: &str, text: &str| SourceFile {
        rel: rel.into(),
        text: text.into(),
    };
    let repo = |files: Vec<SourceFile>| Repo {
        root: PathBuf::new(),
        files,
        names: BTreeSet::new(),
        top_dirs: BTreeSet::new(),
    };
    let tests = || {
        vec![
            file(
                "p/tests/suite.rs",
                "//! doc\nmod a;\npub mod common;\n// mod b;\n",
            ),
            file("p/tests/a.rs", "mod inner;\n"),
            file("p/tests/a/inner.rs", ""),
            file("p/tests/b.rs", ""),
            file("p/tests/common/mod.rs", "mod deep;\n"),
            file("p/tests/common/deep.rs", ""),
            file("p/tests/alone.rs", "mod common;\n"),
        ]
    };
    let listed = "[package]\nautotests = false\n[[test]]\nname = \"suite\"\npath = \"tests/suite.rs\"\n";
    let mut files = tests();
    files.push(file("p/Cargo.toml", listed));
    assert_eq!(
        uncompiled_tests(&repo(files), "p"),
        [
            "p/tests/alone.rs: no test target compiles it",
            "p/tests/b.rs: no test target compiles it"
        ]
    );
    // Cargo finds every top-level file itself unless told not to.
    let mut files = tests();
    files.push(file("p/Cargo.toml", "[package]\n"));
    assert!(uncompiled_tests(&repo(files), "p").is_empty());
}
