//! Embeds the web UI (`web/` at the repository root, without `web/tests/`) in the binary: one
//! generated table of `include_bytes!` entries with each file's content type and ETag, and the
//! UI version (crate version + a hash of every file) that the service worker compares.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let web = manifest.join("../../web");
    let web = web.canonicalize().unwrap_or(web);
    println!("cargo:rerun-if-changed={}", web.display());
    let mut files = Vec::new();
    collect(&web, &web, &mut files);
    files.sort();

    // The version covers every file but the service worker, which carries it.
    let mut all = Fnv::new();
    let mut entries = Vec::new();
    for rel in &files {
        let path = web.join(rel);
        println!("cargo:rerun-if-changed={}", path.display());
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if rel != "sw.js" {
            all.write(rel.as_bytes());
            all.write(&[0]);
            all.write(&bytes);
        }
        entries.push((rel.clone(), path, bytes));
    }
    let version = format!(
        "{}+{:08x}",
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default(),
        all.finish() >> 32
    );

    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    let mut code = String::new();
    let _ = writeln!(code, "pub const UI_VERSION: &str = {version:?};");
    let _ = writeln!(code, "pub static ASSETS: &[Asset] = &[");
    for (rel, path, bytes) in entries {
        let (source, bytes) = if rel == "sw.js" {
            // The service worker changes whenever anything else does, so browsers install it.
            let text = String::from_utf8(bytes).expect("sw.js is UTF-8");
            let replaced = text.replace("__GATEHOUSE_UI_VERSION__", &version);
            let target = out.join("sw.js");
            std::fs::write(&target, &replaced).expect("write sw.js");
            (target, replaced.into_bytes())
        } else {
            (path, bytes)
        };
        let mut h = Fnv::new();
        h.write(&bytes);
        let _ = writeln!(
            code,
            "    Asset {{ path: {rel:?}, content_type: {:?}, etag: \"\\\"{:016x}\\\"\", body: include_bytes!({:?}) }},",
            content_type(&rel),
            h.finish(),
            source.display().to_string()
        );
    }
    let _ = writeln!(code, "];");
    std::fs::write(out.join("web_assets.rs"), code).expect("write web_assets.rs");
}

/// Files under `dir` as `/`-separated paths relative to `root`, skipping `tests/`, hidden
/// files and `node_modules`.
fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        panic!("the web UI folder {} is missing", dir.display());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "node_modules" {
            continue;
        }
        let rel = path
            .strip_prefix(root)
            .expect("below root")
            .to_string_lossy()
            .replace('\\', "/");
        if path.is_dir() {
            if rel == "tests" {
                continue;
            }
            println!("cargo:rerun-if-changed={}", path.display());
            collect(root, &path, out);
        } else {
            out.push(rel);
        }
    }
}

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "md" => "text/markdown; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    }
}

/// FNV-1a, 64 bits: enough to tell versions apart, with no build dependency.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}
