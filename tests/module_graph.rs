//! The module graph runs one way: each top-level module of `src/` imports
//! only from the layers listed before its own (and, within a layer, without
//! a circle). A new module must be given a layer here and in `lib.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// The layers, leaves first (as `lib.rs` lists them).
const LAYERS: &[&[&str]] = &[
    &["clock", "error", "faults", "fsutil", "metrics", "model", "runtime"],
    &["cache_file", "db", "format", "index", "overlay", "search", "validate"],
    &["config", "remote"],
    &["scheduler"],
    &["loader"],
    &["napi"],
];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("module '{module}' has no layer in tests/module_graph.rs"))
}

/// The top-level modules named by `crate::` paths in `text`, including
/// those inside `use crate::{a, b::c}` groups.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        rest = &group[i..];
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_alphanumeric() || c == '_') => {
                        let name: String = group[i..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        refs.insert(name);
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            refs.insert(name);
        }
    }
    // Items re-exported at the crate root (`crate::Result`) are not modules.
    refs.retain(|r| r.chars().next().is_some_and(|c| c.is_lowercase()));
    refs
}

/// A file's text without its unit tests (a trailing `#[cfg(test)] mod tests`).
fn without_tests(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests").map_or(text, |at| &text[..at])
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// module -> the modules it imports.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative.components().next().unwrap().as_os_str().to_string_lossy();
        let module = top.trim_end_matches(".rs").to_owned();
        if module == "lib" {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap();
        let imports = graph.entry(module.clone()).or_default();
        imports.extend(crate_refs(without_tests(&text)).into_iter().filter(|m| *m != module));
    }
    graph
}

#[test]
fn every_import_points_to_an_earlier_layer_or_within_its_own_without_a_circle() {
    let graph = graph();
    assert!(graph.len() > 15, "read {} modules", graph.len());
    let mut wrong = Vec::new();
    for (module, imports) in &graph {
        for imported in imports {
            if layer_of(imported) > layer_of(module) {
                wrong.push(format!("{module} imports {imported}, a later layer"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // Within a layer: no circle (depth-first search for a back edge).
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(at) = path.iter().position(|p| *p == m) {
            panic!("import circle: {}", [&path[at..], &[m]].concat().join(" -> "));
        }
        path.push(m);
        for next in graph.get(m).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(m);
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_checker_sees_imports_and_circles() {
    let refs = crate_refs("use crate::db::{queries, Database};\nuse crate::{clock::now_ms, model::{A, B}, Result};\nfn f() { crate::faults::hit(); }");
    assert_eq!(refs.into_iter().collect::<Vec<_>>(), ["clock", "db", "faults", "model"]);
    assert_eq!(without_tests("a\n#[cfg(test)]\nmod tests {\n crate::loader\n}"), "a\n");
}
