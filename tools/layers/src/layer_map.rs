//! The README's layer map: which floor each room is on, and the few imports allowed to run up.
//!
//! In the README, between `<!-- layers: CRATE -->` and `<!-- /layers -->`, a Markdown table
//! whose first column is the floor number and whose second lists the rooms in backticks
//! (`engine`, `scenario::file`). A module is on the floor of the longest room that is a prefix
//! of its path. Between `<!-- upward: CRATE -->` and `<!-- /upward -->`, a table of the imports
//! allowed to run up a floor: from, to, why.
//!
//! Floor 0 of the workspace's tools, beside `lib.rs`'s graph, which it reads.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::{display, Graph, ModPath, Site};

/// A README section that could not be read as a layer map.
#[derive(Debug, thiserror::Error)]
#[error("README line {line}: {message}")]
pub struct LayerMapError {
    pub line: usize,
    pub message: String,
}

/// The floors of one crate, as the README gives them.
#[derive(Debug, Clone)]
pub struct LayerMap {
    /// room -> floor.
    pub rooms: BTreeMap<ModPath, u32>,
    /// (from, to) -> why.
    pub upward: BTreeMap<(ModPath, ModPath), String>,
}

/// One way the code and the map disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A module on no floor of the map.
    Unplaced { module: ModPath },
    /// A room the map names that the code does not have.
    NoSuchRoom { room: ModPath },
    /// An import from a lower floor up, not in the allowed list.
    Upward {
        from: ModPath,
        from_floor: u32,
        to: ModPath,
        to_floor: u32,
        site: Site,
    },
    /// An allowed upward import that the code no longer makes.
    StaleUpward { from: ModPath, to: ModPath },
    /// A room's `//!` does not say its floor.
    DocFloor {
        room: ModPath,
        floor: u32,
        file: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Unplaced { module } => write!(
                f,
                "`{}` is on no floor of the README's layer map: add it to a row",
                display(module)
            ),
            Violation::NoSuchRoom { room } => write!(
                f,
                "the layer map names `{}`, which is not a module of the crate",
                display(room)
            ),
            Violation::Upward {
                from,
                from_floor,
                to,
                to_floor,
                site,
            } => write!(
                f,
                "`{}` (floor {from_floor}) imports `{}` (floor {to_floor}), a floor above it: {site}",
                display(from),
                display(to)
            ),
            Violation::StaleUpward { from, to } => write!(
                f,
                "the README allows `{}` -> `{}` upward, but the code no longer imports it: remove the row",
                display(from),
                display(to)
            ),
            Violation::DocFloor { room, floor, file } => write!(
                f,
                "{file}: the `//!` of `{}` should say `Floor {floor}` (its floor in the README)",
                display(room)
            ),
        }
    }
}

fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn mod_path(s: &str) -> ModPath {
    if s == "crate" {
        Vec::new()
    } else {
        s.split("::").map(String::from).collect()
    }
}

/// The table rows between `<!-- {tag}: {crate_name} -->` and `<!-- /{tag} -->`: (line, cells).
fn table(readme: &str, tag: &str, crate_name: &str) -> Option<Vec<(usize, Vec<String>)>> {
    let open = format!("<!-- {tag}: {crate_name} -->");
    let close = format!("<!-- /{tag} -->");
    let mut rows = Vec::new();
    let mut inside = false;
    for (i, line) in readme.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed == open {
            inside = true;
            continue;
        }
        if inside && trimmed == close {
            return Some(rows);
        }
        if inside && trimmed.starts_with('|') {
            let cells: Vec<String> = trimmed
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect();
            let is_rule = cells
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'));
            if !is_rule {
                rows.push((i + 1, cells));
            }
        }
    }
    None
}

impl LayerMap {
    /// Reads the map of `crate_name` from the README's text.
    pub fn from_readme(readme: &str, crate_name: &str) -> Result<LayerMap, LayerMapError> {
        let rows = table(readme, "layers", crate_name).ok_or_else(|| LayerMapError {
            line: 0,
            message: format!("no `<!-- layers: {crate_name} -->` ... `<!-- /layers -->` table"),
        })?;
        let mut rooms = BTreeMap::new();
        for (line, cells) in rows {
            let Ok(floor) = cells[0].parse::<u32>() else {
                continue; // the header row
            };
            let names = backticked(cells.get(1).map(String::as_str).unwrap_or(""));
            if names.is_empty() {
                return Err(LayerMapError {
                    line,
                    message: format!("floor {floor} names no room in backticks"),
                });
            }
            for name in names {
                let path = mod_path(&name);
                if let Some(previous) = rooms.insert(path, floor) {
                    return Err(LayerMapError {
                        line,
                        message: format!("`{name}` is on floor {previous} and floor {floor}"),
                    });
                }
            }
        }
        let mut upward = BTreeMap::new();
        for (line, cells) in table(readme, "upward", crate_name).unwrap_or_default() {
            let from = backticked(cells.first().map(String::as_str).unwrap_or(""));
            let to = backticked(cells.get(1).map(String::as_str).unwrap_or(""));
            let (Some(from), Some(to)) = (from.first(), to.first()) else {
                continue; // the header row
            };
            let why = cells.get(2).cloned().unwrap_or_default();
            if why.is_empty() {
                return Err(LayerMapError {
                    line,
                    message: format!("the upward import `{from}` -> `{to}` says no why"),
                });
            }
            upward.insert((mod_path(from), mod_path(to)), why);
        }
        Ok(LayerMap { rooms, upward })
    }

    /// The floor of a module: that of the longest room its path starts with.
    pub fn floor_of(&self, module: &[String]) -> Option<u32> {
        (0..=module.len())
            .rev()
            .find_map(|n| self.rooms.get(&module[..n]).copied())
    }

    /// Every disagreement between the code's graph and this map. `source_root` is where the
    /// graph's file names are relative to (for reading each room's `//!`).
    pub fn check(&self, graph: &Graph, source_root: &Path) -> Vec<Violation> {
        let mut out = Vec::new();
        for room in self.rooms.keys() {
            let exists = graph
                .files
                .keys()
                .any(|m| m.len() >= room.len() && m[..room.len()] == room[..]);
            if !exists {
                out.push(Violation::NoSuchRoom { room: room.clone() });
            }
        }
        for module in graph.files.keys() {
            if !module.is_empty() && self.floor_of(module).is_none() {
                out.push(Violation::Unplaced {
                    module: module.clone(),
                });
            }
        }
        let mut used_upward = Vec::new();
        for ((from, to), sites) in &graph.edges {
            let (Some(a), Some(b)) = (self.floor_of(from), self.floor_of(to)) else {
                continue;
            };
            if b <= a {
                continue;
            }
            let key = (from.clone(), to.clone());
            if self.upward.contains_key(&key) {
                used_upward.push(key);
                continue;
            }
            out.push(Violation::Upward {
                from: from.clone(),
                from_floor: a,
                to: to.clone(),
                to_floor: b,
                site: sites[0].clone(),
            });
        }
        for key in self.upward.keys() {
            if !used_upward.contains(key) {
                out.push(Violation::StaleUpward {
                    from: key.0.clone(),
                    to: key.1.clone(),
                });
            }
        }
        for (room, floor) in &self.rooms {
            let Some(file) = graph.files.get(room) else {
                continue;
            };
            let text = std::fs::read_to_string(source_root.join(file)).unwrap_or_default();
            let doc: String = text
                .lines()
                .take_while(|l| l.starts_with("//!") || l.trim().is_empty())
                .collect::<Vec<_>>()
                .join("\n");
            if !doc.contains(&format!("Floor {floor}")) {
                out.push(Violation::DocFloor {
                    room: room.clone(),
                    floor: *floor,
                    file: file.display().to_string(),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = "\
intro
<!-- layers: demo -->
| floor | rooms | may import |
|---|---|---|
| 0 | `low` | nothing |
| 1 | `mid`, `mid::top` | floor 0 |
<!-- /layers -->
<!-- upward: demo -->
| from | to | why |
|---|---|---|
| `low` | `mid` | because |
<!-- /upward -->
";

    #[test]
    fn the_map_reads_floors_and_allowed_upward_imports() {
        let map = LayerMap::from_readme(README, "demo").unwrap();
        assert_eq!(map.floor_of(&mod_path("low")), Some(0));
        assert_eq!(map.floor_of(&mod_path("mid::top::deeper")), Some(1));
        assert_eq!(map.floor_of(&mod_path("elsewhere")), None);
        assert_eq!(map.upward.len(), 1);
    }

    #[test]
    fn a_room_on_two_floors_is_refused_with_its_line() {
        let bad = README.replace("`mid`, `mid::top`", "`mid`, `low`");
        let err = LayerMap::from_readme(&bad, "demo").unwrap_err();
        assert_eq!(err.line, 6);
        assert!(err.message.contains("`low` is on floor 0 and floor 1"));
    }

    #[test]
    fn an_upward_import_without_a_reason_is_refused() {
        let bad = README.replace("| because |", "| |");
        assert!(LayerMap::from_readme(&bad, "demo").is_err());
    }
}
