//! The path resolver against a workspace holding links that point outside,
//! inside, nowhere and in a loop, and a `.git` folder.
//!
//! Invariants: nothing panics; a resolved path is inside the root, also once
//! the file system resolves it; a path resolved for writing has no `.git`
//! component (in any letter case).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use execlayer::workspace::{Access, Workspace};
use libfuzzer_sys::fuzz_target;

fn workspace() -> &'static (PathBuf, Workspace) {
    static WS: OnceLock<(PathBuf, Workspace)> = OnceLock::new();
    WS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let dir = dir.canonicalize().expect("canonical");
        let root = dir.join("ws");
        std::fs::create_dir_all(root.join("src/deep")).unwrap();
        std::fs::create_dir_all(root.join(".git/hooks")).unwrap();
        std::fs::create_dir_all(dir.join("ws2")).unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        std::fs::write(dir.join("outside.txt"), "secret").unwrap();
        let link = |to: &str, at: &str| std::os::unix::fs::symlink(to, root.join(at)).unwrap();
        link(dir.join("outside.txt").to_str().unwrap(), "link_out");
        link("../ws2", "link_sibling");
        link("src", "link_in");
        link("src/deep/../../..", "link_up");
        link("missing/../../outside.txt", "dangling");
        link("loop_b", "loop_a");
        link("loop_a", "loop_b");
        link(".git", "g");
        let ws = Workspace::new(&root).expect("workspace");
        (root, ws)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let (root, ws) = workspace();
    for access in [Access::Read, Access::Write] {
        let Ok(p) = ws.resolve(raw, access) else { continue };
        let physical = p.physical();
        assert!(physical.starts_with(root), "{raw:?} resolved outside: {}", physical.display());
        if let Ok(real) = std::fs::canonicalize(physical) {
            assert!(real.starts_with(root), "{raw:?} leads outside: {}", real.display());
        }
        if access == Access::Write {
            let inside = physical.strip_prefix(root).unwrap();
            assert!(
                !inside.components().any(|c| c.as_os_str().to_string_lossy().eq_ignore_ascii_case(".git")),
                "{raw:?} writable inside .git: {}",
                physical.display()
            );
        }
    }
});
