//! The Kustomize directories a walk meets. Each is read as its plain resources, as Hangar reads
//! any directory, except that its kustomization and the patches that kustomization lists are
//! no objects: a patch read as one would replace the whole object with a fragment.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use hangar_core::kustomize::{FILE_NAMES, patch_paths, resource_paths};

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
    /// Each directory holding a kustomization, resolved.
    dirs_resolved: HashSet<PathBuf>,
    /// Every patch file listed (canonical), with the kustomization that lists it first and that
    /// kustomization's directory, resolved.
    patches: HashMap<PathBuf, (PathBuf, PathBuf)>,
    /// Every file a kustomization lists as a resource (canonical): an object, whatever else
    /// lists it.
    resources: HashSet<PathBuf>,
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
        let inside = canonical(dir);
        self.dirs_resolved.insert(inside.clone());
        let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read: {e}"));
        if let Ok(text) = &text {
            let listed = resource_paths(text).into_iter();
            self.resources
                .extend(listed.map(|path| canonical(&dir.join(path))));
        }
        match text.and_then(|text| patch_paths(&text)) {
            Ok(paths) => {
                for path in paths {
                    let written = dir.join(&path);
                    if !written.exists() {
                        self.notes.push(format!(
                            "{}: its patch {path} does not exist (kustomize fails on it too)",
                            file.display()
                        ));
                        continue;
                    }
                    let patch = canonical(&written);
                    // Kustomize loads no file above its kustomization's directory: a path that
                    // leaves it must not hide another app's manifest from the audit.
                    if !patch.starts_with(&inside) {
                        self.notes.push(format!(
                            "{}: its patch {path} is outside its directory, which Kustomize refuses: the file is read as any other",
                            file.display()
                        ));
                        continue;
                    }
                    (self.patches.entry(patch)).or_insert_with(|| (file.clone(), inside.clone()));
                }
            }
            Err(e) => self.notes.push(format!(
                "{}: this kustomization is not read ({e}), so any patches it lists are read as objects",
                file.display()
            )),
        }
    }

    /// `files` without the kustomizations and the patches they list, but for files given by
    /// name (`named`, resolved), which are read whatever they are. Each patch left out gets a
    /// note.
    pub(crate) fn without_patches(
        &mut self,
        files: Vec<PathBuf>,
        named: &HashSet<PathBuf>,
    ) -> Vec<PathBuf> {
        if self.dirs.is_empty() {
            return files;
        }
        (files.into_iter())
            .filter(|file| {
                let real = canonical(file);
                named.contains(&real) || !self.leaves_out(file, &real)
            })
            .collect()
    }

    /// Whether `file` (resolved: `real`) is a kustomization or a patch, noting a patch skipped.
    fn leaves_out(&mut self, file: &Path, real: &Path) -> bool {
        if self.files.contains(real) {
            return true;
        }
        let Some((kustomization, listed_in)) = self.patches.get(real) else {
            return false;
        };
        // Listed as a resource too, it is an object. And only the nearest kustomization above a
        // file may call it a patch: one higher up cannot take an app's own manifest out.
        let nearest = real
            .ancestors()
            .skip(1)
            .find(|dir| self.dirs_resolved.contains(*dir));
        if self.resources.contains(real) || nearest != Some(listed_in.as_path()) {
            return false;
        }
        let note = format!(
            "skipped {}: {} lists it as a patch, which changes an object and defines none",
            file.display(),
            kustomization.display()
        );
        self.notes.push(note);
        true
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
