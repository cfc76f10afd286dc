//! What Hangar reads of a Kustomize kustomization: the files it lists as patches. A patch
//! changes objects the resources define and is no object itself, so reading it as one would
//! replace the whole object with a fragment.

use serde_json::Value;

use crate::parse::{yaml_error_message, yaml_value};

/// The names a kustomization file may have, in the order `kustomize` looks for them.
pub const FILE_NAMES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The fields whose entries name patch files.
const PATCH_FIELDS: &[&str] = &["patches", "patchesStrategicMerge", "patchesJson6902"];

/// The files the kustomization `text` lists as patches, as written (relative to its directory),
/// in order. A patch written inline names no file. Text that cannot be a kustomization
/// (malformed YAML, not a mapping, a list of patches that is no list) is an error saying why.
pub fn patch_paths(text: &str) -> Result<Vec<String>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let value =
        yaml_value(text).map_err(|e| format!("malformed YAML: {}", yaml_error_message(&e)))?;
    let fields = match value {
        Value::Object(fields) => fields,
        // An empty file lists nothing.
        Value::Null => return Ok(Vec::new()),
        _ => return Err("not a kustomization: expected a mapping of fields".into()),
    };
    let mut paths = Vec::new();
    for field in PATCH_FIELDS {
        let entries = match fields.get(*field) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(entries)) => entries,
            Some(_) => return Err(format!("`{field}` is not a list")),
        };
        paths.extend(entries.iter().filter_map(patch_path).map(str::to_owned));
    }
    Ok(paths)
}

/// The files and directories the kustomization `text` lists as `resources` or `components`, as
/// written, in order; none when it cannot be read (`patch_paths` says why).
pub fn resource_paths(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Ok(Value::Object(fields)) = yaml_value(text) else {
        return Vec::new();
    };
    (["resources", "components"].iter())
        .filter_map(|field| fields.get(*field)?.as_array())
        .flatten()
        .filter_map(|entry| Some(entry.as_str()?.trim().to_owned()))
        .filter(|path| !path.is_empty())
        .collect()
}

/// The file one entry names: `{path: …}` (`patches`, `patchesJson6902`), or a one-line text
/// (`patchesStrategicMerge`; several lines there are a patch written inline).
fn patch_path(entry: &Value) -> Option<&str> {
    let path = match entry {
        Value::String(path) => path.trim(),
        Value::Object(entry) => entry.get("path")?.as_str()?.trim(),
        _ => return None,
    };
    (!path.is_empty() && !path.contains('\n')).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_patch_entry_names_its_file_and_inline_patches_name_none() {
        let text = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [../../base, hpa.yaml]
patches:
- path: replicas.yaml
- target: {kind: Deployment}
  patch: |-
    - op: add
      path: /spec/replicas
      value: 4
patchesStrategicMerge:
- gpu.yaml
- |-
  apiVersion: apps/v1
  kind: Deployment
  metadata: {name: chat}
patchesJson6902:
- target: {group: apps, version: v1, kind: Deployment, name: chat}
  path: json/args.yaml
";
        assert_eq!(
            patch_paths(text).unwrap(),
            ["replicas.yaml", "gpu.yaml", "json/args.yaml"]
        );
    }

    #[test]
    fn resources_and_components_are_listed_and_bad_text_lists_none() {
        let text = "resources: [../../base, hpa.yaml]\ncomponents:\n- ../gpu\n";
        assert_eq!(resource_paths(text), ["../../base", "hpa.yaml", "../gpu"]);
        assert!(resource_paths("resources: [a\n").is_empty());
        assert!(resource_paths("resources: 3\n").is_empty());
    }

    #[test]
    fn a_kustomization_without_patches_or_without_content_lists_none() {
        assert!(
            patch_paths("resources:\n- deploy.yaml\n")
                .unwrap()
                .is_empty()
        );
        assert!(patch_paths("").unwrap().is_empty());
        assert!(patch_paths("# nothing yet\n").unwrap().is_empty());
        assert!(patch_paths("patches:\n").unwrap().is_empty());
    }

    #[test]
    fn text_that_is_no_kustomization_is_an_error_not_a_panic() {
        for (text, expected) in [
            ("patches: [unclosed\n", "malformed YAML"),
            ("resources:\n- \"deploy.yaml\n", "malformed YAML"),
            ("- just\n- a list\n", "not a kustomization"),
            ("patches: replicas.yaml\n", "`patches` is not a list"),
            (
                "patchesJson6902: {path: x.yaml}\n",
                "`patchesJson6902` is not a list",
            ),
        ] {
            let error = patch_paths(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        // Entries of shapes no kustomize writes name no file, and are no reason to fail.
        assert_eq!(
            patch_paths("patches: [3, [a], {path: 4}, {path: ok.yaml}]\n").unwrap(),
            ["ok.yaml"]
        );
    }
}
