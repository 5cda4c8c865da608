//! The layers hold: no two modules of src/ import each other (directly or round a
//! circle), and the library's top-level modules import only downward, in the order
//! lib.rs's Layout gives. Read from the source's own `crate::` and `super::` paths.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library's top-level modules, lowest first: a module may import only those
/// of its own rank or below (and within a rank, no circle).
const LAYERS: &[&[&str]] = &[
    &["proto", "human", "size", "sync"],
    &["sys"],
    &["observe", "capture"],
    &["error"],
    &["sink", "stop"],
    &["addr", "stream", "cpu"],
    &["server", "client", "watch", "trace"],
    &["check"],
    &["report"],
];

/// The binary's own modules (its crate root is main.rs).
const BINARY: &[&str] = &["cli", "demo"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's module path below its crate root: src/client/many/load.rs →
/// ["client", "many", "load"]; mod.rs is its folder; lib.rs and main.rs are [].
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The product code without comments (a path in a doc comment is not an import):
/// a file's unit tests, at its end behind `#[cfg(test)]`, may look across layers.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path a file names from its crate root: `crate::a::b`, `super::x` (made
/// absolute: `super` of a file is its folder's module, of a mod.rs its parent's),
/// and each name of a `crate::{a, b::c}` group.
fn paths(module: &[String], text: &str) -> Vec<Vec<String>> {
    let text = code(text);
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut i = 0;
    while i < bytes.len() {
        if !text.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let starts = |word: &str| text[i..].starts_with(word) && (i == 0 || !ident(bytes[i - 1]));
        let (base, skip) = if starts("crate::") {
            (Vec::new(), "crate::".len())
        } else if starts("super::") {
            // super of a file is its parent module; of a mod.rs, its folder's parent.
            let mut base = module.to_vec();
            let mut j = i;
            while text[j..].starts_with("super::") {
                base.pop();
                j += "super::".len();
            }
            (base, j - i)
        } else {
            i += 1;
            continue;
        };
        let rest = &text[i + skip..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for name in group[..end].split(',') {
                let mut path = base.clone();
                path.extend(
                    name.trim()
                        .split("::")
                        .map(|s| s.trim().trim_matches('{').to_string())
                        .filter(|s| !s.is_empty()),
                );
                out.push(path);
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let mut path = base;
            path.extend(
                rest[..end]
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
            out.push(path);
        }
        i += skip;
    }
    out
}

struct Tree {
    /// Module path → its file, for one crate (library or binary).
    modules: BTreeMap<Vec<String>, PathBuf>,
    /// File → the files it imports.
    edges: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
}

fn is_binary(module: &[String], file: &Path) -> bool {
    file.ends_with("main.rs") || module.first().is_some_and(|m| BINARY.contains(&m.as_str()))
}

/// The import graph of one crate: the binary's files, or the library's.
fn tree(binary: bool) -> Tree {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let files: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| {
            is_binary(&module_of(f), f) == binary
                && !f.ends_with(if binary { "lib.rs" } else { "main.rs" })
        })
        // Files of unit tests only.
        .filter(|f| {
            let name = f.file_name().unwrap().to_string_lossy();
            name != "tests.rs" && !name.ends_with("_tests.rs")
        })
        .collect();
    let modules: BTreeMap<Vec<String>, PathBuf> =
        files.iter().map(|f| (module_of(f), f.clone())).collect();
    let mut edges = BTreeMap::new();
    for file in &files {
        let module = module_of(file);
        let text = std::fs::read_to_string(file).unwrap();
        let mut to = BTreeSet::new();
        for path in paths(&module, &text) {
            // The longest prefix that is a file of this crate.
            if let Some(target) = (1..=path.len())
                .rev()
                .find_map(|n| modules.get(&path[..n]))
                .filter(|t| *t != file)
            {
                // A module's own submodules are its to use (mod.rs → child).
                let child = module_of(target).starts_with(&module) && !module.is_empty();
                if !child {
                    to.insert(target.clone());
                }
            }
        }
        edges.insert(file.clone(), to);
    }
    Tree { modules, edges }
}

/// The circles of the graph (strongly connected sets of more than one file).
fn circles(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<BTreeSet<PathBuf>> {
    let reach = |from: &PathBuf| -> BTreeSet<PathBuf> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(f) = stack.pop() {
            for t in edges.get(&f).into_iter().flatten() {
                if seen.insert(t.clone()) {
                    stack.push(t.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&PathBuf, BTreeSet<PathBuf>> =
        edges.keys().map(|f| (f, reach(f))).collect();
    let mut found: Vec<BTreeSet<PathBuf>> = Vec::new();
    for (f, r) in &reaches {
        if !r.contains(*f) {
            continue;
        }
        let circle: BTreeSet<PathBuf> = r
            .iter()
            .filter(|g| reaches.get(g).is_some_and(|back| back.contains(*f)))
            .cloned()
            .collect();
        if circle.len() > 1 && !found.contains(&circle) {
            found.push(circle);
        }
    }
    found
}

fn shown(files: &BTreeSet<PathBuf>) -> String {
    files
        .iter()
        .map(|f| f.strip_prefix(src()).unwrap().display().to_string())
        .collect::<Vec<_>>()
        .join(" ↔ ")
}

#[test]
fn no_two_modules_import_each_other() {
    for binary in [false, true] {
        let tree = tree(binary);
        assert!(tree.modules.len() > 10, "too few modules read");
        let found = circles(&tree.edges);
        assert!(
            found.is_empty(),
            "import circles:\n{}",
            found.iter().map(shown).collect::<Vec<_>>().join("\n")
        );
    }
}

#[test]
fn the_librarys_modules_import_only_downward() {
    let rank = |m: &str| LAYERS.iter().position(|layer| layer.contains(&m));
    let tree = tree(false);
    let mut wrong = Vec::new();
    for (file, to) in &tree.edges {
        let Some(from) = module_of(file).first().cloned() else {
            continue;
        };
        let Some(from_rank) = rank(&from) else {
            wrong.push(format!("{from}: not in LAYERS (add it where it belongs)"));
            continue;
        };
        for target in to {
            let Some(into) = module_of(target).first().cloned() else {
                continue;
            };
            if rank(&into).is_some_and(|r| r > from_rank) {
                wrong.push(format!(
                    "{} imports {} (a higher layer)",
                    file.strip_prefix(src()).unwrap().display(),
                    target.strip_prefix(src()).unwrap().display()
                ));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_reader_sees_imports_and_circles() {
    // The reader itself: a group import, super, and a circle are found.
    let m = vec!["client".to_string(), "many".to_string(), "load".to_string()];
    let found = paths(
        &m,
        "use crate::{addr, observe::queues};\nuse super::tally::Tally; // crate::not",
    );
    assert_eq!(
        found,
        [
            vec!["addr".to_string()],
            vec!["observe".to_string(), "queues".to_string()],
            vec![
                "client".to_string(),
                "many".to_string(),
                "tally".to_string(),
                "Tally".to_string()
            ],
        ]
    );
    let a = PathBuf::from("a.rs");
    let b = PathBuf::from("b.rs");
    let edges = BTreeMap::from([
        (a.clone(), BTreeSet::from([b.clone()])),
        (b.clone(), BTreeSet::from([a.clone()])),
    ]);
    assert_eq!(circles(&edges).len(), 1);
}
