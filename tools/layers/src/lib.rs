//! The import rule, measured: each crate's modules as a graph of who names whom, the circles in
//! it, and the floors of the README's layer map.
//!
//! A module *imports* another when a `use` item or a path in its code (types, expressions,
//! patterns, and the arguments of macro calls that parse as expressions) resolves into it. Paths
//! are resolved as rustc resolves them, for the forms this workspace uses: `crate::`, `self::`,
//! `super::`, a child module's name, and a name a `use` brought into scope; a path that lands on
//! a re-export (`pub use child::Item`, or a glob) is followed to the module that defines the item,
//! so a `mod.rs` that only re-exports does not make its children depend on it. Inline modules
//! (`mod tests { .. }`) count as part of their file. An edge joins two *files*; declaring a child
//! (`mod child;`) is not an import, re-exporting one of its items is.
//!
//! [`Graph::circles`] gives the strongly connected components of more than one file (Tarjan);
//! [`LayerMap`] reads the floors from the README and [`LayerMap::check`] names every import that
//! runs up a floor and every module the map does not place. The workspace test
//! (`tests/workspace.rs`) applies both to `harness`, `agent` and the functions.
//!
//! Floor 0 of the workspace's tools: it imports only `syn`, `proc-macro2` and `thiserror`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use syn::visit::Visit;

mod layer_map;

pub use layer_map::{LayerMap, LayerMapError, Violation};

/// A module's path inside its crate: `[]` is the crate root, `["engine", "proxy"]` is
/// `crate::engine::proxy`.
pub type ModPath = Vec<String>;

/// Renders a module path as `engine::proxy` (`crate` for the root).
pub fn display(path: &[String]) -> String {
    if path.is_empty() {
        "crate".to_string()
    } else {
        path.join("::")
    }
}

/// What could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{parent}: `mod {name};` has no file (looked for {candidates})")]
    MissingModule {
        parent: PathBuf,
        name: String,
        candidates: String,
    },
}

/// Where an import was written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Site {
    pub file: PathBuf,
    pub line: usize,
    /// The path as written (`crate::engine::Engine`).
    pub text: String,
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.text)
    }
}

/// One module as the parser saw it.
#[derive(Debug, Default)]
struct Module {
    /// The file-level module this one is part of (itself, unless inline).
    file_module: ModPath,
    children: BTreeSet<String>,
    /// Names of items defined here (types, functions, constants, traits, macros).
    items: BTreeSet<String>,
    /// `use` names in scope here: name -> the path as written.
    uses: BTreeMap<String, Vec<String>>,
    /// `use path::*` targets as written.
    globs: Vec<Vec<String>>,
}

/// A path reference before resolution: written in `scope`.
#[derive(Debug)]
struct RawRef {
    scope: ModPath,
    segments: Vec<String>,
    /// A `use` leaf (whose landing on a module name is not an import by itself) or code.
    from_use: bool,
    glob: bool,
    site: Site,
}

/// A crate's file modules and the imports between them.
#[derive(Debug)]
pub struct Graph {
    pub crate_name: String,
    /// Every file-level module, with its file.
    pub files: BTreeMap<ModPath, PathBuf>,
    /// `(from, to)` -> where it is written (first few sites).
    pub edges: BTreeMap<(ModPath, ModPath), Vec<Site>>,
}

impl Graph {
    /// Parses a crate from its root file (`src/lib.rs` or `src/main.rs`), following `mod`
    /// declarations. `display_root` is stripped from the file names shown in sites.
    pub fn from_crate(
        crate_name: &str,
        root_file: &Path,
        display_root: &Path,
    ) -> Result<Graph, Error> {
        let mut parser = Parser {
            modules: BTreeMap::new(),
            refs: Vec::new(),
            files: BTreeMap::new(),
            display_root: display_root.to_path_buf(),
        };
        let dir = root_file.parent().unwrap_or(Path::new(".")).to_path_buf();
        parser.parse_file(Vec::new(), root_file, &dir)?;
        Ok(parser.finish(crate_name))
    }

    /// Every strongly connected component of more than one file, each sorted, the largest first.
    pub fn circles(&self) -> Vec<Vec<ModPath>> {
        let nodes: Vec<&ModPath> = self.files.keys().collect();
        let index_of: BTreeMap<&ModPath, usize> =
            nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let mut adjacency = vec![Vec::new(); nodes.len()];
        for (from, to) in self.edges.keys() {
            if let (Some(&a), Some(&b)) = (index_of.get(from), index_of.get(to)) {
                adjacency[a].push(b);
            }
        }
        let mut components: Vec<Vec<ModPath>> = tarjan(&adjacency)
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| {
                let mut names: Vec<ModPath> = c.into_iter().map(|i| nodes[i].clone()).collect();
                names.sort();
                names
            })
            .collect();
        components.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        components
    }

    /// The edges inside one component, for a message that shows how the circle closes.
    pub fn edges_within(&self, component: &[ModPath]) -> Vec<(&ModPath, &ModPath, &Site)> {
        let members: BTreeSet<&ModPath> = component.iter().collect();
        self.edges
            .iter()
            .filter(|((a, b), _)| members.contains(a) && members.contains(b))
            .map(|((a, b), sites)| (a, b, &sites[0]))
            .collect()
    }

    /// A readable account of every circle, or `None` when there is none.
    pub fn circles_report(&self) -> Option<String> {
        let circles = self.circles();
        if circles.is_empty() {
            return None;
        }
        let mut out = String::new();
        for component in &circles {
            let names: Vec<String> = component.iter().map(|m| display(m)).collect();
            out.push_str(&format!(
                "{}: a circle of {} modules: {}\n",
                self.crate_name,
                component.len(),
                names.join(", ")
            ));
            for (a, b, site) in self.edges_within(component) {
                out.push_str(&format!("    {} -> {}  ({site})\n", display(a), display(b)));
            }
        }
        Some(out)
    }
}

struct Parser {
    modules: BTreeMap<ModPath, Module>,
    refs: Vec<RawRef>,
    files: BTreeMap<ModPath, PathBuf>,
    display_root: PathBuf,
}

impl Parser {
    fn shown(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.display_root)
            .unwrap_or(path)
            .to_path_buf()
    }

    /// Parses `file` as module `path`; its children's files live in `child_dir`.
    fn parse_file(&mut self, path: ModPath, file: &Path, child_dir: &Path) -> Result<(), Error> {
        let text = std::fs::read_to_string(file).map_err(|source| Error::Read {
            path: file.to_path_buf(),
            source,
        })?;
        let ast = syn::parse_file(&text).map_err(|e| Error::Parse {
            path: file.to_path_buf(),
            line: e.span().start().line,
            message: e.to_string(),
        })?;
        self.files.insert(path.clone(), self.shown(file));
        self.modules.entry(path.clone()).or_default().file_module = path.clone();
        let shown = self.shown(file);
        self.items(&path, &path, &ast.items, file, child_dir, &shown)
    }

    #[allow(clippy::too_many_arguments)]
    fn items(
        &mut self,
        scope: &ModPath,
        file_module: &ModPath,
        items: &[syn::Item],
        file: &Path,
        child_dir: &Path,
        shown: &Path,
    ) -> Result<(), Error> {
        for item in items {
            match item {
                syn::Item::Mod(m) => {
                    let name = m.ident.to_string();
                    let mut child = scope.clone();
                    child.push(name.clone());
                    self.modules
                        .entry(scope.clone())
                        .or_default()
                        .children
                        .insert(name.clone());
                    match &m.content {
                        Some((_, inner)) => {
                            self.modules.entry(child.clone()).or_default().file_module =
                                file_module.clone();
                            self.items(
                                &child,
                                file_module,
                                inner,
                                file,
                                &child_dir.join(&name),
                                shown,
                            )?;
                        }
                        None => {
                            let flat = child_dir.join(format!("{name}.rs"));
                            let nested = child_dir.join(&name).join("mod.rs");
                            let (child_file, grandchildren) = if flat.is_file() {
                                (flat, child_dir.join(&name))
                            } else if nested.is_file() {
                                (nested, child_dir.join(&name))
                            } else {
                                return Err(Error::MissingModule {
                                    parent: file.to_path_buf(),
                                    name,
                                    candidates: format!(
                                        "{} and {}",
                                        flat.display(),
                                        nested.display()
                                    ),
                                });
                            };
                            self.parse_file(child, &child_file, &grandchildren)?;
                        }
                    }
                }
                syn::Item::Use(u) => {
                    let mut leaves = Vec::new();
                    flatten_use(&u.tree, &mut Vec::new(), &mut leaves);
                    for leaf in leaves {
                        let module = self.modules.entry(scope.clone()).or_default();
                        match &leaf.alias {
                            Some(alias) => {
                                module.uses.insert(alias.clone(), leaf.segments.clone());
                            }
                            None => module.globs.push(leaf.segments.clone()),
                        }
                        self.refs.push(RawRef {
                            scope: scope.clone(),
                            segments: leaf.segments,
                            from_use: true,
                            glob: leaf.alias.is_none(),
                            site: Site {
                                file: shown.to_path_buf(),
                                line: leaf.line,
                                text: leaf.text,
                            },
                        });
                    }
                }
                other => {
                    if let Some(name) = item_name(other) {
                        self.modules
                            .entry(scope.clone())
                            .or_default()
                            .items
                            .insert(name);
                    }
                    let mut collector = PathCollector {
                        scope: scope.clone(),
                        file: shown.to_path_buf(),
                        refs: Vec::new(),
                    };
                    collector.visit_item(other);
                    // Items nested in function bodies and impls are not modules of their own;
                    // their paths were collected above in this scope.
                    self.refs.extend(collector.refs);
                }
            }
        }
        Ok(())
    }

    fn finish(self, crate_name: &str) -> Graph {
        let resolver = Resolver {
            modules: &self.modules,
        };
        let mut edges: BTreeMap<(ModPath, ModPath), Vec<Site>> = BTreeMap::new();
        for r in &self.refs {
            let Some(abs) = resolver.absolutize(&r.scope, &r.segments, 0) else {
                continue;
            };
            let Some(landing) = resolver.land(&abs, 0) else {
                continue;
            };
            // `use crate::engine;` names a module: the paths through that name are the imports.
            if r.from_use && !r.glob && landing.exact_module {
                continue;
            }
            let from = self.modules[&r.scope].file_module.clone();
            let to = self.modules[&landing.module].file_module.clone();
            if from == to {
                continue;
            }
            let sites = edges.entry((from, to)).or_default();
            if sites.len() < 4 && !sites.contains(&r.site) {
                sites.push(r.site.clone());
            }
        }
        Graph {
            crate_name: crate_name.to_string(),
            files: self.files,
            edges,
        }
    }
}

struct Resolver<'a> {
    modules: &'a BTreeMap<ModPath, Module>,
}

struct Landing {
    module: ModPath,
    /// The path named the module itself, not an item in it.
    exact_module: bool,
    /// The last segment was found as an item (or module) rather than assumed.
    found: bool,
}

const MAX_DEPTH: usize = 16;

impl Resolver<'_> {
    /// The path from the crate root, or `None` when it starts outside the crate (another
    /// crate, a local variable, a generic).
    fn absolutize(&self, scope: &ModPath, segs: &[String], depth: usize) -> Option<Vec<String>> {
        if depth > MAX_DEPTH || segs.is_empty() {
            return None;
        }
        let first = segs[0].as_str();
        match first {
            "crate" => Some(segs[1..].to_vec()),
            "self" => {
                let mut out = scope.clone();
                out.extend_from_slice(&segs[1..]);
                Some(out)
            }
            "super" => {
                let mut base = scope.clone();
                let mut rest = segs;
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
                base.extend_from_slice(rest);
                Some(base)
            }
            _ => {
                let module = self.modules.get(scope)?;
                if module.children.contains(first) || module.items.contains(first) {
                    let mut out = scope.clone();
                    out.extend_from_slice(segs);
                    Some(out)
                } else if let Some(target) = module.uses.get(first) {
                    // A `use` in this scope: resolve what it names, then the rest.
                    let mut base = self.absolutize(scope, target, depth + 1)?;
                    base.extend_from_slice(&segs[1..]);
                    Some(base)
                } else {
                    // A glob import in scope may bring the name in.
                    for glob in &module.globs {
                        let Some(base) = self.absolutize(scope, glob, depth + 1) else {
                            continue;
                        };
                        let mut candidate = base;
                        candidate.extend_from_slice(segs);
                        if let Some(l) = self.land(&candidate, depth + 1) {
                            if l.found {
                                return Some(candidate);
                            }
                        }
                    }
                    None
                }
            }
        }
    }

    /// The module an absolute path lands in, following re-exports to where items are defined.
    fn land(&self, abs: &[String], depth: usize) -> Option<Landing> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut current: ModPath = Vec::new();
        let mut i = 0;
        while i < abs.len() {
            let module = self.modules.get(&current)?;
            if module.children.contains(&abs[i]) {
                current.push(abs[i].clone());
                i += 1;
            } else {
                break;
            }
        }
        if i == abs.len() {
            return Some(Landing {
                module: current,
                exact_module: true,
                found: true,
            });
        }
        let module = self.modules.get(&current)?;
        let next = &abs[i];
        if module.items.contains(next) {
            return Some(Landing {
                module: current,
                exact_module: false,
                found: true,
            });
        }
        if let Some(target) = module.uses.get(next) {
            if let Some(mut base) = self.absolutize(&current, target, depth + 1) {
                base.extend_from_slice(&abs[i + 1..]);
                if let Some(l) = self.land(&base, depth + 1) {
                    return Some(l);
                }
            }
        }
        for glob in &module.globs {
            let Some(mut base) = self.absolutize(&current, glob, depth + 1) else {
                continue;
            };
            base.extend_from_slice(&abs[i..]);
            if let Some(l) = self.land(&base, depth + 1) {
                if l.found {
                    return Some(l);
                }
            }
        }
        Some(Landing {
            module: current,
            exact_module: false,
            found: false,
        })
    }
}

struct UseLeaf {
    segments: Vec<String>,
    /// The name it brings into scope; `None` for a glob.
    alias: Option<String>,
    line: usize,
    text: String,
}

fn flatten_use(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<UseLeaf>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten_use(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            let (segments, alias) = if name == "self" {
                (prefix.clone(), prefix.last().cloned())
            } else {
                let mut s = prefix.clone();
                s.push(name.clone());
                (s, Some(name))
            };
            out.push(UseLeaf {
                text: segments.join("::"),
                segments,
                alias,
                line: n.ident.span().start().line,
            });
        }
        syn::UseTree::Rename(r) => {
            let name = r.ident.to_string();
            let segments = if name == "self" {
                prefix.clone()
            } else {
                let mut s = prefix.clone();
                s.push(name);
                s
            };
            out.push(UseLeaf {
                text: segments.join("::"),
                segments,
                alias: Some(r.rename.to_string()),
                line: r.ident.span().start().line,
            });
        }
        syn::UseTree::Glob(g) => out.push(UseLeaf {
            text: format!("{}::*", prefix.join("::")),
            segments: prefix.clone(),
            alias: None,
            line: g.star_token.span.start().line,
        }),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten_use(t, prefix, out);
            }
        }
    }
}

fn item_name(item: &syn::Item) -> Option<String> {
    Some(match item {
        syn::Item::Const(i) => i.ident.to_string(),
        syn::Item::Enum(i) => i.ident.to_string(),
        syn::Item::Fn(i) => i.sig.ident.to_string(),
        syn::Item::Macro(i) => i.ident.as_ref()?.to_string(),
        syn::Item::Static(i) => i.ident.to_string(),
        syn::Item::Struct(i) => i.ident.to_string(),
        syn::Item::Trait(i) => i.ident.to_string(),
        syn::Item::TraitAlias(i) => i.ident.to_string(),
        syn::Item::Type(i) => i.ident.to_string(),
        syn::Item::Union(i) => i.ident.to_string(),
        _ => return None,
    })
}

/// Collects every path in an item's code, and the paths in macro arguments that parse as
/// expressions or types.
struct PathCollector {
    scope: ModPath,
    file: PathBuf,
    refs: Vec<RawRef>,
}

impl<'ast> Visit<'ast> for PathCollector {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 || path.leading_colon.is_none() {
            let text = segments.join("::");
            let line = path
                .segments
                .first()
                .map(|s| s.ident.span().start().line)
                .unwrap_or(0);
            self.refs.push(RawRef {
                scope: self.scope.clone(),
                segments,
                from_use: false,
                glob: false,
                site: Site {
                    file: self.file.clone(),
                    line,
                    text,
                },
            });
        }
        syn::visit::visit_path(self, path);
    }

    /// `pub(crate)` and `pub(super)` name modules, but import nothing.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        // A `use` inside a function body: its leaves are imports written in this scope.
        let mut leaves = Vec::new();
        flatten_use(&u.tree, &mut Vec::new(), &mut leaves);
        for leaf in leaves {
            self.refs.push(RawRef {
                scope: self.scope.clone(),
                glob: leaf.alias.is_none(),
                segments: leaf.segments,
                from_use: false,
                site: Site {
                    file: self.file.clone(),
                    line: leaf.line,
                    text: leaf.text,
                },
            });
        }
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        use syn::parse::Parser as _;
        let exprs = syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated
            .parse2(mac.tokens.clone());
        if let Ok(exprs) = exprs {
            for e in &exprs {
                self.visit_expr(e);
            }
        } else if let Ok(items) = syn::parse2::<syn::File>(mac.tokens.clone()) {
            for item in &items.items {
                self.visit_item(item);
            }
        }
        syn::visit::visit_macro(self, mac);
    }
}

/// Tarjan's strongly connected components, iterative.
fn tarjan(adjacency: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = adjacency.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut components = Vec::new();
    let mut next = 0;
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(start, 0)];
        index[start] = next;
        low[start] = next;
        next += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some(&mut (v, ref mut child)) = work.last_mut() {
            if *child < adjacency[v].len() {
                let w = adjacency[v][*child];
                *child += 1;
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                work.pop();
                if let Some(&(parent, _)) = work.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut component = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        component.push(w);
                        if w == v {
                            break;
                        }
                    }
                    components.push(component);
                }
            }
        }
    }
    components
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, files: &[(&str, &str)]) {
        for (name, body) in files {
            let path = root.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
    }

    fn graph(files: &[(&str, &str)]) -> Graph {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), files);
        Graph::from_crate("planted", &dir.path().join("lib.rs"), dir.path()).unwrap()
    }

    fn names(circles: &[Vec<ModPath>]) -> Vec<Vec<String>> {
        circles
            .iter()
            .map(|c| c.iter().map(|m| display(m)).collect())
            .collect()
    }

    #[test]
    fn a_planted_circle_is_found_with_the_lines_that_close_it() {
        let g = graph(&[
            ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
            ("a.rs", "use crate::b::B;\npub struct A(B);\n"),
            (
                "b.rs",
                "pub struct B;\npub fn f() -> crate::c::C { todo!() }\n",
            ),
            (
                "c.rs",
                "pub(crate) struct C;\npub(super) fn g(_: crate::a::A) {}\n",
            ),
        ]);
        assert_eq!(names(&g.circles()), vec![vec!["a", "b", "c"]]);
        let report = g.circles_report().unwrap();
        assert!(report.contains("a -> b  (a.rs:1: crate::b::B)"), "{report}");
        assert!(report.contains("b -> c  (b.rs:2: crate::c::C)"), "{report}");
        assert!(report.contains("c -> a  (c.rs:2: crate::a::A)"), "{report}");
    }

    #[test]
    fn a_chain_has_no_circle() {
        let g = graph(&[
            ("lib.rs", "pub mod a;\npub mod b;\n"),
            ("a.rs", "pub fn f() { crate::b::g(); }\n"),
            ("b.rs", "pub(crate) fn g() {}\npub(in crate::b) fn h() {}\n"),
        ]);
        assert!(g.circles().is_empty());
        assert!(g.edges.contains_key(&(vec!["a".into()], vec!["b".into()])));
    }

    #[test]
    fn a_re_export_is_followed_to_the_defining_file() {
        // m/mod.rs re-exports m::leaf::Item; m::other uses crate::m::Item and m/mod.rs uses
        // nothing of m::other: no circle, and the edge runs to the leaf.
        let g = graph(&[
            ("lib.rs", "pub mod m;\n"),
            (
                "m/mod.rs",
                "mod leaf;\npub mod other;\npub use leaf::Item;\n",
            ),
            ("m/leaf.rs", "pub struct Item;\n"),
            ("m/other.rs", "use crate::m::Item;\npub fn f(_: Item) {}\n"),
        ]);
        assert!(g.circles().is_empty(), "{:?}", g.circles_report());
        let other = vec!["m".to_string(), "other".to_string()];
        let leaf = vec!["m".to_string(), "leaf".to_string()];
        assert!(g.edges.contains_key(&(other, leaf)), "{:?}", g.edges.keys());
    }

    #[test]
    fn super_self_globs_aliases_and_macros_resolve() {
        let g = graph(&[
            ("lib.rs", "pub mod p;\npub mod q;\npub mod r;\npub mod s;\n"),
            ("p/mod.rs", "pub mod kid;\npub struct P;\n"),
            ("p/kid.rs", "pub fn k() -> super::P { super::P }\n"),
            ("q.rs", "use crate::p::kid as k;\npub fn q() { k::k(); }\n"),
            (
                "r.rs",
                "use crate::s::*;\npub fn r() { assert!(is_s(&S)); }\n",
            ),
            (
                "s.rs",
                "pub struct S;\npub fn is_s(_: &S) -> bool { true }\n",
            ),
        ]);
        let has = |a: &str, b: &str| {
            let a: ModPath = a.split("::").map(String::from).collect();
            let b: ModPath = b.split("::").map(String::from).collect();
            g.edges.contains_key(&(a, b))
        };
        assert!(has("p::kid", "p"));
        assert!(has("q", "p::kid"));
        assert!(!has("q", "p"), "a module alias is no import of its parent");
        assert!(has("r", "s"));
    }

    #[test]
    fn inline_test_modules_count_as_their_file() {
        let g = graph(&[
            ("lib.rs", "pub mod a;\npub mod b;\n"),
            ("a.rs", "pub fn a() {}\n#[cfg(test)]\nmod tests { use super::*; #[test] fn t() { a(); crate::b::b(); } }\n"),
            ("b.rs", "pub fn b() { crate::a::a(); }\n"),
        ]);
        assert_eq!(names(&g.circles()), vec![vec!["a", "b"]]);
    }

    #[test]
    fn tarjan_finds_each_component() {
        // 0 <-> 1, 2 -> 3 -> 4 -> 2, 5 alone.
        let adjacency = vec![vec![1], vec![0, 2], vec![3], vec![4], vec![2], vec![]];
        let mut components: Vec<Vec<usize>> = tarjan(&adjacency)
            .into_iter()
            .map(|mut c| {
                c.sort();
                c
            })
            .collect();
        components.sort();
        assert_eq!(components, vec![vec![0, 1], vec![2, 3, 4], vec![5]]);
    }
}
