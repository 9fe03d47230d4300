//! The inode table: the kernel names files by inode number, Harbour by
//! name, so each inode the kernel holds maps to a mount path (relative to
//! the mounted prefix; "" is the root). An inode lives from the first
//! lookup that returns it until the kernel forgets it; a rename moves the
//! path of an inode (and of everything under a directory), so open files
//! and cached entries follow it.

use std::collections::HashMap;

use fuser::INodeNo;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

struct Node {
    /// `None` once unlinked or replaced: the inode lives on for the
    /// handles still open on it, under no name.
    path: Option<String>,
    kind: Kind,
    /// Lookups the kernel has not yet forgotten.
    lookups: u64,
}

pub struct Inodes {
    nodes: HashMap<u64, Node>,
    by_path: HashMap<String, u64>,
    next_ino: u64,
}

/// The path of entry `name` in the directory at `dir`.
pub fn child_path(dir: &str, name: &str) -> String {
    match dir {
        "" => name.to_owned(),
        dir => format!("{dir}/{name}"),
    }
}

/// The directory part of `path` ("" for an entry of the root).
pub fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(parent, _)| parent)
}

impl Inodes {
    pub fn new() -> Inodes {
        let root = Node {
            path: Some(String::new()),
            kind: Kind::Dir,
            lookups: 1,
        };
        Inodes {
            nodes: HashMap::from([(INodeNo::ROOT.0, root)]),
            by_path: HashMap::from([(String::new(), INodeNo::ROOT.0)]),
            next_ino: INodeNo::ROOT.0 + 1,
        }
    }

    /// The path and kind of `ino`, while it has a name.
    pub fn get(&self, ino: u64) -> Option<(String, Kind)> {
        let node = self.nodes.get(&ino)?;
        Some((node.path.clone()?, node.kind))
    }

    /// The inode at `path`, without taking a lookup.
    pub fn peek(&self, path: &str) -> Option<(u64, Kind)> {
        let ino = *self.by_path.get(path)?;
        Some((ino, self.nodes.get(&ino)?.kind))
    }

    /// The inode for `path` of `kind`, with one more lookup (each entry
    /// handed to the kernel is one). A path whose kind changed (a file
    /// replaced by a directory) gets a fresh inode.
    pub fn remember(&mut self, path: &str, kind: Kind) -> u64 {
        if let Some(&ino) = self.by_path.get(path) {
            if let Some(node) = self.nodes.get_mut(&ino).filter(|node| node.kind == kind) {
                node.lookups += 1;
                return ino;
            }
            self.detach(path);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let node = Node {
            path: Some(path.to_owned()),
            kind,
            lookups: 1,
        };
        self.nodes.insert(ino, node);
        self.by_path.insert(path.to_owned(), ino);
        ino
    }

    /// The kernel dropped `count` lookups of `ino`; at none it is gone.
    pub fn forget(&mut self, ino: u64, count: u64) {
        if ino == INodeNo::ROOT.0 {
            return;
        }
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        node.lookups = node.lookups.saturating_sub(count);
        if node.lookups == 0 {
            if let Some(path) = node.path.take() {
                self.by_path.remove(&path);
            }
            self.nodes.remove(&ino);
        }
    }

    /// `path` no longer names its inode (unlinked, or replaced by a
    /// rename onto it).
    pub fn detach(&mut self, path: &str) {
        if let Some(ino) = self.by_path.remove(path)
            && let Some(node) = self.nodes.get_mut(&ino)
        {
            node.path = None;
        }
    }

    /// `from` was renamed to `to`: its inode, and for a directory every
    /// inode under it, now has the new path; what `to` named is detached.
    pub fn rename(&mut self, from: &str, to: &str) {
        self.detach(to);
        let moving: Vec<(String, u64)> = match self.peek(from) {
            // A file moves alone; only a directory's rename walks the table.
            Some((ino, Kind::File)) => vec![(from.to_owned(), ino)],
            _ => {
                let under = format!("{from}/");
                self.by_path
                    .iter()
                    .filter(|(path, _)| path.as_str() == from || path.starts_with(&under))
                    .map(|(path, ino)| (path.clone(), *ino))
                    .collect()
            }
        };
        for (old, ino) in moving {
            self.by_path.remove(&old);
            let new = format!("{to}{}", &old[from.len()..]);
            self.detach(&new);
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.path = Some(new.clone());
            }
            self.by_path.insert(new, ino);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Inodes, Kind, child_path, parent_of};

    #[test]
    fn paths_join_and_split_at_the_root_and_below() {
        assert_eq!(child_path("", "a"), "a");
        assert_eq!(child_path("a/b", "c"), "a/b/c");
        assert_eq!(parent_of("a"), "");
        assert_eq!(parent_of("a/b/c"), "a/b");
    }

    #[test]
    fn an_inode_lives_until_its_lookups_are_forgotten() {
        let mut inodes = Inodes::new();
        let ino = inodes.remember("a", Kind::File);
        assert_eq!(inodes.remember("a", Kind::File), ino);
        inodes.forget(ino, 1);
        assert_eq!(inodes.get(ino), Some(("a".to_owned(), Kind::File)));
        inodes.forget(ino, 1);
        assert_eq!(inodes.get(ino), None);
        assert_eq!(inodes.peek("a"), None);
        assert_ne!(inodes.remember("a", Kind::File), ino);
    }

    #[test]
    fn a_directory_rename_moves_everything_under_it_and_nothing_beside() {
        let mut inodes = Inodes::new();
        let dir = inodes.remember("d", Kind::Dir);
        let inner = inodes.remember("d/x/y", Kind::File);
        let beside = inodes.remember("dx", Kind::File);
        let replaced = inodes.remember("e/x/y", Kind::File);
        inodes.rename("d", "e");
        assert_eq!(inodes.get(dir), Some(("e".to_owned(), Kind::Dir)));
        assert_eq!(inodes.get(inner), Some(("e/x/y".to_owned(), Kind::File)));
        assert_eq!(inodes.get(beside), Some(("dx".to_owned(), Kind::File)));
        assert_eq!(inodes.get(replaced), None, "the old e/x/y has no name");
        assert_eq!(inodes.peek("e/x/y"), Some((inner, Kind::File)));
        assert_eq!(inodes.peek("d/x/y"), None);
    }

    #[test]
    fn a_path_that_changes_kind_gets_a_fresh_inode() {
        let mut inodes = Inodes::new();
        let file = inodes.remember("a", Kind::File);
        let dir = inodes.remember("a", Kind::Dir);
        assert_ne!(file, dir);
        assert_eq!(inodes.get(file), None);
        assert_eq!(inodes.get(dir), Some(("a".to_owned(), Kind::Dir)));
    }
}
