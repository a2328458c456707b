//! Which top-level module imports which, read from the source files, so a
//! test can keep them free of cycles (docs/ARCHITECTURE.md, "Module
//! dependencies"). A test-only module: it reads `src/`, which only exists
//! where the crate is built.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module name → the other top-level modules its code names.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// Files that are no module of the library's graph.
const NOT_MODULES: [&str; 3] = ["lib", "main", "module_graph"];

/// The graph of `src/`: for each top-level module, every `crate::NAME`
/// (and `$crate::macro!`, mapped to the module defining the macro) in its
/// code outside comments and its `mod tests`.
fn graph(src: &Path) -> Graph {
    let files: Vec<(String, String)> = rust_files(src)
        .into_iter()
        .filter_map(|path| {
            let relative = path.strip_prefix(src).expect("under src");
            let first = relative.components().next()?.as_os_str().to_str()?;
            let module = first.trim_end_matches(".rs").to_string();
            if NOT_MODULES.contains(&module.as_str()) {
                return None;
            }
            let text = std::fs::read_to_string(&path).expect("readable source");
            Some((module, code_only(&text)))
        })
        .collect();
    let modules: BTreeSet<String> = files.iter().map(|(module, _)| module.clone()).collect();
    let mut macros = BTreeMap::new();
    for (module, code) in &files {
        for name in words_after(code, "macro_rules!") {
            macros.insert(name, module.clone());
        }
    }
    let mut graph = Graph::new();
    for (module, code) in &files {
        let uses = graph.entry(module.clone()).or_default();
        for name in crate_names(code) {
            let target = macros.get(&name).cloned().unwrap_or(name);
            if modules.contains(&target) && target != *module {
                uses.insert(target);
            }
        }
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable src") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            found.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
    found
}

/// The file without its `mod tests` (always last) and comment lines.
fn code_only(text: &str) -> String {
    let end = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..end]
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The identifier after each `marker` (spaces skipped).
fn words_after(code: &str, marker: &str) -> Vec<String> {
    code.match_indices(marker)
        .map(|(at, _)| identifier(code[at + marker.len()..].trim_start()))
        .collect()
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Every first path segment after `crate::`, including each item of a
/// `crate::{a::b, c}` group.
fn crate_names(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            names.push(identifier(rest));
            continue;
        };
        let mut depth = 1;
        let mut item_starts = true;
        for (index, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 1 => item_starts = true,
                c if c.is_whitespace() => {}
                _ if item_starts && depth == 1 => {
                    names.push(identifier(&group[index..]));
                    item_starts = false;
                }
                _ => {}
            }
            if depth == 0 {
                break;
            }
        }
    }
    names
}

/// A cycle of `graph`, as the modules along it, if it has one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|on_path| on_path == module) {
            let mut cycle = path[start..].to_vec();
            cycle.push(module.to_string());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_string());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|module| visit(module, graph, &mut Vec::new(), &mut done))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crate_graph() -> Graph {
        graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
    }

    #[test]
    fn no_module_imports_one_that_imports_it_back() {
        let graph = crate_graph();
        assert_eq!(find_cycle(&graph), None, "the graph: {graph:#?}");
    }

    #[test]
    fn data_types_and_parts_stand_below_everything_else() {
        let graph = crate_graph();
        let leaves = ["ack", "cpu", "error", "json", "scan"];
        for (module, above_leaves) in [("record", None), ("parts", Some("record"))] {
            let others: Vec<_> = graph[module]
                .iter()
                .filter(|used| !leaves.contains(&used.as_str()))
                .filter(|used| Some(used.as_str()) != above_leaves)
                .collect();
            assert!(others.is_empty(), "{module} imports {others:?}");
        }
    }

    #[test]
    fn the_reader_finds_groups_macros_and_cycles() {
        let names = crate_names("use crate::{a::{b, c}, d};\nlet x = crate::e::f();");
        assert_eq!(names, ["a", "d", "e"]);
        assert_eq!(words_after("macro_rules! say {", "macro_rules!"), ["say"]);
        let mut graph = Graph::new();
        graph.insert("a".into(), ["b".to_string()].into());
        graph.insert("b".into(), BTreeSet::new());
        assert_eq!(find_cycle(&graph), None);
        graph.insert("b".into(), ["a".to_string()].into());
        assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "a"]);
    }
}
