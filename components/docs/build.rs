//! Checks the page's files before they are compiled in: every vendored file (each folder under
//! assets/) must have the SHA-256 that assets/SHA256SUMS records for it, so what is served is
//! exactly what was fetched from npm and reviewed; and the page must have no inline script or
//! style, which its Content-Security-Policy would block. Also gives each of our own files an
//! ETag (its SHA-256), as `ETAG_<FILE>` for `env!`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for folder in ["assets", "page"] {
        println!("cargo:rerun-if-changed={}", root.join(folder).display());
    }
    verify_vendored(&root.join("assets"));
    check_no_inline_code(&read(&root.join("page/index.html")));
    for file in ["index.html", "docs-init.js", "docs.css"] {
        let digest = sha256_hex(&std::fs::read(root.join("page").join(file)).unwrap());
        let name = file.replace(['.', '-'], "_").to_uppercase();
        println!("cargo:rustc-env=ETAG_{name}=\"{digest}\"");
    }
}

/// Fails the build unless every file in assets/'s folders is listed in SHA256SUMS with its
/// SHA-256, and every listed file is there.
fn verify_vendored(assets: &Path) {
    let mut expected = recorded_sums(&read(&assets.join("SHA256SUMS")));
    for file in vendored_files(assets) {
        let relative = file
            .strip_prefix(assets)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let Some(sum) = expected.remove(&relative) else {
            panic!("assets/{relative} is not listed in assets/SHA256SUMS");
        };
        let actual = sha256_hex(&std::fs::read(&file).unwrap());
        assert_eq!(
            actual, sum,
            "assets/{relative} does not have the SHA-256 recorded in assets/SHA256SUMS: \
             re-fetch it with assets/fetch-swagger-ui.sh"
        );
    }
    let missing: Vec<_> = expected.keys().collect();
    assert!(
        missing.is_empty(),
        "listed in SHA256SUMS but missing: {missing:?}"
    );
}

/// `sha256sum` output: path → hex digest.
fn recorded_sums(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (sum, path) = line
                .split_once(' ')
                .expect("SHA256SUMS: `<sum>  <path>` lines");
            (
                path.trim_start_matches([' ', '*']).to_owned(),
                sum.to_owned(),
            )
        })
        .collect()
}

/// The files in the folders under assets/ (the top level holds only the sums and the script).
fn vendored_files(assets: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(assets).unwrap() {
        let folder = entry.unwrap().path();
        if folder.is_dir() {
            for file in std::fs::read_dir(&folder).unwrap() {
                files.push(file.unwrap().path());
            }
        }
    }
    files
}

/// A crude but sufficient check of our one small page: scripts only by `src`, styles only by
/// `<link>`.
fn check_no_inline_code(html: &str) {
    let lower = html.to_ascii_lowercase();
    for tag in lower.split("<script").skip(1) {
        let attributes = tag.split('>').next().unwrap_or_default();
        assert!(
            attributes.contains(" src="),
            "index.html has an inline script"
        );
    }
    for inline in [
        "<style",
        " style=",
        " onload=",
        " onerror=",
        " onclick=",
        "javascript:",
    ] {
        assert!(
            !lower.contains(inline),
            "index.html has inline code: {inline}"
        );
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
