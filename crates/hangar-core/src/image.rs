//! Container image references: registry, repository path, tag and digest.

/// A parsed image reference such as `nvcr.io/nim/meta/llama3:1.0@sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// The registry host, `docker.io` when the reference names none.
    pub registry: &'a str,
    /// The repository path, e.g. `vllm/vllm-openai`.
    pub path: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

impl<'a> ImageRef<'a> {
    pub fn parse(image: &'a str) -> ImageRef<'a> {
        let (rest, digest) = match image.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (image, None),
        };
        // A tag is after the last ':' that follows the last '/' (a registry port comes before it).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        let (registry, path) = match name.split_once('/') {
            Some((host, path))
                if host.contains('.') || host.contains(':') || host == "localhost" =>
            {
                (host, path)
            }
            _ => ("docker.io", name),
        };
        ImageRef {
            registry,
            path,
            tag,
            digest,
        }
    }

    /// The last segment of the path: `vllm-openai` for `vllm/vllm-openai`.
    pub fn short_name(&self) -> &'a str {
        self.path.rsplit('/').next().unwrap_or(self.path)
    }

    /// Pinned by digest: the bytes cannot change under the same reference.
    pub fn is_pinned(&self) -> bool {
        self.digest
            .is_some_and(|d| d.starts_with("sha256:") || d.starts_with("sha512:"))
    }

    /// A tag that moves by convention (`latest`, none, or a bare major like `main`/`nightly`).
    pub fn has_mutable_tag(&self) -> bool {
        !self.is_pinned()
            && matches!(
                self.tag,
                None | Some("latest" | "main" | "master" | "nightly" | "edge" | "dev" | "stable")
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registry_path_tag_and_digest() {
        let i = ImageRef::parse("nvcr.io/nim/meta/llama-3.1-8b-instruct:1.3.3@sha256:abc");
        assert_eq!(
            (i.registry, i.path, i.tag, i.digest),
            (
                "nvcr.io",
                "nim/meta/llama-3.1-8b-instruct",
                Some("1.3.3"),
                Some("sha256:abc")
            )
        );
        assert!(i.is_pinned());
        let i = ImageRef::parse("vllm/vllm-openai");
        assert_eq!(
            (i.registry, i.path, i.tag),
            ("docker.io", "vllm/vllm-openai", None)
        );
        assert!(i.has_mutable_tag());
        let i = ImageRef::parse("localhost:5000/ml/tgi:2.1");
        assert_eq!(
            (i.registry, i.path, i.tag),
            ("localhost:5000", "ml/tgi", Some("2.1"))
        );
        assert_eq!(i.short_name(), "tgi");
        assert!(!i.has_mutable_tag());
    }
}
