//! Habits as checks, as rust-analyzer's tidy tests keep them: no function
//! in `src/` longer than 150 lines. A long function hides several jobs; the
//! next reader should find one job per name.

use std::path::{Path, PathBuf};

const MAX_LINES: usize = 150;

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Where a line declares a function: its indentation and name.
fn fn_start(line: &str) -> Option<(usize, String)> {
    let indent = line.len() - line.trim_start().len();
    let mut words = line.split_whitespace().peekable();
    while let Some(w) = words.peek() {
        let qualifier = *w == "pub"
            || w.starts_with("pub(")
            || matches!(*w, "async" | "const" | "unsafe" | "extern" | "\"C\"");
        if !qualifier {
            break;
        }
        words.next();
    }
    if words.next()? != "fn" {
        return None;
    }
    let name: String = words
        .next()?
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    Some((indent, name))
}

/// Every function's length: from its `fn` line to the `}` at its own
/// indentation (rustfmt's layout).
fn long_functions(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((indent, name)) = fn_start(line) else {
            continue;
        };
        // A declaration without a body (in a trait) ends with `;`.
        let Some(open) = (i..lines.len()).find(|&j| {
            let l = lines[j].trim_end();
            l.ends_with('{') || l.ends_with(';') || l.ends_with('}')
        }) else {
            continue;
        };
        if !lines[open].trim_end().ends_with('{') {
            continue;
        }
        let close = format!("{}}}", " ".repeat(indent));
        if let Some(end) = (open + 1..lines.len()).find(|&j| lines[j] == close) {
            let n = end - i + 1;
            if n > MAX_LINES {
                found.push(format!("{}:{} fn {name}: {n} lines", path.display(), i + 1));
            }
        }
    }
    found
}

#[test]
fn no_function_in_src_is_longer_than_150_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let long: Vec<String> = rust_files(&src)
        .iter()
        .flat_map(|p| long_functions(p))
        .collect();
    assert!(
        long.is_empty(),
        "split these (one job per function):\n{}",
        long.join("\n")
    );
}

#[test]
fn the_length_check_finds_a_long_function() {
    let dir = tempfile::tempdir().unwrap();
    let body = "    let x = 1;\n".repeat(MAX_LINES);
    let file = dir.path().join("long.rs");
    std::fs::write(
        &file,
        format!("pub async fn long() {{\n{body}}}\n\nfn short() {{\n}}\n"),
    )
    .unwrap();
    let found = long_functions(&file);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("fn long"), "{found:?}");
}
