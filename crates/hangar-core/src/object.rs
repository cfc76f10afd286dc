//! Where an object came from and how findings name it.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// Where an object was read: a file and the line its document starts on, or a live cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The file the object was read from; `None` for objects read from a live cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<Arc<str>>,
    /// The 1-based line where the object starts in `file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
}

impl Origin {
    pub fn file(file: Arc<str>, line: u32) -> Self {
        Origin {
            file: Some(file),
            line: Some(line),
        }
    }

    /// An object read from the API server: there is no file to point at.
    pub fn live() -> Self {
        Origin::default()
    }

    /// Whether the object was read from the API server (a live scan), not from a file.
    pub fn is_live(&self) -> bool {
        self.file.is_none()
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}"),
            (Some(file), None) => write!(f, "{file}"),
            _ => write!(f, "cluster"),
        }
    }
}

/// The identity of a Kubernetes object as a finding or an endpoint names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    pub kind: String,
    /// Empty for cluster-scoped objects.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn new(
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        ObjectRef {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}
