//! The Kustomize directories a walk meets. Each is read as its plain resources, as Hangar reads
//! any directory, except that its kustomization and the patches that kustomization lists are
//! no objects: a patch read as one would replace the whole object with a fragment. Copies of an
//! object in two Kustomize directories (a base and its overlays, or `dev` and `prod` each with
//! a full copy) are alternatives, each directory being built on its own, not a conflict.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use hangar_core::kustomize::{FILE_NAMES, patch_paths};

use crate::files::canonical;

/// How many Kustomize directories the note names before counting the rest.
const SHOWN: usize = 5;

/// What the walk learnt of the Kustomize directories it entered.
#[derive(Default)]
pub(crate) struct Kustomizations {
    /// Each directory holding a kustomization, as walked, in walk order.
    dirs: Vec<PathBuf>,
    /// Every kustomization file met (canonical): configuration, not objects.
    files: HashSet<PathBuf>,
    /// Every patch file listed (canonical), with the kustomization that lists it first.
    patches: HashMap<PathBuf, PathBuf>,
    /// What to tell the user of a kustomization that could not be read, or of a patch skipped.
    notes: Vec<String>,
}

impl Kustomizations {
    /// Records `dir` if it holds a kustomization, with the patches it lists. A kustomization
    /// that cannot be read is a note: the directory is still read, its patches as objects.
    pub(crate) fn enter(&mut self, dir: &Path) {
        let Some(file) = FILE_NAMES
            .iter()
            .map(|name| dir.join(name))
            .find(|file| file.is_file())
        else {
            return;
        };
        self.dirs.push(dir.to_path_buf());
        self.files.insert(canonical(&file));
        let listed = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|text| patch_paths(&text));
        match listed {
            Ok(paths) => {
                for path in paths {
                    self.patches
                        .entry(canonical(&dir.join(path)))
                        .or_insert_with(|| file.clone());
                }
            }
            Err(e) => self.notes.push(format!(
                "{}: this kustomization is not read ({e}), so any patches it lists are read as objects",
                file.display()
            )),
        }
    }

    /// `files` without the kustomizations and the patches they list, but for files given by
    /// name (`named`), which are read whatever they are. Each patch left out gets a note.
    pub(crate) fn without_patches(
        &mut self,
        files: Vec<PathBuf>,
        named: &HashSet<PathBuf>,
    ) -> Vec<PathBuf> {
        if self.dirs.is_empty() {
            return files;
        }
        (files.into_iter())
            .filter(|file| named.contains(file) || !self.leaves_out(file))
            .collect()
    }

    fn leaves_out(&mut self, file: &Path) -> bool {
        let real = canonical(file);
        if self.files.contains(&real) {
            return true;
        }
        let Some(kustomization) = self.patches.get(&real) else {
            return false;
        };
        let note = format!(
            "skipped {}: {} lists it as a patch, which changes an object and defines none",
            file.display(),
            kustomization.display()
        );
        self.notes.push(note);
        true
    }

    /// The Kustomize directory each of `files` belongs to (the nearest holding it), by the
    /// name the file's objects' origins give it.
    pub(crate) fn owners(&self, files: &[PathBuf]) -> HashMap<String, usize> {
        if self.dirs.is_empty() {
            return HashMap::new();
        }
        let position: HashMap<&Path, usize> = (self.dirs.iter())
            .enumerate()
            .map(|(i, dir)| (dir.as_path(), i))
            .collect();
        (files.iter())
            .filter_map(|file| {
                let dir = file.ancestors().skip(1).find_map(|a| position.get(a))?;
                Some((file.display().to_string(), *dir))
            })
            .collect()
    }

    /// What to tell the user: once, how Kustomize directories are read; then each kustomization
    /// not read and each patch skipped.
    pub(crate) fn into_notes(self) -> Vec<String> {
        if self.dirs.is_empty() {
            return Vec::new();
        }
        let mut dirs: Vec<String> = (self.dirs.iter())
            .take(SHOWN)
            .map(|dir| dir.display().to_string())
            .collect();
        if self.dirs.len() > SHOWN {
            dirs.push(format!("and {} more", self.dirs.len() - SHOWN));
        }
        let mut notes = vec![format!(
            "Kustomize directories are read as their plain resources, not built (patches \
             skipped, nothing generated or transformed): {}; `kubectl kustomize DIR | hangar \
             audit -` audits what would actually be applied",
            dirs.join(", ")
        )];
        notes.extend(self.notes);
        notes
    }
}
