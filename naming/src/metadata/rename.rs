//! The meaning of `Change::Rename` and `Change::RenamePrefix`: a rename
//! moves a version from one name to another and touches no chunk, so it
//! is one journaled change however large the file, and a directory
//! rename is one change however many files it moves.

use std::ops::Bound;
use std::sync::Arc;

use common::name::FileName;

use super::change::{Applied, Refusal};
use super::{Holder, Metadata};

impl Metadata {
    pub(super) fn rename(
        &mut self,
        from: &FileName,
        to: &FileName,
        overwrite: bool,
    ) -> Result<Applied, Refusal> {
        if !self.files.contains_key(from) {
            return Err(Refusal::NoSuchFile);
        }
        if from == to {
            return Ok(Applied::Unchanged);
        }
        if !overwrite && self.files.contains_key(to) {
            return Err(Refusal::NameTaken);
        }
        let version = self.files.remove(from).expect("checked above");
        self.unhold(&version);
        let replaced = self.files.insert(to.clone(), Arc::clone(&version));
        if let Some(old) = &replaced {
            self.unhold(old);
        }
        self.hold(&version, Holder::File(to.clone()));
        Ok(Applied::Renamed { replaced })
    }

    pub(super) fn rename_prefix(&mut self, from: &str, to: &str) -> Result<Applied, Refusal> {
        if !from.ends_with('/') || !to.ends_with('/') {
            return Err(Refusal::BadRename(
                "a directory rename goes from a name ending in / to one ending in /".to_owned(),
            ));
        }
        if let Err(err) = FileName::parse(&to[..to.len() - 1]) {
            return Err(Refusal::BadRename(format!("{to:?}: {err}")));
        }
        if to.starts_with(from) || from.starts_with(to) {
            return Err(Refusal::BadRename(format!(
                "{from} and {to} contain one another"
            )));
        }
        let moving: Vec<FileName> = self
            .files
            .range::<str, _>((Bound::Included(from), Bound::Unbounded))
            .map(|(name, _)| name)
            .take_while(|name| name.as_str().starts_with(from))
            .cloned()
            .collect();
        if moving.is_empty() && !self.dirs_under(from) {
            return Err(Refusal::NoSuchFile);
        }
        if self.dirs_under(to) {
            return Err(Refusal::NameTaken);
        }
        // Every new name is checked before anything moves: all or nothing.
        let mut renamed = Vec::with_capacity(moving.len());
        for old in &moving {
            let new = format!("{to}{}", &old.as_str()[from.len()..]);
            let new = FileName::parse(&new)
                .map_err(|err| Refusal::BadRename(format!("{old} would become {new:?}: {err}")))?;
            if self.files.contains_key(&new) {
                return Err(Refusal::NameTaken);
            }
            renamed.push(new);
        }
        for (old, new) in moving.iter().zip(renamed) {
            let version = self.files.remove(old).expect("listed above");
            self.unhold(&version);
            self.hold(&version, Holder::File(new.clone()));
            self.files.insert(new, version);
        }
        self.rename_dirs(from, to);
        Ok(Applied::RenamedPrefix {
            count: moving.len() as u64,
        })
    }
}
